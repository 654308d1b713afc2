"""SMPL meshes through smplx, with a stand-in model file built here (the real SMPL files are licensed
and never shipped): every vertex sits on one joint and follows it rigidly, and the rest pose is a
T-pose, unlike the project's arms-down skeleton, so the fit must handle a different rest pose."""

import numpy as np
import pytest
import torch

from motion_agent.motion.body_mesh import body_mesh
from motion_agent.motion.skeleton import NUM_JOINTS, PARENTS, Skeleton, forward_kinematics

SMPL_VERTICES, SMPL_JOINTS = 6890, 24


def _t_pose_joints() -> np.ndarray:
    skeleton = Skeleton.default()
    offsets = skeleton.offsets.copy()
    for arm, side in (((16, 18, 20), 1.0), ((17, 19, 21), -1.0)):
        for joint in arm:  # turn each arm bone from hanging down to pointing sideways
            offsets[joint] = [side * np.linalg.norm(offsets[joint]), 0.0, 0.0]
    parents = list(PARENTS) + [20, 21]
    offsets = np.vstack([offsets, [[0.08, 0, 0], [-0.08, 0, 0]]])
    joints = np.zeros((SMPL_JOINTS, 3))
    for j in range(1, SMPL_JOINTS):
        joints[j] = joints[parents[j]] + offsets[j]
    return joints + [0.0, 0.9, 0.0]


@pytest.fixture()
def stand_in_model(tmp_path):
    rest = _t_pose_joints()
    owner = np.arange(SMPL_VERTICES) % SMPL_JOINTS
    weights = np.eye(SMPL_JOINTS)[owner]
    regressor = (weights / weights.sum(axis=0)).T
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez_compressed(
        path,
        v_template=rest[owner].astype(np.float32),
        shapedirs=np.zeros((SMPL_VERTICES, 3, 10), np.float32),
        posedirs=np.zeros((SMPL_VERTICES, 3, 207), np.float32),
        J_regressor=regressor.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=np.array([[-1] + list(PARENTS[1:]) + [20, 21], list(range(SMPL_JOINTS))], np.int64),
        f=np.array([[0, 1, 2], [3, 4, 5]], np.int64),
    )
    return path


def test_mesh_follows_the_motion(stand_in_model):
    torch.manual_seed(0)
    aa = torch.randn(6, NUM_JOINTS, 3, dtype=torch.float64) * 0.4
    root = torch.tensor([[0.2, 0.9, 0.1]], dtype=torch.float64).repeat(6, 1)
    joints = forward_kinematics(root, aa).numpy()
    mesh = body_mesh(joints, stand_in_model)
    assert mesh.vertices.shape == (6, SMPL_VERTICES, 3)
    posed_joint_vertices = mesh.vertices[:, :NUM_JOINTS]  # vertex j sits on joint j
    np.testing.assert_allclose(posed_joint_vertices, joints, atol=1e-4)


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        body_mesh(np.zeros((2, NUM_JOINTS, 3)), tmp_path / "nowhere")
