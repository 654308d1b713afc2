import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from motion_agent.config import ConfigError, config_dir
from motion_agent.motion.demo import TURN_RATE, demo_motion
from motion_agent.motion.retarget import Retargeter, RobotConfig, available_robots, load_robot
from motion_agent.motion.skeleton import JOINT_NAMES, NUM_JOINTS, Skeleton, forward_kinematics


@pytest.fixture(scope="module")
def avatar() -> RobotConfig:
    return load_robot("smpl_avatar")


@pytest.fixture(scope="module")
def humanoid() -> RobotConfig:
    return load_robot("humanoid_25dof")


def test_shipped_robots_load(avatar, humanoid):
    assert {"smpl_avatar", "humanoid_25dof"} <= set(available_robots())
    assert len(avatar.joints) == 3 * (NUM_JOINTS - 1)
    assert avatar.root.orientation == "full" and avatar.root.position
    assert len(humanoid.joints) == 25
    for joint in humanoid.joints:
        assert joint.name.endswith("_joint")
        assert joint.lower < joint.upper and joint.max_velocity > 0
    assert load_robot(config_dir() / "robots" / "smpl_avatar.yaml") == avatar


def test_bad_configs_are_refused_with_the_key_named(tmp_path):
    path = tmp_path / "bot.yaml"
    path.write_text(
        "name: bot\njoints:\n  - {name: a, source: pelvis, axis: x}\n  - {name: b, source: left_hipp, axis: x}\n"
    )
    with pytest.raises(ConfigError, match=r"joints\[1\].*source 'left_hipp' is not an SMPL joint"):
        load_robot(path)
    path.write_text("name: bot\njoints:\n  - {name: a, source: left_knee, axis: x, relative_to: spine3}\n")
    with pytest.raises(ConfigError, match=r"joints\[0\].*relative_to 'spine3' is not an SMPL ancestor"):
        load_robot(path)
    with pytest.raises(ConfigError, match="available: .*humanoid_25dof"):
        load_robot("no_such_robot")
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load_robot(tmp_path / "missing.yaml")


def _stress_motion(seconds: float = 2.0, fps: float = 20.0) -> np.ndarray:
    """A deep squat past the knee limit with a fast two-arm flail: out of every robot's reach."""
    t = torch.arange(int(seconds * fps), dtype=torch.float64) / fps
    aa = torch.zeros(len(t), NUM_JOINTS, 3, dtype=torch.float64)
    aa[:, 4, 0] = aa[:, 5, 0] = 2.9 * t / seconds  # knees
    aa[:, 1, 0] = aa[:, 2, 0] = -2.0 * t / seconds  # hips flex
    aa[:, 16, 2] = 1.2 * torch.sin(2 * np.pi * 3.0 * t)  # left shoulder flaps at 3 Hz
    aa[:, 17, 2] = -1.2 * torch.sin(2 * np.pi * 3.0 * t)
    aa[:, 12, 1] = 1.5 * torch.sin(2 * np.pi * t)  # head shakes past its yaw limit
    aa[:, 0, 1] = 2.0 * t  # the body spins past pi, with its pelvis tilted
    aa[:, 0, 0] = 0.3
    root = torch.stack([0.5 * t, 0.9 - 0.3 * t, torch.zeros_like(t)], dim=-1)
    return forward_kinematics(root, aa).numpy()


