"""The root's motion as a base velocity: what the upper-body mode sends on `cmd_vel`.

A legged robot's own walking controller moves its base; it takes a geometry_msgs/Twist in the base's
frame (x forward, y left, yaw rate about z). The pelvis path of a human motion sways with every step,
which is not a base motion, so the path and heading are smoothed over `smoothing_s` first; the twist is
then capped in speed and in acceleration, and ramps from rest and back to rest.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from motion_agent.motion.robots.config import BaseVelocityConfig


def _slew(values: np.ndarray, max_step: float) -> np.ndarray:
    """Changes of at most `max_step` per sample, from rest (the first sample is 0) back to rest (so is the
    last): a forward then a backward pass, the second keeping what the first made."""
    out = values.copy()
    out[0] = out[-1] = 0.0
    for i in range(1, len(out) - 1):
        out[i] = np.clip(out[i], out[i - 1] - max_step, out[i - 1] + max_step)
    for i in range(len(out) - 2, -1, -1):
        out[i] = np.clip(out[i], out[i + 1] - max_step, out[i + 1] + max_step)
    return out


def base_twist(
    pelvis: np.ndarray, heading: np.ndarray, rate: float, config: BaseVelocityConfig, tail: int = 0
) -> np.ndarray:
    """(N + tail, 3) twists (vx, vy, yaw rate) of a pelvis path (N, 2 or 3) and heading (N,) sampled at
    `rate`; `tail` more samples after the path let the twist come back to rest."""
    window = max(1, int(round(config.smoothing_s * rate)))
    path = uniform_filter1d(np.asarray(pelvis, dtype=np.float64)[:, :2], window, axis=0, mode="nearest")
    yaw = uniform_filter1d(np.unwrap(np.asarray(heading, dtype=np.float64)), window, mode="nearest")
    world = np.gradient(path, 1.0 / rate, axis=0) if len(path) > 1 else np.zeros_like(path)
    yaw_rate = np.gradient(yaw, 1.0 / rate) if len(yaw) > 1 else np.zeros_like(yaw)
    cos, sin = np.cos(yaw), np.sin(yaw)
    forward = cos * world[:, 0] + sin * world[:, 1]  # the world velocity in the heading's frame
    left = -sin * world[:, 0] + cos * world[:, 1]
    speed = np.hypot(forward, left)
    shrink = np.minimum(1.0, config.max_linear_m_s / np.maximum(speed, 1e-12))
    turn = np.clip(yaw_rate, -config.max_angular_rad_s, config.max_angular_rad_s)
    twist = np.stack([forward * shrink, left * shrink, turn], axis=1)
    twist = np.concatenate([twist, np.zeros((tail, 3))])
    linear_step, angular_step = config.max_linear_acceleration / rate, config.max_angular_acceleration / rate
    for column, step in ((0, linear_step), (1, linear_step), (2, angular_step)):
        twist[:, column] = _slew(twist[:, column], step)
    return twist
