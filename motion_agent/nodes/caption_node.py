"""Observed poses -> sliding window -> MotionAgent.caption -> std_msgs/String on `caption`.

`PoseCaptioner` is the captioning part of a node. The agent node (`motion_agent`, motion_node.py)
carries one by default, sharing its model, so a robot loads the model once. This module's own node,
`motion_captioner` (console script `motion-agent-captioner`), runs captioning in a process of its own,
e.g. on the machine next to the camera; set `node.caption: false` in the agent YAML then.

Poses arrive as geometry_msgs/PoseArray with 22 poses in SMPL joint order, positions in metres, at the
motion rate (20 Hz). A pose with another joint count, NaNs or implausible coordinates is dropped; the
window is captioned every `window_stride` frames once it holds `window_size` frames.

A pose stream cannot starve the node: messages arrive serialized and are read only when they are small
enough for 22 poses and come no faster than `node.max_pose_rate_hz` on average (bursts of up to a
second's worth pass, as after a stalled executor). A PoseArray of 10,000 poses at 90 Hz kept text
requests waiting for seconds while the executor deserialized them. Drops are counted and reported at
most once a second per kind (`DROP_REPORT_S`), so a flood does not become a diagnostics flood.
"""

from __future__ import annotations

import re
import time

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from motion_agent.agent import CaptionResult, MotionAgent, RequestError
from motion_agent.nodes.common import guarded, load_agent, read_settings, run_node
from motion_agent.nodes.diagnostics import Diagnostics, caption_values
from motion_agent.nodes.messages import pose_points
from motion_agent.nodes.pose_window import PoseWindow, pose_frame
from motion_agent.nodes.settings import NodeConfig
from motion_agent.nodes.worker import LatestWinsWorker, Outcome, on_model_thread

NODE_NAME = "motion_captioner"
# A serialized PoseArray of 22 poses is 1.3 KB plus its frame id; anything much larger is no pose of ours.
MAX_POSE_MESSAGE_BYTES = 4096
DROP_REPORT_S = 1.0  # at most one "pose dropped" diagnostic a second, counting every drop since the last


class PoseCaptioner:
    """Subscribes `pose_topic` on `node` and publishes captions; the model runs on the model thread."""

    def __init__(self, node: Node, agent: MotionAgent, config: NodeConfig, diagnostics: Diagnostics) -> None:
        self.node, self.agent, self.config, self.diagnostics = node, agent, config, diagnostics
        self.window = PoseWindow(config.window_size, config.window_stride)
        self.publisher = node.create_publisher(String, config.caption_topic, 10)
        self.worker: LatestWinsWorker[np.ndarray] = LatestWinsWorker(
            self._caption, self._report, "caption", discard_stale=False
        )
        self.subscription = node.create_subscription(
            PoseArray, config.pose_topic, guarded(node, self._on_pose), config.queue_depth, raw=True
        )
        self.dropped = 0
        # a token bucket: bursts up to a second's worth (an executor that stalled delivers queued poses at
        # once), but no more than max_pose_rate_hz sustained
        self._tokens, self._refilled = config.max_pose_rate_hz, time.monotonic()
        self._last_report: dict[str, float] = {}  # per kind of reason: when it was last reported
        self._unreported = 0

    def _on_pose(self, serialized: bytes) -> None:
        """Check what is cheap (size, rate) before paying for deserialization, then the pose itself."""
        now = time.monotonic()
        if len(serialized) > MAX_POSE_MESSAGE_BYTES:
            self._drop(f"a {len(serialized)}-byte message is no 22-joint pose", now)
            return
        rate = self.config.max_pose_rate_hz
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            self._drop(f"poses arrive faster than {rate:g} Hz", now)
            return
        self._tokens -= 1.0
        try:
            message = deserialize_message(serialized, PoseArray)
            frame = pose_frame(pose_points(message), self.config.pose_axes, self.config.max_pose_coordinate_m)
        except RequestError as error:
            self._drop(str(error), now)
            return
        window = self.window.push(frame)
        if window is not None:
            self.worker.submit(window)

    def _drop(self, reason: str, now: float) -> None:
        """Count a dropped pose; report it unless the same kind of drop was reported within DROP_REPORT_S."""
        self.dropped += 1
        self._unreported += 1
        kind = re.sub(r"[\d.]+", "#", reason)  # "a 1234-byte message ..." and "a 99-byte ..." are one kind
        if now - self._last_report.get(kind, -float("inf")) < DROP_REPORT_S:
            return
        self._last_report[kind] = now
        self.diagnostics.publish(
            "observed_pose",
            "ERROR",
            f"pose dropped: {reason}",
            {"dropped": str(self.dropped), "dropped_since_last_report": str(self._unreported)},
        )
        self._unreported = 0

    def _caption(self, window: np.ndarray) -> CaptionResult:
        return on_model_thread(self.agent.caption, window)

    def _report(self, outcome: Outcome[np.ndarray]) -> None:
        if outcome.error is not None:
            self.diagnostics.publish(
                "caption", "ERROR", f"caption failed: {outcome.error}", {"frames": str(len(outcome.job.item))}
            )
        elif outcome.superseded:
            self.diagnostics.publish(
                "caption", "WARN", f"caption skipped: {outcome.superseded}", {"frames": str(len(outcome.job.item))}
            )
        else:
            result: CaptionResult = outcome.result
            self.publisher.publish(String(data=result.caption))
            self.diagnostics.publish(
                "caption",
                "OK",
                f"captioned {result.frames} frames: {result.caption[:80]}",
                caption_values(result, outcome.wait_ms),
            )

    def close(self) -> None:
        self.worker.close()


class CaptionNode(Node):
    """`motion_captioner`: captioning in a process of its own (loads its own copy of the model)."""

    def __init__(self, agent: MotionAgent | None = None, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.settings = read_settings(self)
        self.agent = agent or on_model_thread(load_agent, self, self.settings.agent, self.settings.node.torch_threads)
        self.diagnostics = Diagnostics(self, self.settings.node.diagnostics_topic)
        self.captioner = PoseCaptioner(self, self.agent, self.settings.node, self.diagnostics)
        self.get_logger().info(f"captioning {self.settings.node.pose_topic} -> {self.settings.node.caption_topic}")

    def close(self) -> None:
        self.captioner.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CaptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
