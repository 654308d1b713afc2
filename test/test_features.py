import numpy as np
import pytest
import torch

from motion_agent.motion.demo import DEMO_KINDS, demo_motion
from motion_agent.motion.features import (
    CONTACT_SLICE,
    FEATURE_DIM,
    ROT_SLICE,
    FeatureConfig,
    canonicalize,
    denormalize,
    joints_to_features,
    mean_std,
    normalize,
    recover_joints,
    recover_root,
)
from motion_agent.motion.rotations import rotation_6d_to_matrix, yaw_matrix
from motion_agent.motion.skeleton import KINEMATIC_CHAIN, NUM_JOINTS, RAW_OFFSETS, bone_lengths


@pytest.fixture(scope="module", params=DEMO_KINDS)
def motion(request):
    return demo_motion(request.param, seconds=4.0)


def test_round_trip_below_one_millimetre(motion):
    features = joints_to_features(motion)
    assert features.shape == (len(motion) - 1, FEATURE_DIM)
    recovered = recover_joints(torch.as_tensor(features, dtype=torch.float64)).numpy()
    reference = canonicalize(motion).numpy()[:-1]
    error = np.linalg.norm(recovered - reference, axis=-1)
    assert error.mean() < 1e-3
    assert error.max() < 1e-3


def test_canonical_motion_starts_at_origin_on_the_floor_facing_z(motion):
    canonical = canonicalize(motion).numpy()
    assert abs(canonical[..., 1].min()) < 1e-9
    np.testing.assert_allclose(canonical[0, 0, [0, 2]], 0, atol=1e-9)
    left_minus_right = canonical[0, 1] - canonical[0, 2]
    assert left_minus_right[0] > 0.1  # the left hip is on +X, so the body faces +Z
    # canonicalisation is rigid: bone lengths do not change
    np.testing.assert_allclose(bone_lengths(canonical), bone_lengths(motion), atol=1e-9)


def test_recover_root_follows_a_turning_walk():
    motion = demo_motion("turn", seconds=4.0)
    features = torch.as_tensor(joints_to_features(motion), dtype=torch.float64)
    _, root = recover_root(features)
    path = canonicalize(motion).numpy()[:-1, 0]
    np.testing.assert_allclose(root.numpy(), path, atol=1e-4)
    assert np.ptp(path[:, 0]) > 0.5  # the walk really turns sideways


def test_rotations_rebuild_positions_with_humanml3d_kinematics():
    """The 6D block is HumanML3D's per-bone rotations: chaining them along the raw offsets rebuilds the
    motion's pose relative to the pelvis."""
    motion = demo_motion("walk", seconds=2.0)
    features = torch.as_tensor(joints_to_features(motion), dtype=torch.float64)
    canonical = canonicalize(motion)[:-1]
    to_body, _ = recover_root(features)
    local = rotation_6d_to_matrix(features[:, ROT_SLICE].reshape(-1, NUM_JOINTS - 1, 6))
    lengths = bone_lengths(canonical.numpy())[0]
    rebuilt = torch.zeros_like(canonical)
    rebuilt[:, 0] = canonical[:, 0]
    for chain in KINEMATIC_CHAIN:
        world = yaw_matrix(to_body)
        for parent, child in zip(chain[:-1], chain[1:]):
            world = world @ local[:, child - 1]
            offset = torch.as_tensor(RAW_OFFSETS[child] * lengths[child])
            rebuilt[:, child] = rebuilt[:, parent] + world @ offset
    np.testing.assert_allclose(rebuilt.numpy(), canonical.numpy(), atol=1e-4)


def test_foot_contacts_mark_a_planted_foot():
    motion = demo_motion("jump", seconds=3.0)
    contacts = joints_to_features(motion)[:, CONTACT_SLICE]
    canonical = canonicalize(motion).numpy()
    airborne = canonical[:-1, [7, 10, 8, 11], 1].min(axis=-1) > 0.15
    assert airborne.any() and (~airborne).any()
    assert contacts[airborne].sum() == 0  # a flying foot is never in contact
    assert contacts[~airborne].mean() > 0.3


def test_normalisation_round_trip_and_grouped_std():
    features = [joints_to_features(demo_motion(kind, 2.0)) for kind in DEMO_KINDS]
    mean, std = mean_std(features)
    assert mean.shape == std.shape == (FEATURE_DIM,)
    assert (std > 0).all()
    assert np.unique(std[ROT_SLICE]).size == 1  # a group shares one std
    x = features[0]
    np.testing.assert_allclose(denormalize(normalize(x, mean, std), mean, std), x, atol=1e-5)


@pytest.mark.parametrize(
    "joints, message",
    [
        (np.zeros((10, 21, 3)), "shape"),
        (np.zeros((1, 22, 3)), "at least 2 frames"),
        (np.full((5, 22, 3), np.nan), "NaN"),
    ],
)
def test_bad_motions_are_refused_with_the_reason(joints, message):
    with pytest.raises(ValueError, match=message):
        joints_to_features(joints)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fps"):
        FeatureConfig(fps=0)
