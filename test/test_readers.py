"""Real motion files in, the project's 22 joints out: BVH (the project's own and another tool's naming and
units), AMASS-style SMPL parameters, HumanML3D joints; unknown skeletons refused naming what is missing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_agent.motion.demo import demo_motion
from motion_agent.motion.export import write_bvh
from motion_agent.motion.readers import MotionFileError, SkeletonError, read_motion
from motion_agent.motion.readers.conventions import to_project_frame
from motion_agent.motion.readers.humanml3d import recover_from_ric
from motion_agent.motion.readers.joint_maps import CONVENTIONS
from motion_agent.motion.skeleton import JOINT_NAMES, PARENTS

MM = 1e-3


@pytest.fixture(scope="module")
def jump() -> np.ndarray:
    return demo_motion("jump", seconds=2.0)


def test_a_bvh_the_project_wrote_reads_back_to_the_same_joints(jump, tmp_path: Path) -> None:
    path = write_bvh(tmp_path / "jump.bvh", jump)
    joints, info = read_motion(path)
    assert info["fps"] == pytest.approx(20.0, rel=1e-4) and info["scale"] == 1.0 and info["up"] == "y"
    assert np.abs(joints - to_project_frame(jump, 20.0)).max() < 1 * MM


def _as_other_tool(text: str, tmp_path: Path) -> tuple[Path, str, list[str]]:
    """The project's BVH as a Mixamo export writes it: joint names with the mixamorig: namespace, in
    centimetres; returns the path to write, the hierarchy and the frame lines."""
    for ours, theirs in zip(JOINT_NAMES, CONVENTIONS["mixamo"]):
        text = re.sub(rf"\b(ROOT|JOINT) {ours}\b", rf"\1 mixamorig:{theirs}", text)
    text = re.sub(
        r"OFFSET (\S+) (\S+) (\S+)", lambda m: "OFFSET " + " ".join(f"{float(v) * 100:.4f}" for v in m.groups()), text
    )
    header, motion = text.split("MOTION\n")
    frames = motion.splitlines()[2:]
    scaled = []
    for line in frames:
        values = line.split()
        scaled.append(" ".join([f"{float(v) * 100:.4f}" for v in values[:3]] + values[3:]))
    return tmp_path / "mixamo.bvh", header, scaled


def test_a_bvh_with_another_tools_naming_and_units_maps_onto_the_22_joints(jump, tmp_path: Path) -> None:
    path, header, frames = _as_other_tool(write_bvh(tmp_path / "ours.bvh", jump).read_text(), tmp_path)
    path.write_text(header + "MOTION\n" + f"Frames: {len(frames)}\nFrame Time: 0.050000\n" + "\n".join(frames) + "\n")
    joints, info = read_motion(path)
    assert info["scale"] == 0.01
    assert np.abs(joints - to_project_frame(jump, 20.0)).max() < 1 * MM


def test_an_unknown_skeleton_is_refused_naming_the_missing_joints(jump, tmp_path: Path) -> None:
    text = write_bvh(tmp_path / "ours.bvh", jump).read_text()
    for ours, theirs in zip(JOINT_NAMES, CONVENTIONS["mixamo"]):
        text = re.sub(rf"\b(ROOT|JOINT) {ours}\b", rf"\1 {theirs}", text)
    (tmp_path / "no_hands.bvh").write_text(text.replace("LeftHand", "LeftPaw").replace("RightHand", "RightPaw"))
    with pytest.raises(SkeletonError, match="mixamo.*misses LeftHand, RightHand"):
        read_motion(tmp_path / "no_hands.bvh")
    (tmp_path / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    with pytest.raises(MotionFileError, match="broken.bvh"):
        read_motion(tmp_path / "broken.bvh")


def test_an_amass_style_npz_reads_back_to_the_joints_smplx_kinematics_give(tmp_path: Path) -> None:
    """60 fps, +Z up, 156 pose values (SMPL-H): the reader keeps the body's 22, turns Y up, takes 20 fps."""
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    from motion_agent.motion.readers.smpl import smpl_rest_joints

    rng = np.random.default_rng(0)
    frames = 90
    poses = np.zeros((frames, 156))
    poses[:, 3:66] = np.sin(np.linspace(0, 3, frames))[:, None] * rng.normal(0, 0.3, 63)
    poses[:, :3] = [np.pi / 2, 0, 0]  # AMASS's root turns the +Y-up body to +Z up
    trans = np.stack([np.linspace(0, 2, frames), np.zeros(frames), np.full(frames, 0.9)], axis=1)
    np.savez(tmp_path / "clip_poses.npz", poses=poses, trans=trans, mocap_framerate=60.0, betas=np.zeros(16))

    rotations = batch_rodrigues(torch.as_tensor(poses[:, :66]).reshape(-1, 3)).reshape(frames, 22, 3, 3)
    rest = torch.as_tensor(smpl_rest_joints()).expand(frames, -1, -1)
    posed = batch_rigid_transform(rotations, rest, torch.as_tensor(PARENTS))[0].numpy() + trans[:, None]
    expected = np.stack([posed[::3, ..., 0], posed[::3, ..., 2], -posed[::3, ..., 1]], axis=-1)  # z-up -> y-up
    expected[..., 1] -= expected[..., 1].min()
    expected[..., [0, 2]] -= expected[0, 0, [0, 2]]

    joints, info = read_motion(tmp_path / "clip_poses.npz")
    assert info["fps"] == 60.0 and joints.shape == (30, 22, 3)
    assert np.abs(joints - expected).max() < 1 * MM
    head_over_pelvis = joints[:, JOINT_NAMES.index("head"), 1] - joints[:, 0, 1]
    assert (head_over_pelvis > 0.3).all()  # upright in +Y


