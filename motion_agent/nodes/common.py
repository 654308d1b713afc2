"""What the agent's node processes share: parameters, the model, guarded callbacks and the main loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import rclpy
import torch
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from motion_agent.agent import AgentConfig, MotionAgent
from motion_agent.config import ConfigError
from motion_agent.nodes.settings import NodeConfig, default_config_path, resolve_settings


@dataclass
class Settings:
    config_path: str
    agent: AgentConfig
    node: NodeConfig


def read_settings(node: Node) -> Settings:
    """Declare the parameters every agent node takes and resolve them against the agent YAML."""
    try:
        default = str(default_config_path())
    except ConfigError:
        default = ""
    config = (
        node.declare_parameter(
            "config",
            default,
            ParameterDescriptor(
                description="agent YAML (sections agent and node); default: the installed config/agent.yaml",
                read_only=True,
            ),
        ).value
        or default
    )
    base_model = node.declare_parameter(
        "base_model",
        "",
        ParameterDescriptor(
            description="base-model folder from `motion-agent-train base`; overrides agent.base_model",
            read_only=True,
        ),
    ).value
    frame_id = node.declare_parameter(
        "frame_id",
        "",
        ParameterDescriptor(
            description="header frame of trajectories and markers; overrides node.frame_id",
            read_only=True,
        ),
    ).value
    agent, node_config = resolve_settings(config or None, base_model, frame_id)
    return Settings(config, agent, node_config)


def guarded(node: Node, callback: Callable) -> Callable:
    """A subscription callback that logs an unexpected exception instead of ending the spin: the node
    never dies on input."""

    def call(*args):
        try:
            return callback(*args)
        except Exception as error:
            node.get_logger().error(
                f"{getattr(callback, '__name__', 'callback')} failed: {type(error).__name__}: {error}"
            )

    return call


def load_agent(node: Node, config: AgentConfig, torch_threads: int = 0) -> MotionAgent:
    """The agent of a node process, ready to answer (`torch_threads` > 0 caps torch's CPU threads for the
    whole process: on cores busy with other work, torch's OpenMP threads wait on each other)."""
    if torch_threads:
        torch.set_num_threads(torch_threads)
    node.get_logger().info(f"loading base model {config.base_model} (torch threads: {torch.get_num_threads()})")
    agent = MotionAgent.from_config(config)
    agent.warm_up()
    decoder = "torch" if agent.decoder is agent.encoder else "onnx"
    node.get_logger().info(f"model ready, fingerprint {agent.fingerprint[:12]}, motion decoder: {decoder}")
    return agent


HELP_FLAGS = ("-h", "--help")
PARAMETERS_HELP = """parameters (ROS 2 style, after --ros-args):
  -p config:=FILE      agent YAML (default: the package's config/agent.yaml)
  -p base_model:=DIR   base-model folder (default: agent.base_model, else the embedded default model)
  -p frame_id:=FRAME   header frame of what it publishes (default: node.frame_id)
example: python -m {module} --ros-args -p config:=agent.yaml"""


def wants_help(args: list[str] | None) -> bool:
    """-h or --help among the node's own arguments (those before --ros-args)."""
    argv = sys.argv[1:] if args is None else list(args)
    own = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    return any(flag in own for flag in HELP_FLAGS)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """rclpy main loop of one node process: exits 1 with one line on a startup error, 0 on SIGINT/SIGTERM;
    --help prints what the node does and its parameters, and starts nothing."""
    if wants_help(args):
        module = sys.modules[factory.__module__]
        spec = getattr(module, "__spec__", None)  # run as `python -m`, the module is __main__
        name = spec.name if spec else factory.__module__
        print(f"{(module.__doc__ or '').strip()}\n\n{PARAMETERS_HELP.format(module=name)}")
        return 0
    rclpy.init(args=args)
    try:
        node = factory()
    except Exception as error:  # bad config or model folder: one clear line, no traceback
        print(f"error: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close:
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
