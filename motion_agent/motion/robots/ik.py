"""Retargeting onto a real robot by inverse kinematics: one warm-started QP per motion frame.

`IKRetargeter.retarget` takes what `Retargeter.retarget` takes ((T, 22, 3) SMPL joint positions) and
returns the same `Trajectory`, for one of two modes:

- whole body: every joint of the robot, plus the floating base's pose (root_position,
  root_orientation) for a whole-body controller;
- upper body: arms, waist and head only (the legs are never commanded: a walking controller owns
  them); the base's motion comes as a body-frame twist (base_twist) for `cmd_vel`. The QP holds the
  legs at rest and the pelvis still (equality constraints), and the upper body tracks the human's
  upper body relative to the human pelvis's heading frame.

Per frame, mink builds one QP on the MuJoCo model: the key bodies' targets (targets.py, one stacked
task, key_task.py; a planted foot weighs more), a posture task towards the rest pose, the joint position
limits and a per-frame step under the velocity limits as constraints, and collision avoidance between
the configured body groups. The first frame converges from the rest pose; every later frame starts from
the previous solution and takes one QP, which tracks a 20 fps motion to millimetres. The result is
resampled to the robot's rate on an eased timeline (it starts and ends at rest), made controller-ready
(controller.py), kept above the floor (a foot that would dip under it lifts the base instead) and
replayed for its feasibility report (feasibility.py).
"""

from __future__ import annotations

import mink
import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.spatial.transform import Rotation, Slerp

from motion_agent.config import ConfigError
from motion_agent.motion.retarget import Trajectory, check_joints
from motion_agent.motion.robots.base_velocity import base_twist
from motion_agent.motion.robots.config import LOWER_BODY, MODES, IKRobotConfig
from motion_agent.motion.robots.contacts import runs, shift_plant
from motion_agent.motion.robots.controller import controller_problems, eased_times, start_from, within_limits
from motion_agent.motion.robots.description import SITE_PREFIX, RobotModel
from motion_agent.motion.robots.feasibility import check_feasibility
from motion_agent.motion.robots.key_task import KeyBodyTask, PlantedFeetTask
from motion_agent.motion.robots.replay import Poses, heights, pose, touching, touching_now
from motion_agent.motion.robots.targets import heading_of, human_targets, relative_to_heading

REPORTED = ("left_wrist", "right_wrist", "head")  # with the feet: the key-body error the benchmark reports
CONVERGED_RAD = 1e-3  # the first frame's iterations stop once no coordinate moves more than this
BACKTRACKS = 4  # halvings of a step that would make geoms interpenetrate, before the step is dropped


