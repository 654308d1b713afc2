"""The robot's MuJoCo model, built from the URDF that an installed package ships.

The URDF is found through importlib (the package's own folder), never a machine path, and compiled with
MuJoCo's model editor (MjSpec): a free joint on the root link (the floating base), a floor plane (feet,
floor penetration), a site at every key body's tracked point, and capsules for cylinders (a capsule's
distance to anything is closed-form, a cylinder's an iterative search). Position limits are the URDF's
(MuJoCo reads them); velocity limits are read from the URDF's <limit> tags, which MuJoCo does not keep.
The upper-body mode uses the same model with the legs and the pelvis held still (ik.py), so it works
whichever link the URDF's tree starts at (the G1's pelvis, the T1's trunk).
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion_agent.config import ConfigError
from motion_agent.motion.robots.config import IKRobotConfig
from motion_agent.motion.robots.targets import RestGeometry

ROBOTS_EXTRA = "pip install 'motion_agent[robots]'"
FLOOR = "floor"
FLOATING_BASE = "floating_base"
HIGH_ABOVE_FLOOR_M = 3.0  # where the rest pose is measured: every foot geom is then above the floor
SITE_PREFIX = "key_"
REST_INSIDE_RAD = 1e-3  # the rest pose keeps this much more than the IK's limit margin
OVERLAP_M = 1e-3  # distance query range when looking for touching geoms


def require_mujoco():
    """mujoco, or a ConfigError saying how to install it (the `robots` extra)."""
    try:
        import mujoco
    except ImportError as error:
        raise ConfigError(f"real robots need MuJoCo and mink: {ROBOTS_EXTRA} ({error})") from error
    return mujoco


def package_folder(package: str) -> Path:
    """The folder of an installed package, as importlib finds it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        hint = "make setup installs it (pip install --no-deps holosoma)" if package == "holosoma" else ""
        raise ConfigError(f"the robot description package {package!r} is not installed; {hint or 'install it'}")
    return Path(spec.submodule_search_locations[0])


def description_file(config: IKRobotConfig) -> Path:
    path = package_folder(config.description.package) / config.description.path
    if not path.is_file():
        raise ConfigError(
            f"{config.name}: description.path {config.description.path!r} is not a file in package "
            f"{config.description.package!r}"
        )
    return path


def urdf_velocity_limits(path: Path) -> dict[str, float]:
    """joint name -> velocity limit (rad/s) of every URDF joint that states one."""
    limits = {}
    for joint in ElementTree.parse(path).getroot().iter("joint"):
        limit = joint.find("limit")
        if limit is not None and limit.get("velocity") is not None:
            limits[joint.get("name")] = float(limit.get("velocity"))
    return limits


@dataclass(frozen=True)
class JointLimits:
    """Limits of the robot's joints, in the model's joint order."""

    names: tuple[str, ...]
    lower: np.ndarray  # radians
    upper: np.ndarray
    velocity: np.ndarray  # rad/s

    def subset(self, names: list[str] | tuple[str, ...]) -> JointLimits:
        index = [self.names.index(n) for n in names]
        return JointLimits(tuple(names), self.lower[index], self.upper[index], self.velocity[index])


