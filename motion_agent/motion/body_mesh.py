"""SMPL body meshes for motions, for users who have the SMPL model files (they are licensed
separately and never shipped or required: every other path works without them).

The motion's joint positions are fitted onto the model's own rest skeleton with the project's inverse
kinematics, then posed by `smplx`; the mesh therefore follows the joints however the skeletons differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motion_agent.motion.rotations import matrix_to_axis_angle
from motion_agent.motion.skeleton import NUM_JOINTS, PARENTS, Skeleton, inverse_kinematics

SMPL_HAND_JOINTS = 2  # SMPL's 24 joints are the 22 body joints plus two hands, which stay at rest


@dataclass
class BodyMesh:
    vertices: np.ndarray  # (T, V, 3) metres
    faces: np.ndarray  # (F, 3) vertex indices


def _load_smpl(model_path: Path, gender: str, batch_size: int):
    """`.npz` model files load without pickle; `.pkl` files (the official format) go through smplx,
    which unpickles them: only point this at model files you obtained from the SMPL authors."""
    import smplx
    from smplx.utils import Struct

    if model_path.suffix == ".npz":
        with np.load(model_path, allow_pickle=False) as data:
            struct = Struct(**{key: data[key] for key in data.files})
        return smplx.SMPL(str(model_path), data_struct=struct, gender=gender, batch_size=batch_size)
    return smplx.create(str(model_path), model_type="smpl", gender=gender, batch_size=batch_size)


def body_mesh(joints: np.ndarray, model_path: str | Path, gender: str = "neutral") -> BodyMesh:
    """Pose an SMPL body (`smplx.create`) to follow (T, 22, 3) joint positions."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise FileNotFoundError(
            f"SMPL model path {model_path} does not exist; set body_model_path to a folder holding "
            "smpl/SMPL_NEUTRAL.pkl (or .npz) or to the model file itself"
        )
    joints_t = torch.as_tensor(np.asarray(joints), dtype=torch.float32)
    frames = joints_t.shape[0]
    model = _load_smpl(model_path, gender, frames)
    rest = (model.J_regressor @ model.v_template)[:NUM_JOINTS].detach().double().numpy()
    offsets = np.zeros_like(rest)
    offsets[1:] = rest[1:] - rest[list(PARENTS[1:])]
    root, local = inverse_kinematics(joints_t.double(), Skeleton(offsets=offsets))
    axis_angle = matrix_to_axis_angle(local).float()
    hands = torch.zeros(frames, SMPL_HAND_JOINTS * 3)
    output = model(
        global_orient=axis_angle[:, 0],
        body_pose=torch.cat([axis_angle[:, 1:].reshape(frames, -1), hands], dim=-1),
        transl=(root - torch.as_tensor(rest[0])).float(),
    )
    return BodyMesh(vertices=output.vertices.detach().numpy(), faces=np.asarray(model.faces, dtype=np.int64))