class IKRetargeter:
    """Maps (T, 22, 3) SMPL joint positions to a controller-ready `Trajectory` of one real robot."""

    def __init__(self, config: IKRobotConfig, mode: str = "") -> None:
        mode = mode or config.mode
        if mode not in MODES:
            raise ConfigError(f"robot mode {mode!r} must be one of {', '.join(MODES)}")
        self.config, self.mode = config, mode
        self.robot = robot = RobotModel(config)
        self.rest = robot.rest_geometry()
        model = robot.model
        upper = mode == "upper_body"
        legs = set(config.leg_joints) if upper else set()
        self.joint_names = [name for name in robot.joint_names if name not in legs]
        self.limits = robot.limits.subset(self.joint_names)
        self.keys = [k.smpl for k in config.key_bodies if k.tracked and (not upper or k.smpl not in LOWER_BODY)]
        if not self.keys:
            raise ConfigError(f"{config.name}: no key body is tracked in the {mode} mode")
        self.world_keys = list(dict.fromkeys(["pelvis", *(k.smpl for k in config.key_bodies if k.tracked)]))
        by_joint = {k.smpl: k for k in config.key_bodies}
        self.key_task = KeyBodyTask(
            model,
            np.array([robot.site(key) for key in self.keys]),
            [by_joint[key].position_cost for key in self.keys],
            [by_joint[key].orientation_cost for key in self.keys],
        )
        feet = [next(k.smpl for k in config.key_bodies if k.body == foot) for foot in config.feet]
        self.foot_columns = [(side, self.keys.index(key)) for side, key in enumerate(feet) if key in self.keys]
        self.posture = mink.PostureTask(model, cost=config.ik.posture_cost)
        self.rest_qpos = robot.rest_qpos((0.0, 0.0, self.rest.stand_height))
        self.posture.set_target(self.rest_qpos)
        # The QP's unknown is a step, and each QP is solved with dt = 1: mink's collision limit divides its
        # distance bound by dt while its position and velocity limits bound the step itself, so only with
        # dt = 1 do all of them bound the same step. The velocity limit is then a step limit, one per
        # sub-step count.
        shared = [mink.ConfigurationLimit(model, min_distance_from_limits=config.ik.limit_margin_rad)]
        collision = config.collision
        if collision.avoid and robot.collision_pairs:
            shared.append(
                mink.CollisionAvoidanceLimit(
                    model,
                    robot.collision_pairs,
                    minimum_distance_from_collisions=collision.min_distance_m,
                    collision_detection_distance=collision.detection_distance_m,
                )
            )
        self._shared_limits = shared
        self._speed = config.ik.velocity_fraction * robot.limits.velocity
        self._qp_limits: dict[float, list] = {}  # seconds per step -> the QP's limits
        self.configuration = mink.Configuration(model, self.rest_qpos)
        self.held = []  # equality constraints: the upper-body mode's legs and pelvis stay where they stand
        if upper:
            dofs = [int(robot.dof_index[robot.joint_names.index(name)]) for name in config.leg_joints]
            pelvis = mink.FrameTask(SITE_PREFIX + "pelvis", "site", position_cost=1.0, orientation_cost=1.0)
            pelvis.set_target_from_configuration(self.configuration)
            self.held = [mink.DofFreezingTask(model, dofs), pelvis] if dofs else [pelvis]
        # Sub-steps follow the key bodies that swing near others (hands, elbows, head): a foot's glide along
        # the floor is fast but passes nothing.
        self.swept = np.array([i for i, key in enumerate(self.keys) if key not in feet], dtype=int)
        self.planted = PlantedFeetTask(model)
        reported = [key for key in self.keys if key in REPORTED or key in feet]
        self.reported = np.array([self.keys.index(key) for key in reported], dtype=int)

    @property
    def fps(self) -> float:
        return self.config.fps

    def start_from(self, trajectory: Trajectory, current: dict[str, float]) -> Trajectory:
        """The trajectory blended in from the robot's current posture (joint name -> radians), jerk-limited
        (controller.start_from)."""
        return start_from(trajectory, current, self.robot.limits, self.config.controller, self.config.fps)

    def controller_problems(self, trajectory: Trajectory, stamp_s: float = 0.0, now_s: float = 0.0) -> list[str]:
        """Why a JointTrajectoryController of this robot would refuse the trajectory (empty: it accepts it)."""
        return controller_problems(
            trajectory.joint_names,
            trajectory.times,
            trajectory.positions,
            trajectory.velocities,
            self.robot.limits,
            stamp_s,
            now_s,
        )

    def _limits(self, step_s: float) -> list:
        """The QP's limits for a step of `step_s` seconds of motion (made once per sub-step length)."""
        limits = self._qp_limits.get(step_s)
        if limits is None:
            names = self.robot.joint_names
            most = np.minimum(self._speed * step_s, self.config.ik.max_step_rad)
            step = mink.VelocityLimit(self.robot.model, dict(zip(names, most)))
            limits = self._qp_limits[step_s] = [*self._shared_limits, step]
        return limits

    def _step(self, step_s: float) -> float:
        """One QP and its step, for `step_s` seconds of motion; returns the largest coordinate change.

        Planted feet are equality constraints; where the QP cannot keep them (a joint at its limit), it is
        solved again with them as the costs they also are. The collision constraints are linear in the
        step; where a step still makes two kept-apart geoms interpenetrate (a capsule rotating past
        another one), it is halved until it does not."""
        configuration = self.configuration
        held = [*self.held, self.planted] if len(self.planted.sites) else self.held
        try:
            step = self._qp(step_s, held)
        except mink.NoSolutionFound:
            step = self._qp(step_s, self.held)
        before = configuration.data.qpos.copy()
        for _ in range(BACKTRACKS):
            configuration.integrate_inplace(step, 1.0)
            if not touching_now(self.robot, configuration.data):
                break
            configuration.update(before)
            step = step / 2
        else:
            step = np.zeros_like(step)
        return float(np.max(np.abs(step)))

    def _qp(self, step_s: float, held: list) -> np.ndarray:
        config = self.config.ik
        return mink.solve_ik(
            self.configuration,
            [self.key_task, self.posture],
            1.0,
            config.solver,
            config.damping,
            limits=self._limits(step_s),
            constraints=held or None,
        )

    def _solve(self, positions: np.ndarray, rotations: np.ndarray, planted: np.ndarray, start: np.ndarray, dt: float):
        """Configurations tracking the (T, K, 3) positions and (T, K, 3, 3) rotations: (S, nq) of them at (S,)
        times in frames (the frames, and the sub-steps of fast frames), and the (T, K) position errors (m)
        each frame's QP left. A frame whose targets are farther than ik.max_target_step_m from where the
        key bodies are is reached in sub-steps along the straight line, so the collision constraints,
        linearized at each sub-step, see every body the swing passes."""
        configuration, task, config = self.configuration, self.key_task, self.config.ik
        configuration.update(start)
        solved, times = [], []
        errors = np.empty(positions.shape[:2])
        factors = np.ones(len(self.keys))
        positions = positions.copy()
        plants = {side: dict(runs(planted[:, side])) for side, _ in self.foot_columns}
        release = int(round(self.config.contact.release_s / dt))
        for frame in range(len(positions)):
            for side, column in self.foot_columns:
                factors[column] = self.config.contact.planted_cost_factor if planted[frame, side] else 1.0
                if frame in plants[side]:  # a plant begins: it stays where the foot lands
                    offset = configuration.data.site_xpos[task.sites[column], :2] - positions[frame, column, :2]
                    shift_plant(positions[:, column], frame, plants[side][frame], offset, release)
            task.set_weights(factors)
            # a foot planted in the last frame and still planted is held where it stands
            still = [
                c for side, c in self.foot_columns if frame > 0 and planted[frame, side] and planted[frame - 1, side]
            ]
            self.planted.hold(task.sites[still], positions[frame, still])
            if frame == 0:  # from the rest pose: converge
                task.set_targets(positions[0], rotations[0])
                for _ in range(config.first_frame_iterations):
                    if self._step(dt) < CONVERGED_RAD:
                        break
                substeps = 1
            else:  # warm-started from the previous frame: one QP, or one per sub-step of a fast frame
                reached = configuration.data.site_xpos[task.sites]
                travel = float(np.max(np.linalg.norm(positions[frame, self.swept] - reached[self.swept], axis=1)))
                substeps = min(config.max_substeps, max(1, int(np.ceil(travel / config.max_target_step_m))))
                for sub in range(1, substeps + 1):
                    share = sub / substeps
                    task.set_targets(reached + share * (positions[frame] - reached), rotations[frame])
                    self._step(dt / substeps)
                    if sub < substeps:
                        solved.append(self._grounded())
                        times.append(frame - 1 + share)
            solved.append(self._grounded())
            times.append(float(frame))
            errors[frame] = np.linalg.norm(configuration.data.site_xpos[task.sites] - positions[frame], axis=1)
        return np.array(solved), np.array(times), errors

    def _grounded(self) -> np.ndarray:
        """The current configuration with the planted feet exactly where they were planted and no foot
        under the floor (whole-body mode). The QP holds planted feet to first order; what a long step
        leaves (millimetres) is taken out by moving the base, which moves the feet rigidly."""
        robot, configuration, planted = self.robot, self.configuration, self.planted
        if not self.held:
            data = configuration.data
            if len(planted.sites):
                data.qpos[:3] += (planted.anchors - data.site_xpos[planted.sites]).mean(axis=0)
                configuration.update()
            lowest = robot.lowest_point(robot.all_foot_geoms, data)
            if lowest < 0.0:
                data.qpos[2] -= lowest
                configuration.update()
        return configuration.data.qpos.copy()

    def _start(self, pelvis: np.ndarray, heading: float) -> np.ndarray:
        """The rest pose with the base placed under the first pelvis target, facing its heading."""
        start = self.rest_qpos.copy()
        if self.mode == "whole_body":
            turn = Rotation.from_rotvec([0.0, 0.0, heading])
            start[:3] = pelvis - turn.apply(self.rest.positions["pelvis"])
            start[3:7] = np.roll(turn.as_quat(), 1)
        return start

    def retarget(self, joints: np.ndarray | torch.Tensor, fps: float = 20.0) -> Trajectory:
        joints = check_joints(joints, fps)
        rate = self.config.fps
        source_times = np.arange(len(joints)) / fps
        targets = human_targets(joints, fps, self.config, self.rest, self.world_keys)
        if self.mode == "upper_body":  # relative to the pelvis's heading frame, the base standing still
            anchor = np.array([0.0, 0.0, self.rest.stand_height]) + self.rest.positions["pelvis"]
            tracked = relative_to_heading(targets, self.keys, anchor)
            positions, rotations = tracked.positions, tracked.rotations
        else:
            index = [targets.keys.index(k) for k in self.keys]
            positions, rotations = targets.positions[:, index], targets.rotations[:, index]
        start = self._start(targets.pelvis[0], float(targets.heading[0]))
        solved, solved_frames, errors = self._solve(positions, rotations, targets.contact, start, 1.0 / fps)
        solved_times = solved_frames / fps

        # The robot's rate, on a timeline that starts and ends at rest; then joint limits and speeds.
        shown = eased_times(float(source_times[-1]), rate, self.config.controller.ease_s)
        replay = np.repeat(self.rest_qpos[None], len(shown), axis=0)
        replay[:, :3] = PchipInterpolator(solved_times, solved[:, :3], axis=0)(shown)
        orientation = _continuous(Slerp(solved_times, Rotation.from_quat(np.roll(solved[:, 3:7], -1, axis=1)))(shown))
        replay[:, 3:7] = np.roll(orientation, 1, axis=1)
        columns = self.robot.qpos_index[[self.robot.joint_names.index(name) for name in self.joint_names]]
        replay[:, columns] = PchipInterpolator(solved_times, solved[:, columns], axis=0)(shown)
        self._untangle(replay, columns, shown, solved, solved_times)
        motion = within_limits(replay[:, columns], self.limits, self.config.controller, rate)
        replay[:, columns] = motion.positions
        poses = pose(self.robot, replay)
        trajectory = Trajectory(
            joint_names=list(self.joint_names),
            times=np.arange(len(shown)) / rate,
            positions=motion.positions,
            velocities=motion.velocities,
            clipped=motion.clipped,
            velocity_limited=motion.velocity_limited,
        )
        if self.mode == "whole_body":
            solved_feet = pose(self.robot, solved).body_xpos[:, list(self.robot.foot_bodies), :2]
            feet = PchipInterpolator(solved_times, solved_feet, axis=0)(shown)
            frames = shown * fps
            held = targets.contact[np.floor(frames).astype(int)] & targets.contact[np.ceil(frames).astype(int)]
            poses = self._settle(replay, poses, held, feet)
            trajectory.root_position, trajectory.root_orientation = replay[:, :3].copy(), orientation
            trajectory.root_yaw = heading_of(Rotation.from_quat(orientation).as_matrix())
        else:
            pelvis = PchipInterpolator(source_times, targets.pelvis, axis=0)(shown)
            heading = np.interp(shown, source_times, targets.heading)
            trajectory.base_twist = base_twist(pelvis, heading, rate, self.config.base_velocity)
        report = check_feasibility(self.robot, trajectory, self.config.feasibility, replay, poses)
        trajectory.feasibility = vars(report)
        reported = errors[:, self.reported] if len(self.reported) else errors
        trajectory.stats = {
            "key_body_error_mm": float(np.median(reported) * 1000.0),
            "key_body_error_p95_mm": float(np.percentile(reported, 95) * 1000.0),
            "planted_fraction": float(targets.contact.mean()),
            **{f"scale.{limb}": value for limb, value in targets.scale.items()},
        }
        return trajectory

    def _untangle(
        self, configurations: np.ndarray, columns: np.ndarray, shown: np.ndarray, solved: np.ndarray, times: np.ndarray
    ) -> None:
        """Where interpolating between two solved configurations makes kept-apart bodies touch (hands
        clapping past each other between two frames), take the nearest solved configuration's joints
        instead, in place: the solved ones were checked, the points between them were not."""
        for index in touching(self.robot, configurations, pose(self.robot, configurations), limit=0):
            nearest = int(np.argmin(np.abs(times - shown[index])))
            configurations[index, columns] = solved[nearest, columns]

    def _settle(self, configurations: np.ndarray, poses: Poses, planted: np.ndarray, anchors: np.ndarray) -> Poses:
        """Put the feet back where the solved frames put them: joint-space interpolation between two solved
        frames is not foot-space interpolation, so a planted foot would wander by millimetres (a slide)
        and a foot could dip under the floor. The base moves, in place, by the planted feet's mean offset
        from their `anchors` ((N, 2 feet, 2) x, y; `planted` (N, 2)), and up where a foot is under the
        floor; returns the poses moved with it."""
        robot = self.robot
        feet = poses.body_xpos[:, list(robot.foot_bodies), :2]
        offsets = np.where(planted[..., None], anchors - feet, 0.0).sum(axis=1)
        shifts = np.zeros((len(configurations), 3))
        shifts[:, :2] = offsets / np.maximum(planted.sum(axis=1), 1)[:, None]
        lowest = heights(robot, configurations, poses)[:, robot.all_foot_geoms].min(axis=1)
        shifts[:, 2] = np.maximum(0.0, -lowest)  # a horizontal move leaves the heights as they are
        configurations[:, :3] += shifts
        return poses.shifted(shifts)


def _continuous(rotations: Rotation) -> np.ndarray:
    """(N, 4) x, y, z, w quaternions, consecutive ones in the same hemisphere: q and -q are the same
    rotation, and a consumer interpolating between points must never take the long way round."""
    quaternions = rotations.as_quat()
    same_side = np.sum(quaternions[1:] * quaternions[:-1], axis=1) >= 0
    quaternions[1:] *= np.cumprod(np.where(same_side, 1.0, -1.0))[:, None]
    return quaternions
