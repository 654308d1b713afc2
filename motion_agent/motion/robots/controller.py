"""Trajectories that a ros2_control JointTrajectoryController accepts, and a check of its rules.

The controller (ros2_controllers) refuses a trajectory that names a joint it does not control, whose
`time_from_start` does not strictly increase, that ends in the past (a non-zero header stamp plus the
last time before now), or, by default (`allow_nonzero_velocity_at_trajectory_end: false`), whose last
point still moves. Between points it interpolates cubics through positions and velocities, so the
velocities must agree with the positions or the joint wobbles between points; and the robot must stay
inside its position and velocity limits everywhere.

So every trajectory made here:
- starts and ends at rest: the motion's playback speed ramps up from zero over `ease_s` and back down
  at the end (a minimum-jerk speed profile; generated motions often start mid-stride, and a controller
  cannot jump to a joint speed);
- blends in from the robot's current posture (from `joint_states`) when it is known: a minimum-jerk
  cross-fade from the posture to the motion, long enough to keep its speed, acceleration and jerk within
  the limits, instead of jumping to the motion's first posture;
- keeps every point inside the position limits and under `velocity_fraction` of the velocity limits
  (each step is capped, so the central-difference velocities are too);
- has velocities that are the central differences of its positions, zero at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from motion_agent.motion.retarget import Trajectory, limit_velocity
from motion_agent.motion.robots.config import ControllerConfig
from motion_agent.motion.robots.description import JointLimits

LIMIT_TOLERANCE = 1e-9  # rounding slack of the position and velocity checks
BLEND_ROUNDS = 4  # re-sizings of a blend whose motion moves away from the posture while it lasts
# Peaks of a rest-to-rest minimum-jerk move of distance D over T: speed, acceleration, jerk (x D / T^k).
PEAK_SPEED, PEAK_ACCELERATION, PEAK_JERK = 1.875, 5.7735, 60.0


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    """0 -> 1 over s in [0, 1] with zero speed and acceleration at both ends (10s^3 - 15s^4 + 6s^5)."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def _ramp_integral(s: np.ndarray) -> np.ndarray:
    """The integral of minimum_jerk from 0 to s (s in [0, 1]); 0.5 at s = 1."""
    return s**4 * (2.5 - 3.0 * s + s**2)


def eased_times(duration: float, rate: float, ease_s: float) -> np.ndarray:
    """The motion time to show at each point k / rate: playback speed ramps 0 -> 1 over `ease_s`, runs at
    1, and ramps back to 0 over the last `ease_s`, ending at `duration`. The eased motion lasts
    `duration + ease_s` (each ramp shows ease_s / 2 of the motion), plus the points after it that hold
    the last posture up to a whole period."""
    ease = min(ease_s, duration)
    total = duration + ease
    times = np.arange(int(np.ceil(total * rate - 1e-9)) + 1) / rate
    shown = times - ease / 2
    if ease > 0:
        start, end = times < ease, times > total - ease
        shown[start] = ease * _ramp_integral(times[start] / ease)
        shown[end] = duration - ease * _ramp_integral(np.clip((total - times[end]) / ease, 0.0, 1.0))
    return np.clip(shown, 0.0, duration)


def blend_duration(offset: np.ndarray, limits: JointLimits, config: ControllerConfig, rate: float) -> float:
    """How long a minimum-jerk fade of `offset` (per joint, radians) takes within the joints' speed
    limits and the blend's acceleration and jerk limits, in whole periods."""
    distance = np.abs(offset)
    needed = max(
        config.min_blend_s,
        float(np.max(PEAK_SPEED * distance / (config.velocity_fraction * limits.velocity), initial=0.0)),
        float(np.sqrt(np.max(PEAK_ACCELERATION * distance / config.max_acceleration, initial=0.0))),
        float(np.cbrt(np.max(PEAK_JERK * distance / config.max_jerk, initial=0.0))),
    )
    if needed > config.max_blend_s:
        worst = int(np.argmax(distance))
        raise ValueError(
            f"the robot's posture is {distance[worst]:.2f} rad from the motion's start at {limits.names[worst]}: "
            f"blending in would take {needed:.1f} s, over controller.max_blend_s ({config.max_blend_s} s)"
        )
    return float(np.ceil(needed * rate - 1e-9) / rate)


@dataclass
class ControllerMotion:
    """Joint positions made controller-ready, their velocities, and what had to be changed for that."""

    positions: np.ndarray  # (N, J)
    velocities: np.ndarray  # (N, J), central differences, zero at both ends
    clipped: int  # (point, joint) values clipped to the position limits
    velocity_limited: int  # (point, joint) steps shortened to the velocity limit


def within_limits(
    positions: np.ndarray, limits: JointLimits, config: ControllerConfig, rate: float
) -> ControllerMotion:
    """(N, J) positions at `rate` that start and end at rest -> inside the position limits, steps under
    the velocity limits, velocities from the positions."""
    if len(positions) < 2:
        raise ValueError(f"a trajectory needs at least 2 points, got {len(positions)}")
    inside = np.clip(positions, limits.lower, limits.upper)
    clipped = int((inside != positions).sum())
    capped, limited = limit_velocity(inside, config.velocity_fraction * limits.velocity / rate)
    velocities = np.gradient(capped, 1.0 / rate, axis=0)
    velocities[0] = velocities[-1] = 0.0
    return ControllerMotion(capped, velocities, clipped, limited)


