"""`motion_agent`: text requests -> MotionAgent.generate -> JointTrajectory, markers and diagnostics.

Subscribes std_msgs/String on `text_command` and `speech_transcript`. Each request is checked in the
callback (empty, oversized, undecodable or word-less text is answered with an ERROR diagnostic and
dropped) and then generated on the process's model thread (core.on_model_thread), so the executor
keeps spinning. The latest request
wins: a waiting request is dropped when a newer one arrives, and a motion that finishes after a newer
request arrived is not published (both reported as WARN diagnostics).

Publishes, for every generated motion, with one header stamp (which `motion-agent say` matches):
  motion/joint_trajectory  trajectory_msgs/JointTrajectory (the robot's joints, positions + velocities)
  motion/markers           visualization_msgs/MarkerArray (LINE_LIST skeletons of a few key frames)
  motion/skeleton          trajectory_msgs/MultiDOFJointTrajectory (22 SMPL joint positions per frame, for
                           avatars and for `motion-agent say`'s BVH and GIF; axes from node.pose_axes)
  /diagnostics             diagnostic_msgs/DiagnosticArray (request, expert, frames, latency per stage, and a
                           real robot's feasibility report)
  motion/base_trajectory   trajectory_msgs/MultiDOFJointTrajectory (the floating base's pose, when the robot has one)
and, unless `node.caption` is false, captions observed poses like motion_captioner (caption_node.py).
The header stamp lies node.start_delay_s ahead, so a JointTrajectoryController starts the motion on time.
With agent.stream.enabled (and the onnx language model) the trajectory is also published while it is
decoded: each chunk the whole motion committed so far under the same stamp, the last one the whole motion
(motion_agent/streaming.py; a controller that replaces its trajectory with each message plays it seamlessly).
Each motion also plays out over time (motion_player.py): motion/joint_states (sensor_msgs/JointState) and,
for a real robot in upper_body mode, cmd_vel (geometry_msgs/Twist). A real robot's trajectory (agent.robot:
unitree_g1, booster_t1) blends in from the posture last heard on joint_states (sensor_msgs/JointState), and
one that a controller would refuse is not sent (an ERROR diagnostic says why).
With `node.keyring` set it also installs expert bundles from `node.bundle_inbox` and `experts/deploy`
while serving (expert_manager.py). With `node.record_mcap` set it records every message on the agent's
topics to an MCAP file for Foxglove (recording.py).

Parameters: config (agent YAML), base_model (overrides agent.base_model), frame_id.
Run: python -m motion_agent.nodes.motion_node --ros-args -p base_model:=DIR  (or motion-agent-node).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from motion_agent.agent import MotionAgent, MotionChunk, MotionResult, RequestError, check_text
from motion_agent.nodes.caption_node import PoseCaptioner
from motion_agent.nodes.common import guarded, load_agent, read_settings, run_node
from motion_agent.nodes.diagnostics import Diagnostics, generation_values, request_label
from motion_agent.nodes.expert_manager import ExpertManager
from motion_agent.nodes.messages import (
    base_trajectory_message,
    joint_state_positions,
    skeleton_markers,
    skeleton_message,
    string_bytes,
    trajectory_message,
)
from motion_agent.nodes.motion_player import MotionPlayer
from motion_agent.nodes.recording import TopicRecorder
from motion_agent.nodes.worker import LatestWinsWorker, Outcome, on_model_thread

NODE_NAME = "motion_agent"


@dataclass
class Request:
    id: int
    text: str
    topic: str
    start: Time | None = None  # when its motion starts: set by its first streamed chunk, else when published


class MotionNode(Node):
    def __init__(self, agent: MotionAgent | None = None, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.settings = read_settings(self)
        config = self.settings.node
        self.agent = agent or on_model_thread(load_agent, self, self.settings.agent, self.settings.node.torch_threads)
        self.diagnostics = Diagnostics(self, config.diagnostics_topic)
        self.trajectory_publisher = self.create_publisher(JointTrajectory, config.trajectory_topic, 10)
        self.marker_publisher = self.create_publisher(MarkerArray, config.markers_topic, 10)
        self.skeleton_publisher = self.create_publisher(MultiDOFJointTrajectory, config.skeleton_topic, 10)
        self.base_publisher = self.create_publisher(MultiDOFJointTrajectory, config.base_trajectory_topic, 10)
        retargeter = self.agent.retargeter
        # real robots blend a trajectory in from the posture on joint_states (and so get whole ones, unstreamed)
        self._start_from = getattr(retargeter, "start_from", None)
        self.player = MotionPlayer(self, config, getattr(retargeter, "fps", None) or retargeter.config.fps)
        self._posture: tuple[dict[str, float], float] | None = None  # joint_states, and when it came
        self.joint_state_subscription = self.create_subscription(
            JointState, config.joint_states_topic, guarded(self, self._on_joint_state), 10
        )
        self._ids = itertools.count(1)
        self.worker: LatestWinsWorker[Request] = LatestWinsWorker(self._generate, self._report, "generate")
        self.captioner = PoseCaptioner(self, self.agent, config, self.diagnostics) if config.caption else None
        self.expert_manager = ExpertManager(self, self.agent, config, self.diagnostics) if config.keyring else None
        self.recorder = TopicRecorder(self, config) if config.record_mcap else None
        # Raw subscriptions: rclpy would replace invalid UTF-8 silently; the agent refuses it instead.
        self.text_subscriptions = [
            self.create_subscription(
                String, topic, guarded(self, lambda raw, topic=topic: self._on_text(raw, topic)), 10, raw=True
            )
            for topic in config.text_topics
        ]
        self.get_logger().info(
            f"serving {', '.join(config.text_topics)} -> {config.trajectory_topic}"
            + (f"; captioning {config.pose_topic} -> {config.caption_topic}" if self.captioner else "")
        )

    def _on_text(self, raw: bytes, topic: str) -> None:
        request_id = next(self._ids)
        payload = b""
        try:
            payload = string_bytes(raw)
            text = check_text(payload, self.agent.config.max_text_chars)
        except Exception as error:  # RequestError, or a message that is not a String at all
            self.diagnostics.publish(
                f"request {request_id}",
                "ERROR",
                f"refused: {error}",
                {
                    "request_id": str(request_id),
                    "topic": topic,
                    "request": request_label(payload),
                    "reason": str(error) if isinstance(error, RequestError) else f"unreadable message: {error}",
                },
            )
            return
        self.worker.submit(Request(request_id, text, topic))

    def _on_joint_state(self, message: JointState) -> None:
        positions = joint_state_positions(message)
        if positions:
            known = dict(self._posture[0]) if self._posture else {}
            known.update(positions)  # several publishers may each cover some joints
            self._posture = (known, time.monotonic())

    def _robot_trajectory(self, result: MotionResult):
        """A real robot's trajectory blended in from its posture on joint_states when that is fresh; other
        robots' as generated."""
        trajectory = result.trajectory
        start_from, posture = self._start_from, self._posture
        if start_from is None or posture is None:
            return trajectory
        if time.monotonic() - posture[1] > self.settings.node.joint_states_max_age_s:
            return trajectory
        return start_from(trajectory, posture[0])

    def _generate(self, request: Request) -> MotionResult:
        sender = self._chunk_sender(request)
        if sender is None:
            return on_model_thread(self.agent.generate, request.text)
        return on_model_thread(self.agent.generate, request.text, on_chunk=sender)

    def _chunk_sender(self, request: Request):
        """Publishes each streamed chunk but the last (which `_report` publishes with the rest) on the
        trajectory topic, all with the stamp of the first; None when this node sends whole trajectories:
        streaming is off, or the robot blends its trajectory in from its posture (docs/robot.md)."""
        if not self.agent.config.stream.enabled or self._start_from is not None:
            return None

        def send(chunk: MotionChunk) -> None:
            if chunk.final:
                return
            if request.start is None:
                request.start = self.get_clock().now() + Duration(seconds=self.settings.node.start_delay_s)
            message = trajectory_message(chunk.trajectory, request.start.to_msg(), self.settings.node.frame_id)
            self.trajectory_publisher.publish(message)

        return send

    def _report(self, outcome: Outcome[Request]) -> None:
        request = outcome.job.item
        values = {"request_id": str(request.id), "topic": request.topic, "request": request_label(request.text)}
        name = f"request {request.id}"
        if outcome.superseded:
            newer = f" (request {outcome.newer.item.id})" if outcome.newer else ""
            values["superseded_by"] = str(outcome.newer.item.id) if outcome.newer else ""
            self.diagnostics.publish(name, "WARN", f"superseded: {outcome.superseded}{newer}", values)
            return
        if outcome.error is not None:
            reason = (
                str(outcome.error)
                if isinstance(outcome.error, RequestError)
                else (f"generation failed: {type(outcome.error).__name__}: {outcome.error}")
            )
            self.diagnostics.publish(name, "ERROR", reason, {**values, "reason": reason})
            return
        result: MotionResult = outcome.result
        now = self.get_clock().now()
        start = request.start or now + Duration(seconds=self.settings.node.start_delay_s)
        stamp = start.to_msg()
        frame_id = self.settings.node.frame_id
        try:
            trajectory = self._robot_trajectory(result)
        except ValueError as error:  # the robot's posture is too far from the motion to blend in
            self.diagnostics.publish(name, "ERROR", f"not sent: {error}", {**values, "reason": str(error)})
            return
        check = getattr(self.agent.retargeter, "controller_problems", None)
        problems = check(trajectory, start.nanoseconds * 1e-9, now.nanoseconds * 1e-9) if check else []
        if problems:
            reason = f"trajectory refused, a controller would not take it: {'; '.join(problems)}"
            self.diagnostics.publish(name, "ERROR", reason, {**values, "reason": reason})
            return
        self.trajectory_publisher.publish(trajectory_message(trajectory, stamp, frame_id))
        if trajectory.root_position is not None and trajectory.root_orientation is not None:
            self.base_publisher.publish(base_trajectory_message(trajectory, stamp, frame_id))
        self.player.play(trajectory, start)
        self.skeleton_publisher.publish(
            skeleton_message(
                result.joints, self.agent.config.features.fps, stamp, frame_id, self.settings.node.pose_axes
            )
        )
        self.marker_publisher.publish(
            skeleton_markers(result.joints, stamp, frame_id, self.settings.node.marker_frames, request.text[:60])
        )
        feasibility = trajectory.feasibility
        verdict = "" if feasibility is None else "; feasible" if feasibility["feasible"] else "; NOT feasible"
        self.diagnostics.publish(
            name,
            "OK",
            f"{result.seconds:.1f} s motion by expert {result.expert} for {request_label(request.text)!r}{verdict}",
            {**values, **generation_values(result, outcome.wait_ms, trajectory)},
            stamp=stamp,
        )

    def close(self) -> None:
        self.worker.close()
        if self.captioner:
            self.captioner.close()
        if self.recorder:
            self.recorder.close()


def main(args: list[str] | None = None) -> int:
    return run_node(MotionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