def _rebuild_avatar(config: RobotConfig, trajectory, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of the avatar map: local rotations from the x/y/z angles, the root from its pose."""
    rotations = np.tile(np.eye(3), (len(rows), NUM_JOINTS, 1, 1))
    by_source: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for column, joint in enumerate(config.joints):
        assert joint.scale == 1.0 and joint.offset == 0.0 and joint.relative_to is None
        by_source.setdefault((joint.source, joint.euler), {})[joint.axis] = trajectory.positions[rows, column]
    assert len(by_source) == NUM_JOINTS - 1 and all(len(axes) == 3 for axes in by_source.values())
    for (source, sequence), angles in by_source.items():
        euler = np.stack([angles[axis.lower()] for axis in sequence], axis=-1)
        rotations[:, JOINT_NAMES.index(source)] = Rotation.from_euler(sequence, euler).as_matrix()
    rotations[:, 0] = Rotation.from_quat(trajectory.root_orientation[rows]).as_matrix()
    return torch.as_tensor(trajectory.root_position[rows]), torch.as_tensor(rotations)


@pytest.mark.parametrize("kind", ["turn", "jump", "stress"])
def test_avatar_map_is_exact(avatar, kind):
    joints = _stress_motion() if kind == "stress" else demo_motion(kind, seconds=2.0)
    trajectory = Retargeter(avatar).retarget(joints, fps=20.0)
    assert trajectory.clipped == trajectory.velocity_limited == 0
    # 30 Hz output meets the 20 fps input every 0.1 s: compare there, through the resampler too.
    rows = np.arange(0, len(trajectory.times), 3)
    root, rotations = _rebuild_avatar(avatar, trajectory, rows)
    rebuilt = forward_kinematics(root, rotations, Skeleton.from_joints(joints)).numpy()
    np.testing.assert_allclose(trajectory.times[rows], np.arange(len(rows)) * 0.1, atol=1e-9)
    assert np.abs(rebuilt - joints[::2][: len(rows)]).max() < 1e-3


@pytest.mark.parametrize("kind", ["walk", "jump", "stress"])
def test_humanoid_respects_limits(humanoid, kind):
    joints = _stress_motion() if kind == "stress" else demo_motion(kind, seconds=2.0)
    trajectory = Retargeter(humanoid).retarget(joints)
    lower = np.array([j.lower for j in humanoid.joints])
    upper = np.array([j.upper for j in humanoid.joints])
    speed = np.array([j.max_velocity for j in humanoid.joints])
    assert np.all(trajectory.positions >= lower - 1e-9) and np.all(trajectory.positions <= upper + 1e-9)
    assert np.all(np.abs(trajectory.velocities) <= speed + 1e-9)
    assert np.all(np.abs(np.diff(trajectory.positions, axis=0)) * humanoid.fps <= speed + 1e-9)
    if kind == "stress":
        assert trajectory.clipped > 0 and trajectory.velocity_limited > 0


def test_humanoid_signs(humanoid):
    """Walking bends knees and elbows positively; the swing leg's hip pitch goes negative (forward)."""
    trajectory = Retargeter(humanoid).retarget(demo_motion("turn", seconds=2.0))
    column = {name: trajectory.positions[:, i] for i, name in enumerate(trajectory.joint_names)}
    assert column["left_knee_joint"].min() > 0.1 and column["left_elbow_joint"].min() > 0.25
    assert column["left_hip_pitch_joint"].min() < -0.4 and column["left_hip_pitch_joint"].max() > 0.4
    np.testing.assert_allclose(trajectory.root_yaw, TURN_RATE * trajectory.times, atol=1e-6)
    heading = np.linalg.norm(trajectory.root_orientation[:, :2], axis=1)  # pure yaw: x = y = 0
    assert heading.max() < 1e-9 and trajectory.root_position[0, 0] > 0  # starts walking along +x


@pytest.mark.parametrize("rate, points", [(20.0, 40), (50.0, 98), (7.0, 14)])
def test_output_rate_resampling(humanoid, rate, points):
    joints = demo_motion("walk", seconds=2.0)  # 40 frames: 1.95 s
    config = dataclasses.replace(humanoid, fps=rate)
    trajectory = Retargeter(config).retarget(joints, fps=20.0)
    assert trajectory.positions.shape == trajectory.velocities.shape == (points, 25)
    assert trajectory.root_position.shape == (points, 3) and trajectory.root_yaw.shape == (points,)
    np.testing.assert_allclose(trajectory.times, np.arange(points) / rate)
    assert trajectory.times[-1] <= 1.95 + 1e-9
    np.testing.assert_allclose(trajectory.velocities, np.gradient(trajectory.positions, trajectory.times, axis=0))


def test_resampling_passes_through_the_motion_frames(humanoid):
    joints = demo_motion("walk", seconds=2.0)
    native = Retargeter(dataclasses.replace(humanoid, fps=20.0)).retarget(joints)
    fine = Retargeter(humanoid).retarget(joints)  # 50 Hz: every 5th sample is every 2nd frame
    np.testing.assert_allclose(fine.positions[::5], native.positions[::2][: len(fine.positions[::5])], atol=1e-9)


def test_bad_motions_are_refused(humanoid):
    retargeter = Retargeter(humanoid)
    joints = demo_motion("walk", seconds=1.0)
    broken = joints.copy()
    broken[7, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*frame 7"):
        retargeter.retarget(broken)
    with pytest.raises(ValueError, match=r"shape \(frames, 22, 3\)"):
        retargeter.retarget(joints[:, :21])
    with pytest.raises(ValueError, match="at least 2 frames"):
        retargeter.retarget(joints[:1])
