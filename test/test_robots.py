"""Real robots by inverse kinematics (motion_agent/motion/robots): the Unitree G1 and the Booster T1 from
their installed URDFs, whole-body and upper-body retargeting, the rules a ros2_control
JointTrajectoryController holds a trajectory to, the blend in from the robot's posture, the cmd_vel twist
and the feasibility replay in MuJoCo. No ROS here (test_robot_nodes.py has the node)."""

from __future__ import annotations

import dataclasses
import importlib.util
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from motion_agent.config import ConfigError, config_dir
from motion_agent.motion.demo import TURN_RATE, WALK_SPEED, demo_motion
from motion_agent.motion.retarget import Retargeter

ROBOTS = ("unitree_g1", "booster_t1")
MODES = ("whole_body", "upper_body")
KINDS = ("walk", "turn", "jump")
SECONDS = 3.0


def _require_robots() -> None:
    for module in ("mujoco", "mink"):
        pytest.importorskip(
            module, reason=f"{module} is missing: the robots extra (pip install 'motion_agent[robots]')"
        )
    if importlib.util.find_spec("holosoma") is None:
        pytest.skip("holosoma (the G1 and T1 descriptions) is missing: `make setup` installs it with --no-deps")


@pytest.fixture(scope="module")
def retargeters():
    """(robot, mode) -> IKRetargeter, made once."""
    _require_robots()
    from motion_agent.motion.robots.loader import load_retargeter

    return {(robot, mode): load_retargeter(robot, mode) for robot in ROBOTS for mode in MODES}


@pytest.fixture(scope="module")
def trajectories(retargeters):
    """(robot, mode, kind) -> the trajectory of a demo motion, made once."""
    motions = {kind: demo_motion(kind, seconds=SECONDS) for kind in KINDS}
    return {
        (robot, mode, kind): retargeter.retarget(motions[kind])
        for (robot, mode), retargeter in retargeters.items()
        for kind in KINDS
    }


def _urdf_limits(path) -> dict[str, tuple[float, float, float]]:
    limits = {}
    for joint in ElementTree.parse(path).getroot().iter("joint"):
        limit = joint.find("limit")
        if joint.get("type") == "revolute" and limit is not None:
            limits[joint.get("name")] = tuple(float(limit.get(k)) for k in ("lower", "upper", "velocity"))
    return limits


@pytest.mark.parametrize("robot, alias", [("unitree_g1", "g1"), ("booster_t1", "t1")])
def test_robot_descriptions_come_from_the_installed_package_with_their_limits(retargeters, robot, alias):
    from motion_agent.motion.robots.loader import is_real_robot, resolve

    assert resolve(alias).stem == robot and is_real_robot(alias) and not is_real_robot("smpl_avatar")
    model = retargeters[(robot, "whole_body")].robot
    package = importlib.util.find_spec("holosoma").submodule_search_locations[0]
    assert str(model.path).startswith(package) and model.path.suffix == ".urdf"
    urdf = _urdf_limits(model.path)
    assert len(model.joint_names) == 29 and set(model.joint_names) == set(urdf)
    narrowed = model.config.joint_range
    for name, lower, upper, velocity in zip(model.joint_names, *dataclasses.astuple(model.limits)[1:]):
        expected = narrowed.get(name, urdf[name][:2])
        assert (lower, upper) == pytest.approx(expected) and velocity == urdf[name][2] > 0
        assert urdf[name][0] <= lower < upper <= urdf[name][1]  # narrowed only, never widened


@pytest.mark.parametrize("robot", ROBOTS)
def test_the_rest_pose_stands_on_the_floor_and_touches_nothing(retargeters, robot):
    from motion_agent.motion.robots.replay import pose, touching, touching_now

    model = retargeters[(robot, "whole_body")].robot
    rest = model.rest_geometry()
    model.forward(model.rest_qpos((0.0, 0.0, rest.stand_height)))
    assert model.lowest_point(model.all_foot_geoms) == pytest.approx(0.0, abs=1e-9)
    assert model.lowest_point(model.robot_geoms) >= -1e-9
    assert not touching_now(model, model.data) and len(model.geom_pairs[0]) > 20
    standing = model.rest_qpos((0.0, 0.0, rest.stand_height))[None]
    assert touching(model, standing, pose(model, standing)) == {}
    assert 0.5 < rest.stand_height < 1.0


