"""A trajectory replayed through MuJoCo's kinematics, all points at once.

Every point of a trajectory is posed once (one mj_kinematics per point) and what the retargeter and the
feasibility report ask of it is computed over all points together: the height of every geom's lowest
point over the floor, the feet's positions, and which kept-apart geom pairs come close enough to touch
(bounding spheres first; MuJoCo's exact distance only for the few pairs that pass). Moving the base by a
translation moves every pose rigidly, so `shifted` updates the poses without posing them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motion_agent.motion.robots.description import OVERLAP_M, RobotModel, require_mujoco


@dataclass
class Poses:
    """World poses of every geom and body at every point of a replay."""

    geom_xpos: np.ndarray  # (N, ngeom, 3)
    geom_xmat: np.ndarray  # (N, ngeom, 3, 3)
    body_xpos: np.ndarray  # (N, nbody, 3)

    def shifted(self, shifts: np.ndarray) -> Poses:
        """The poses after moving the whole robot by (N, 3) translations."""
        return Poses(self.geom_xpos + shifts[:, None], self.geom_xmat, self.body_xpos + shifts[:, None])


def pose(model: RobotModel, configurations: np.ndarray) -> Poses:
    """The poses of (N, nq) configurations."""
    count = len(configurations)
    geom_xpos = np.empty((count, model.model.ngeom, 3))
    geom_xmat = np.empty((count, model.model.ngeom, 3, 3))
    body_xpos = np.empty((count, model.model.nbody, 3))
    data = model.data
    for index, qpos in enumerate(configurations):
        model.forward(qpos)
        geom_xpos[index] = data.geom_xpos
        geom_xmat[index] = data.geom_xmat.reshape(-1, 3, 3)
        body_xpos[index] = data.xpos
    return Poses(geom_xpos, geom_xmat, body_xpos)


def heights(model: RobotModel, configurations: np.ndarray, poses: Poses) -> np.ndarray:
    """(N, ngeom) height over the floor of every geom's lowest point (negative: under the floor)."""
    found = model.heights_of(poses.geom_xpos, poses.geom_xmat)
    other = model.other_geoms
    if other.size:  # shapes without a closed form: MuJoCo's distance query, point by point
        for index, qpos in enumerate(configurations):
            model.forward(qpos)
            found[index, other] = model.geom_heights()[other]
    return found


def touching_now(model: RobotModel, data) -> bool:
    """Whether kept-apart geoms interpenetrate in `data` (its kinematics run): one configuration, as the
    IK checks after every step, where a bounding-sphere test and MuJoCo's distance for the few pairs
    that pass it cost less than the vectorized replay's setup."""
    mujoco = require_mujoco()
    first, second = model.geom_pairs
    gap = data.geom_xpos[first] - data.geom_xpos[second]
    near = np.flatnonzero(np.einsum("pj,pj->p", gap, gap) <= model.reach_squared)
    fromto = np.zeros(6)
    return any(
        mujoco.mj_geomDistance(model.model, data, int(first[p]), int(second[p]), OVERLAP_M, fromto) < 0 for p in near
    )


def _segment_gaps(start1, end1, start2, end2) -> np.ndarray:
    """Distances between segments [start1, end1] and [start2, end2] (arrays of (..., 3)), the clamped
    closest-point construction (Ericson, Real-Time Collision Detection, 5.1.9), vectorized."""
    d1, d2, r = end1 - start1, end2 - start2, start1 - start2
    a, e = np.einsum("...j,...j", d1, d1), np.einsum("...j,...j", d2, d2)
    f, c, b = np.einsum("...j,...j", d2, r), np.einsum("...j,...j", d1, r), np.einsum("...j,...j", d1, d2)
    tiny = 1e-12
    denominator = a * e - b * b
    s = np.where(denominator > tiny, np.clip((b * f - c * e) / np.where(denominator > tiny, denominator, 1), 0, 1), 0)
    t = np.where(e > tiny, (b * s + f) / np.where(e > tiny, e, 1), 0.0)
    # t outside [0, 1]: clamp it and recompute s for the clamped t
    below, above = t < 0, t > 1
    t = np.clip(t, 0.0, 1.0)
    s = np.where(below, np.clip(-c / np.where(a > tiny, a, 1), 0, 1), s)
    s = np.where(above, np.clip((b - c) / np.where(a > tiny, a, 1), 0, 1), s)
    s = np.where(a > tiny, s, 0.0)
    closest1 = start1 + s[..., None] * d1
    closest2 = start2 + t[..., None] * d2
    return np.linalg.norm(closest1 - closest2, axis=-1)


def touching(model: RobotModel, configurations: np.ndarray, poses: Poses, limit: int = 4) -> dict[int, list]:
    """point -> the kept-apart geom pairs (at most `limit + 1`) that interpenetrate there, for the points
    where any do. Capsules and spheres (segments with a radius) are measured in closed form over all
    points at once; pairs with another shape go through MuJoCo's distance query where their bounding
    spheres meet."""
    mujoco = require_mujoco()
    first, second = model.geom_pairs
    kinds, size = model.model.geom_type, model.model.geom_size
    rounded = np.isin(kinds, [mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_SPHERE])
    exact = rounded[first] & rounded[second]
    half = np.where(kinds == mujoco.mjtGeom.mjGEOM_CAPSULE, size[:, 1], 0.0)  # a sphere is a point segment

    axes = poses.geom_xmat[..., 2]  # (N, ngeom, 3): each geom's own z axis, along which a capsule lies

    def ends(geoms):
        centre, axis = poses.geom_xpos[:, geoms], axes[:, geoms]
        return centre - half[geoms][None, :, None] * axis, centre + half[geoms][None, :, None] * axis

    found: dict[int, list] = {}
    if exact.any():
        gaps = _segment_gaps(*ends(first[exact]), *ends(second[exact])) - size[first[exact], 0] - size[second[exact], 0]
        for index, pair in zip(*np.nonzero(gaps < 0)):
            pairs = found.setdefault(int(index), [])
            if len(pairs) <= limit:
                pairs.append((int(first[exact][pair]), int(second[exact][pair])))
    others = np.flatnonzero(~exact)
    if others.size:
        gap = poses.geom_xpos[:, first[others]] - poses.geom_xpos[:, second[others]]
        near = np.einsum("npj,npj->np", gap, gap) <= model.reach_squared[others]  # bounding spheres meet
        fromto = np.zeros(6)
        for index in np.flatnonzero(near.any(axis=1)):
            model.forward(configurations[index])
            for pair in others[near[index]]:
                a, b = int(first[pair]), int(second[pair])
                if mujoco.mj_geomDistance(model.model, model.data, a, b, OVERLAP_M, fromto) < 0:
                    pairs = found.setdefault(int(index), [])
                    if len(pairs) <= limit:
                        pairs.append((a, b))
    return found
