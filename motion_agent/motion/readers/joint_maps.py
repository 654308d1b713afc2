"""Which joint of a source skeleton is which of the 22 SMPL joints, per skeleton naming convention.

A file's joint names are matched case-insensitively, without namespace prefixes (Mixamo's "mixamorig:",
a Maya "Character1_"): a convention applies when every one of its 22 names is present. A skeleton no
convention covers is refused with the joints the closest convention misses, so the user knows what to
rename (or which `joint_map` to give).
"""

from __future__ import annotations

import re

from motion_agent.motion.skeleton import JOINT_NAMES

# convention -> the source names of the 22 joints, in JOINT_NAMES order
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "smpl": JOINT_NAMES,
    "mixamo": (
        "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
        "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
        "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand",
    ),
    "cmu": (  # the CMU motion-capture BVH conversions (LowerBack, Spine, Spine1 up the back)
        "Hips", "LeftUpLeg", "RightUpLeg", "LowerBack", "LeftLeg", "RightLeg", "Spine", "LeftFoot", "RightFoot",
        "Spine1", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
        "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand",
    ),
    "smpl_capitalised": (  # SMPL names as some exporters write them
        "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
        "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
        "R_Elbow", "L_Wrist", "R_Wrist",
    ),
}  # fmt: skip

_PREFIX = re.compile(r"^.*[:|]")


class SkeletonError(ValueError):
    """A source skeleton that cannot be mapped onto the 22 joints; the message names what is missing."""


def normalise(name: str) -> str:
    """'mixamorig:LeftUpLeg' -> 'leftupleg'."""
    return _PREFIX.sub("", name.strip()).replace("_", "").replace(" ", "").lower()


def match_skeleton(names: list[str], joint_map: dict[str, str] | None = None, source: str = "the file") -> list[int]:
    """Indices into `names` of the 22 joints in JOINT_NAMES order.

    `joint_map` (project joint name -> source name) overrides the conventions, for skeletons none covers."""
    index = {}
    for position, name in enumerate(names):
        index.setdefault(normalise(name), position)
    candidates = {"given joint_map": tuple(joint_map.get(j, "") for j in JOINT_NAMES)} if joint_map else CONVENTIONS
    best, best_missing = "", list(JOINT_NAMES)
    for convention, wanted in candidates.items():
        missing = [w or JOINT_NAMES[i] for i, w in enumerate(wanted) if normalise(w) not in index]
        if not missing:
            return [index[normalise(w)] for w in wanted]
        if len(missing) < len(best_missing):
            best, best_missing = convention, missing
    shown = ", ".join(best_missing[:8]) + (f" and {len(best_missing) - 8} more" if len(best_missing) > 8 else "")
    raise SkeletonError(
        f"The skeleton of {source} does not map onto the 22 SMPL joints: the closest convention ({best or 'none'}) "
        f"misses {shown}. Its joints: {', '.join(names[:30])}{' ...' if len(names) > 30 else ''}. Rename them, "
        "or give a joint map (SMPL joint name -> joint name in the file)."
    )