def _write(tmp_path, text: str):
    path = tmp_path / "bot.yaml"
    path.write_text(text)
    return path


G1_YAML = (config_dir() / "robots" / "unitree_g1.yaml").read_text()


@pytest.mark.parametrize(
    "change, error",
    [
        (("body: left_elbow_link,", "body: left_elbo_link,"), r"key_bodies names 'left_elbo_link'"),
        (("feet: [left_ankle_roll_link,", "feet: [left_knee_link,"), r"feet: 'left_knee_link' must be a key body"),
        (("{smpl: pelvis,", "{smpl: pelvic,"), r"key_bodies\[0\].*smpl 'pelvic' is not an SMPL joint"),
        (("[left_arm, torso]", "[left_arm, chest]"), r"names group 'chest'"),
        (("mode: whole_body", "mode: both"), r"mode 'both' must be one of whole_body, upper_body"),
        (("package: holosoma", "package: no_such_robot_package"), r"package 'no_such_robot_package' is not installed"),
        (("left_elbow_joint: [-1.0472, 1.5]", "left_elbow_joint: [-1.0472, 2.5]"), r"joint_range.left_elbow_joint"),
        (("fps: 50.0", "fps: 50.0\nspeed: 2"), r"bot.yaml.speed is not a known key"),
    ],
)
def test_bad_robot_configs_are_refused_naming_the_key(retargeters, tmp_path, change, error):
    from motion_agent.motion.robots.loader import load_retargeter

    old, new = change
    assert old in G1_YAML
    with pytest.raises(ConfigError, match=error):
        load_retargeter(_write(tmp_path, G1_YAML.replace(old, new, 1)))


def test_the_joint_maps_still_load_and_have_no_modes(retargeters):
    from motion_agent.motion.robots.loader import load_retargeter

    assert isinstance(load_retargeter("smpl_avatar"), Retargeter)
    with pytest.raises(ConfigError, match="joint map without modes"):
        load_retargeter("smpl_avatar", "upper_body")
    with pytest.raises(ConfigError, match="robot mode 'legs'"):
        load_retargeter("g1", "legs")


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("kind", KINDS)
def test_whole_body_retargeting_tracks_the_human_feasibly(trajectories, retargeters, robot, kind):
    """Hands, feet and head within 30 mm (median) of the scaled human targets; no limit crossed, no
    self-collision in a MuJoCo replay, planted feet still, nothing under the floor."""
    trajectory = trajectories[(robot, "whole_body", kind)]
    feasibility = trajectory.feasibility
    assert trajectory.stats["key_body_error_mm"] <= 30.0
    assert feasibility["joint_limit_violations"] == 0 and feasibility["self_collision_frames"] == 0
    assert feasibility["foot_slide_m_s"] <= 0.05 and feasibility["contact_frames"] > 0
    assert feasibility["floor_penetration_mm"] <= 5.0 and feasibility["feasible"]
    assert trajectory.joint_names == list(retargeters[(robot, "whole_body")].robot.joint_names)
    legs = trajectory.stats["scale.legs"]
    assert 0.5 < legs < 1.0  # both robots are smaller than the average adult
    root, yaw = trajectory.root_position, trajectory.root_yaw
    if kind == "walk":  # the root follows the pelvis: forward, at the leg-scaled speed
        assert root[-1, 0] - root[0, 0] == pytest.approx(WALK_SPEED * legs * (SECONDS - 0.05), rel=0.15)
        assert abs(root[-1, 1] - root[0, 1]) < 0.1
    if kind == "turn":  # and turns with it
        assert yaw[-1] - yaw[0] == pytest.approx(TURN_RATE * (SECONDS - 0.05), rel=0.1)
    if kind == "jump":  # and leaves the floor with it
        stand = retargeters[(robot, "whole_body")].rest.stand_height
        assert root[:, 2].max() - stand > 0.15 * legs


