"""Rotation conversions shared by the kinematics, the features and the exporters.

Rotation matrices act on column vectors. The 6D representation (Zhou et al., 2019) is the first two
*columns* of the matrix, the convention HumanML3D's `cont6d` features use, so that features computed
here and features from a real HumanML3D folder mean the same thing.
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rodrigues

_EPS = 1e-9


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) through smplx's Rodrigues formula."""
    shape = axis_angle.shape[:-1]
    return batch_rodrigues(axis_angle.reshape(-1, 3)).reshape(*shape, 3, 3)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; any 6-vector with independent halves is valid."""
    x = torch.nn.functional.normalize(d6[..., 0:3], dim=-1)
    z = torch.nn.functional.normalize(torch.cross(x, d6[..., 3:6], dim=-1), dim=-1)
    y = torch.cross(z, x, dim=-1)
    return torch.stack([x, y, z], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def rotation_between(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking direction u onto direction v, (..., 3) -> (..., 3, 3).

    Opposite directions have no unique smallest rotation; a half turn about an axis perpendicular
    to u is returned, which is what a bone folded back on itself needs.
    """
    u = torch.nn.functional.normalize(u, dim=-1)
    v = torch.nn.functional.normalize(v, dim=-1)
    axis = torch.cross(u, v, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (u * v).sum(dim=-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    axis = axis / sin.clamp_min(_EPS)
    opposite = (sin < 1e-7) & (cos < 0)
    if opposite.any():
        helper = torch.zeros_like(u)
        helper[..., 0] = 1.0
        helper = torch.where(u[..., :1].abs() > 0.9, torch.roll(helper, 1, dims=-1), helper)
        perpendicular = torch.nn.functional.normalize(torch.cross(u, helper, dim=-1), dim=-1)
        axis = torch.where(opposite, perpendicular, axis)
    return axis_angle_to_matrix(axis * angle)


def best_fit_rotation(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rotation R minimising sum ||R s_i - t_i||^2 (Kabsch), (..., N, 3) x2 -> (..., 3, 3)."""
    h = source.transpose(-1, -2) @ target
    u, _, vt = torch.linalg.svd(h)
    v = vt.transpose(-1, -2)
    rows = (v @ u.transpose(-1, -2)).unbind(-2)
    # the triple product: torch.det factorises each 3x3 matrix, tens of times slower on a batch of them
    det = (torch.cross(rows[0], rows[1], dim=-1) * rows[2]).sum(-1)
    fix = torch.ones_like(u[..., 0])
    fix[..., 2] = det.sign()
    return v @ torch.diag_embed(fix) @ u.transpose(-1, -2)


def rotate_about_y(vectors: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate (..., 3) vectors by `angle` (broadcast over the leading dims) about +Y, right-handed."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    x, y, z = vectors.unbind(-1)
    return torch.stack([cos * x + sin * z, y, -sin * x + cos * z], dim=-1)


def yaw_matrix(angle: torch.Tensor) -> torch.Tensor:
    """(...,) angles -> (..., 3, 3) matrices of the rotation `rotate_about_y` applies."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rows = [torch.stack(r, dim=-1) for r in ((cos, zero, sin), (zero, one, zero), (-sin, zero, cos))]
    return torch.stack(rows, dim=-2)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3), via scipy, which handles angles near 0 and pi robustly."""
    from scipy.spatial.transform import Rotation

    flat = matrix.detach().reshape(-1, 3, 3).cpu().double().numpy()
    rotvec = torch.as_tensor(Rotation.from_matrix(flat).as_rotvec())
    return rotvec.reshape(*matrix.shape[:-2], 3).to(matrix.dtype)
