"""The agent node driving a real robot (agent.robot: unitree_g1 or booster_t1), over real topics: the
JointTrajectory a ros2_control JointTrajectoryController takes (stamped ahead, the robot's joint names,
strictly increasing times, zero velocity at the end, within limits, blended in from the posture heard on
joint_states), the floating base in whole_body mode, cmd_vel in upper_body mode, the motion played out
on motion/joint_states, and the feasibility report on /diagnostics. A stub agent stands in for the
language model where only the wiring is under test; the slow test serves the tiny model itself."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from motion_agent.agent import AgentConfig, MotionResult
from motion_agent.motion.demo import demo_motion

ANSWER_TIMEOUT = 60.0
MOTION_S = 2.5


@pytest.fixture(scope="module", autouse=True)
def _robots_installed():
    for module in ("mujoco", "mink"):
        pytest.importorskip(
            module, reason=f"{module} is missing: the robots extra (pip install 'motion_agent[robots]')"
        )
    if importlib.util.find_spec("holosoma") is None:
        pytest.skip("holosoma (the G1 and T1 descriptions) is missing: `make setup` installs it with --no-deps")


class RobotStub:
    """Stands in for MotionAgent (not for ROS): a demo walk retargeted onto a real robot."""

    def __init__(self, robot: str, mode: str) -> None:
        from motion_agent.motion.robots.loader import load_retargeter

        self.config = AgentConfig(robot=robot, robot_mode=mode)
        self.retargeter = load_retargeter(robot, mode)
        self.joints = demo_motion("walk", seconds=MOTION_S)

    def generate(self, text: str) -> MotionResult:
        trajectory = self.retargeter.retarget(self.joints)
        return MotionResult(text, np.zeros(3, dtype=int), self.joints, trajectory, "stub", {"retarget": 1.0})


def _config(tmp_path, robot: str, mode: str, base_model: str = "") -> str:
    path = tmp_path / f"{robot}_{mode}.yaml"
    path.write_text(
        f"agent: {{robot: {robot}, robot_mode: {mode}, base_model: '{base_model}'}}\n"
        "node: {caption: false, frame_id: odom}\n"
    )
    return str(path)


class Listener:
    """What the node publishes besides the trajectory: twists, played joint states, base trajectories."""

    def __init__(self, client) -> None:
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import JointState
        from trajectory_msgs.msg import MultiDOFJointTrajectory

        config = client.config
        self.twists, self.played, self.bases = [], [], {}
        client.subscription(Twist, config.cmd_vel_topic, self.twists.append)
        client.subscription(JointState, config.motion_joint_states_topic, self.played.append)
        client.subscription(
            MultiDOFJointTrajectory,
            config.base_trajectory_topic,
            lambda m: self.bases.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m),
        )
        self.posture = client.publisher(JointState, config.joint_states_topic)


def _serve(node, settings):
    """(executor, client, listener) around an in-process node."""
    from rclpy.executors import MultiThreadedExecutor

    from motion_agent.nodes.client import AgentClient

    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    client = AgentClient(settings, f"robot_test_client_{id(node)}", executor=executor, answer_timeout_s=ANSWER_TIMEOUT)
    listener = Listener(client)
    return executor, client, listener


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _check_controller_rules(message, retargeter, sent_at_s: float) -> np.ndarray:
    """Every rule a JointTrajectoryController holds a trajectory to, on the message as received."""
    from motion_agent.nodes.messages import seconds_of

    names = list(message.joint_names)
    times = np.array([seconds_of(p.time_from_start) for p in message.points])
    positions = np.array([p.positions for p in message.points])
    velocities = np.array([p.velocities for p in message.points])
    stamp = _seconds(message.header.stamp)
    assert stamp > sent_at_s  # stamped ahead: the controller starts it on time, not already late
    assert set(names) <= set(retargeter.robot.joint_names) and len(set(names)) == len(names)
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    assert np.all(velocities[-1] == 0.0) and np.all(velocities[0] == 0.0)
    limits = retargeter.robot.limits.subset(names)
    assert np.all(positions >= limits.lower - 1e-9) and np.all(positions <= limits.upper + 1e-9)
    assert np.all(np.abs(velocities) <= limits.velocity)
    np.testing.assert_allclose(velocities[1:-1], np.gradient(positions, times, axis=0)[1:-1], atol=1e-6)
    assert retargeter.controller_problems(_as_trajectory(message), stamp, sent_at_s) == []
    return positions


def _as_trajectory(message):
    from motion_agent.motion.retarget import Trajectory
    from motion_agent.nodes.messages import seconds_of

    return Trajectory(
        list(message.joint_names),
        np.array([seconds_of(p.time_from_start) for p in message.points]),
        np.array([p.positions for p in message.points]),
        np.array([p.velocities for p in message.points]),
    )


@pytest.mark.ros
@pytest.mark.parametrize("robot, mode", [("unitree_g1", "upper_body"), ("booster_t1", "whole_body")])
def test_the_node_sends_a_real_robot_trajectories_a_controller_accepts(ros, tmp_path, robot, mode):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState

    from motion_agent.nodes.motion_node import MotionNode
    from motion_agent.nodes.settings import load_node_config

    stub = RobotStub(robot, mode)
    config = _config(tmp_path, robot, mode)
    node = MotionNode(agent=stub, parameter_overrides=[Parameter("config", value=config)])
    executor, client, listener = _serve(node, load_node_config(config))
    try:
        client.wait_ready(ANSWER_TIMEOUT, what="the robot node's topics")
        names = stub.retargeter.joint_names
        first = stub.generate("probe").trajectory.positions[0]
        posture = first + np.where(np.arange(len(names)) % 2, 0.15, -0.1)  # a robot standing elsewhere
        limits = stub.retargeter.robot.limits.subset(names)
        posture = np.clip(posture, limits.lower, limits.upper)
        listener.posture.publish(JointState(name=list(names), position=posture.tolist()))
        client.spin_for(0.3)
        sent_at = node.get_clock().now().nanoseconds * 1e-9
        reply = client.ask("walk forward", timeout=ANSWER_TIMEOUT)
        assert reply.ok, reply.message
        positions = _check_controller_rules(reply.trajectory, stub.retargeter, sent_at)
        np.testing.assert_allclose(positions[0], posture, atol=1e-6)  # blended in from joint_states
        values = reply.values
        assert values["feasibility.feasible"] == "true" and "feasible" in reply.message
        assert int(values["feasibility.self_collision_frames"]) == 0
        assert float(values["retarget.key_body_error_mm"]) <= 30.0
        duration = float(reply.trajectory.points[-1].time_from_start.sec) + 1.0
        client.spin_until(lambda: len(listener.played) >= 10, what="the motion played on motion/joint_states")
        assert list(listener.played[-1].name) == list(names)
        stamp = (reply.trajectory.header.stamp.sec, reply.trajectory.header.stamp.nanosec)
        if mode == "upper_body":  # legs never commanded; the base moves by cmd_vel, back to rest at the end
            assert not set(stub.retargeter.config.leg_joints) & set(reply.trajectory.joint_names)
            client.spin_for(duration)
            forward = [t.linear.x for t in listener.twists]
            assert max(forward) > 0.3 and forward[-1] == 0.0 and listener.twists[-1].angular.z == 0.0
            assert not listener.bases
        else:  # every joint, and the floating base on its own topic with the same stamp
            assert len(reply.trajectory.joint_names) == 29
            base = client.spin_until(lambda: listener.bases.get(stamp), what="the base trajectory")
            assert list(base.joint_names) == ["floating_base"] and len(base.points) == len(reply.trajectory.points)
            heights = [p.transforms[0].translation.z for p in base.points]
            assert 0.5 < min(heights) and max(heights) < 1.0
            client.spin_for(1.0)
            assert listener.twists == []
    finally:
        client.close()
        node.close()
        executor.shutdown()
        node.destroy_node()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize(
    "robot, mode",
    [
        ("unitree_g1", "whole_body"),
        ("unitree_g1", "upper_body"),
        ("booster_t1", "whole_body"),
        ("booster_t1", "upper_body"),
    ],
)
def test_the_tiny_model_serves_real_robots_in_both_modes(ros, tmp_path, tiny_base_model, robot, mode):
    """`agent.robot: unitree_g1` or `booster_t1`, generated by the tiny model, over topics."""
    from rclpy.parameter import Parameter

    from motion_agent.nodes.motion_node import MotionNode
    from motion_agent.nodes.settings import load_node_config

    config = _config(tmp_path, robot, mode, str(tiny_base_model))
    node = MotionNode(parameter_overrides=[Parameter("config", value=config)])
    executor, client, listener = _serve(node, load_node_config(config))
    try:
        client.wait_ready(ANSWER_TIMEOUT, what="the robot node's topics")
        sent_at = node.get_clock().now().nanoseconds * 1e-9
        reply = client.ask("a person walks forward for 2 seconds", timeout=ANSWER_TIMEOUT)
        assert reply.ok, reply.message
        _check_controller_rules(reply.trajectory, node.agent.retargeter, sent_at)
        expected = len(node.agent.retargeter.joint_names)
        assert len(reply.trajectory.joint_names) == expected == (29 if mode == "whole_body" else 17)
        assert reply.values["feasibility.joint_limit_violations"] == "0"
        started = time.monotonic()
        client.spin_until(lambda: listener.played, what="motion/joint_states")
        assert time.monotonic() - started < ANSWER_TIMEOUT
    finally:
        client.close()
        node.close()
        executor.shutdown()
        node.destroy_node()


@pytest.mark.ros
def test_say_draws_the_robot_performing_the_motion_with_its_feasibility(ros, tmp_path, capsys):
    """`motion-agent say TEXT --robot g1` against a running agent: besides the usual files, a picture of
    the G1 performing the motion, its trajectory and its feasibility report."""
    import json
    import threading

    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from motion_agent.nodes.motion_node import MotionNode
    from motion_agent.nodes.say import say
    from motion_agent.nodes.settings import load_node_config

    config = _config(tmp_path, "unitree_g1", "upper_body")
    node = MotionNode(
        agent=RobotStub("unitree_g1", "upper_body"), parameter_overrides=[Parameter("config", value=config)]
    )
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        say("wave to the people", tmp_path / "say", ANSWER_TIMEOUT, load_node_config(config), robot="g1")
    finally:
        executor.shutdown()
        spinner.join(timeout=10)
        node.close()
        node.destroy_node()
    out = tmp_path / "say"
    assert (out / "robot.png").stat().st_size > 10_000
    report = json.loads((out / "feasibility.json").read_text())
    assert report["robot"] == "unitree_g1" and report["mode"] == "whole_body" and report["feasible"]
    trajectory = json.loads((out / "robot_trajectory.json").read_text())
    assert len(trajectory["joint_names"]) == 29 and len(trajectory["root_position"]) == len(trajectory["times"])
    printed = capsys.readouterr().out
    assert "the agent's robot: feasible" in printed and "unitree_g1: feasible" in printed
