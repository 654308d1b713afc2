"""`ros2 launch motion_agent agent.launch.py [config:=FILE] [base_model:=DIR]`: start every node of
motion_agent.nodes.node_set.enabled_nodes(config) with the same parameters (as `motion-agent launch` does
without the ROS 2 launch tool). Optional nodes (speech) start only when the config file turns them on,
so the node list is resolved when the launch runs, once `config` is known."""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from motion_agent.nodes.node_set import PACKAGE, enabled_nodes
from motion_agent.nodes.settings import default_config_path

ARGUMENTS = ("config", "base_model", "frame_id")


def _nodes(context, *args, **kwargs) -> list:
    # value_type=str keeps an empty or numeric-looking value a string parameter.
    parameters = [{name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in ARGUMENTS}]
    specs = enabled_nodes(LaunchConfiguration("config").perform(context) or None)
    return [
        Node(package=PACKAGE, executable=spec.executable, name=spec.name, output="screen", parameters=parameters)
        for spec in specs
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            "config",
            default_value=str(default_config_path()),
            description="agent YAML (sections agent, node and speech)",
        ),
        DeclareLaunchArgument(
            "base_model",
            default_value="",
            description="base-model folder from `motion-agent-train base`; empty: the YAML's",
        ),
        DeclareLaunchArgument(
            "frame_id", default_value="", description="header frame of trajectories and markers; empty: the YAML's"
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
