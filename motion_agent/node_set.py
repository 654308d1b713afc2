"""The one definition of which nodes make up the agent.

Both `launch/agent.launch.py` (for `ros2 launch`) and the standalone launcher (for machines without the
ROS 2 launch tool) build their processes from `NODE_SET`, so the two can never drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

PACKAGE = "motion_agent"


@dataclass(frozen=True)
class NodeSpec:
    """One node process: its ROS name and the console script colcon installs in lib/motion_agent."""

    name: str
    executable: str
    description: str


# The agent, captioner, speech and expert-manager nodes join this tuple as they are built.
NODE_SET: tuple[NodeSpec, ...] = ()
