"""The one definition of which nodes make up the agent.

Both `launch/agent.launch.py` (for `ros2 launch`) and the standalone launcher (for machines without the
ROS 2 launch tool) build their processes from `NODE_SET`, so the two can never drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

PACKAGE = "motion_agent"


@dataclass(frozen=True)
class NodeSpec:
    """One node process: its ROS name, the console script colcon installs in lib/motion_agent, and the
    module `python -m` runs (what `motion-agent launch` starts, so it needs no installed scripts)."""

    name: str
    executable: str
    description: str
    module: str


# Captioning runs inside the agent node by default (one model load per robot); the standalone
# `motion_captioner` (console script motion-agent-captioner) is for running it in a process of its
# own, with `node.caption: false` in the agent YAML. Speech and expert-manager nodes join as they are built.
NODE_SET: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="motion_agent",
        executable="motion-agent-node",
        description="text_command/speech_transcript -> motion/joint_trajectory, motion/markers, /diagnostics; "
        "observed_pose -> caption",
        module="motion_agent.nodes.motion_node",
    ),
)
