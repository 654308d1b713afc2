"""A human motion as targets for the robot's key bodies: scaled per limb, aligned at the rest pose.

1. Axes: SMPL's (+Y up, +Z forward) become the robot's REP-103 axes (x forward, y left, z up).
2. Scaling, bone by bone: every SMPL bone keeps its direction and takes its limb's scale (robot length
   / human length, configured or measured), so an elbow bends as much as the human's does while the hand
   lands where the robot's arm reaches. The pelvis path takes the legs' scale, so strides fit the legs;
   the pelvis height is measured from the robot's standing height.
3. Rest-pose alignment: the robot's rest pose (config `rest_pose`) is SMPL's (standing straight, arms
   hanging). At rest, each key body's tracked point differs from the scaled human joint by a fixed offset
   (taken down the tree, stretch by stretch, each carried by its own segment) and each frame by a fixed
   rotation; so at rest the targets are the robot's own rest pose exactly, and the robot is never pulled
   towards the human's proportions.
4. Feet: kept flat (heading only: a humanoid's ankle cannot roll like a human's), never below the
   floor, and pinned while planted (contacts.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from motion_agent.config import ConfigError
from motion_agent.motion.robots.config import LIMB_OF_JOINT, LIMBS, IKRobotConfig
from motion_agent.motion.robots.contacts import pin_feet, planted
from motion_agent.motion.skeleton import (
    JOINT_NAMES,
    LEFT_FOOT_JOINTS,
    NUM_JOINTS,
    PARENTS,
    RIGHT_FOOT_JOINTS,
    SMPL_TO_ROS,
    Skeleton,
    inverse_kinematics,
)

PELVIS = 0
INDEX = {name: index for index, name in enumerate(JOINT_NAMES)}
FEET_JOINTS = (LEFT_FOOT_JOINTS, RIGHT_FOOT_JOINTS)
# The joints each measured limb scale is read between (robot key bodies against human bones).
LIMB_CHAINS = {
    "legs": (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle")),
    "arms": (("left_shoulder", "left_elbow", "left_wrist"), ("right_shoulder", "right_elbow", "right_wrist")),
    "spine": (("pelvis", "head"),),
    "hips": (("left_hip", "right_hip"),),
    "shoulders": (("left_shoulder", "right_shoulder"),),
}


@dataclass(frozen=True)
class RestGeometry:
    """The robot in its rest pose with its base at the origin, facing +x (description.py measures it)."""

    positions: dict[str, np.ndarray]  # SMPL joint -> its key body's tracked point
    rotations: dict[str, np.ndarray]  # SMPL joint -> that point's frame (3, 3)
    stand_height: float  # base height above the floor when standing in the rest pose


@dataclass
class Targets:
    """Per-frame targets of the tracked key bodies, in task order."""

    keys: list[str]  # SMPL joints of the tracked key bodies
    positions: np.ndarray  # (T, K, 3) metres
    rotations: np.ndarray  # (T, K, 3, 3)
    contact: np.ndarray  # (T, 2) planted human feet, left and right
    pelvis: np.ndarray  # (T, 3) the pelvis target (the root's path)
    heading: np.ndarray  # (T,) radians, the pelvis's heading about z, unwrapped
    scale: dict[str, float]  # per limb


def _world_rotations(local: np.ndarray) -> np.ndarray:
    world = local.copy()
    for joint in range(1, NUM_JOINTS):
        world[:, joint] = world[:, PARENTS[joint]] @ local[:, joint]
    return world


def _yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(yaw), np.sin(yaw)
    matrices = np.zeros(yaw.shape + (3, 3))
    matrices[..., 0, 0], matrices[..., 0, 1], matrices[..., 1, 0], matrices[..., 1, 1] = cos, -sin, sin, cos
    matrices[..., 2, 2] = 1.0
    return matrices


def heading_of(rotations: np.ndarray) -> np.ndarray:
    """Heading (about z) of the frames' x axes, unwrapped over time."""
    return np.unwrap(np.arctan2(rotations[..., 1, 0], rotations[..., 0, 0]))


