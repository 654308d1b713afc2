"""BVH files (motion capture, Blender, MotionBuilder, the project's own export) -> the 22 joints.

Parsed with the `bvh` package; joint positions come from the file's own forward kinematics (every joint
of the file, so intermediate joints such as CMU's LHipJoint are honoured), then the 22 joints are picked
by name (joint_maps.py). The unit and up axis are read off the rest skeleton unless given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motion_agent.motion.readers.conventions import MotionFileError, guess_unit, to_project_frame, up_axis
from motion_agent.motion.readers.joint_maps import match_skeleton

MAX_BVH_BYTES = 200 * 1024 * 1024
_AXES = {"X": 0, "Y": 1, "Z": 2}


def _parse(path: Path):
    import bvh

    if not path.is_file():
        raise MotionFileError(f"{path}: no such file.")
    if path.stat().st_size > MAX_BVH_BYTES:
        raise MotionFileError(f"{path}: {path.stat().st_size} bytes is over the {MAX_BVH_BYTES} bytes a BVH may have.")
    try:
        mocap = bvh.Bvh(path.read_text(errors="replace"))
        names = mocap.get_joints_names()
        frames = np.asarray(mocap.frames, dtype=np.float64)
        frame_time = float(mocap.frame_time)
    except (ValueError, LookupError, IndexError, AttributeError, StopIteration, TypeError) as error:
        reason = str(error) or "no ROOT joint" if isinstance(error, StopIteration) else str(error)
        raise MotionFileError(f"{path}: not a readable BVH file ({reason}).") from None
    if not names or frames.ndim != 2 or len(frames) == 0 or frame_time <= 0:
        raise MotionFileError(f"{path}: a BVH file needs a hierarchy, a positive frame time and at least one frame.")
    return mocap, names, frames, frame_time


def world_positions(mocap, names: list[str], frames: np.ndarray) -> np.ndarray:
    """(T, J, 3) positions of every joint of the file, in the file's units and axes."""
    count = len(frames)
    rotations = np.zeros((len(names), count, 3, 3))
    positions = np.zeros((len(names), count, 3))
    column = 0
    for joint, name in enumerate(names):
        channels = mocap.joint_channels(name)
        values = frames[:, column : column + len(channels)]
        column += len(channels)
        offset = np.broadcast_to(np.asarray(mocap.joint_offset(name), dtype=np.float64), (count, 3)).copy()
        for k, channel in enumerate(channels):
            if channel.endswith("position"):
                offset[:, _AXES[channel[0].upper()]] += values[:, k]
        turns = [k for k, channel in enumerate(channels) if channel.endswith("rotation")]
        order = "".join(channels[k][0].upper() for k in turns)  # intrinsic, in the listed order
        local = Rotation.from_euler(order, values[:, turns], degrees=True).as_matrix() if turns else np.eye(3)
        local = np.broadcast_to(local, (count, 3, 3))
        parent = mocap.joint_parent_index(name)
        if parent < 0:
            rotations[joint], positions[joint] = local, offset
        else:
            rotations[joint] = rotations[parent] @ local
            positions[joint] = positions[parent] + np.einsum("tij,tj->ti", rotations[parent], offset)
    if column != frames.shape[1]:
        raise ValueError(f"the hierarchy has {column} channels but the frames have {frames.shape[1]} values")
    return positions.transpose(1, 0, 2)


def read_bvh(
    path: str | Path, joint_map: dict[str, str] | None = None, scale: float | None = None, up: str | None = None
) -> tuple[np.ndarray, dict]:
    """(T, 22, 3) joints in the project's frame at 20 fps, and what was read (fps, unit, up, frames)."""
    path = Path(path)
    mocap, names, frames, frame_time = _parse(path)
    picked = match_skeleton(names, joint_map, str(path))
    try:
        positions = world_positions(mocap, names, frames)
        rest = world_positions(mocap, names, np.zeros((1, frames.shape[1])))[0][picked]
    except (ValueError, LookupError) as error:
        raise MotionFileError(f"{path}: the BVH's channels do not match its frames ({error}).") from None
    up = up or up_axis(rest)
    vertical = 2 if up == "z" else 1
    height = float(rest[:, vertical].max() - rest[:, vertical].min())
    scale = scale or guess_unit(height, str(path))
    fps = 1.0 / frame_time
    joints = to_project_frame(positions[:, picked] * scale, fps, up)
    return joints, {"format": "bvh", "fps": round(fps, 3), "frames": len(frames), "scale": scale, "up": up}
