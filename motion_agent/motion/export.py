"""Motion files for other tools: BVH (Blender, Unity, MotionBuilder), Wavefront OBJ meshes, and the plot
of a robot trajectory's joint angles. The 3D previews of a motion (GIF, key-frame strips) are in
motion_agent.motion.preview.

BVH channels are Z, X, Y rotations in degrees (the CMU mocap convention most importers expect);
the hierarchy is the SMPL 22-joint chain with offsets fitted to the motion's own bone lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from motion_agent.motion.skeleton import (
    CHILDREN,
    JOINT_NAMES,
    NUM_JOINTS,
    Skeleton,
    inverse_kinematics,
)

BVH_EULER_ORDER = "ZXY"  # intrinsic, as BVH's channel order "Zrotation Xrotation Yrotation" means
END_SITE_LENGTH = 0.05  # metres; BVH needs an end segment to draw the last bone of each chain


def _hierarchy(skeleton: Skeleton, joint: int, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    keyword = "ROOT" if joint == 0 else "JOINT"
    x, y, z = skeleton.offsets[joint]
    lines.append(f"{pad}{keyword} {JOINT_NAMES[joint]}")
    lines.append(f"{pad}{{")
    lines.append(f"{pad}  OFFSET {x:.6f} {y:.6f} {z:.6f}")
    if joint == 0:
        lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    else:
        lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
    kids = CHILDREN[joint]
    for kid in kids:
        _hierarchy(skeleton, kid, depth + 1, lines)
    if not kids:
        direction = skeleton.offsets[joint] / max(np.linalg.norm(skeleton.offsets[joint]), 1e-9)
        ex, ey, ez = direction * END_SITE_LENGTH
        lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {ex:.6f} {ey:.6f} {ez:.6f}", f"{pad}  }}"]
    lines.append(f"{pad}}}")


def _depth_first_order(joint: int = 0) -> list[int]:
    order = [joint]
    for kid in CHILDREN[joint]:
        order += _depth_first_order(kid)
    return order


def write_bvh(path: str | Path, joints: np.ndarray | torch.Tensor, fps: float = 20.0) -> Path:
    """Write a (T, 22, 3) joint-position motion (metres) as BVH; returns the path written."""
    joints = torch.as_tensor(np.asarray(joints), dtype=torch.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (frames, {NUM_JOINTS}, 3), got {tuple(joints.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    skeleton = Skeleton.from_joints(joints.numpy())
    root, local = inverse_kinematics(joints, skeleton)
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3).numpy()).as_euler(BVH_EULER_ORDER, degrees=True)
    euler = euler.reshape(joints.shape[0], NUM_JOINTS, 3)

    lines = ["HIERARCHY"]
    _hierarchy(skeleton, 0, 0, lines)
    lines += ["MOTION", f"Frames: {joints.shape[0]}", f"Frame Time: {1.0 / fps:.6f}"]
    order = _depth_first_order()
    for frame in range(joints.shape[0]):
        values = list(root[frame].numpy()) + [v for j in order for v in euler[frame, j]]
        lines.append(" ".join(f"{v:.6f}" for v in values))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class ExportConfig:
    """How motions are written for people and other tools (`config/motion.yaml`, section `export`)."""

    body_model_path: str | None = None  # SMPL model folder or file; None: no meshes
    body_model_gender: str = "neutral"
    preview_frames: int = 6

    def __post_init__(self) -> None:
        if self.body_model_gender not in ("neutral", "male", "female"):
            raise ValueError(f"body_model_gender must be neutral, male or female, got {self.body_model_gender!r}")
        if self.preview_frames < 1:
            raise ValueError(f"preview_frames must be at least 1, got {self.preview_frames}")


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """One mesh frame as Wavefront OBJ, which every 3D tool opens."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_trajectory(
    times: np.ndarray, positions: np.ndarray, names: list[str], path: str | Path, title: str = "", lines: int = 12
) -> Path:
    """Joint positions over time: the `lines` joints that move most, named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, positions = np.asarray(times), np.asarray(positions).reshape(len(times), -1)
    spread = np.ptp(positions, axis=0) if len(times) else np.zeros(len(names))
    order = np.argsort(-spread)[:lines]
    fig, ax = plt.subplots(figsize=(8, 4))
    for j in order:
        ax.plot(times, positions[:, j], label=names[j], linewidth=1.2)
    ax.set_xlabel("time from start (s)")
    ax.set_ylabel("position (rad)")
    ax.set_title(title[:90] or "joint trajectory", fontsize=9)
    if len(order):
        ax.legend(fontsize=6, ncol=2, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