def start_from(
    trajectory: Trajectory, current: dict[str, float], limits: JointLimits, config: ControllerConfig, rate: float
) -> Trajectory:
    """The trajectory blended in from the robot's current posture (joint name -> radians, e.g. from
    sensor_msgs/JointState; joints it does not name start where the motion does).

    A cross-fade: (1 - w) posture + w motion, with w a minimum-jerk ramp from 0 to 1. Both ends lie
    inside the joint limits, so every blended point does too; the motion starts at rest, so at the start
    the fade is all there is. Its duration is the one that keeps the fade of the largest gap between
    posture and motion within the speed, acceleration and jerk limits. When the blend outlasts the
    trajectory, the last posture is held."""
    limits = limits.subset(trajectory.joint_names)
    first = trajectory.positions[0]
    posture = np.array([current.get(name, first[j]) for j, name in enumerate(trajectory.joint_names)])
    posture = np.clip(posture, limits.lower, limits.upper)
    duration = blend_duration(posture - first, limits, config, rate)
    for _ in range(BLEND_ROUNDS):  # the motion moves during the blend: size it for the widest gap it sees
        window = trajectory.positions[: int(round(duration * rate)) + 1]
        longer = blend_duration(np.max(np.abs(window - posture), axis=0), limits, config, rate)
        if longer <= duration:
            break
        duration = longer
    extra = max(0, int(round(duration * rate)) + 1 - len(trajectory.times))

    def held(values: np.ndarray | None, still: bool = False) -> np.ndarray | None:
        if values is None or extra == 0:
            return values
        tail = np.zeros_like(values[-1:]) if still else values[-1:]
        return np.concatenate([values, np.repeat(tail, extra, axis=0)])

    positions = held(trajectory.positions)
    times = np.arange(len(positions)) / rate
    weight = minimum_jerk(times / duration)[:, None]
    motion = within_limits((1.0 - weight) * posture + weight * positions, limits, config, rate)
    return replace(
        trajectory,
        times=times,
        positions=motion.positions,
        velocities=motion.velocities,
        clipped=trajectory.clipped + motion.clipped,
        velocity_limited=trajectory.velocity_limited + motion.velocity_limited,
        root_position=held(trajectory.root_position),
        root_orientation=held(trajectory.root_orientation),
        root_yaw=held(trajectory.root_yaw),
        base_twist=held(trajectory.base_twist, still=True),
    )


def controller_problems(
    joint_names: list[str],
    times: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray,
    limits: JointLimits,
    stamp_s: float = 0.0,
    now_s: float = 0.0,
) -> list[str]:
    """Why a JointTrajectoryController would refuse this trajectory, or where it breaks the rules of the
    module docstring; empty when it is fine. `limits` holds the controller's joints; `stamp_s` is the
    header stamp (0: start on arrival), `now_s` the time it is published."""
    problems = []
    names = list(joint_names)
    if not names:
        problems.append("no joint names")
    if len(set(names)) != len(names):
        problems.append("repeated joint names")
    unknown = [n for n in names if n not in limits.names]
    if unknown:
        return problems + [f"joints the controller does not know: {', '.join(unknown)}"]
    times, positions, velocities = (np.asarray(x, dtype=np.float64) for x in (times, positions, velocities))
    if len(times) < 2 or positions.shape != (len(times), len(names)) or velocities.shape != positions.shape:
        shapes = f"{len(times)} times, positions {positions.shape}, velocities {velocities.shape}"
        return problems + [f"shapes differ: {shapes}"]
    if not (np.isfinite(times).all() and np.isfinite(positions).all() and np.isfinite(velocities).all()):
        return problems + ["non-finite values"]
    if stamp_s != 0.0 and stamp_s < now_s:
        problems.append(f"stamp {stamp_s:.3f} s is in the past (now {now_s:.3f} s)")
    if times[0] < 0 or np.any(np.diff(times) <= 0):
        return problems + ["time_from_start does not strictly increase from >= 0"]
    own = limits.subset(names)
    if np.any(positions < own.lower - LIMIT_TOLERANCE) or np.any(positions > own.upper + LIMIT_TOLERANCE):
        problems.append("positions outside the joint limits")
    if np.any(np.abs(velocities) > own.velocity + LIMIT_TOLERANCE):
        problems.append("velocities over the joint velocity limits")
    if np.any(velocities[-1] != 0.0):
        problems.append("the last point's velocity is not zero")
    tolerance = np.maximum(1e-3, 0.01 * own.velocity)
    differences = np.gradient(positions, times, axis=0)
    if np.any(np.abs(velocities[1:-1] - differences[1:-1]) > tolerance):
        problems.append("velocities disagree with the positions' central differences")
    if np.any(np.abs(differences[[0, -1]]) > tolerance):
        problems.append("the trajectory does not start and end at rest")
    return problems
