"""A real robot's retargeting configuration (config/robots/<robot>.yaml with a `description` key).

Plain dataclasses, checked when loaded (motion_agent.config.load_yaml names the bad key); the names
they hold (bodies, joints) are checked against the robot model when it is built (description.py),
because only the model knows them. The comments at the top of config/robots/unitree_g1.yaml walk
through every section, and docs/robot.md says how to add a robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from motion_agent.config import load_yaml
from motion_agent.motion.skeleton import JOINT_NAMES

MODES = ("whole_body", "upper_body")
# Which limb each SMPL bone (named by the joint it ends at) belongs to, for per-limb scaling.
LIMB_OF_JOINT = {
    "left_hip": "hips",
    "right_hip": "hips",
    "spine1": "spine",
    "spine2": "spine",
    "spine3": "spine",
    "neck": "spine",
    "head": "spine",
    "left_knee": "legs",
    "right_knee": "legs",
    "left_ankle": "legs",
    "right_ankle": "legs",
    "left_foot": "legs",
    "right_foot": "legs",
    "left_collar": "shoulders",
    "right_collar": "shoulders",
    "left_shoulder": "shoulders",
    "right_shoulder": "shoulders",
    "left_elbow": "arms",
    "right_elbow": "arms",
    "left_wrist": "arms",
    "right_wrist": "arms",
}
LIMBS = ("legs", "arms", "spine", "hips", "shoulders")
# SMPL joints whose key bodies the upper-body mode leaves to the robot's own locomotion controller.
LOWER_BODY = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
LOWER_BODY += ("left_foot", "right_foot")
FOOT_JOINTS = {"left": ("left_ankle", "left_foot"), "right": ("right_ankle", "right_foot")}


@dataclass(frozen=True)
class DescriptionConfig:
    """Where the robot's URDF is: a file inside an installed Python package, found with importlib, so no
    machine path is written anywhere and nothing is downloaded at run time."""

    package: str  # importable package holding the description, e.g. holosoma
    path: str  # the URDF, relative to the package's folder
    capsules: bool = True  # cylinder collision geoms become capsules: their distances are closed-form

    def __post_init__(self) -> None:
        if not self.package or not self.path:
            raise ValueError("description needs a package and a path inside it")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError(f"description.path {self.path!r} must be relative to the package folder")


@dataclass(frozen=True)
class KeyBody:
    """One SMPL joint followed by one point of one robot body.

    Positions follow the joint; orientations follow the SMPL segment that starts at the joint (the
    shin for `left_knee`, the foot for `left_ankle`), aligned at the rest pose. A key body whose costs
    are both zero only measures the robot for per-limb scaling (a hip or a shoulder, say)."""

    smpl: str  # SMPL joint name
    body: str  # robot body (URDF link) name
    point: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tracked point in the body's frame, metres
    position_cost: float = 1.0  # weight of the position error (per metre)
    orientation_cost: float = 0.0  # weight of the orientation error (per radian)

    def __post_init__(self) -> None:
        if self.smpl not in JOINT_NAMES:
            raise ValueError(f"smpl {self.smpl!r} is not an SMPL joint name (known: {', '.join(JOINT_NAMES)})")
        if len(self.point) != 3:
            raise ValueError(f"point must be [x, y, z], got {list(self.point)}")
        if self.position_cost < 0 or self.orientation_cost < 0:
            raise ValueError(f"costs of {self.body} must be >= 0")

    @property
    def tracked(self) -> bool:
        return self.position_cost > 0 or self.orientation_cost > 0


@dataclass(frozen=True)
class ScaleConfig:
    """Robot length / human length per limb. Null: measured from the key bodies at the robot's rest pose
    against the motion's own skeleton (its mean bone lengths)."""

    legs: float | None = None  # hip -> knee -> ankle; also scales the pelvis path, so strides fit the legs
    arms: float | None = None  # shoulder -> elbow -> wrist
    spine: float | None = None  # pelvis -> head
    hips: float | None = None  # hip width
    shoulders: float | None = None  # shoulder width

    def __post_init__(self) -> None:
        for limb in LIMBS:
            value = getattr(self, limb)
            if value is not None and value <= 0:
                raise ValueError(f"scale.{limb} must be positive (or null: measured), got {value}")


