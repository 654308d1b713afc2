"""More from few clips: mirrored and re-timed copies of a small set's training clips (`import --augment`).

A mirrored motion swaps the body's left and right (x -> -x, left joints <-> right joints), and so do its
captions' words ("waves with the left hand" -> "... right hand"); a re-timed one plays `factor` times as
fast. Only training clips are augmented: held-out clips stay as recorded, so scores stay honest.
"""

from __future__ import annotations

import re

import numpy as np

from motion_agent.motion.readers.conventions import TARGET_FPS, resample
from motion_agent.motion.skeleton import JOINT_NAMES

MIRRORED_JOINTS = [
    JOINT_NAMES.index(name.replace("left_", "right_") if name.startswith("left_") else name.replace("right_", "left_"))
    for name in JOINT_NAMES
]
_SIDES = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}
_SIDE_WORD = re.compile(r"\b(" + "|".join(_SIDES) + r")\b")


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """The motion with left and right swapped (a reflection through the body's sagittal plane, x = 0)."""
    mirrored = np.asarray(joints)[:, MIRRORED_JOINTS].copy()
    mirrored[..., 0] *= -1.0
    return mirrored


def mirror_caption(caption: str) -> str:
    return _SIDE_WORD.sub(lambda match: _SIDES[match.group(1)], caption)


def retime(joints: np.ndarray, factor: float) -> np.ndarray:
    """The motion played `factor` times as fast (0.8: slower, longer), at the same frame rate."""
    return resample(np.asarray(joints, dtype=np.float64), TARGET_FPS * factor, TARGET_FPS)


def augmentations(joints: np.ndarray, captions: list[str], mirror: bool, speeds: tuple[float, ...]):
    """(name, joints, captions) of every augmented copy of one clip."""
    copies = [("mirror", mirror_joints(joints), [mirror_caption(c) for c in captions])] if mirror else []
    copies += [(f"speed {factor:g}", retime(joints, factor), captions) for factor in speeds]
    return copies
