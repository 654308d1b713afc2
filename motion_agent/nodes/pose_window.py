"""Observed poses: one pose message checked and converted to SMPL axes, and the sliding window of poses
that the captioner captions every `stride` frames. Plain Python (no rclpy)."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from motion_agent.agent import RequestError
from motion_agent.motion.skeleton import NUM_JOINTS, SMPL_TO_ROS


def pose_frame(points: object, axes: str = "smpl", max_coordinate_m: float = float("inf")) -> np.ndarray:
    """One observed pose -> (22, 3) SMPL-axes joint positions; RequestError when it is unusable (wrong
    joint count, NaNs, or a joint farther than `max_coordinate_m` from the origin: no tracked person)."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise RequestError(f"a pose must be a list of 3D joint positions, got shape {array.shape}")
    if len(array) != NUM_JOINTS:
        raise RequestError(f"pose has {len(array)} joints; {NUM_JOINTS} SMPL joints are needed, in SMPL order")
    if not np.isfinite(array).all():
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(array).all(axis=1))[0]})
        raise RequestError(f"pose holds NaN or infinite positions (joints {bad})")
    if np.abs(array).max() > max_coordinate_m:
        joint = int(np.abs(array).max(axis=1).argmax())
        raise RequestError(f"pose has a joint (joint {joint}) farther than {max_coordinate_m:g} m from the origin")
    if axes == "ros":
        array = array @ SMPL_TO_ROS  # row-vector form of SMPL_TO_ROS.T @ p: ros -> smpl
    elif axes != "smpl":
        raise ValueError(f"unknown pose axes {axes!r}")
    return array


class PoseWindow:
    """The newest `size` pose frames; `push` returns a window to caption every `stride` frames once full.

    A gap of more than `max_gap_s` between frames (the person left, the tracker restarted) clears the
    window, so a caption never spans two unrelated motions.
    """

    def __init__(self, size: int, stride: int, max_gap_s: float = 1.0) -> None:
        if size < 2 or stride < 1:
            raise ValueError("need size >= 2 and stride >= 1")
        self.size, self.stride, self.max_gap_s = size, stride, max_gap_s
        self._frames: deque[np.ndarray] = deque(maxlen=size)
        self._since_caption = 0
        self._last_time: float | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self._since_caption = 0

    def push(self, frame: np.ndarray, now: float | None = None) -> np.ndarray | None:
        now = time.monotonic() if now is None else now
        if self._last_time is not None and now - self._last_time > self.max_gap_s:
            self.clear()
        self._last_time = now
        self._frames.append(frame)
        self._since_caption += 1
        if len(self._frames) == self.size and self._since_caption >= self.stride:
            self._since_caption = 0
            return np.stack(self._frames)
        return None