@dataclass(frozen=True)
class IKConfig:
    """The per-frame QP (mink): one warm-started solve per motion frame after the first frame converged."""

    solver: str = "daqp"  # qpsolvers backend
    damping: float = 1e-3  # Levenberg-Marquardt damping: keeps the QP well posed at a stretched limb
    posture_cost: float = 0.02  # pull towards the rest pose: redundant joints stay where the robot rests
    first_frame_iterations: int = 8  # the first frame starts from the rest pose and converges (or the next ones do)
    limit_margin_rad: float = 0.01  # joints stay this far inside their position limits
    velocity_fraction: float = 0.9  # one frame's step stays under this fraction of each joint's speed limit
    # A frame whose targets move farther than this is solved in sub-steps (at most max_substeps): one
    # linearized step across a fast swing would let a hand pass through the body between two frames.
    max_target_step_m: float = 0.15
    max_substeps: int = 3
    # No joint moves more than this in one QP: the collision constraints are linear in the step, and a
    # long step can swing a capsule's far end through another one the linearization did not see.
    max_step_rad: float = 0.25

    def __post_init__(self) -> None:
        if self.damping < 0 or self.posture_cost < 0 or self.limit_margin_rad < 0:
            raise ValueError("ik.damping, ik.posture_cost and ik.limit_margin_rad must be >= 0")
        if self.max_target_step_m <= 0 or self.max_substeps < 1 or self.max_step_rad <= 0:
            raise ValueError("ik.max_target_step_m and ik.max_step_rad must be positive and ik.max_substeps >= 1")
        if self.first_frame_iterations < 1:
            raise ValueError(f"ik.first_frame_iterations must be >= 1, got {self.first_frame_iterations}")
        if not 0 < self.velocity_fraction <= 1:
            raise ValueError(f"ik.velocity_fraction must lie in (0, 1], got {self.velocity_fraction}")


@dataclass(frozen=True)
class ContactConfig:
    """When a human foot is planted; the robot's foot then stays still on the floor until it lifts."""

    height_m: float = 0.06  # the foot's lowest joint (ankle or toe) at most this far above the motion's floor
    speed_m_s: float = 0.6  # ... moving slower than this (horizontally, human scale)
    min_frames: int = 2  # shorter plants are noise, not steps
    release_s: float = 0.2  # after lift-off the target glides from the planted spot back to the human foot
    swing_height_m: float = 0.04  # a step lifts the robot's foot at least this high at its middle
    planted_cost_factor: float = 5.0  # a planted foot's position cost is this much higher: the body gives, not the foot

    def __post_init__(self) -> None:
        if self.height_m <= 0 or self.speed_m_s <= 0 or self.release_s < 0 or self.min_frames < 1:
            raise ValueError("contact.height_m and speed_m_s must be positive, release_s >= 0, min_frames >= 1")
        if self.swing_height_m < 0 or self.planted_cost_factor <= 0:
            raise ValueError("contact.swing_height_m must be >= 0 and contact.planted_cost_factor positive")


@dataclass(frozen=True)
class CollisionConfig:
    """Named groups of bodies and which groups must stay apart: the IK keeps these pairs apart where the
    model has collision geometry, and the feasibility replay counts the frames where they touch."""

    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> robot bodies
    pairs: tuple[tuple[str, str], ...] = ()  # groups kept apart
    avoid: bool = True  # false: only the feasibility report looks at them
    min_distance_m: float = 0.01  # the IK keeps this gap
    detection_distance_m: float = 0.05  # pairs closer than this enter the QP

    def __post_init__(self) -> None:
        for index, pair in enumerate(self.pairs):
            if len(pair) != 2:
                raise ValueError(f"collision.pairs[{index}] must name two groups, got {list(pair)}")
            for group in pair:
                if group not in self.groups:
                    raise ValueError(
                        f"collision.pairs[{index}] names group {group!r}, not one of collision.groups "
                        f"({', '.join(self.groups) or 'none'})"
                    )
        if self.min_distance_m < 0 or self.detection_distance_m <= self.min_distance_m:
            raise ValueError("need 0 <= collision.min_distance_m < collision.detection_distance_m")


@dataclass(frozen=True)
class ControllerConfig:
    """What a ros2_control JointTrajectoryController needs beyond the motion (controller.py): a start and
    an end at rest, and a jerk-limited blend in from the robot's current posture."""

    ease_s: float = 0.5  # the motion's playback speed ramps up from rest over this long, and back down at the end
    velocity_fraction: float = 0.9  # every point stays under this fraction of each joint's speed limit
    max_acceleration: float = 8.0  # rad/s^2 of the blend in from the current posture
    max_jerk: float = 80.0  # rad/s^3 of the blend in
    min_blend_s: float = 0.3  # shortest blend in
    max_blend_s: float = 6.0  # a blend that would need longer is refused: the posture is too far from the motion

    def __post_init__(self) -> None:
        if self.ease_s < 0:
            raise ValueError(f"controller.ease_s must be >= 0, got {self.ease_s}")
        if not 0 < self.velocity_fraction <= 1:
            raise ValueError(f"controller.velocity_fraction must lie in (0, 1], got {self.velocity_fraction}")
        if self.max_acceleration <= 0 or self.max_jerk <= 0:
            raise ValueError("controller.max_acceleration and max_jerk must be positive")
        if not 0 < self.min_blend_s < self.max_blend_s:
            raise ValueError("need 0 < controller.min_blend_s < controller.max_blend_s")