def limb_scales(config: IKRobotConfig, rest: RestGeometry, human_rest: np.ndarray) -> dict[str, float]:
    """Robot / human length per limb: configured, or measured along LIMB_CHAINS between the key bodies
    at the robot's rest pose and the same joints of the human's rest skeleton (ROS axes)."""
    scales = {}
    for limb in LIMBS:
        value = getattr(config.scale, limb)
        if value is not None:
            scales[limb] = float(value)
            continue
        ratios = []
        for chain in LIMB_CHAINS[limb]:
            if not all(name in rest.positions for name in chain):
                continue
            robot = sum(np.linalg.norm(rest.positions[b] - rest.positions[a]) for a, b in zip(chain, chain[1:]))
            ratios.append(robot / _chain_length(human_rest, chain))
        if not ratios:
            needed = " or ".join("/".join(chain) for chain in LIMB_CHAINS[limb])
            raise ConfigError(
                f"{config.name}: scale.{limb} is null (measured), but key_bodies map no {needed}; "
                f"map them or give scale.{limb} a number"
            )
        scales[limb] = float(np.mean(ratios))
    return scales


def _scaled_chain(joints: np.ndarray, root: np.ndarray, scales: dict[str, float]) -> np.ndarray:
    """Each bone keeps its direction and takes its limb's scale; the root is placed at `root`."""
    out = np.empty_like(joints)
    out[..., PELVIS, :] = root
    for joint in range(1, NUM_JOINTS):
        parent = PARENTS[joint]
        bone = joints[..., joint, :] - joints[..., parent, :]
        out[..., joint, :] = out[..., parent, :] + scales[LIMB_OF_JOINT[JOINT_NAMES[joint]]] * bone
    return out


def human_targets(
    joints: np.ndarray, fps: float, config: IKRobotConfig, rest: RestGeometry, keys: list[str]
) -> Targets:
    """World targets of the key bodies `keys` (SMPL joint names, the pelvis among them) for (T, 22, 3)
    SMPL-axes joints at `fps`."""
    smpl = np.asarray(joints, dtype=np.float64)
    skeleton = Skeleton.from_joints(smpl)
    _, local = inverse_kinematics(torch.as_tensor(smpl), skeleton)
    world = SMPL_TO_ROS @ _world_rotations(local.numpy()) @ SMPL_TO_ROS.T  # segment rotations, ROS axes
    human = smpl @ SMPL_TO_ROS.T
    human_rest = skeleton.rest_joints() @ SMPL_TO_ROS.T
    scales = limb_scales(config, rest, human_rest)

    # Contacts on the human's own scale: a plant is a plant whatever the robot's size.
    floor = float(human[:, LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS, 2].min())
    feet = human[:, [list(joints) for joints in FEET_JOINTS]]  # (T, 2 sides, 2 joints (ankle, toe), 3)
    height = feet[..., 2].min(axis=2) - floor
    speed = np.linalg.norm(np.gradient(feet[..., :2].mean(axis=2), axis=0), axis=-1) * fps
    contact = planted(height, speed, config.contact)

    # The pelvis: its path scaled like the legs; its height is the robot's standing height lowered as
    # much as the human pelvis is below standing on its planted ankle. The human ankle rides higher when
    # the toes point down, the robot's flat foot does not, so the height is measured from the planted
    # ankle (interpolated between plants, through flights) rather than from the floor.
    legs = np.mean([_chain_length(human_rest, chain) for chain in LIMB_CHAINS["legs"]])
    ankle = feet[..., 0, 2] - floor  # (T, 2)
    supported = contact.any(axis=1)
    if supported.any():
        planted_ankle = np.where(contact, ankle, 0.0).sum(axis=1)[supported] / contact.sum(axis=1)[supported]
        ankle_height = np.interp(np.arange(len(human)), np.flatnonzero(supported), planted_ankle)
    else:
        ankle_height = np.zeros(len(human))
    human_stand = legs + ankle_height  # thigh + shin + the planted ankle's height above the floor
    pelvis_rest = rest.positions.get("pelvis", np.zeros(3))
    root = np.empty((len(human), 3))
    root[:, :2] = scales["legs"] * (human[:, PELVIS, :2] - human[0, PELVIS, :2])
    root[:, 2] = rest.stand_height + pelvis_rest[2] + scales["legs"] * (human[:, PELVIS, 2] - floor - human_stand)
    scaled = _scaled_chain(human, root, scales)
    scaled_rest = _scaled_chain(human_rest, np.zeros(3), scales)

    placed = _aligned_points(scaled, scaled_rest, world, rest)
    positions = np.stack([placed[INDEX[name]] for name in keys], axis=1)
    rotations = np.stack([world[:, INDEX[name]] @ rest.rotations[name] for name in keys], axis=1)

    for side, foot in enumerate(config.feet):
        name = next(k.smpl for k in config.key_bodies if k.body == foot)
        if name not in keys:
            continue
        k = keys.index(name)
        forward = world[:, FEET_JOINTS[side][0]] @ np.array([1.0, 0.0, 0.0])  # ankle -> toe at rest
        yaw = np.arctan2(forward[:, 1], forward[:, 0])
        floor_height = rest.stand_height + rest.positions[name][2]
        release = int(round(config.contact.release_s * fps))
        swing = config.contact.swing_height_m
        positions[:, k], yaw = pin_feet(positions[:, k], yaw, contact[:, side], floor_height, release, swing)
        rotations[:, k] = _yaw_matrices(yaw) @ rest.rotations[name]

    pelvis = positions[:, keys.index("pelvis")].copy()
    return Targets(list(keys), positions, rotations, contact, pelvis, heading_of(world[:, PELVIS]), scales)


