"""`ros2 launch motion_agent agent.launch.py [config:=FILE] [base_model:=DIR]`: start every node of
motion_agent.node_set.NODE_SET with the same parameters (as `motion-agent launch` does without the
ROS 2 launch tool)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from motion_agent.nodes.settings import default_config_path
from motion_agent.node_set import NODE_SET, PACKAGE


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("config", default_value=str(default_config_path()),
                              description="agent YAML (sections agent and node)"),
        DeclareLaunchArgument("base_model", default_value="",
                              description="base-model folder from `motion-agent-train base`; empty: the YAML's"),
        DeclareLaunchArgument("frame_id", default_value="",
                              description="header frame of trajectories and markers; empty: the YAML's"),
    ]
    # value_type=str keeps an empty or numeric-looking value a string parameter.
    parameters = [{
        name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in ("config", "base_model", "frame_id")
    }]
    nodes = [
        Node(package=PACKAGE, executable=spec.executable, name=spec.name, output="screen", parameters=parameters)
        for spec in NODE_SET
    ]
    if not nodes:
        return LaunchDescription([LogInfo(msg="motion_agent: this build has no nodes yet; nothing to start")])
    return LaunchDescription([*arguments, *nodes])
