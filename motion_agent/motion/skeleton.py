"""The SMPL 22-joint body in HumanML3D's joint order, with batched forward and inverse kinematics.

Coordinates follow HumanML3D: metres, +Y up, the body faces +Z at rest and its left side is +X.
The rest pose is HumanML3D's: every bone points along one axis (`RAW_OFFSETS`), arms hang down.

Local rotations use the SMPL convention (the rotation stored at joint p turns every child bone of p),
which is also BVH's, so kinematics, smplx meshes and BVH files agree without re-indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform

from motion_agent.motion.rotations import (
    axis_angle_to_matrix,
    best_fit_rotation,
    rotation_6d_to_matrix,
    rotation_between,
)

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
# Columns are SMPL axes written in REP-103 axes: ros (x forward, y left, z up) = smpl (z, x, y).
SMPL_TO_ROS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(j for j, p in enumerate(PARENTS) if p == joint) for joint in range(NUM_JOINTS)
)

# HumanML3D's `t2m_raw_offsets`: the rest direction of the bone ending at each joint.
RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)

# HumanML3D's `t2m_kinematic_chain`: right leg, left leg, spine to head, right arm, left arm.
KINEMATIC_CHAIN: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)

# Bone lengths (metres) of an average adult, from the SMPL neutral template's joint distances.
DEFAULT_BONE_LENGTHS = np.array(
    [
        0.0,
        0.115,
        0.115,
        0.11,
        0.40,
        0.40,
        0.135,
        0.42,
        0.42,
        0.055,
        0.13,
        0.13,
        0.21,
        0.14,
        0.14,
        0.09,
        0.10,
        0.10,
        0.26,
        0.26,
        0.25,
        0.25,
    ]
)

LEFT_FOOT_JOINTS = (7, 10)
RIGHT_FOOT_JOINTS = (8, 11)
# Right hip, left hip, right shoulder, left shoulder: the joints whose spread defines "facing".
FACE_JOINTS = (2, 1, 17, 16)


@dataclass(frozen=True)
class Skeleton:
    """Bone offsets of one body; the default is `DEFAULT_BONE_LENGTHS` along `RAW_OFFSETS`."""

    offsets: np.ndarray  # (22, 3), offset of each joint from its parent at rest

    @classmethod
    def default(cls) -> Skeleton:
        return cls.from_bone_lengths(DEFAULT_BONE_LENGTHS)

    @classmethod
    def from_bone_lengths(cls, lengths: np.ndarray) -> Skeleton:
        return cls(offsets=RAW_OFFSETS * np.asarray(lengths, dtype=np.float64)[:, None])

    @classmethod
    def from_joints(cls, joints: np.ndarray | torch.Tensor) -> Skeleton:
        """The skeleton that best fits a motion: mean bone lengths along the rest directions."""
        return cls.from_bone_lengths(bone_lengths(joints).reshape(-1, NUM_JOINTS).mean(axis=0))

    def rest_joints(self) -> np.ndarray:
        """(22, 3) absolute rest positions with the pelvis at the origin."""
        joints = np.zeros((NUM_JOINTS, 3))
        for j in range(1, NUM_JOINTS):
            joints[j] = joints[PARENTS[j]] + self.offsets[j]
        return joints


def bone_lengths(joints: np.ndarray | torch.Tensor) -> np.ndarray:
    """(..., 22, 3) -> (..., 22) length of the bone ending at each joint (0 for the pelvis)."""
    joints = np.asarray(joints, dtype=np.float64)
    parents = np.array(PARENTS[1:])
    lengths = np.zeros(joints.shape[:-1])
    lengths[..., 1:] = np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)
    return lengths


def _parents_tensor() -> torch.Tensor:
    return torch.tensor(PARENTS, dtype=torch.long)


def forward_kinematics(
    root_translation: torch.Tensor,
    rotations: torch.Tensor,
    skeleton: Skeleton | None = None,
) -> torch.Tensor:
    """World joint positions from pelvis positions and local joint rotations.

    root_translation: (..., 3) world position of the pelvis.
    rotations: (..., 22, 3) axis-angle, (..., 22, 6) 6D or (..., 22, 3, 3) matrices; joint 0 is the
    global body orientation.
    Returns (..., 22, 3).
    """
    matrices = as_rotation_matrices(rotations)
    skeleton = skeleton or Skeleton.default()
    batch_shape = matrices.shape[:-3]
    flat = matrices.reshape(-1, NUM_JOINTS, 3, 3)
    rest = torch.as_tensor(skeleton.rest_joints(), dtype=flat.dtype).expand(flat.shape[0], -1, -1)
    posed, _ = batch_rigid_transform(flat, rest, _parents_tensor(), dtype=flat.dtype)
    return posed.reshape(*batch_shape, NUM_JOINTS, 3) + root_translation[..., None, :].to(flat.dtype)


def as_rotation_matrices(rotations: torch.Tensor) -> torch.Tensor:
    """Accept axis-angle (..., 3), 6D (..., 6) or matrices (..., 3, 3); return matrices."""
    if rotations.shape[-2:] == (3, 3):
        return rotations
    if rotations.shape[-1] == 3:
        return axis_angle_to_matrix(rotations)
    if rotations.shape[-1] == 6:
        return rotation_6d_to_matrix(rotations)
    raise ValueError(
        f"rotations must end in (3,) axis-angle, (6,) 6D or (3, 3) matrices, got shape {tuple(rotations.shape)}"
    )


def _depth(joint: int) -> int:
    return 0 if PARENTS[joint] < 0 else 1 + _depth(PARENTS[joint])


# Joints with children, level by level from the root: a level's parents are all solved before it, so its
# single-child joints are solved in one batched call (a retarget pays per torch call, not per frame).
_LEVELS: tuple[tuple[int, ...], ...] = tuple(
    level
    for depth in range(max(_depth(j) for j in range(NUM_JOINTS)) + 1)
    if (level := tuple(j for j in range(NUM_JOINTS) if CHILDREN[j] and _depth(j) == depth))
)


def inverse_kinematics(joints: torch.Tensor, skeleton: Skeleton | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotation matrices that reproduce joint positions through `forward_kinematics`.

    Joints with several children (pelvis, spine3) get the best-fit rotation of all child bones;
    joints with one child get the smallest rotation onto their bone (twist about a bone cannot be
    seen in joint positions, so none is invented); end joints keep the identity.
    Exact for positions whose bone lengths match `skeleton`; least squares otherwise.
    Returns (root_translation (..., 3), rotations (..., 22, 3, 3)).
    """
    joints = torch.as_tensor(joints)
    skeleton = skeleton or Skeleton.from_joints(joints.detach().cpu().numpy())
    offsets = torch.as_tensor(skeleton.offsets, dtype=joints.dtype)
    batch_shape = joints.shape[:-2]
    eye = torch.eye(3, dtype=joints.dtype).expand(*batch_shape, 3, 3)
    local = eye.unsqueeze(-3).repeat_interleave(NUM_JOINTS, dim=-3).clone()
    world = local.clone()  # (..., 22, 3, 3); the root's parent frame is the identity
    for level in _LEVELS:
        single = [j for j in level if len(CHILDREN[j]) == 1]
        if single:
            kids = [CHILDREN[j][0] for j in single]
            parent_world = world[..., [PARENTS[j] for j in single], :, :]  # the root (pelvis) has three children
            bones = joints[..., kids, :] - joints[..., single, :]
            bones_in_parent = (bones.unsqueeze(-2) @ parent_world).squeeze(-2)  # row vectors: R^T b per bone
            rot = rotation_between(offsets[kids].expand_as(bones_in_parent), bones_in_parent)
            local[..., single, :, :] = rot
            world[..., single, :, :] = parent_world @ rot
        for joint in (j for j in level if len(CHILDREN[j]) > 1):
            kids = list(CHILDREN[joint])
            parent_world = eye if joint == 0 else world[..., PARENTS[joint], :, :]
            bones_in_parent = (joints[..., kids, :] - joints[..., joint : joint + 1, :]) @ parent_world
            rot = best_fit_rotation(offsets[kids].expand_as(bones_in_parent), bones_in_parent)
            local[..., joint, :, :] = rot
            world[..., joint, :, :] = parent_world @ rot
    return joints[..., 0, :], local
