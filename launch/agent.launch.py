"""`ros2 launch motion_agent agent.launch.py`: start every node of motion_agent.node_set.NODE_SET."""
from launch import LaunchDescription
from launch.actions import LogInfo
from launch_ros.actions import Node

from motion_agent.node_set import NODE_SET, PACKAGE


def generate_launch_description() -> LaunchDescription:
    nodes = [
        Node(package=PACKAGE, executable=spec.executable, name=spec.name, output="screen")
        for spec in NODE_SET
    ]
    if not nodes:
        return LaunchDescription([LogInfo(msg="motion_agent: this build has no nodes yet; nothing to start")])
    return LaunchDescription(nodes)
