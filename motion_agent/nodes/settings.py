"""The `node` section of config/agent.yaml: topics and pose-window settings of the agent nodes.

Plain Python (no rclpy), so `motion-agent say` and the tests read the same topic names as the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from motion_agent.config import config_dir, load_yaml

AGENT_YAML = "agent.yaml"
POSE_AXES = ("smpl", "ros")
VIEW_HOST, VIEW_PORT = "127.0.0.1", 8080  # where `motion-agent view` serves by default: this machine only


@dataclass(frozen=True)
class NodeConfig:
    """Topics, frames and the observed-pose window (section `node` of config/agent.yaml)."""

    text_topics: tuple[str, ...] = ("text_command", "speech_transcript")  # std_msgs/String requests
    trajectory_topic: str = "motion/joint_trajectory"  # trajectory_msgs/JointTrajectory
    markers_topic: str = "motion/markers"  # visualization_msgs/MarkerArray
    skeleton_topic: str = "motion/skeleton"  # trajectory_msgs/MultiDOFJointTrajectory, 22 SMPL joint positions
    diagnostics_topic: str = "/diagnostics"  # diagnostic_msgs/DiagnosticArray
    pose_topic: str = "observed_pose"  # geometry_msgs/PoseArray, 22 SMPL joints
    caption_topic: str = "caption"  # std_msgs/String
    frame_id: str = "base_link"  # header frame of trajectories and markers
    caption: bool = True  # caption observed poses in the agent node (false: run motion-agent-captioner)
    window_size: int = 60  # pose frames per caption (3 s at 20 Hz)
    window_stride: int = 20  # new frames between captions (1 s at 20 Hz)
    pose_axes: str = "smpl"  # observed and published skeletons; smpl: +X left, +Y up, +Z forward; ros: REP 103
    marker_frames: int = 5  # key frames of a generated motion drawn as skeletons
    queue_depth: int = 100  # subscription history, so a burst of poses is not dropped
    max_pose_rate_hz: float = 60.0  # poses arriving faster are dropped unread (a flood must not starve requests)
    max_pose_coordinate_m: float = 100.0  # a joint farther from the origin is no person: the pose is dropped
    bundle_inbox: str = ""  # folder watched for expert bundles (*.tar); empty: no inbox
    deploy_topic: str = "experts/deploy"  # std_msgs/String: path of a bundle to install
    keyring: str = ""  # folder of trusted *.pub signing keys; empty: no installs from the node
    store_poll_s: float = 2.0  # how often the inbox and the expert store are checked
    torch_threads: int = 0  # threads of torch's CPU kernels; 0: torch's default (one per core)
    # Real robots (agent.robot: unitree_g1, booster_t1; motion_agent.motion.robots)
    base_trajectory_topic: str = "motion/base_trajectory"  # MultiDOFJointTrajectory: the floating base (whole body)
    cmd_vel_topic: str = "cmd_vel"  # geometry_msgs/Twist while an upper-body motion plays
    joint_states_topic: str = "joint_states"  # in, sensor_msgs/JointState: the robot's posture to blend in from
    motion_joint_states_topic: str = "motion/joint_states"  # sensor_msgs/JointState of the motion as it plays
    joint_states_max_age_s: float = 1.0  # an older posture is not blended in from
    start_delay_s: float = 0.1  # trajectories are stamped this far ahead: a controller starts them then, not late
    record_mcap: str = ""  # MCAP file the agent node records its topics to ({time}: start time); empty: off

    def __post_init__(self) -> None:
        if not self.text_topics:
            raise ValueError("text_topics must name at least one topic")
        if self.window_size < 2 or self.window_stride < 1:
            raise ValueError(
                f"window_size ({self.window_size}) must be >= 2 and window_stride ({self.window_stride}) >= 1"
            )
        if self.pose_axes not in POSE_AXES:
            raise ValueError(f"pose_axes {self.pose_axes!r} must be one of {', '.join(POSE_AXES)}")
        if self.store_poll_s <= 0:
            raise ValueError(f"store_poll_s must be positive, got {self.store_poll_s}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0 (0: one per core), got {self.torch_threads}")
        if self.max_pose_rate_hz <= 0 or self.max_pose_coordinate_m <= 0:
            raise ValueError("max_pose_rate_hz and max_pose_coordinate_m must be positive")
        if self.marker_frames < 1 or self.queue_depth < 1:
            raise ValueError("marker_frames and queue_depth must be at least 1")
        if self.start_delay_s <= 0 or self.joint_states_max_age_s <= 0:
            raise ValueError(
                f"start_delay_s ({self.start_delay_s}) and joint_states_max_age_s ({self.joint_states_max_age_s}) "
                "must be positive"
            )
        if self.record_mcap:
            try:
                name = self.record_mcap.format(time="TIME")
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"record_mcap {self.record_mcap!r}: only {{time}} may stand in braces (the start time)"
                ) from None
            if not name.endswith(".mcap"):
                raise ValueError(f"record_mcap {self.record_mcap!r} must name an .mcap file (or be empty: off)")


def default_config_path() -> Path:
    """The agent YAML shipped with the package (the source tree's or the installed share folder's)."""
    return config_dir() / AGENT_YAML


def load_node_config(path: str | Path | None = None) -> NodeConfig:
    return load_yaml(NodeConfig, path or default_config_path(), section="node")


def resolve_settings(config_path: str | Path | None = None, base_model: str = "", frame_id: str = ""):
    """The agent and node configs a node runs with: the YAML's, with the node's parameter overrides.
    Without a base model anywhere, the embedded default model serves, with its own experts when
    `agent.routing.experts` is empty and the node installs nothing.

    Returns (AgentConfig, NodeConfig); raises ConfigError naming the problem."""
    from dataclasses import replace

    from motion_agent.agent import load_agent_config
    from motion_agent.config import ConfigError
    from motion_agent.model.base_model import default_base_model, embedded_experts

    path = Path(config_path) if config_path else default_config_path()
    agent, node = load_agent_config(path), load_node_config(path)
    if base_model:
        agent = replace(agent, base_model=base_model)
    if not agent.base_model and default_base_model() is not None:
        agent = replace(agent, base_model=str(default_base_model()))
    # an embedded model's experts come with it, unless installs are enabled: those need a writable store
    shipped = embedded_experts(agent.base_model) if agent.base_model else None
    if shipped is not None and not agent.routing.experts and not node.keyring:
        agent = replace(agent, routing=replace(agent.routing, experts=str(shipped)))
    if agent.base_model:
        agent = replace(agent, base_model=str(Path(agent.base_model).expanduser()))
    if frame_id:
        node = replace(node, frame_id=frame_id)
    if not agent.min_caption_frames <= node.window_size <= agent.max_caption_frames:
        raise ConfigError(
            f"{path.name}: node.window_size {node.window_size} must lie within agent.min_caption_frames "
            f"({agent.min_caption_frames}) and agent.max_caption_frames ({agent.max_caption_frames})"
        )
    return agent, node
