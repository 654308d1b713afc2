"""More from few clips: mirrored, re-timed and re-proportioned copies of a small set's training clips
(`import --mirror --speeds --bodies`).

A mirrored motion swaps the body's left and right (x -> -x, left joints <-> right joints), and so do its
captions' words ("waves with the left hand" -> "... right hand"); a re-timed one plays `factor` times as
fast; a re-proportioned one is the same motion on a body whose arms and legs are `factor` times as long
(each limb bone keeps its direction every frame; the pelvis rises and strides lengthen with the legs), so
an expert trained on one performer's clips meets other bodies. Only training clips are augmented:
held-out clips stay as recorded, so scores stay honest.
"""

from __future__ import annotations

import re

import numpy as np

from motion_agent.motion.readers.conventions import TARGET_FPS, resample
from motion_agent.motion.skeleton import JOINT_NAMES, PARENTS

LIMB_JOINTS = frozenset(  # joints whose bone from the parent belongs to an arm or a leg
    i for i, name in enumerate(JOINT_NAMES) if name.split("_", 1)[-1] in ("knee", "ankle", "foot", "elbow", "wrist")
)
LEG_JOINTS = ("left_knee", "left_ankle")  # the leg the pelvis height and stride length scale with

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


def reproportion(joints: np.ndarray, factor: float) -> np.ndarray:
    """The motion on a body whose arm and leg bones are `factor` times as long: every bone is rebuilt from
    its parent along its own direction, the pelvis path (height and travel) scaled by the legs' change,
    and the lowest joint set back on the floor where it was."""
    joints = np.asarray(joints, dtype=np.float64)
    hip, knee = JOINT_NAMES.index("left_hip"), JOINT_NAMES.index(LEG_JOINTS[0])
    ankle = JOINT_NAMES.index(LEG_JOINTS[1])
    leg = np.linalg.norm(joints[0, knee] - joints[0, hip]) + np.linalg.norm(joints[0, ankle] - joints[0, knee])
    pelvis_height = np.linalg.norm(joints[0, hip] - joints[0, 0]) + leg  # over the ankle, roughly
    root = joints[:, 0].copy()
    root[:, [0, 2]] = root[0, [0, 2]] + (root[:, [0, 2]] - root[0, [0, 2]]) * factor
    root[:, 1] *= (pelvis_height + leg * (factor - 1.0)) / pelvis_height
    out = np.empty_like(joints)
    out[:, 0] = root
    for joint in range(1, len(PARENTS)):  # parents come before their children
        bone = joints[:, joint] - joints[:, PARENTS[joint]]
        out[:, joint] = out[:, PARENTS[joint]] + bone * (factor if joint in LIMB_JOINTS else 1.0)
    out[..., 1] += joints[..., 1].min() - out[..., 1].min()
    return out


def augmentations(
    joints: np.ndarray, captions: list[str], mirror: bool, speeds: tuple[float, ...], bodies: tuple[float, ...] = ()
):
    """(name, joints, captions) of every augmented copy of one clip."""
    copies = [("mirror", mirror_joints(joints), [mirror_caption(c) for c in captions])] if mirror else []
    copies += [(f"speed {factor:g}", retime(joints, factor), captions) for factor in speeds]
    copies += [(f"body {factor:g}", reproportion(joints, factor), captions) for factor in bodies]
    return copies
