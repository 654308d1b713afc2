"""BVH files are checked with the `bvh` package from PyPI and forward kinematics written here from the
BVH definition itself, so the test does not trust the project's own kinematics."""

import numpy as np
import pytest
from bvh import Bvh
from scipy.spatial.transform import Rotation

from motion_agent.motion.demo import DEMO_KINDS, demo_motion
from motion_agent.motion.export import write_bvh
from motion_agent.motion.preview import plot_stick_figures
from motion_agent.motion.skeleton import JOINT_NAMES


def _bvh_world_positions(mocap: Bvh) -> dict[str, np.ndarray]:
    names = mocap.get_joints_names()
    frames = mocap.nframes
    positions, rotations = {}, {}
    for name in names:  # parents come before children in a BVH file
        channels = mocap.joint_channels(name)
        values = np.array(mocap.frames_joint_channels(name, channels), dtype=np.float64).reshape(frames, -1)
        rot_channels = [c for c in channels if c.endswith("rotation")]
        order = "".join(c[0] for c in rot_channels)  # intrinsic, in listed order
        angles = values[:, [channels.index(c) for c in rot_channels]]
        local = Rotation.from_euler(order.upper(), angles, degrees=True).as_matrix()
        offset = np.array(mocap.joint_offset(name), dtype=np.float64)
        parent = mocap.joint_parent(name)
        if parent is None:
            translation = values[:, [channels.index(c) for c in ("Xposition", "Yposition", "Zposition")]]
            positions[name] = translation + offset
            rotations[name] = local
        else:
            positions[name] = positions[parent.name] + np.einsum("tij,j->ti", rotations[parent.name], offset)
            rotations[name] = rotations[parent.name] @ local
    return positions


@pytest.mark.parametrize("kind", DEMO_KINDS)
def test_bvh_read_back_by_an_independent_parser_matches_within_1mm(tmp_path, kind):
    joints = demo_motion(kind, seconds=3.0)
    path = write_bvh(tmp_path / f"{kind}.bvh", joints, fps=20.0)
    mocap = Bvh(path.read_text())
    assert mocap.nframes == len(joints)
    assert mocap.frame_time == pytest.approx(0.05)
    assert set(mocap.get_joints_names()) == set(JOINT_NAMES)
    world = _bvh_world_positions(mocap)
    for index, name in enumerate(JOINT_NAMES):
        error = np.linalg.norm(world[name] - joints[:, index], axis=-1)
        assert error.max() < 1e-3, f"{name} is off by {error.max() * 1000:.3f} mm"


def test_bvh_refuses_a_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_bvh(tmp_path / "x.bvh", np.zeros((5, 24, 3)))


def test_stick_figure_png_is_written(tmp_path):
    path = plot_stick_figures({k: demo_motion(k, 1.0) for k in DEMO_KINDS}, tmp_path / "p.png", 3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