class RobotModel:
    """The compiled MuJoCo model of the robot and what the retargeter needs to know about it: joint order
    and limits, the key bodies' sites, the feet, the collision pairs."""

    def __init__(self, config: IKRobotConfig) -> None:
        mujoco = require_mujoco()
        self.config = config
        self.path = description_file(config)
        spec = mujoco.MjSpec.from_file(str(self.path))
        spec.compiler.fusestatic = False  # keep every URDF link as a body, so key bodies keep their names
        self._check_names({b.name for b in spec.bodies}, {j.name for j in spec.joints})
        root = spec.worldbody.first_body()
        root.add_freejoint(name=FLOATING_BASE)
        if config.description.capsules:
            for geom in spec.geoms:
                if geom.type == mujoco.mjtGeom.mjGEOM_CYLINDER:
                    geom.type = mujoco.mjtGeom.mjGEOM_CAPSULE
        spec.worldbody.add_geom(name=FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.0, 0.0, 1.0])
        for key in config.key_bodies:
            spec.body(key.body).add_site(name=SITE_PREFIX + key.smpl, pos=list(key.point))
        self.model = model = spec.compile()
        self.data = mujoco.MjData(model)
        self.root_body = root.name
        hinges = [j for j in range(model.njnt) if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE]
        self.joint_names = tuple(model.joint(j).name for j in hinges)
        self.qpos_index = np.array([model.jnt_qposadr[j] for j in hinges])
        self.dof_index = np.array([model.jnt_dofadr[j] for j in hinges])
        for name, (lower, upper) in config.joint_range.items():
            low, high = model.jnt_range[model.joint(name).id]
            if lower < low - 1e-9 or upper > high + 1e-9:
                raise ConfigError(
                    f"{config.name}: joint_range.{name} [{lower}, {upper}] must lie within the model's [{low}, {high}]"
                )
            model.jnt_range[model.joint(name).id] = (lower, upper)  # mink's limits read the model
        velocity = urdf_velocity_limits(self.path)
        missing = [n for n in self.joint_names if n not in velocity]
        if missing:
            raise ConfigError(f"{self.path.name} states no velocity limit for joints {', '.join(missing)}")
        self.limits = JointLimits(
            self.joint_names,
            np.array([model.jnt_range[j][0] for j in hinges]),
            np.array([model.jnt_range[j][1] for j in hinges]),
            np.array([velocity[n] for n in self.joint_names]),
        )
        self.floor = model.geom(FLOOR).id
        self.foot_bodies = tuple(model.body(name).id for name in config.feet)
        self.foot_geoms = tuple(self.body_geoms([name]) for name in config.feet)
        self.all_foot_geoms = np.array([g for geoms in self.foot_geoms for g in geoms], dtype=int)
        self.robot_geoms = np.array([g for g in range(model.ngeom) if g != self.floor])
        self.collision_pairs = self._collision_pairs()
        self.geom_pairs = self._geom_pairs()
        reach = model.geom_rbound[self.geom_pairs[0]] + model.geom_rbound[self.geom_pairs[1]]
        self.reach_squared = reach**2  # pairs whose geoms' bounding spheres are farther apart cannot touch
        self._fromto = np.zeros(6)
        shapes = mujoco.mjtGeom
        kinds = model.geom_type
        robot = np.ones(model.ngeom, dtype=bool)
        robot[self.floor] = False
        self._kind_masks = (
            robot & (kinds == shapes.mjGEOM_SPHERE),
            robot & (kinds == shapes.mjGEOM_CAPSULE),
            robot & (kinds == shapes.mjGEOM_CYLINDER),
            robot & (kinds == shapes.mjGEOM_BOX),
            np.flatnonzero(
                robot
                & ~np.isin(
                    kinds,
                    [shapes.mjGEOM_SPHERE, shapes.mjGEOM_CAPSULE, shapes.mjGEOM_CYLINDER, shapes.mjGEOM_BOX],
                )
            ),
        )
        self.other_geoms = self._kind_masks[-1]  # shapes without a closed-form height over the floor
        self._rest: RestGeometry | None = None

    def _check_names(self, bodies: set[str], joints: set[str]) -> None:
        where = f"{self.config.name} ({self.path.name})"

        def check(names, key: str, known: set[str], kind: str) -> None:
            for name in names:
                if name not in known:
                    raise ConfigError(f"{where}: {key} names {name!r}, which is not a {kind} of the model")

        config = self.config
        check([k.body for k in config.key_bodies], "key_bodies", bodies, "body")
        check(config.feet, "feet", bodies, "body")
        check(config.rest_pose, "rest_pose", joints, "joint")
        check(config.joint_range, "joint_range", joints, "joint")
        check(config.leg_joints, "leg_joints", joints, "joint")
        for group, members in config.collision.groups.items():
            check(members, f"collision.groups.{group}", bodies, "body")

    def body_geoms(self, bodies: list[str] | tuple[str, ...]) -> list[int]:
        """Collision geoms (contype or conaffinity set) of the named bodies."""
        model = self.model
        ids = {model.body(name).id for name in bodies}
        return [
            g
            for g in range(model.ngeom)
            if model.geom_bodyid[g] in ids and (model.geom_contype[g] or model.geom_conaffinity[g])
        ]

    def _geom_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every geom pair of the configured group pairs, minus pairs on one body or on a parent and its
        child (MuJoCo's own filter: such geoms overlap by design at the joint between them)."""
        m = self.model
        weld = m.body_weldid
        pairs = set()
        for first, second in self.collision_pairs:
            for a in first:
                for b in second:
                    weld_a, weld_b = weld[m.geom_bodyid[a]], weld[m.geom_bodyid[b]]
                    if (
                        weld_a == weld_b
                        or weld[m.body_parentid[weld_a]] == weld_b
                        or weld[m.body_parentid[weld_b]] == weld_a
                    ):
                        continue
                    pairs.add((min(a, b), max(a, b)))
        ordered = sorted(pairs)
        return np.array([p[0] for p in ordered], dtype=int), np.array([p[1] for p in ordered], dtype=int)

    def _collision_pairs(self) -> list[tuple[list[int], list[int]]]:
        """The configured group pairs as geom lists; groups without collision geometry drop out."""
        groups = self.config.collision.groups
        pairs = []
        for first, second in self.config.collision.pairs:
            a, b = self.body_geoms(groups[first]), self.body_geoms(groups[second])
            if a and b:
                pairs.append((a, b))
        return pairs

    def rest_qpos(self, base_position=(0.0, 0.0, 0.0)) -> np.ndarray:
        """The configuration of the rest pose (config.rest_pose; other joints at zero), the base at
        `base_position` with the identity orientation."""
        joints = np.zeros(len(self.joint_names))
        for name, value in self.config.rest_pose.items():
            joints[self.joint_names.index(name)] = value
        # inside the limits by the IK's margin (a T1 knee's zero is its limit), or a QP that holds the legs
        # still would start out of bounds
        margin = self.config.ik.limit_margin_rad + REST_INSIDE_RAD
        joints = np.clip(joints, self.limits.lower + margin, self.limits.upper - margin)
        qpos = self.model.qpos0.copy()
        qpos[:7] = [*base_position, 1.0, 0.0, 0.0, 0.0]
        qpos[self.qpos_index] = joints
        return qpos

    def joint_values(self, qpos: np.ndarray) -> np.ndarray:
        """(..., J) joint positions out of (..., nq) configurations."""
        return np.asarray(qpos)[..., self.qpos_index]

    def forward(self, qpos: np.ndarray) -> None:
        """Kinematics of one configuration into self.data (body, geom and site poses)."""
        mujoco = require_mujoco()
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)

    def rest_geometry(self) -> RestGeometry:
        """The rest pose measured (once): every key body's tracked point and frame with the base at the
        origin, and the base's height when the rest pose stands on the floor."""
        if self._rest is None:
            self._rest = self._measure_rest()
        return self._rest

    def _measure_rest(self) -> RestGeometry:
        self.forward(self.rest_qpos((0.0, 0.0, HIGH_ABOVE_FLOOR_M)))
        lowest = self.lowest_point(self.all_foot_geoms)
        base = np.array([0.0, 0.0, HIGH_ABOVE_FLOOR_M])
        positions, rotations = {}, {}
        for key in self.config.key_bodies:
            site = self.model.site(SITE_PREFIX + key.smpl).id
            positions[key.smpl] = self.data.site_xpos[site] - base
            rotations[key.smpl] = self.data.site_xmat[site].reshape(3, 3).copy()
        return RestGeometry(positions, rotations, HIGH_ABOVE_FLOOR_M - lowest)

    def site(self, smpl: str) -> int:
        """The site of the key body of SMPL joint `smpl`."""
        return self.model.site(SITE_PREFIX + smpl).id

    def geom_heights(self, data=None) -> np.ndarray:
        """(ngeom,) height over the floor of every geom's lowest point in the kinematics of `data`
        (self.data by default; negative: under the floor; the floor itself: 0)."""
        data = self.data if data is None else data
        heights = self.heights_of(data.geom_xpos[None], data.geom_xmat.reshape(1, -1, 3, 3))[0]
        other = self.other_geoms
        if other.size:  # shapes without a closed form: MuJoCo's distance query
            mujoco = require_mujoco()
            for geom in other:
                heights[geom] = mujoco.mj_geomDistance(
                    self.model, data, self.floor, int(geom), HIGH_ABOVE_FLOOR_M, self._fromto
                )
        return heights

    def heights_of(self, xpos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
        """(N, ngeom) heights over the floor of the lowest points of spheres, capsules, cylinders and boxes
        posed at (N, ngeom, 3) positions and (N, ngeom, 3, 3) orientations, in closed form (a replay asks
        this for every point of every motion); other shapes and the floor get 0."""
        size = self.model.geom_size
        z = xpos[..., 2]
        up = np.abs(xmat[..., 2, 2])  # each geom's own z axis against the world's
        heights = np.zeros(z.shape)
        sphere, capsule, cylinder, box, _ = self._kind_masks
        heights[:, sphere] = z[:, sphere] - size[sphere, 0]
        heights[:, capsule] = z[:, capsule] - up[:, capsule] * size[capsule, 1] - size[capsule, 0]
        flat = np.sqrt(np.clip(1.0 - up[:, cylinder] ** 2, 0.0, None))
        heights[:, cylinder] = z[:, cylinder] - up[:, cylinder] * size[cylinder, 1] - flat * size[cylinder, 0]
        heights[:, box] = z[:, box] - np.einsum("ngj,gj->ng", np.abs(xmat[:, box, 2, :]), size[box])
        return heights

    def lowest_point(self, geoms, data=None) -> float:
        """Height over the floor of the lowest point of `geoms` (see geom_heights)."""
        return float(self.geom_heights(data)[np.asarray(geoms, dtype=int)].min())
