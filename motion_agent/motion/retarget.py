"""Retargeting of generated human motion (SMPL joint positions) to robot or avatar joint trajectories.

This is the step between the motion decoder and a `trajectory_msgs/JointTrajectory`; it holds no ROS
types, so it runs and is tested anywhere, and the node only copies arrays into messages.

Each robot joint is one Euler angle of one SMPL joint's rotation. Euler angles are read as *intrinsic*
rotations, which is exactly what a serial chain of revolute joints does (the second axis moves with the
first), so a robot whose joint axes follow the Euler sequence reproduces the rotation. SMPL axes are
HumanML3D's (+X left, +Y up, +Z forward); a REP-103 robot (x forward, y left, z up) therefore has
pitch = SMPL X, roll = SMPL Z, yaw = SMPL Y, all with the same sign (the two frames differ by a proper
rotation).

Angles are extracted at the motion's rate, unwrapped over time (so a continuous joint never jumps by
2 pi), resampled to the robot's rate, clipped to the position limits and then slowed to the velocity
limits; velocities are finite differences of the final positions, so the two always agree.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import interp1d
from scipy.spatial.transform import Rotation, Slerp

from motion_agent.config import ConfigError, config_dir, load_yaml
from motion_agent.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, inverse_kinematics

LOG = logging.getLogger(__name__)
ROBOTS_DIR = "robots"
ORIENTATIONS = ("none", "yaw", "full")
FRAMES = ("ros", "smpl")
# Columns of this matrix are the SMPL axes written in REP-103 axes: ros = (z, x, y) of smpl.
_SMPL_TO_ROS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _smpl_index(name: str, key: str) -> int:
    if name not in JOINT_NAMES:
        raise ValueError(f"{key} {name!r} is not an SMPL joint name (known: {', '.join(JOINT_NAMES)})")
    return JOINT_NAMES.index(name)


def _ancestors(joint: int) -> set[int]:
    found = set()
    while PARENTS[joint] >= 0:
        joint = PARENTS[joint]
        found.add(joint)
    return found


@dataclass(frozen=True)
class JointConfig:
    """One robot joint: an Euler angle of one SMPL joint's rotation, scaled, offset and limited.

    The rotation is the source joint's local rotation (relative to its SMPL parent) unless
    `relative_to` names an SMPL ancestor: a robot link often spans several SMPL bones (a waist covers
    spine1-3, a shoulder covers collar and shoulder), and taking the rotation across all of them keeps
    the motion that the skipped SMPL joints carry.
    """

    name: str
    source: str  # SMPL joint whose rotation is read
    axis: str  # x, y or z: which angle of the Euler sequence this joint takes
    euler: str = "XYZ"  # intrinsic Tait-Bryan sequence, scipy's upper-case notation
    relative_to: str | None = None  # SMPL ancestor the rotation is measured from; None: the parent
    scale: float = 1.0  # -1 flips the direction
    offset: float = 0.0  # radians added after scaling: the robot's angle at the SMPL rest pose
    lower: float | None = None  # radians; None: unlimited
    upper: float | None = None
    max_velocity: float | None = None  # rad/s; None: unlimited

    def __post_init__(self) -> None:
        source = _smpl_index(self.source, "source")
        if self.relative_to is not None and _smpl_index(self.relative_to, "relative_to") not in _ancestors(source):
            raise ValueError(f"relative_to {self.relative_to!r} is not an SMPL ancestor of {self.source!r}")
        if len(self.euler) != 3 or set(self.euler) != set("XYZ"):
            raise ValueError(f"euler {self.euler!r} must be an intrinsic sequence of X, Y, Z once each, e.g. XYZ")
        if self.axis not in ("x", "y", "z"):
            raise ValueError(f"axis {self.axis!r} must be x, y or z")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower {self.lower} is above upper {self.upper}")
        if self.max_velocity is not None and self.max_velocity <= 0:
            raise ValueError(f"max_velocity must be positive, got {self.max_velocity}")


@dataclass(frozen=True)
class RootConfig:
    """Pelvis pose for an avatar or a floating base; fixed-base robots leave `root` out."""

    position: bool = True  # pelvis position, metres
    orientation: str = "yaw"  # none | yaw (heading about the up axis) | full (pelvis orientation)
    frame: str = "ros"  # ros: x forward, y left, z up (REP 103); smpl: the motion's +Y up, +Z forward
    scale: float = 1.0  # position scale, e.g. robot leg length / human leg length

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation {self.orientation!r} must be one of {', '.join(ORIENTATIONS)}")
        if self.frame not in FRAMES:
            raise ValueError(f"frame {self.frame!r} must be one of {', '.join(FRAMES)}")
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")


@dataclass(frozen=True)
class RobotConfig:
    """A robot or avatar: its output rate, its joints in trajectory order, and optionally its root."""

    name: str
    fps: float = 50.0  # rate of the output trajectory, Hz
    joints: tuple[JointConfig, ...] = ()
    root: RootConfig | None = None

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        names = [j.name for j in self.joints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"joint names must be unique, repeated: {', '.join(duplicates)}")
        if not self.joints and self.root is None:
            raise ValueError("a robot needs joints, a root, or both")


@dataclass
class Trajectory:
    """Joint trajectory sampled at uniform times; what a JointTrajectory message is built from."""

    joint_names: list[str]
    times: np.ndarray  # (N,) seconds from the start
    positions: np.ndarray  # (N, J) radians
    velocities: np.ndarray  # (N, J) rad/s, central differences of `positions`
    root_position: np.ndarray | None = None  # (N, 3) metres, in `RootConfig.frame` axes
    root_yaw: np.ndarray | None = None  # (N,) radians about the up axis, unwrapped
    root_orientation: np.ndarray | None = None  # (N, 4) quaternions x, y, z, w (geometry_msgs order)
    clipped: int = 0  # (sample, joint) values clipped to position limits
    velocity_limited: int = 0  # (sample, joint) values slowed to the velocity limit
    # Real robots (motion_agent.motion.robots): the base's body-frame twist (vx, vy, yaw rate) for the
    # upper-body mode's cmd_vel, the MuJoCo replay's feasibility report and the retargeting's own figures
    # (key-body error, scales, contacts).
    base_twist: np.ndarray | None = None  # (N, 3) m/s, m/s, rad/s
    feasibility: dict[str, float | int | str] | None = None
    stats: dict[str, float] = field(default_factory=dict)


def available_robots() -> list[str]:
    return sorted(p.stem for p in (config_dir() / ROBOTS_DIR).glob("*.yaml"))


def robot_path(name_or_path: str | Path) -> Path:
    """The YAML of a shipped robot by name (config/robots/<name>.yaml) or of any robot by path."""
    text = str(name_or_path)
    if Path(text).suffix in (".yaml", ".yml") or "/" in text or Path(text).is_file():
        return Path(text)
    path = config_dir() / ROBOTS_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown robot {text!r}: no {path}; available: {', '.join(available_robots())}")
    return path


def load_robot(name_or_path: str | Path) -> RobotConfig:
    """A shipped robot map by name (config/robots/<name>.yaml) or any robot map YAML by path."""
    return load_yaml(RobotConfig, robot_path(name_or_path))


def check_joints(joints: np.ndarray | torch.Tensor, fps: float) -> np.ndarray:
    """(T, 22, 3) float64 joint positions of a motion to retarget; ValueError naming what is wrong."""
    joints = np.asarray(joints.detach().cpu() if isinstance(joints, torch.Tensor) else joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (frames, {NUM_JOINTS}, 3), got {joints.shape}")
    if len(joints) < 2:
        raise ValueError(f"a trajectory needs at least 2 frames, got {len(joints)}")
    if not np.isfinite(joints).all():
        bad = int(np.flatnonzero(~np.isfinite(joints).reshape(len(joints), -1).all(axis=1))[0])
        raise ValueError(f"joints contain NaN or infinite values (first at frame {bad})")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return joints


def _world_rotations(local: np.ndarray) -> np.ndarray:
    world = local.copy()
    for joint in range(1, NUM_JOINTS):
        world[:, joint] = world[:, PARENTS[joint]] @ local[:, joint]
    return world


def _source_rotation(local: np.ndarray, world: np.ndarray, source: str, relative_to: str | None) -> np.ndarray:
    """(T, 3, 3) rotation of SMPL joint `source` relative to its parent, or to its ancestor `relative_to`."""
    if relative_to is None:
        return local[:, JOINT_NAMES.index(source)]
    base = world[:, JOINT_NAMES.index(relative_to)]
    return base.transpose(0, 2, 1) @ world[:, JOINT_NAMES.index(source)]


def _euler(matrices: np.ndarray, sequence: str) -> np.ndarray:
    """(T, K, 3, 3) rotations -> (T, K, 3) angles, unwrapped over time."""
    # Near gimbal lock scipy warns and splits the angle arbitrarily between the first and third axis;
    # the decomposition still reproduces the rotation exactly, so the warning is noise per frame.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        angles = Rotation.from_matrix(matrices.reshape(-1, 3, 3), assume_valid=True).as_euler(sequence)
    return np.unwrap(angles.reshape(matrices.shape[:2] + (3,)), axis=0)


def limit_velocity(positions: np.ndarray, max_step: np.ndarray) -> tuple[np.ndarray, int]:
    """Follow the positions no faster than `max_step` per sample; stays within position limits
    because every step moves towards a target that is itself within them."""
    out = positions.copy()
    if (np.abs(np.diff(out, axis=0)) <= max_step).all():  # the common case: nothing to slow, no per-sample loop
        return out, 0
    limited = 0
    for i in range(1, len(out)):
        step = out[i] - out[i - 1]
        limited += int((np.abs(step) > max_step).sum())
        out[i] = out[i - 1] + np.clip(step, -max_step, max_step)
    return out, limited


class Retargeter:
    """Maps (T, 22, 3) SMPL joint positions to a `Trajectory` for one robot configuration.

    Decoder output in HumanML3D features goes through `features.recover_joints` first.
    """

    def __init__(self, config: RobotConfig):
        self.config = config
        joints = config.joints
        self.joint_names = [j.name for j in joints]
        self._lower = np.array([-np.inf if j.lower is None else j.lower for j in joints])
        self._upper = np.array([np.inf if j.upper is None else j.upper for j in joints])
        self._max_velocity = np.array([np.inf if j.max_velocity is None else j.max_velocity for j in joints])
        keys = list(dict.fromkeys((j.source, j.relative_to, j.euler) for j in joints))  # rotations read, once each
        self._rotations_by_sequence = {
            sequence: [k for k in keys if k[2] == sequence] for sequence in dict.fromkeys(k[2] for k in keys)
        }

    def retarget(self, joints: np.ndarray | torch.Tensor, fps: float = 20.0) -> Trajectory:
        joints = check_joints(joints, fps)
        rate = self.config.fps
        source_times = np.arange(len(joints)) / fps
        count = int(np.floor(source_times[-1] * rate + 1e-6)) + 1
        if count < 2:
            raise ValueError(f"a {source_times[-1]:.3f} s motion is shorter than one {rate} Hz output period")
        times = np.arange(count) / rate
        # k / rate can exceed the last frame's time by a rounding error, which the interpolators refuse.
        sample_at = np.minimum(times, source_times[-1])

        root, local = inverse_kinematics(torch.as_tensor(joints))
        local = local.numpy()
        world = _world_rotations(local)
        angles = self._joint_angles(local, world)
        positions = interp1d(source_times, angles, axis=0, assume_sorted=True)(sample_at)

        outside = (positions < self._lower) | (positions > self._upper)
        positions = np.clip(positions, self._lower, self._upper)
        positions, limited = limit_velocity(positions, self._max_velocity / rate)
        velocities = np.gradient(positions, times, axis=0)
        trajectory = Trajectory(
            joint_names=list(self.joint_names),
            times=times,
            positions=positions,
            velocities=velocities,
            clipped=int(outside.sum()),
            velocity_limited=limited,
        )
        if self.config.root is not None:
            self._root(trajectory, root.numpy(), world[:, 0], source_times, sample_at)
        if trajectory.clipped or trajectory.velocity_limited:
            LOG.warning(
                "%s: %d values clipped to joint limits, %d slowed to velocity limits",
                self.config.name,
                trajectory.clipped,
                trajectory.velocity_limited,
            )
        return trajectory

    def _joint_angles(self, local: np.ndarray, world: np.ndarray) -> np.ndarray:
        """(T, J) robot angles at the motion's rate. Each rotation a joint reads is decomposed once,
        and all rotations of one Euler sequence in one scipy call (a call per joint cost more than
        the decomposition)."""
        angles: dict[tuple[str, str | None, str], np.ndarray] = {}
        for sequence, group in self._rotations_by_sequence.items():
            matrices = np.stack(
                [_source_rotation(local, world, source, relative_to) for source, relative_to, _ in group], axis=1
            )  # (T, K, 3, 3)
            decomposed = _euler(matrices, sequence)
            angles.update({key: decomposed[:, k] for k, key in enumerate(group)})
        columns = []
        for joint in self.config.joints:
            angle = angles[(joint.source, joint.relative_to, joint.euler)][:, joint.euler.index(joint.axis.upper())]
            columns.append(joint.scale * angle + joint.offset)
        return np.stack(columns, axis=1) if columns else np.zeros((len(local), 0))

    def _root(
        self,
        trajectory: Trajectory,
        pelvis: np.ndarray,
        orientation: np.ndarray,
        source_times: np.ndarray,
        times: np.ndarray,
    ) -> None:
        root = self.config.root
        to_frame = _SMPL_TO_ROS if root.frame == "ros" else np.eye(3)
        if root.position:
            position = interp1d(source_times, pelvis, axis=0)(times) * root.scale
            trajectory.root_position = position @ to_frame.T  # row vectors: (P v)^T = v^T P^T
        if root.orientation == "none":
            return
        # Heading of the body's forward axis (+Z) about the up axis; the same number in both frames.
        yaw = np.unwrap(np.arctan2(orientation[:, 0, 2], orientation[:, 2, 2]))
        trajectory.root_yaw = np.interp(times, source_times, yaw)
        if root.orientation == "yaw":
            up = np.array([0.0, 0.0, 1.0]) if root.frame == "ros" else np.array([0.0, 1.0, 0.0])
            rotations = Rotation.from_rotvec(trajectory.root_yaw[:, None] * up)
        else:
            smpl = Slerp(source_times, Rotation.from_matrix(orientation, assume_valid=True))(times).as_matrix()
            rotations = Rotation.from_matrix(to_frame @ smpl @ to_frame.T, assume_valid=True)
        quaternions = rotations.as_quat()
        # q and -q are the same rotation; keep consecutive ones in the same hemisphere so that
        # consumers interpolating between samples never take the long way round.
        same_side = np.sum(quaternions[1:] * quaternions[:-1], axis=1) >= 0
        quaternions[1:] *= np.cumprod(np.where(same_side, 1.0, -1.0))[:, None]
        trajectory.root_orientation = quaternions
