"""HumanML3D's 263-dim motion features: computed from joint positions, and joint positions back.

Layout of one frame (22 joints), as in HumanML3D's `process_file` / `recover_from_ric`:

    [0]        root angular velocity about Y (half-angle per frame, HumanML3D's quaternion convention)
    [1:3]      root linear velocity on the XZ plane, in the body's facing frame
    [3]        root height
    [4:67]     21 joint positions relative to the root, in the facing frame ("ric")
    [67:193]   21 joint rotations, 6D (HumanML3D's per-bone inverse kinematics, child-indexed)
    [193:259]  22 joint velocities in the facing frame
    [259:263]  foot contacts, left ankle, left foot, right ankle, right foot

A motion of T frames gives T - 1 feature frames (velocities need a next frame).

Unlike HumanML3D's script, the motion is turned to face +Z with the *smoothed* facing direction of
its first frame, the same direction the per-frame root rotation uses; that makes the root rotation of
frame 0 exactly the identity, which `recover_joints` assumes, so the round trip is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from motion_agent.motion.rotations import matrix_to_rotation_6d, rotate_about_y, rotation_between, yaw_matrix
from motion_agent.motion.skeleton import (
    FACE_JOINTS,
    KINEMATIC_CHAIN,
    LEFT_FOOT_JOINTS,
    NUM_JOINTS,
    RAW_OFFSETS,
    RIGHT_FOOT_JOINTS,
)

FEATURE_DIM = 4 + (NUM_JOINTS - 1) * 9 + NUM_JOINTS * 3 + 4  # 263
RIC_SLICE = slice(4, 4 + (NUM_JOINTS - 1) * 3)
ROT_SLICE = slice(RIC_SLICE.stop, RIC_SLICE.stop + (NUM_JOINTS - 1) * 6)
VEL_SLICE = slice(ROT_SLICE.stop, ROT_SLICE.stop + NUM_JOINTS * 3)
CONTACT_SLICE = slice(VEL_SLICE.stop, FEATURE_DIM)


@dataclass(frozen=True)
class FeatureConfig:
    """HumanML3D's processing constants."""

    fps: float = 20.0
    foot_velocity_threshold: float = 0.002  # squared metres per frame; HumanML3D's `feet_thre`
    # HumanML3D's height factor (2-3 m) never triggers, so a foot at the apex of a jump counts as
    # planted there; a real height limit keeps contact labels physical.
    foot_height_threshold: float = 0.12  # metres above the floor
    facing_smooth_sigma: float = 20.0  # frames; HumanML3D smooths the facing direction this much
    std_feature_bias: float = 5.0  # HumanML3D's `feat_bias`: foot contacts weigh 1/5 in Std

    def __post_init__(self) -> None:
        for name in ("fps", "foot_velocity_threshold", "foot_height_threshold", "std_feature_bias"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FeatureConfig.{name} must be positive, got {getattr(self, name)}")
        if self.facing_smooth_sigma < 0:
            raise ValueError(f"FeatureConfig.facing_smooth_sigma must be >= 0, got {self.facing_smooth_sigma}")


def _as_motion(joints: np.ndarray | torch.Tensor) -> torch.Tensor:
    joints = torch.as_tensor(np.asarray(joints), dtype=torch.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (frames, {NUM_JOINTS}, 3), got {tuple(joints.shape)}")
    if joints.shape[0] < 2:
        raise ValueError(f"a motion needs at least 2 frames to have velocities, got {joints.shape[0]}")
    if not torch.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    return joints


def facing_yaw(joints: torch.Tensor, smooth_sigma: float) -> torch.Tensor:
    """(T, 22, 3) -> (T,) heading angle from +Z towards +X, from hips and shoulders, smoothed."""
    r_hip, l_hip, r_sh, l_sh = FACE_JOINTS
    across = (joints[:, r_hip] - joints[:, l_hip]) + (joints[:, r_sh] - joints[:, l_sh])
    forward = torch.stack([across[:, 2], torch.zeros_like(across[:, 0]), -across[:, 0]], dim=-1)
    forward = torch.nn.functional.normalize(forward, dim=-1).numpy()
    if smooth_sigma > 0:
        forward = gaussian_filter1d(forward, smooth_sigma, axis=0, mode="nearest")
    return torch.atan2(torch.as_tensor(forward[:, 0]), torch.as_tensor(forward[:, 2]))


def canonicalize(joints: np.ndarray | torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Lowest joint on the floor, first-frame pelvis above the origin, first frame facing +Z."""
    joints = _as_motion(joints).clone()
    joints[..., 1] -= joints[..., 1].min()
    joints[..., [0, 2]] -= joints[0, 0, [0, 2]].clone()
    yaw0 = facing_yaw(joints, config.facing_smooth_sigma)[0]
    return rotate_about_y(joints, -yaw0)


def foot_contacts(joints: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """(T, 22, 3) on the floor -> (T-1, 4): a foot joint is planted when it is low and (almost) still."""
    feet = list(LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS)
    speed_sq = ((joints[1:, feet] - joints[:-1, feet]) ** 2).sum(dim=-1)
    low = joints[:-1, feet, 1] < config.foot_height_threshold
    return ((speed_sq < config.foot_velocity_threshold) & low).to(joints.dtype)


def _bone_rotations_6d(joints: torch.Tensor, root_rotation: torch.Tensor) -> torch.Tensor:
    """HumanML3D's per-bone inverse kinematics: (T, 22, 3) -> (T, 21, 6), child-indexed."""
    raw = torch.as_tensor(RAW_OFFSETS, dtype=joints.dtype)
    local = torch.eye(3, dtype=joints.dtype).repeat(joints.shape[0], NUM_JOINTS, 1, 1)
    for chain in KINEMATIC_CHAIN:
        world = root_rotation
        for parent, child in zip(chain[:-1], chain[1:]):
            swing = rotation_between(raw[child].expand(joints.shape[0], 3), joints[:, child] - joints[:, parent])
            local[:, child] = world.transpose(-1, -2) @ swing
            world = swing
    return matrix_to_rotation_6d(local[:, 1:])


def joints_to_features(joints: np.ndarray | torch.Tensor, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """(T, 22, 3) joint positions in metres -> (T - 1, 263) HumanML3D features (float32)."""
    joints = canonicalize(joints, config)
    yaw = facing_yaw(joints, config.facing_smooth_sigma)
    yaw = yaw - yaw[0]  # exactly 0 after canonicalize, up to smoothing round-off
    to_body = -yaw  # rotation angle taking world vectors into each frame's facing frame

    root = joints[:, 0]
    root_velocity = rotate_about_y(root[1:] - root[:-1], to_body[1:])
    root_angular = torch.remainder(to_body[1:] - to_body[:-1] + np.pi, 2 * np.pi) - np.pi

    local = joints.clone()
    local[..., [0, 2]] -= root[:, None, [0, 2]]
    local = rotate_about_y(local, to_body[:, None])

    world_velocity = joints[1:] - joints[:-1]
    local_velocity = rotate_about_y(world_velocity, to_body[:-1, None])

    rot6d = _bone_rotations_6d(joints, yaw_matrix(to_body))
    frames = joints.shape[0] - 1
    features = torch.cat(
        [
            (root_angular / 2)[:, None],
            root_velocity[:, [0, 2]],
            root[:-1, 1:2],
            local[:-1, 1:].reshape(frames, -1),
            rot6d[:-1].reshape(frames, -1),
            local_velocity.reshape(frames, -1),
            foot_contacts(joints, config),
        ],
        dim=-1,
    )
    return features.numpy().astype(np.float32)


def recover_root(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 263) -> facing angle (..., T) that turns world into body frame, and root (..., T, 3)."""
    half_angle = torch.zeros_like(features[..., 0])
    half_angle[..., 1:] = features[..., :-1, 0]
    to_body = 2 * torch.cumsum(half_angle, dim=-1)
    step = torch.zeros(*features.shape[:-1], 3, dtype=features.dtype, device=features.device)
    step[..., 1:, 0] = features[..., :-1, 1]
    step[..., 1:, 2] = features[..., :-1, 2]
    root = torch.cumsum(rotate_about_y(step, -to_body), dim=-2)
    root[..., 1] = features[..., 3]
    return to_body, root


def recover_joints(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """HumanML3D's `recover_from_ric`: (..., T, 263) features -> (..., T, 22, 3) joint positions."""
    features = torch.as_tensor(features)
    if features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"features must end in {FEATURE_DIM} values, got shape {tuple(features.shape)}")
    to_body, root = recover_root(features)
    local = features[..., RIC_SLICE].reshape(*features.shape[:-1], NUM_JOINTS - 1, 3)
    world = rotate_about_y(local, -to_body[..., None])
    world[..., 0] += root[..., None, 0]
    world[..., 2] += root[..., None, 2]
    return torch.cat([root[..., None, :], world], dim=-2)


def mean_std(features: list[np.ndarray], config: FeatureConfig = FeatureConfig()) -> tuple[np.ndarray, np.ndarray]:
    """HumanML3D's Mean/Std: each feature group shares one std, so no group dominates training."""
    stacked = np.concatenate(features, axis=0).astype(np.float64)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    groups = [slice(0, 1), slice(1, 3), slice(3, 4), RIC_SLICE, ROT_SLICE, VEL_SLICE]
    for group in groups:
        std[group] = std[group].mean()
    std[CONTACT_SLICE] = std[CONTACT_SLICE].mean() / config.std_feature_bias
    std = np.where(std < 1e-8, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(features: np.ndarray | torch.Tensor, mean: np.ndarray, std: np.ndarray):
    return (features - mean) / std


def denormalize(features: np.ndarray | torch.Tensor, mean: np.ndarray, std: np.ndarray):
    return features * std + mean
