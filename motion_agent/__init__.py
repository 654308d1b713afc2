"""motion_agent: emotional text-to-motion and motion captioning for ROS 2 robots and avatars.

Everything here imports without ROS 2; only `motion_agent.nodes` needs rclpy.
"""

__version__ = "0.1.0"
