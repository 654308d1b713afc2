import numpy as np
import pytest
import torch

from motion_agent.motion.rotations import axis_angle_to_matrix, matrix_to_rotation_6d
from motion_agent.motion.skeleton import (
    JOINT_NAMES,
    KINEMATIC_CHAIN,
    NUM_JOINTS,
    PARENTS,
    Skeleton,
    bone_lengths,
    forward_kinematics,
    inverse_kinematics,
)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_chain_matches_humanml3d():
    assert len(JOINT_NAMES) == NUM_JOINTS == 22
    assert PARENTS == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
    for chain in KINEMATIC_CHAIN:
        for parent, child in zip(chain[:-1], chain[1:]):
            assert PARENTS[child] == parent


def test_forward_kinematics_matches_hand_computed_left_leg():
    # pelvis at (0, 1, 0) turned 90 degrees about +Y; left hip swung 90 degrees about X, knee 90 about Z.
    lengths = Skeleton.default().offsets
    aa = torch.zeros(NUM_JOINTS, 3, dtype=torch.float64)
    aa[0, 1] = np.pi / 2
    aa[1, 0] = np.pi / 2
    aa[4, 2] = np.pi / 2
    joints = forward_kinematics(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), aa).numpy()
    hip_len, knee_len, ankle_len = lengths[1, 0], -lengths[4, 1], -lengths[7, 1]
    # world rotations by hand: R_pelvis = Ry(90), R_hip = Ry(90) Rx(90), R_knee = Ry(90) Rx(90) Rz(90)
    r_pelvis = _ry(np.pi / 2)
    r_hip = r_pelvis @ _rx(np.pi / 2)
    r_knee = r_hip @ _rz(np.pi / 2)
    pelvis = np.array([0.0, 1.0, 0.0])
    left_hip = pelvis + r_pelvis @ np.array([hip_len, 0, 0])
    left_knee = left_hip + r_hip @ np.array([0, -knee_len, 0])
    left_ankle = left_knee + r_knee @ np.array([0, -ankle_len, 0])
    np.testing.assert_allclose(joints[0], pelvis, atol=1e-5)
    np.testing.assert_allclose(joints[1], left_hip, atol=1e-5)
    np.testing.assert_allclose(joints[4], left_knee, atol=1e-5)
    np.testing.assert_allclose(joints[7], left_ankle, atol=1e-5)
    # worked out on paper: the body faces +X, so its left is -Z; the thigh points back (-X) and the
    # shin, bent 90 degrees sideways, points further left.
    np.testing.assert_allclose(left_hip, [0, 1, -hip_len], atol=1e-5)
    np.testing.assert_allclose(left_knee, [-knee_len, 1, -hip_len], atol=1e-5)
    np.testing.assert_allclose(left_ankle, [-knee_len, 1, -hip_len - ankle_len], atol=1e-5)


def test_forward_kinematics_every_joint_against_a_manual_chain():
    torch.manual_seed(3)
    aa = torch.randn(NUM_JOINTS, 3, dtype=torch.float64) * 0.7
    root = torch.tensor([0.3, 0.9, -0.2], dtype=torch.float64)
    joints = forward_kinematics(root, aa).numpy()
    offsets = Skeleton.default().offsets
    from scipy.spatial.transform import Rotation

    world_rot = [None] * NUM_JOINTS
    expected = np.zeros((NUM_JOINTS, 3))
    expected[0] = root.numpy()
    world_rot[0] = Rotation.from_rotvec(aa[0].numpy()).as_matrix()
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        expected[j] = expected[p] + world_rot[p] @ offsets[j]
        world_rot[j] = world_rot[p] @ Rotation.from_rotvec(aa[j].numpy()).as_matrix()
    np.testing.assert_allclose(joints, expected, atol=1e-5)


def test_axis_angle_6d_and_matrices_agree_in_batches():
    torch.manual_seed(0)
    aa = torch.randn(4, 7, NUM_JOINTS, 3, dtype=torch.float64)
    root = torch.randn(4, 7, 3, dtype=torch.float64)
    matrices = axis_angle_to_matrix(aa)
    a = forward_kinematics(root, aa)
    b = forward_kinematics(root, matrix_to_rotation_6d(matrices))
    c = forward_kinematics(root, matrices)
    assert a.shape == (4, 7, NUM_JOINTS, 3)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(a, c, atol=1e-6, rtol=0)


def test_bone_lengths_are_constant_under_any_pose():
    torch.manual_seed(1)
    joints = forward_kinematics(
        torch.zeros(50, 3, dtype=torch.float64), torch.randn(50, NUM_JOINTS, 3, dtype=torch.float64)
    )
    lengths = bone_lengths(joints.numpy())
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-9)


def test_inverse_kinematics_reproduces_positions():
    torch.manual_seed(2)
    aa = torch.randn(30, NUM_JOINTS, 3, dtype=torch.float64) * 0.8
    root = torch.randn(30, 3, dtype=torch.float64)
    joints = forward_kinematics(root, aa)
    fitted_root, rotations = inverse_kinematics(joints, Skeleton.default())
    torch.testing.assert_close(forward_kinematics(fitted_root, rotations), joints, atol=1e-6, rtol=0)


def test_bad_rotation_shape_is_named():
    with pytest.raises(ValueError, match="rotations must end in"):
        forward_kinematics(torch.zeros(3), torch.zeros(NUM_JOINTS, 4))
