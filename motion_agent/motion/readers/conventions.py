"""Bringing a motion read from a file into the project's conventions: metres, +Y up, 20 frames per
second, the feet on the floor (y = 0) and the pelvis starting over the origin, as HumanML3D does."""

from __future__ import annotations

import numpy as np

from motion_agent.motion.skeleton import JOINT_NAMES

TARGET_FPS = 20.0
HEAD, LEFT_ANKLE, RIGHT_ANKLE = (
    JOINT_NAMES.index("head"),
    JOINT_NAMES.index("left_ankle"),
    JOINT_NAMES.index("right_ankle"),
)
# Standing height (head over ankles) a human can have, per unit a file may use.
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}
HUMAN_HEIGHT_M = (0.5, 2.8)
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


class MotionFileError(ValueError):
    """A motion file that cannot be read as a human motion; the message names the file and what is wrong."""


def guess_unit(height: float, source: str) -> float:
    """The scale to metres from the rest skeleton's head-over-ankle height, in whatever unit it is."""
    for scale in UNIT_SCALES.values():
        if HUMAN_HEIGHT_M[0] <= height * scale <= HUMAN_HEIGHT_M[1]:
            return scale
    raise MotionFileError(
        f"{source}: a body {height:g} units tall is no human in metres, centimetres or millimetres; give its scale."
    )


def up_axis(rest: np.ndarray) -> str:
    """'y' or 'z': the axis the rest skeleton's head rises along from its ankles."""
    rise = rest[HEAD] - (rest[LEFT_ANKLE] + rest[RIGHT_ANKLE]) / 2
    return "z" if abs(rise[2]) > abs(rise[1]) else "y"


def resample(joints: np.ndarray, fps: float, target: float = TARGET_FPS) -> np.ndarray:
    """Linear interpolation of joint positions onto a `target` fps grid over the same time span."""
    if abs(fps - target) < 1e-6 or len(joints) < 2:
        return joints
    times = np.arange(len(joints)) / fps
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / target)
    flat = joints.reshape(len(joints), -1)
    out = np.stack([np.interp(grid, times, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape(len(grid), *joints.shape[1:])


def to_project_frame(joints: np.ndarray, fps: float, up: str = "y") -> np.ndarray:
    """(T, 22, 3) in metres -> +Y up, TARGET_FPS, lowest joint on the floor, first pelvis over the origin."""
    if up == "z":
        joints = joints @ Z_UP_TO_Y_UP.T
    joints = resample(np.asarray(joints, dtype=np.float64), fps)
    joints = joints.copy()
    joints[..., 1] -= joints[..., 1].min()
    joints[..., [0, 2]] -= joints[0, 0, [0, 2]]
    return joints
