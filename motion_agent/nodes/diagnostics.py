"""Diagnostics of the agent nodes: what each request's DiagnosticStatus says (its label, timings, expert,
router losses) and the publisher that sends one DiagnosticArray per event."""

from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from motion_agent.agent import CaptionResult, MotionResult
from motion_agent.motion.retarget import Trajectory
from motion_agent.nodes.messages import diagnostic_array, diagnostic_status

LABEL_CHARS = 120  # how much of a request its diagnostics repeat


def request_label(text: object) -> str:
    """A request as its diagnostics name it: whitespace collapsed, at most LABEL_CHARS characters.

    `motion-agent say` finds the diagnostics of its own request by this label."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(str(text).split())[:LABEL_CHARS]


def _timings(timings_ms: dict[str, float]) -> dict[str, str]:
    values = {f"latency_ms.{stage}": f"{ms:.1f}" for stage, ms in timings_ms.items()}
    values["latency_ms.total"] = f"{sum(timings_ms.values()):.1f}"
    return values


def _router_scores(scores: dict[str, float]) -> dict[str, str]:
    return {f"router_loss.{expert}": f"{loss:.4g}" for expert, loss in scores.items()}


def _robot_values(trajectory: Trajectory) -> dict[str, str]:
    """A real robot's feasibility report (feasibility.*) and retargeting figures (retarget.*)."""
    values = {f"retarget.{key}": f"{value:.4g}" for key, value in trajectory.stats.items()}
    for key, value in (trajectory.feasibility or {}).items():
        if isinstance(value, bool):
            values[f"feasibility.{key}"] = str(value).lower()
        elif isinstance(value, float):
            values[f"feasibility.{key}"] = f"{value:.4g}"
        else:
            values[f"feasibility.{key}"] = str(value)
    return values


def generation_values(result: MotionResult, wait_ms: float, trajectory: Trajectory | None = None) -> dict[str, str]:
    """What an OK request's diagnostic says; `trajectory` is the one published (result.trajectory blended
    in from the robot's posture, say)."""
    trajectory = result.trajectory if trajectory is None else trajectory
    duration = float(trajectory.times[-1]) if len(trajectory.times) else 0.0
    return {
        "expert": result.expert,
        "frames": str(len(result.joints)),
        "motion_tokens": str(len(result.codes)),
        "seconds": f"{result.seconds:.2f}",
        "trajectory_points": str(len(trajectory.times)),
        "trajectory_seconds": f"{duration:.3f}",
        "robot_joints": str(len(trajectory.joint_names)),
        "clipped": str(trajectory.clipped),
        "velocity_limited": str(trajectory.velocity_limited),
        "latency_ms.queue": f"{wait_ms:.1f}",
        **_timings(result.timings_ms),
        **({} if result.first_chunk_ms is None else {"latency_ms.first_chunk": f"{result.first_chunk_ms:.1f}"}),
        **_router_scores(result.router_scores),
        **_robot_values(trajectory),
    }


def caption_values(result: CaptionResult, wait_ms: float) -> dict[str, str]:
    return {
        "expert": result.expert,
        "frames": str(result.frames),
        "caption": result.caption,
        "latency_ms.queue": f"{wait_ms:.1f}",
        **_timings(result.timings_ms),
        **_router_scores(result.router_scores),
    }


class Diagnostics:
    """One DiagnosticArray per event on the diagnostics topic; safe to call from worker threads."""

    def __init__(self, node: Node, topic: str) -> None:
        self.node = node
        self.publisher = node.create_publisher(DiagnosticArray, topic, 10)
        self.hardware_id = node.get_fully_qualified_name()
        self._lock = threading.Lock()

    def publish(self, name: str, level: str, message: str, values: dict[str, str], stamp=None) -> None:
        stamp = stamp or self.node.get_clock().now().to_msg()
        status = diagnostic_status(f"{self.node.get_name()}: {name}", self.hardware_id, level, message, values)
        with self._lock:
            self.publisher.publish(diagnostic_array(stamp, [status]))
        logger = self.node.get_logger()  # one call site per severity: rclpy refuses mixing them
        if level == "OK":
            logger.info(f"{name}: {message}")
        elif level == "WARN":
            logger.warning(f"{name}: {message}")
        else:
            logger.error(f"{name}: {message}")