@dataclass(frozen=True)
class BaseVelocityConfig:
    """The upper-body mode's cmd_vel: the pelvis path as a body-frame twist for the robot's own walking
    controller (x forward, y left, yaw rate), smoothed and capped."""

    smoothing_s: float = 0.4  # moving-average window: a gait's sway is not a base motion
    max_linear_m_s: float = 0.8
    max_angular_rad_s: float = 1.0
    max_linear_acceleration: float = 1.5  # m/s^2: the twist ramps up and down no faster
    max_angular_acceleration: float = 3.0  # rad/s^2

    def __post_init__(self) -> None:
        values = (self.max_linear_m_s, self.max_angular_rad_s, self.max_linear_acceleration)
        if self.smoothing_s < 0 or min(values + (self.max_angular_acceleration,)) <= 0:
            raise ValueError("base_velocity limits must be positive and smoothing_s >= 0")


@dataclass(frozen=True)
class FeasibilityConfig:
    """How the replay in MuJoCo judges a trajectory (feasibility.py)."""

    contact_height_m: float = 0.01  # a robot foot whose lowest point is this close to the floor is in contact
    limit_tolerance_rad: float = 1e-3  # a joint this close to a position limit hits it
    penetration_tolerance_m: float = 0.005  # deeper under the floor is reported as penetration

    def __post_init__(self) -> None:
        if min(self.contact_height_m, self.limit_tolerance_rad, self.penetration_tolerance_m) < 0:
            raise ValueError("feasibility tolerances must be >= 0")


@dataclass(frozen=True)
class IKRobotConfig:
    """A real robot: its description, how the human maps onto it, and how its trajectories are made."""

    name: str
    description: DescriptionConfig
    key_bodies: tuple[KeyBody, ...]
    feet: tuple[str, str]  # left and right foot bodies (key bodies of an SMPL ankle or foot)
    aliases: tuple[str, ...] = ()  # short names, e.g. g1 (motion-agent say --robot g1)
    fps: float = 50.0  # output trajectory rate, Hz
    mode: str = "whole_body"  # whole_body | upper_body (agent.robot_mode overrides)
    rest_pose: dict[str, float] = field(default_factory=dict)  # joint -> radians: the robot in SMPL's rest pose
    # joint -> [lower, upper] radians inside the model's own limits: a URDF may let an elbow bend backwards
    # further than a human's ever does, and the IK would use it
    joint_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    leg_joints: tuple[str, ...] = ()  # never commanded in upper_body mode (the walking controller owns them)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    ik: IKConfig = field(default_factory=IKConfig)
    contact: ContactConfig = field(default_factory=ContactConfig)
    collision: CollisionConfig = field(default_factory=CollisionConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    base_velocity: BaseVelocityConfig = field(default_factory=BaseVelocityConfig)
    feasibility: FeasibilityConfig = field(default_factory=FeasibilityConfig)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} must be one of {', '.join(MODES)}")
        bodies = [k.body for k in self.key_bodies]
        repeated = sorted({b for b in bodies if bodies.count(b) > 1})
        if repeated:
            raise ValueError(f"key_bodies map a body twice: {', '.join(repeated)}")
        if not any(k.tracked for k in self.key_bodies):
            raise ValueError("key_bodies: at least one needs a position or orientation cost")
        for joint, bounds in self.joint_range.items():
            if len(bounds) != 2 or not bounds[0] < bounds[1]:
                raise ValueError(f"joint_range.{joint} must be [lower, upper] with lower < upper, got {list(bounds)}")
        pelvis = self.key_body("pelvis")
        if pelvis is None or pelvis.position_cost <= 0:
            raise ValueError("key_bodies must map SMPL pelvis with a position cost: the root follows it")
        by_body = {k.body: k for k in self.key_bodies}
        if len(self.feet) != 2:
            raise ValueError(f"feet must name the left and the right foot body, got {list(self.feet)}")
        for side, foot in zip(("left", "right"), self.feet):
            key = by_body.get(foot)
            if key is None or key.smpl not in FOOT_JOINTS[side]:
                raise ValueError(
                    f"feet: {foot!r} must be a key body of SMPL {' or '.join(FOOT_JOINTS[side])} (the {side} foot)"
                )

    def key_body(self, smpl: str) -> KeyBody | None:
        return next((k for k in self.key_bodies if k.smpl == smpl), None)


def load_ik_robot(path: str | Path) -> IKRobotConfig:
    return load_yaml(IKRobotConfig, path)
