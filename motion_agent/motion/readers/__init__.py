"""Reading real motion files into the 22 SMPL joints the project works with (metres, +Y up, 20 fps, on
the floor): BVH (bvh.py), AMASS-style SMPL-family parameters (smpl.py), HumanML3D joints and features
(humanml3d.py). `read_motion` picks the reader by the file's suffix; joint_maps.py maps source
skeletons by name and refuses one it cannot map, naming the missing joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motion_agent.motion.readers.bvh import read_bvh
from motion_agent.motion.readers.conventions import MotionFileError
from motion_agent.motion.readers.humanml3d import read_humanml3d
from motion_agent.motion.readers.joint_maps import SkeletonError
from motion_agent.motion.readers.smpl import read_smpl_npz

READERS = {".bvh": read_bvh, ".npz": read_smpl_npz, ".npy": read_humanml3d}
MOTION_SUFFIXES = tuple(READERS)


def read_motion(path: str | Path, **options) -> tuple[np.ndarray, dict]:
    """(T, 22, 3) joints and a description of what was read, from any supported motion file."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise MotionFileError(f"{path}: unknown motion format; readable: {', '.join(MOTION_SUFFIXES)}.")
    return reader(path, **options)


__all__ = ["MOTION_SUFFIXES", "MotionFileError", "SkeletonError", "read_motion"]
