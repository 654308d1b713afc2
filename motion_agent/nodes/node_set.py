"""The one definition of which nodes make up the agent.

Both `launch/agent.launch.py` (for `ros2 launch`) and the standalone launcher (for machines without the
ROS 2 launch tool) build their processes from `enabled_nodes(config)` over `NODE_SET`, so the two can
never drift apart. An optional node (one that needs an extra, like speech) names the agent-YAML switch
that turns it on, so a robot without the extra installed never tries to start it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PACKAGE = "motion_agent"


@dataclass(frozen=True)
class NodeSpec:
    """One node process: its ROS name, the console script colcon installs in lib/motion_agent, and the
    module `python -m` runs (what `motion-agent launch` starts, so it needs no installed scripts).
    `enabled_by` is "section.key" of a boolean in the agent YAML that starts the node when true;
    empty for a node that always starts."""

    name: str
    executable: str
    description: str
    module: str
    enabled_by: str = ""


# Captioning runs inside the agent node by default (one model load per robot); the standalone
# `motion_captioner` (console script motion-agent-captioner) is for running it in a process of its
# own, with `node.caption: false` in the agent YAML. Expert installs run inside the agent node
# (nodes/expert_manager.py), so they swap the very expert set that serves.
NODE_SET: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="motion_agent",
        executable="motion-agent-node",
        description="text_command/speech_transcript -> motion/joint_trajectory, motion/markers, /diagnostics; "
        "observed_pose -> caption",
        module="motion_agent.nodes.motion_node",
    ),
    NodeSpec(
        name="motion_speech",
        executable="motion-agent-speech",
        description="audio (std_msgs/Int16MultiArray, 16 kHz mono PCM) -> speech_transcript; needs the speech extra",
        module="motion_agent.nodes.speech_node",
        enabled_by="speech.enabled",
    ),
)


def _switch(data: object, key: str, where: str) -> bool:
    """The boolean at dotted `key` of the YAML mapping `data`; a missing section or key is false."""
    value = data
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return False
    if not isinstance(value, bool):
        from motion_agent.config import ConfigError

        raise ConfigError(f"{where}:{key} must be true or false, got {value!r}")
    return value


def enabled_nodes(config: str | Path | None = None, nodes: tuple[NodeSpec, ...] = NODE_SET) -> tuple[NodeSpec, ...]:
    """The nodes to start with agent YAML `config` (default: the package's): every node without a
    switch, and each optional one whose switch is true."""
    if not any(spec.enabled_by for spec in nodes):
        return nodes
    from motion_agent.config import ConfigError, config_dir, parse_yaml

    path = Path(config) if config else config_dir() / "agent.yaml"
    try:
        data = parse_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read agent config {path}: {error}") from error
    return tuple(spec for spec in nodes if not spec.enabled_by or _switch(data, spec.enabled_by, path.name))