def test_humanml3d_joints_and_features_read_as_20_fps_joints(jump, tmp_path: Path) -> None:
    np.save(tmp_path / "000001.npy", jump.astype(np.float32))
    joints, info = read_motion(tmp_path / "000001.npy")
    assert info["format"] == "humanml3d-joints" and np.abs(joints - to_project_frame(jump, 20.0)).max() < 1e-5
    features = np.zeros((40, 263))
    features[:, 0] = np.pi / 80  # yaw velocity: the body turns by twice it, a quarter turn over 20 frames
    features[:, 2] = 0.05  # forward, in the body's own frame
    features[:, 3] = 0.9
    features[:, 4:67] = np.tile([0.0, 0.5, 0.0], 21)
    recovered = recover_from_ric(features)
    assert recovered.shape == (40, 22, 3) and np.allclose(recovered[:, 0, 1], 0.9)
    steps = np.diff(recovered[:, 0, [0, 2]], axis=0)
    assert np.allclose(np.linalg.norm(steps, axis=1), 0.05) and steps[0, 1] > 0.04 and abs(steps[20, 0]) > 0.04
    with pytest.raises(MotionFileError, match="this one is"):
        np.save(tmp_path / "bad.npy", np.zeros((10, 7)))
        read_motion(tmp_path / "bad.npy")


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "walk.fbx").write_bytes(b"\0")
    with pytest.raises(MotionFileError, match="unknown motion format; readable: .bvh, .npz, .npy"):
        read_motion(tmp_path / "walk.fbx")


def test_motion_agent_caption_reads_a_file_and_captions_it(tiny_base_model, jump, tmp_path: Path, capsys) -> None:
    import json

    from motion_agent.cli import main

    bvh = write_bvh(tmp_path / "jump.bvh", jump)
    assert main(["caption", str(bvh), "--base-model", str(tiny_base_model), "--json", str(tmp_path / "c.json")]) == 0
    (result,) = json.loads((tmp_path / "c.json").read_text())
    assert result["caption"].strip() and result["read"]["format"] == "bvh" and result["seconds"] == [0.0, 2.0]
    assert capsys.readouterr().out.startswith(f"{bvh} [0.0-2.0 s, ")
    short = write_bvh(tmp_path / "short.bvh", jump[:10])
    assert main(["caption", str(short), "--base-model", str(tiny_base_model)]) == 1
    assert "captioning needs at least 24" in capsys.readouterr().err