def _aligned_points(
    scaled: np.ndarray, scaled_rest: np.ndarray, world: np.ndarray, rest: RestGeometry
) -> dict[int, np.ndarray]:
    """(T, 3) target of every mapped SMPL joint (every key body, tracked or measuring), rest-aligned
    down the tree: a joint takes its nearest mapped ancestor's target, plus the human's (scaled) bone
    vector from that ancestor, plus the rest-pose difference between robot and human along that stretch,
    carried by the segment that ends at the joint. A robot whose shoulders sit higher on the torso than a
    human's therefore moves the whole arm up with the torso, instead of bending the arm to make up for it."""
    mapped = sorted(INDEX[name] for name in rest.positions)
    placed = {PELVIS: scaled[:, PELVIS]}
    for joint in mapped:
        if joint == PELVIS:
            continue
        ancestor = PARENTS[joint]
        while ancestor not in placed:
            ancestor = PARENTS[ancestor]
        robot = rest.positions[JOINT_NAMES[joint]] - rest.positions[JOINT_NAMES[ancestor]]
        difference = robot - (scaled_rest[joint] - scaled_rest[ancestor])
        bone = scaled[:, joint] - scaled[:, ancestor]
        placed[joint] = placed[ancestor] + bone + world[:, PARENTS[joint]] @ difference
    return placed


def _chain_length(points: np.ndarray, chain: tuple[str, ...]) -> float:
    return float(sum(np.linalg.norm(points[INDEX[b]] - points[INDEX[a]]) for a, b in zip(chain, chain[1:])))


def relative_to_heading(targets: Targets, keys: list[str], anchor: np.ndarray) -> Targets:
    """Targets of `keys` in the pelvis's heading frame, placed at `anchor` (the robot's pelvis point when
    its base stands still): what the upper body tracks while the walking controller moves the base."""
    index = [targets.keys.index(k) for k in keys]
    undo = _yaw_matrices(-targets.heading)  # (T, 3, 3)
    relative = targets.positions[:, index] - targets.pelvis[:, None]
    positions = anchor + np.einsum("tij,tkj->tki", undo, relative)
    rotations = undo[:, None] @ targets.rotations[:, index]
    return Targets(list(keys), positions, rotations, targets.contact, targets.pelvis, targets.heading, targets.scale)


def quaternions_wxyz(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) scalar-first quaternions, as mink's SE3 takes them."""
    flat = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat()  # x, y, z, w
    return np.roll(flat, 1, axis=-1).reshape(rotations.shape[:-2] + (4,))
