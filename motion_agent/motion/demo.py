"""Three hand-written joint-angle programs (walk, turn while walking, jump), driven through the
forward kinematics: enough motion to exercise the representation and the exporters without a model.

Angles follow the SMPL convention of `skeleton.py`: a negative rotation about X swings a hip or a
shoulder forward, a positive one bends a knee or an elbow.
"""

from __future__ import annotations

import numpy as np
import torch

from motion_agent.motion.skeleton import NUM_JOINTS, forward_kinematics

DEMO_KINDS = ("walk", "turn", "jump")
WALK_SPEED = 1.2  # metres per second
STEP_FREQUENCY = 1.8  # strides per second
TURN_RATE = 1.2  # radians per second


def _gait(phase: torch.Tensor) -> torch.Tensor:
    """Local axis-angle rotations of a walking stride, (T,) phase in radians -> (T, 22, 3)."""
    aa = torch.zeros(*phase.shape, NUM_JOINTS, 3, dtype=torch.float64)
    swing = torch.sin(phase)
    aa[:, 1, 0] = -0.45 * swing  # left hip
    aa[:, 2, 0] = 0.45 * swing  # right hip
    aa[:, 4, 0] = 0.15 + 0.5 * torch.clamp(torch.sin(phase + 1.2), min=0)  # left knee
    aa[:, 5, 0] = 0.15 + 0.5 * torch.clamp(torch.sin(phase + 1.2 + np.pi), min=0)  # right knee
    aa[:, 16, 0] = 0.35 * swing  # left shoulder, opposite to the left leg
    aa[:, 17, 0] = -0.35 * swing
    aa[:, 18, 0] = -0.3  # elbows slightly bent
    aa[:, 19, 0] = -0.3
    return aa


def _on_floor(joints: torch.Tensor) -> torch.Tensor:
    joints = joints.clone()
    joints[..., 1] -= joints[..., 1].amin(dim=-1, keepdim=True)
    return joints


def demo_motion(kind: str = "walk", seconds: float = 3.0, fps: float = 20.0) -> np.ndarray:
    """(T, 22, 3) joint positions in metres of a built-in motion."""
    if kind not in DEMO_KINDS:
        raise ValueError(f"unknown demo motion {kind!r}; choose one of {', '.join(DEMO_KINDS)}")
    t = torch.arange(int(round(seconds * fps)), dtype=torch.float64) / fps
    phase = 2 * np.pi * STEP_FREQUENCY * t
    heading = TURN_RATE * t if kind == "turn" else torch.zeros_like(t)
    if kind == "jump":
        aa, root = _jump(t)
    else:
        aa = _gait(phase)
        step = torch.stack([torch.sin(heading), torch.zeros_like(t), torch.cos(heading)], dim=-1) * WALK_SPEED / fps
        root = torch.cumsum(step, dim=0)
    aa[:, 0, 1] = heading
    joints = forward_kinematics(root, aa)
    if kind != "jump":
        joints = _on_floor(joints)
    return joints.numpy()


def _jump(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crouch, push off, fly for 0.4 s, land and stand up, once per 1.5 s."""
    cycle = torch.remainder(t, 1.5)
    crouch = torch.exp(-(((cycle - 0.35) / 0.12) ** 2)) + torch.exp(-(((cycle - 1.05) / 0.12) ** 2))
    aa = torch.zeros(*t.shape, NUM_JOINTS, 3, dtype=torch.float64)
    aa[:, 1, 0] = aa[:, 2, 0] = -0.9 * crouch
    aa[:, 4, 0] = aa[:, 5, 0] = 1.6 * crouch
    aa[:, 7, 0] = aa[:, 8, 0] = -0.7 * crouch
    aa[:, 16, 0] = aa[:, 17, 0] = 0.8 * crouch - 1.2 * (1 - crouch) * ((cycle > 0.45) & (cycle < 0.95))
    flight = torch.clamp((cycle - 0.5) * (0.9 - cycle), min=0) * 10  # 0.4 s in the air, 0.4 m high
    rest = forward_kinematics(torch.zeros(len(t), 3, dtype=torch.float64), aa)
    root = torch.zeros(len(t), 3, dtype=torch.float64)
    root[:, 1] = -rest[..., 1].amin(dim=-1) + flight
    return aa, root
