"""Observed poses -> sliding window -> MotionAgent.caption -> std_msgs/String on `caption`.

`PoseCaptioner` is the captioning part of a node. The agent node (`motion_agent`, motion_node.py)
carries one by default, sharing its model, so a robot loads the model once. This module's own node,
`motion_captioner` (console script `motion-agent-captioner`), runs captioning in a process of its own,
e.g. on the machine next to the camera; set `node.caption: false` in the agent YAML then.

Poses arrive as geometry_msgs/PoseArray with 22 poses in SMPL joint order, positions in metres, at the
motion rate (20 Hz). A pose with another joint count or with NaNs is answered with an error diagnostic
and dropped; the window is captioned every `window_stride` frames once it holds `window_size` frames.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from std_msgs.msg import String

from motion_agent.agent import CaptionResult, MotionAgent, RequestError
from motion_agent.nodes.common import guarded, load_agent, read_settings, run_node
from motion_agent.nodes.diagnostics import Diagnostics, caption_values
from motion_agent.nodes.messages import pose_points
from motion_agent.nodes.pose_window import PoseWindow, pose_frame
from motion_agent.nodes.settings import NodeConfig
from motion_agent.nodes.worker import LatestWinsWorker, Outcome, on_model_thread

NODE_NAME = "motion_captioner"


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
            PoseArray, config.pose_topic, guarded(node, self._on_pose), config.queue_depth
        )
        self.dropped = 0

    def _on_pose(self, message: PoseArray) -> None:
        try:
            frame = pose_frame(pose_points(message), self.config.pose_axes)
        except RequestError as error:
            self.dropped += 1
            self.diagnostics.publish(
                "observed_pose",
                "ERROR",
                f"pose dropped: {error}",
                {"poses": str(len(message.poses)), "dropped": str(self.dropped)},
            )
            return
        window = self.window.push(frame)
        if window is not None:
            self.worker.submit(window)

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
