"""Can the robot perform this trajectory? A replay of it in MuJoCo, point by point.

Reported per motion (on /diagnostics, by `motion-agent retarget`, in bench/results/retarget.json):
- joint-limit hits (points at a position limit, within `limit_tolerance_rad`) and violations (beyond it);
- self-collision frames: points where a configured pair of body groups (collision.pairs) interpenetrates;
- foot sliding: the horizontal speed of a foot while it is in contact with the floor (its lowest point
  within `contact_height_m`), median and largest;
- floor penetration: how deep the lowest point of the robot goes under the floor;
- the largest joint speed, against that joint's limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from motion_agent.motion.retarget import Trajectory
from motion_agent.motion.robots import replay
from motion_agent.motion.robots.config import FeasibilityConfig
from motion_agent.motion.robots.description import RobotModel


@dataclass
class Feasibility:
    points: int
    joint_limit_hits: int
    joint_limit_violations: int
    self_collision_frames: int
    colliding_bodies: str  # "a/b, c/d" of the first pairs found
    contact_frames: int  # (point, foot) pairs in contact
    foot_slide_m_s: float  # median horizontal foot speed in contact
    foot_slide_max_m_s: float
    floor_penetration_mm: float  # deepest point under the floor (0: none)
    max_joint_speed_rad_s: float
    max_joint_speed_ratio: float  # of that joint's velocity limit
    max_joint_speed_joint: str
    feasible: bool

    def values(self) -> dict[str, str]:
        """As diagnostic key/values (feasibility.<name>)."""
        return {
            f"feasibility.{key}": (f"{value:.4g}" if isinstance(value, float) else str(value).lower())
            for key, value in asdict(self).items()
        }


def replay_configurations(model: RobotModel, trajectory: Trajectory) -> np.ndarray:
    """(N, nq) MuJoCo configurations of a trajectory: its joints (the others at rest) and its base pose
    (without one: standing at the origin)."""
    count = len(trajectory.times)
    rest = model.rest_qpos((0.0, 0.0, model.rest_geometry().stand_height))
    qpos = np.repeat(rest[None], count, axis=0)
    columns = [model.joint_names.index(name) for name in trajectory.joint_names]
    qpos[:, model.qpos_index[columns]] = trajectory.positions
    if trajectory.root_position is not None:
        qpos[:, :3] = trajectory.root_position
    if trajectory.root_orientation is not None:
        qpos[:, 3:7] = np.roll(trajectory.root_orientation, 1, axis=1)  # x, y, z, w -> w, x, y, z
    return qpos


def check_feasibility(
    model: RobotModel,
    trajectory: Trajectory,
    config: FeasibilityConfig,
    configurations: np.ndarray | None = None,
    poses: replay.Poses | None = None,
) -> Feasibility:
    """Replay `trajectory` (or its `configurations`, (N, nq), where the base pose is not in it, and their
    `poses` when already posed) and judge it."""
    m = model.model
    limits = model.limits.subset(trajectory.joint_names)
    positions, velocities = trajectory.positions, trajectory.velocities
    tolerance = config.limit_tolerance_rad
    hits = int(((positions <= limits.lower + tolerance) | (positions >= limits.upper - tolerance)).sum())
    violations = int(((positions < limits.lower - 1e-9) | (positions > limits.upper + 1e-9)).sum())
    ratio = np.abs(velocities) / limits.velocity
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else (0, 0)

    if configurations is None:
        configurations = replay_configurations(model, trajectory)
    if poses is None:
        poses = replay.pose(model, configurations)
    touching = replay.touching(model, configurations, poses)
    colliding = list(
        dict.fromkeys(
            f"{m.body(m.geom_bodyid[a]).name}/{m.body(m.geom_bodyid[b]).name}"
            for pairs in touching.values()
            for a, b in pairs
        )
    )[:4]
    heights = replay.heights(model, configurations, poses)
    lowest = float(heights[:, model.robot_geoms].min()) if len(heights) else 0.0
    in_contact = np.stack([heights[:, geoms].min(axis=1) <= config.contact_height_m for geoms in model.foot_geoms], 1)
    feet = poses.body_xpos[:, list(model.foot_bodies), :2]  # (N, 2, 2)

    rate = 1.0 / float(np.median(np.diff(trajectory.times))) if len(trajectory.times) > 1 else 1.0
    speeds = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * rate  # (N - 1, 2)
    slides = speeds[in_contact[1:] & in_contact[:-1]]
    penetration_mm = max(0.0, -lowest) * 1000.0
    max_ratio = float(ratio[worst]) if ratio.size else 0.0
    return Feasibility(
        points=len(positions),
        joint_limit_hits=hits,
        joint_limit_violations=violations,
        self_collision_frames=len(touching),
        colliding_bodies=", ".join(colliding),
        contact_frames=int(in_contact.sum()),
        foot_slide_m_s=float(np.median(slides)) if len(slides) else 0.0,
        foot_slide_max_m_s=float(slides.max()) if len(slides) else 0.0,
        floor_penetration_mm=penetration_mm,
        max_joint_speed_rad_s=float(np.abs(velocities[worst])) if ratio.size else 0.0,
        max_joint_speed_ratio=max_ratio,
        max_joint_speed_joint=trajectory.joint_names[worst[1]] if ratio.size else "",
        feasible=violations == 0
        and not touching
        and penetration_mm <= config.penetration_tolerance_m * 1000.0
        and max_ratio <= 1.0 + 1e-9,
    )