@pytest.mark.parametrize("kind", ["walk", "corpus_walk", "corpus_jog"])
def test_a_mujoco_replay_of_a_generated_walk_keeps_the_g1_feet_above_the_floor(retargeters, kind):
    """Replayed through MuJoCo's own distance query (not the retargeter's closed-form heights), the G1's
    lowest point never goes more than 5 mm under the floor."""
    import mujoco

    from training.data.synth.corpus import CorpusConfig, perform

    if kind == "walk":
        joints = demo_motion("walk", seconds=4.0)
    else:
        joints = perform(kind.split("_")[1], "neutral", 4.0, np.random.default_rng(3), CorpusConfig())
    retargeter = retargeters[("unitree_g1", "whole_body")]
    trajectory = retargeter.retarget(joints)
    model = retargeter.robot
    m, data = model.model, mujoco.MjData(model.model)
    fromto = np.zeros(6)
    lowest = np.inf
    for positions, root, quaternion in zip(trajectory.positions, trajectory.root_position, trajectory.root_orientation):
        data.qpos[:3], data.qpos[3:7] = root, np.roll(quaternion, 1)
        data.qpos[model.qpos_index] = positions
        mujoco.mj_forward(m, data)
        for geom in model.robot_geoms:
            lowest = min(lowest, mujoco.mj_geomDistance(m, data, model.floor, int(geom), 1.0, fromto))
    assert lowest >= -0.005
    assert trajectory.feasibility["contact_frames"] > len(trajectory.times) // 2  # it walks on the floor


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_trajectories_keep_every_joint_trajectory_controller_rule(trajectories, retargeters, robot, mode, kind):
    trajectory = trajectories[(robot, mode, kind)]
    retargeter = retargeters[(robot, mode)]
    limits = retargeter.robot.limits.subset(trajectory.joint_names)
    times, positions, velocities = trajectory.times, trajectory.positions, trajectory.velocities
    # joint names the controller knows, each once; legs never commanded in the upper-body mode
    assert set(trajectory.joint_names) <= set(retargeter.robot.joint_names)
    assert len(set(trajectory.joint_names)) == len(trajectory.joint_names)
    legs = set(retargeter.config.leg_joints)
    if mode == "upper_body":
        assert not legs & set(trajectory.joint_names) and len(trajectory.joint_names) == 29 - len(legs)
    else:
        assert legs <= set(trajectory.joint_names)
    # strictly increasing times from zero, at the robot's rate
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), 1.0 / retargeter.fps)
    # velocities are the positions' central differences, and zero at both ends
    np.testing.assert_allclose(velocities[1:-1], np.gradient(positions, times, axis=0)[1:-1], atol=1e-9)
    assert np.all(velocities[0] == 0.0) and np.all(velocities[-1] == 0.0)
    assert np.abs(positions[1] - positions[0]).max() * retargeter.fps < 0.05  # starts at rest
    assert np.abs(positions[-1] - positions[-2]).max() * retargeter.fps < 0.05  # ends at rest
    # every position and velocity within limits
    assert np.all(positions >= limits.lower) and np.all(positions <= limits.upper)
    assert np.all(np.abs(velocities) <= retargeter.config.controller.velocity_fraction * limits.velocity + 1e-9)
    # and the controller's own check agrees; a stamp in the past is what it refuses
    assert retargeter.controller_problems(trajectory) == []
    assert retargeter.controller_problems(trajectory, stamp_s=100.1, now_s=100.0) == []
    assert any("in the past" in p for p in retargeter.controller_problems(trajectory, stamp_s=99.0, now_s=100.0))


