"""`motion-agent say "TEXT"`: publish one request to a running agent, wait for its motion, write it.

The agent answers every request with a diagnostic whose `request` value is the request's label
(core.request_label); an OK one carries the same header stamp as the JointTrajectory and the skeleton
it published, which is how this client tells its own motion from others on the topics.

Writes OUT/trajectory.json (the robot's joints), OUT/trajectory.png (joint angles over time),
OUT/motion.bvh (the SMPL skeleton, for Blender or Unity) and OUT/motion.gif (an animated preview).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from motion_agent.motion.export import plot_trajectory
from motion_agent.nodes.diagnostics import request_label
from motion_agent.motion.export import write_bvh, write_gif
from motion_agent.nodes.messages import level_name, seconds_of, skeleton_joints, status_values, trajectory_dict
from motion_agent.nodes.settings import NodeConfig

SETTLE_S = 0.3  # after discovery, so the agent's publishers have matched this client's subscriptions too


class SayError(RuntimeError):
    """Timeout, a refused request, or no agent listening: one line for the user."""


def _stamp_key(stamp) -> tuple[int, int]:
    return (stamp.sec, stamp.nanosec)


def request_motion(text: str, config: NodeConfig,
                   timeout: float) -> tuple[JointTrajectory, MultiDOFJointTrajectory, dict[str, str]]:
    """Publish `text` and return (trajectory, skeleton, values of its OK diagnostic); SayError otherwise."""
    node = Node(f"motion_agent_say_{int(time.time() * 1000) % 100000}")
    label = request_label(text)
    trajectories: dict[tuple[int, int], JointTrajectory] = {}
    skeletons: dict[tuple[int, int], MultiDOFJointTrajectory] = {}
    answer: dict[str, object] = {}

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            values = status_values(status)
            if values.get("request") == label and "level" not in answer:
                answer.update(level=level_name(status), message=status.message, values=values,
                              stamp=_stamp_key(message.header.stamp))

    try:
        publisher = node.create_publisher(String, config.text_topics[0], 10)
        node.create_subscription(JointTrajectory, config.trajectory_topic,
                                 lambda m: trajectories.__setitem__(_stamp_key(m.header.stamp), m), 10)
        node.create_subscription(MultiDOFJointTrajectory, config.skeleton_topic,
                                 lambda m: skeletons.__setitem__(_stamp_key(m.header.stamp), m), 10)
        diagnostics = node.create_subscription(DiagnosticArray, config.diagnostics_topic, on_diagnostics, 50)
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() == 0 or diagnostics.get_publisher_count() == 0:
            if time.monotonic() > deadline:
                raise SayError(f"no agent answers on {config.text_topics[0]} and {config.diagnostics_topic} "
                               f"within {timeout:g} s; start one with `motion-agent launch --base-model DIR`")
            rclpy.spin_once(node, timeout_sec=0.05)
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.05)
        publisher.publish(String(data=text))
        while True:
            if answer.get("level") in ("ERROR", "WARN"):
                raise SayError(f"the agent did not make this motion: {answer['message']}")
            stamp = answer.get("stamp")
            if answer.get("level") == "OK" and stamp in trajectories and stamp in skeletons:
                return trajectories[stamp], skeletons[stamp], answer["values"]  # type: ignore[return-value]
            if time.monotonic() > deadline:
                got = "its diagnostic but not both motion messages" if answer else "no answer"
                raise SayError(f"timed out after {timeout:g} s waiting for the motion ({got})")
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()


def say(text: str, out: str | Path, timeout: float, config: NodeConfig) -> Path:
    """Request a motion and write its files (module docstring) into OUT; returns the trajectory JSON path."""
    rclpy.init(args=[])
    try:
        trajectory, skeleton, values = request_motion(text, config, timeout)
    finally:
        rclpy.try_shutdown()
    data = trajectory_dict(trajectory)
    data.update(request=text, diagnostics=values)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "trajectory.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    png = plot_trajectory(data["times"], data["positions"], data["joint_names"], out / "trajectory.png", text)
    times, joints = skeleton_joints(skeleton, config.pose_axes)
    fps = (len(times) - 1) / times[-1] if len(times) > 1 and times[-1] > 0 else 20.0
    bvh, gif = write_bvh(out / "motion.bvh", joints, fps), write_gif(joints, out / "motion.gif", fps, text)
    duration = data["times"][-1] if data["times"] else 0.0
    print(f"{text!r}: {len(data['times'])} points over {duration:.2f} s for {len(data['joint_names'])} joints "
          f"(expert {values.get('expert', '?')}, {values.get('frames', '?')} frames, "
          f"{values.get('latency_ms.total', '?')} ms in the agent, stamp {seconds_of(trajectory.header.stamp):.3f})")
    print(f"trajectory: {path}\nplot: {png}\nskeleton: {bvh}\npreview: {gif}")
    return path
