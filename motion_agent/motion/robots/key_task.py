"""Every key body's target as one mink task, so a frame's QP is assembled in a few array operations.

mink's FrameTask handles one frame at a time through Lie-group algebra in Python; with a dozen key
bodies that is most of a frame's time. This task stacks them: each key body contributes a world-frame
position error (its site minus the target) over the site's positional Jacobian, and, where it has an
orientation cost, the rotation vector of R_site R_target^T over the rotational Jacobian (the first-order
error of a small rotation, which is what one warm-started step per frame sees). Costs can change per
frame: a planted foot weighs more than a swinging one.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mink import Configuration, Task
from scipy.spatial.transform import Rotation

NEAR_HALF_TURN = 3.0  # radians; closer to pi the closed-form log loses precision and scipy's is used


def rotation_vectors(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 3) rotation vectors (the log map), in closed form: a frame's
    errors are small rotations, where scipy's general conversion costs more than the whole QP."""
    trace = np.einsum("nii->n", rotations)
    angle = np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))
    if np.any(angle > NEAR_HALF_TURN):
        return Rotation.from_matrix(rotations).as_rotvec()
    skew = np.stack(
        [
            rotations[:, 2, 1] - rotations[:, 1, 2],
            rotations[:, 0, 2] - rotations[:, 2, 0],
            rotations[:, 1, 0] - rotations[:, 0, 1],
        ],
        axis=1,
    )
    sine = np.sin(angle)
    scale = np.where(sine > 1e-9, angle / (2.0 * np.where(sine > 1e-9, sine, 1.0)), 0.5)
    return skew * scale[:, None]


class KeyBodyTask(Task):
    """Position (and orientation, where weighted) of `sites` towards per-frame targets."""

    def __init__(self, model: mujoco.MjModel, sites: np.ndarray, position_cost, orientation_cost) -> None:
        self.model = model
        self.sites = np.asarray(sites, dtype=int)
        self.position_cost = np.asarray(position_cost, dtype=np.float64)
        self.orientation_cost = np.asarray(orientation_cost, dtype=np.float64)
        self.oriented = np.flatnonzero(self.orientation_cost > 0)
        count = len(self.sites)
        self.k = 3 * count + 3 * len(self.oriented)
        super().__init__(cost=np.ones(self.k), gain=1.0, lm_damping=0.0)
        self.position_rows = np.arange(3 * count).reshape(count, 3)
        self.rotation_rows = 3 * count + np.arange(3 * len(self.oriented)).reshape(-1, 3)
        self.target_positions = np.zeros((count, 3))
        self.target_rotations = np.tile(np.eye(3), (len(self.oriented), 1, 1))
        self._jacobian = np.zeros((self.k, model.nv))
        self._spin_rows = dict(zip(self.oriented.tolist(), self.rotation_rows))
        self.set_weights(np.ones(count))

    def set_targets(self, positions: np.ndarray, rotations: np.ndarray) -> None:
        """(K, 3) positions and (K, 3, 3) rotations of every site (rotations of unoriented sites unused)."""
        self.target_positions = positions
        self.target_rotations = rotations[self.oriented]

    def set_weights(self, factors: np.ndarray) -> None:
        """Scale each site's position cost by a factor for the coming solves."""
        self.cost[self.position_rows] = (self.position_cost * factors)[:, None]
        self.cost[self.rotation_rows] = self.orientation_cost[self.oriented][:, None]

    def compute_error(self, configuration: Configuration) -> np.ndarray:
        data = configuration.data
        error = np.empty(self.k)
        error[: self.position_rows.size] = (data.site_xpos[self.sites] - self.target_positions).ravel()
        if len(self.oriented):
            current = data.site_xmat[self.sites[self.oriented]].reshape(-1, 3, 3)
            difference = current @ self.target_rotations.transpose(0, 2, 1)
            error[self.position_rows.size :] = rotation_vectors(difference).ravel()
        return error

    def compute_jacobian(self, configuration: Configuration) -> np.ndarray:
        data, jacobian = configuration.data, self._jacobian
        for index, site in enumerate(self.sites.tolist()):
            rows = self.position_rows[index]
            spin = self._spin_rows.get(index)
            mujoco.mj_jacSite(
                self.model,
                data,
                jacobian[rows[0] : rows[-1] + 1],
                None if spin is None else jacobian[spin[0] : spin[-1] + 1],
                site,
            )
        return jacobian  # reused by the next call; mink stacks (copies) it into the QP


class PlantedFeetTask(Task):
    """The planted feet held where they stand: their sites' positions as an equality constraint of the
    QP (a soft cost would let them creep a few millimetres per frame, which is a slide)."""

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(cost=np.zeros(0), gain=1.0, lm_damping=0.0)
        self.model = model
        self.sites = np.zeros(0, dtype=int)
        self.anchors = np.zeros((0, 3))

    def hold(self, sites: np.ndarray, anchors: np.ndarray) -> None:
        """Hold these sites at these (K, 3) positions."""
        self.sites, self.anchors = np.asarray(sites, dtype=int), np.asarray(anchors, dtype=np.float64)
        self.k = 3 * len(self.sites)
        self.cost = np.ones(self.k)

    def compute_error(self, configuration: Configuration) -> np.ndarray:
        return (configuration.data.site_xpos[self.sites] - self.anchors).ravel()

    def compute_jacobian(self, configuration: Configuration) -> np.ndarray:
        jacobian = np.zeros((self.k, self.model.nv))
        for index, site in enumerate(self.sites.tolist()):
            mujoco.mj_jacSite(self.model, configuration.data, jacobian[3 * index : 3 * index + 3], None, site)
        return jacobian