def test_the_controller_check_names_each_broken_rule(trajectories, retargeters):
    trajectory = trajectories[("unitree_g1", "whole_body", "walk")]
    retargeter = retargeters[("unitree_g1", "whole_body")]
    limits = retargeter.robot.limits
    from motion_agent.motion.robots.controller import controller_problems

    def problems(**change):
        broken = dataclasses.replace(trajectory, **change)
        names = change.get("joint_names", broken.joint_names)
        return " | ".join(controller_problems(names, broken.times, broken.positions, broken.velocities, limits))

    times = trajectory.times.copy()
    times[5] = times[4]
    assert "strictly increase" in problems(times=times)
    positions = trajectory.positions.copy()
    positions[10, 3] = limits.upper[3] + 0.1
    assert "outside the joint limits" in problems(positions=positions)
    velocities = trajectory.velocities.copy()
    velocities[-1, 0] = 0.1
    assert "last point's velocity" in problems(velocities=velocities)
    assert "disagree" in problems(velocities=trajectory.velocities * 1.5)
    assert "does not know: elbow" in problems(joint_names=["elbow", *trajectory.joint_names[1:]])


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("mode", MODES)
def test_a_motion_blends_in_from_the_robots_current_posture(trajectories, retargeters, robot, mode):
    """From joint_states: the first point is the robot's posture, at rest; the blend's jerk is bounded;
    the motion after the blend is the motion; a posture too far away is refused naming the joint."""
    trajectory = trajectories[(robot, mode, "walk")]
    retargeter = retargeters[(robot, mode)]
    controller = retargeter.config.controller
    names = trajectory.joint_names
    limits = retargeter.robot.limits.subset(names)
    offset = {name: 0.4 if name.lower().startswith(("left", "waist")) else -0.3 for name in names}
    posture = np.clip([trajectory.positions[0, j] + offset[n] for j, n in enumerate(names)], limits.lower, limits.upper)
    current = dict(zip(names, posture))
    current["not_a_joint_of_this_trajectory"] = 1.0
    blended = retargeter.start_from(trajectory, current)
    np.testing.assert_allclose(blended.positions[0], [current[n] for n in names], atol=1e-9)
    assert np.all(blended.velocities[0] == 0.0) and np.all(blended.velocities[-1] == 0.0)
    assert retargeter.controller_problems(blended) == []
    rate = retargeter.fps
    window = int(controller.max_blend_s * rate)
    jerk = np.abs(np.diff(blended.positions, n=3, axis=0))[:window].max(axis=0) * rate**3
    own = np.abs(np.diff(trajectory.positions, n=3, axis=0))[:window].max(axis=0) * rate**3
    assert np.all(jerk <= 1.2 * (controller.max_jerk + own))  # the fade's own jerk, and the motion's
    blend = next(i for i in range(len(blended.times)) if np.allclose(blended.positions[i:], trajectory.positions[i:]))
    assert 0 < blend / rate <= controller.max_blend_s
    far = {names[0]: trajectory.positions[0, 0] + 3.0}
    narrow = dataclasses.replace(retargeter.config.controller, max_blend_s=0.5)
    from motion_agent.motion.robots.controller import start_from

    with pytest.raises(ValueError, match=f"from the motion's start at {names[0]}"):
        start_from(trajectory, far, retargeter.robot.limits, narrow, rate)


