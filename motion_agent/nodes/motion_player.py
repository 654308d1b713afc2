"""Plays each published motion out over time, on the topics that take one value per instant:

  motion/joint_states  sensor_msgs/JointState: the motion's joint positions and velocities as it plays, for
                       robot_state_publisher and RViz (a preview beside the real robot's own joint_states)
  cmd_vel              geometry_msgs/Twist: the base velocity of an upper-body motion (real robots in
                       `upper_body` mode), for the robot's own walking controller; a zero twist when the
                       motion ends or a newer one replaces it

Playback starts at the trajectory's header stamp (which lies `node.start_delay_s` ahead, like the
controller's start), one value per trajectory point on a timer at the trajectory's rate.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import Twist
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState

from motion_agent.motion.retarget import Trajectory
from motion_agent.nodes.messages import joint_state_message, twist_message
from motion_agent.nodes.settings import NodeConfig


class MotionPlayer:
    """One motion at a time, the latest; thread-safe `play` (the node reports from its worker thread)."""

    def __init__(self, node: Node, config: NodeConfig, rate_hz: float) -> None:
        self.node = node
        self.joint_states = node.create_publisher(JointState, config.motion_joint_states_topic, 10)
        self.cmd_vel = node.create_publisher(Twist, config.cmd_vel_topic, 10)
        self._lock = threading.Lock()
        self._playing: tuple[Trajectory, Time] | None = None
        self.timer = node.create_timer(1.0 / rate_hz, self._tick)

    def play(self, trajectory: Trajectory, start: Time) -> None:
        """Play `trajectory` from `start` on, instead of whatever plays now."""
        with self._lock:
            previous, self._playing = self._playing, (trajectory, start)
        if previous is not None and previous[0].base_twist is not None:
            self.cmd_vel.publish(twist_message())  # the old base motion stops here, not where it would have

    def _tick(self) -> None:
        with self._lock:
            playing = self._playing
        if playing is None:
            return
        trajectory, start = playing
        now = self.node.get_clock().now()
        elapsed = (now - start).nanoseconds * 1e-9
        if elapsed < 0:
            return
        times = trajectory.times
        index = int(min(len(times) - 1, max(0, round(elapsed / (times[1] - times[0]))))) if len(times) > 1 else 0
        self.joint_states.publish(
            joint_state_message(
                trajectory.joint_names, trajectory.positions[index], trajectory.velocities[index], now.to_msg()
            )
        )
        if trajectory.base_twist is not None:
            self.cmd_vel.publish(twist_message(*trajectory.base_twist[index]))
        if elapsed >= times[-1]:
            with self._lock:
                if self._playing is playing:
                    self._playing = None
            if trajectory.base_twist is not None:
                self.cmd_vel.publish(twist_message())
