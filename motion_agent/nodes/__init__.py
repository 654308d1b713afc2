"""rclpy nodes: thin adapters from ROS 2 topics to `motion_agent.agent.MotionAgent`."""