@pytest.mark.parametrize("robot", ROBOTS)
def test_upper_body_mode_sends_the_root_as_a_base_twist(trajectories, retargeters, robot):
    walk, turn = trajectories[(robot, "upper_body", "walk")], trajectories[(robot, "upper_body", "turn")]
    config = retargeters[(robot, "upper_body")].config.base_velocity
    rate = retargeters[(robot, "upper_body")].fps
    for trajectory in (walk, turn):
        twist = trajectory.base_twist
        assert trajectory.root_position is None and twist.shape == (len(trajectory.times), 3)
        assert np.all(twist[0] == 0.0) and np.all(twist[-1] == 0.0)  # from rest, back to rest
        assert np.hypot(twist[:, 0], twist[:, 1]).max() <= config.max_linear_m_s + 1e-9
        assert np.abs(np.diff(twist[:, 0])).max() * rate <= config.max_linear_acceleration + 1e-9
    legs = walk.stats["scale.legs"]
    cruise = walk.base_twist[len(walk.times) // 3 : 2 * len(walk.times) // 3]
    assert np.mean(cruise[:, 0]) == pytest.approx(min(WALK_SPEED * legs, config.max_linear_m_s), rel=0.1)
    assert np.abs(cruise[:, 1]).max() < 0.1 and np.abs(cruise[:, 2]).max() < 0.1  # straight ahead
    turning = turn.base_twist[len(turn.times) // 3 : 2 * len(turn.times) // 3, 2]
    assert np.mean(turning) == pytest.approx(min(TURN_RATE, config.max_angular_rad_s), rel=0.1)


def test_feasibility_reports_what_a_robot_could_not_do(trajectories, retargeters):
    """A replay that crosses a limit, folds an arm into the torso, drags a planted foot and sinks the
    robot into the floor is reported for each."""
    from motion_agent.motion.robots.feasibility import check_feasibility

    retargeter = retargeters[("unitree_g1", "whole_body")]
    trajectory = trajectories[("unitree_g1", "whole_body", "jump")]
    names = trajectory.joint_names
    positions, root = trajectory.positions.copy(), trajectory.root_position.copy()
    positions[:20, names.index("left_knee_joint")] = 3.5  # past its 2.88 rad limit
    arm = {"right_shoulder_roll_joint": 0.4, "right_shoulder_pitch_joint": -1.0, "right_elbow_joint": -1.0}
    for name, value in arm.items():
        positions[30:40, names.index(name)] = value  # the right forearm through the torso
    root[50:60, 2] -= 0.05  # sunk 5 cm
    root[:, 0] += 0.02 * np.arange(len(root))  # sliding 1 m/s, feet and all
    broken = dataclasses.replace(trajectory, positions=positions, root_position=root)
    report = check_feasibility(retargeter.robot, broken, retargeter.config.feasibility)
    assert report.joint_limit_violations >= 20 and report.self_collision_frames >= 5
    assert "torso_link" in report.colliding_bodies
    assert report.floor_penetration_mm == pytest.approx(50.0, abs=5.0)
    assert report.foot_slide_m_s == pytest.approx(1.0, abs=0.05) and not report.feasible
    values = report.values()
    assert values["feasibility.feasible"] == "false" and "feasibility.foot_slide_m_s" in values


def test_planted_feet_and_the_skating_rule():
    from motion_agent.motion.robots.config import ContactConfig
    from motion_agent.motion.robots.contacts import pin_feet, planted, runs

    config = ContactConfig(height_m=0.05, speed_m_s=0.5, min_frames=2)
    height = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.2], [0.0, 0.2], [0.01, 0.01], [0.01, 0.01]])
    speed = np.array([[0.1, 0.1], [0.1, 0.1], [0.1, 3.0], [0.1, 3.0], [2.0, 1.0], [2.0, 1.0]])
    contact = planted(height, speed, config)
    # both slow and low: both planted; the right foot in the air: not; both low and fast: the slower one
    np.testing.assert_array_equal(contact, [[1, 1], [1, 1], [1, 0], [1, 0], [0, 1], [0, 1]])
    assert runs(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]
    free = np.stack([np.linspace(0, 1, 10), np.zeros(10), np.zeros(10)], axis=1)
    plant = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1], dtype=bool)
    position, yaw = pin_feet(free, np.linspace(0, 1, 10), plant, 0.05, release_frames=2, swing_height=0.04)
    np.testing.assert_allclose(position[2:5], [[free[2, 0], 0.0, 0.05]] * 3)  # still, on the floor
    np.testing.assert_allclose(yaw[2:5], yaw[2])
    assert np.all(position[:, 2] >= 0.05) and position[6, 2] > 0.05 + 0.03  # lifted in the step


def test_the_eased_timeline_starts_and_ends_at_rest():
    from motion_agent.motion.robots.controller import eased_times, minimum_jerk

    shown = eased_times(2.0, 50.0, 0.5)
    assert shown[0] == 0.0 and shown[-1] == 2.0 and len(shown) == int(2.5 * 50) + 1
    speed = np.diff(shown) * 50.0
    assert speed[0] < 0.01 and speed[-1] < 0.01 and np.all(speed <= 1.0 + 1e-9) and np.all(speed >= 0)
    np.testing.assert_allclose(speed[40:80], 1.0)  # real time in the middle
    assert minimum_jerk(np.array([0.0, 0.5, 1.0])).tolist() == [0.0, 0.5, 1.0]


def test_closed_form_rotation_vectors_match_scipy():
    _require_robots()
    from scipy.spatial.transform import Rotation

    from motion_agent.motion.robots.key_task import rotation_vectors

    rotations = Rotation.random(500, random_state=1)
    np.testing.assert_allclose(rotation_vectors(rotations.as_matrix()), rotations.as_rotvec(), atol=1e-9)


def test_motion_agent_retarget_writes_the_trajectory_the_report_and_a_picture(retargeters, tmp_path, capsys):
    import json

    from motion_agent.cli import main

    assert main(["retarget", "--robot", "t1", "--kind", "jump", "--seconds", "2", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "booster_t1 (whole_body)" in printed and "feasible:" in printed
    report = json.loads((tmp_path / "feasibility.json").read_text())
    assert report["feasible"] and report["self_collision_frames"] == 0 and "key_body_error_mm" in report
    data = json.loads((tmp_path / "robot_trajectory.json").read_text())
    assert data["robot"] == "booster_t1" and len(data["positions"]) == len(data["times"])
    assert (tmp_path / "robot.png").stat().st_size > 10_000
    assert main(["retarget", "--robot", "smpl_avatar", "--out", str(tmp_path)]) == 1
    assert "joint map" in capsys.readouterr().err
