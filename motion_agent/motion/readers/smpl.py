"""AMASS-style SMPL / SMPL-H / SMPL-X parameter files (.npz: poses, trans, a frame rate) -> the 22 joints.

The first 22 joint rotations (root orientation + 21 body joints, axis-angle) drive smplx's kinematics
(`smplx.lbs.batch_rigid_transform`). The rest skeleton is SMPL's T-pose with the project's average bone
lengths, so no body-model files are needed: the motion is exact, the proportions average. Given a folder
of SMPL-family model files, smplx builds the body with the file's own `betas` instead. AMASS is +Z up."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motion_agent.motion.readers.conventions import MotionFileError, to_project_frame
from motion_agent.motion.skeleton import DEFAULT_BONE_LENGTHS, NUM_JOINTS, PARENTS, RAW_OFFSETS, Skeleton

BODY_POSE_VALUES = NUM_JOINTS * 3  # axis-angle of the root and the 21 body joints
FPS_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps", "frame_rate")
ARMS = {16: 1.0, 17: -1.0, 18: 1.0, 19: -1.0, 20: 1.0, 21: -1.0}  # shoulder, elbow, wrist: +X left, -X right
MAX_NPZ_BYTES = 512 * 1024 * 1024


def smpl_rest_joints(bone_lengths: np.ndarray = DEFAULT_BONE_LENGTHS) -> np.ndarray:
    """(22, 3) joints of SMPL's rest T-pose (+Y up, facing +Z, arms out sideways), pelvis at the origin."""
    directions = RAW_OFFSETS.copy()
    for joint, side in ARMS.items():
        directions[joint] = (side, 0.0, 0.0)
    return Skeleton(offsets=directions * np.asarray(bone_lengths, dtype=np.float64)[:, None]).rest_joints()


def forward_kinematics(poses: np.ndarray, trans: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(T, 22, 3) joints from (T, 66) axis-angle rotations and (T, 3) root translations, in the file's axes."""
    import torch
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    count = len(poses)
    rotations = batch_rodrigues(torch.as_tensor(poses, dtype=torch.float64).reshape(-1, 3)).reshape(count, -1, 3, 3)
    template = torch.as_tensor(rest, dtype=torch.float64).expand(count, -1, -1)
    posed, _ = batch_rigid_transform(rotations, template, torch.as_tensor(PARENTS))
    return posed.numpy() + np.asarray(trans, dtype=np.float64)[:, None, :]


def _body_model_joints(data, model_dir: Path, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    import smplx
    import torch

    kind = "smplx" if "pose_jaw" in data or data["poses"].shape[1] >= 165 else "smplh"
    gender = str(data["gender"]) if "gender" in data else "neutral"
    betas = np.asarray(data["betas"], dtype=np.float32)[:10] if "betas" in data else np.zeros(10, np.float32)
    model = smplx.create(str(model_dir), model_type=kind, gender=gender, use_pca=False, batch_size=len(poses))
    out = model(
        global_orient=torch.as_tensor(poses[:, :3], dtype=torch.float32),
        body_pose=torch.as_tensor(poses[:, 3:BODY_POSE_VALUES], dtype=torch.float32),
        betas=torch.as_tensor(betas).expand(len(poses), -1),
        transl=torch.as_tensor(trans, dtype=torch.float32),
    )
    return out.joints[:, :NUM_JOINTS].detach().numpy().astype(np.float64)


def read_smpl_npz(
    path: str | Path, fps: float | None = None, up: str = "z", body_model: str | Path | None = None
) -> tuple[np.ndarray, dict]:
    """(T, 22, 3) joints in the project's frame at 20 fps, and what was read."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file.")
    if path.stat().st_size > MAX_NPZ_BYTES:
        raise MotionFileError(f"{path}: over the {MAX_NPZ_BYTES} bytes a parameter file may have.")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as error:
        raise MotionFileError(f"{path}: not a readable .npz file ({error}).") from None
    missing = [key for key in ("poses", "trans") if key not in data]
    if missing:
        raise MotionFileError(
            f"{path}: an SMPL parameter file needs {' and '.join(missing)} (it has {', '.join(data)})."
        )
    poses, trans = np.asarray(data["poses"], np.float64), np.asarray(data["trans"], np.float64)
    if poses.ndim != 2 or poses.shape[1] < BODY_POSE_VALUES or trans.shape != (len(poses), 3) or len(poses) == 0:
        raise MotionFileError(
            f"{path}: poses must be (frames, >= {BODY_POSE_VALUES}) axis-angle values and trans (frames, 3); "
            f"got {poses.shape} and {trans.shape}."
        )
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise MotionFileError(f"{path}: poses or trans hold NaN or infinite values.")
    rate = fps or next((float(data[k]) for k in FPS_KEYS if k in data), None)
    if not rate or rate <= 0:
        raise MotionFileError(f"{path}: the file names no frame rate ({' or '.join(FPS_KEYS)}); give one.")
    poses = poses[:, :BODY_POSE_VALUES]
    if body_model:
        joints = _body_model_joints(data, Path(body_model), poses, trans)
    else:
        joints = forward_kinematics(poses, trans, smpl_rest_joints())
    info = {
        "format": "smpl-npz",
        "fps": rate,
        "frames": len(poses),
        "up": up,
        "body": "model" if body_model else "average",
    }
    return to_project_frame(joints, rate, up), info
