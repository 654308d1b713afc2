"""HumanML3D's motion files: `new_joints/*.npy` (frames, 22, 3) joint positions and `new_joint_vecs/*.npy`
(frames, 263) features, both at 20 fps, +Y up, already on HumanML3D's uniform skeleton.

Joints come back from the 263 features as HumanML3D's own `recover_from_ric` does: the root's yaw
velocity and planar velocity are integrated, and the root-relative joint positions turned by the yaw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from motion_agent.motion.readers.conventions import MotionFileError, to_project_frame
from motion_agent.motion.rotations import rotate_about_y
from motion_agent.motion.skeleton import NUM_JOINTS

HUMANML3D_FPS = 20.0
FEATURES = 263  # root (4), root-relative positions (21 x 3), rotations (21 x 6), velocities (22 x 3), contacts (4)


def _rotate_about_y(angles: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors by -`angles` about +Y: HumanML3D's qrot(qinv(q), v)."""
    return rotate_about_y(torch.as_tensor(vectors), -torch.as_tensor(angles)).numpy()


def recover_from_ric(features: np.ndarray) -> np.ndarray:
    """(T, 263) HumanML3D features -> (T, 22, 3) joint positions."""
    yaw = np.zeros(len(features))
    yaw[1:] = np.cumsum(features[:-1, 0])  # HumanML3D's quaternion angle; the rotation turns by twice it
    step = np.zeros((len(features), 3))
    step[1:, [0, 2]] = features[:-1, 1:3]
    root = np.cumsum(_rotate_about_y(2 * yaw, step), axis=0)
    root[:, 1] = features[:, 3]
    relative = features[:, 4 : 4 + (NUM_JOINTS - 1) * 3].reshape(len(features), NUM_JOINTS - 1, 3)
    joints = _rotate_about_y(2 * yaw[:, None], relative)
    joints[..., 0] += root[:, None, 0]
    joints[..., 2] += root[:, None, 2]
    return np.concatenate([root[:, None], joints], axis=1)


def read_humanml3d(path: str | Path) -> tuple[np.ndarray, dict]:
    """A new_joints (T, 22, 3) or new_joint_vecs (T, 263) .npy -> the project's frame."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise MotionFileError(f"{path}: not a readable .npy file ({error}).") from None
    if array.ndim == 3 and array.shape[1:] == (NUM_JOINTS, 3):
        joints, kind = array.astype(np.float64), "humanml3d-joints"
    elif array.ndim == 2 and array.shape[1] == FEATURES:
        joints, kind = recover_from_ric(array.astype(np.float64)), "humanml3d-vecs"
    else:
        raise MotionFileError(
            f"{path}: a HumanML3D file holds (frames, {NUM_JOINTS}, 3) joints or (frames, {FEATURES}) features; "
            f"this one is {array.shape}."
        )
    if len(joints) == 0 or not np.isfinite(joints).all():
        raise MotionFileError(f"{path}: no frames, or NaN or infinite values.")
    return to_project_frame(joints, HUMANML3D_FPS), {"format": kind, "fps": HUMANML3D_FPS, "frames": len(joints)}
