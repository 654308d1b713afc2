"""MotionAgent: request -> (route) -> generate -> decode -> retarget, and pose window -> caption.

Everything a node does that is not ROS lives here, so it runs and is tested without rclpy and the
nodes stay thin adapters. Inputs are checked before any model runs: a bad request raises RequestError
naming what is wrong, which the node turns into an error diagnostic instead of dying.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from motion_agent.base_model import load_base_model, tokenizer_folder
from motion_agent.config import load_yaml
from motion_agent.features import FeatureConfig, joints_to_features, recover_joints
from motion_agent.language_model import GenerationConfig, MotionLanguageModel
from motion_agent.retarget import Retargeter, Trajectory, load_robot
from motion_agent.skeleton import NUM_JOINTS
from motion_agent.tokenizer import MotionTokenizer, load_decoder


class RequestError(ValueError):
    """A request the agent refuses (empty, oversized, undecodable text; malformed poses)."""


@dataclass(frozen=True)
class AgentConfig:
    """The `agent` section of config/agent.yaml."""

    base_model: str = ""  # base-model folder (from `motion-agent-train base`)
    decoder_backend: str = "torch"  # "torch" or "onnx" (onnxruntime, no torch compute)
    robot: str = "smpl_avatar"  # a shipped robot map (config/robots) or a YAML path
    max_text_chars: int = 400
    min_caption_frames: int = 24  # shortest pose window worth captioning (1.2 s at 20 fps)
    max_caption_frames: int = 196
    seed: int = 0
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        if self.decoder_backend not in ("torch", "onnx"):
            raise ValueError(f"decoder_backend must be 'torch' or 'onnx', got {self.decoder_backend!r}")
        if not 2 <= self.min_caption_frames <= self.max_caption_frames:
            raise ValueError("need 2 <= min_caption_frames <= max_caption_frames")


def load_agent_config(path: str | Path) -> AgentConfig:
    return load_yaml(AgentConfig, path, section="agent")


@dataclass
class MotionResult:
    text: str
    codes: np.ndarray  # motion tokens
    joints: np.ndarray  # (T, 22, 3) metres, 20 fps
    trajectory: Trajectory  # the robot's joint trajectory
    expert: str  # which expert generated it ("base" when no expert is installed)
    timings_ms: dict[str, float]

    @property
    def seconds(self) -> float:
        return len(self.joints) / 20.0


@dataclass
class CaptionResult:
    caption: str
    frames: int
    expert: str
    timings_ms: dict[str, float]


def check_text(text: object, max_chars: int) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(f"request is not UTF-8 text: {error}") from error
    if not isinstance(text, str):
        raise RequestError(f"request must be text, got {type(text).__name__}")
    text = " ".join(text.split())
    if not text:
        raise RequestError("request is empty")
    if len(text) > max_chars:
        raise RequestError(f"request has {len(text)} characters; the limit is {max_chars}")
    if not any(ch.isalpha() for ch in text):
        raise RequestError(f"request {text[:40]!r} has no words")
    return text


def check_poses(joints: object, config: AgentConfig) -> np.ndarray:
    array = np.asarray(joints, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise RequestError(f"pose window must have shape (frames, {NUM_JOINTS}, 3), got {array.shape}")
    if not np.isfinite(array).all():
        raise RequestError("pose window holds NaN or infinite values")
    if len(array) < config.min_caption_frames:
        raise RequestError(f"pose window has {len(array)} frames; at least {config.min_caption_frames} are needed")
    return array[-config.max_caption_frames :]


class _Clock:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = (now - self._last) * 1000.0
        self._last = now


class MotionAgent:
    """The robot's motion-language skill set, independent of any middleware."""

    def __init__(self, lm: MotionLanguageModel, encoder: MotionTokenizer, decoder, retargeter: Retargeter,
                 config: AgentConfig = AgentConfig()) -> None:
        self.lm, self.encoder, self.decoder, self.retargeter, self.config = lm, encoder, decoder, retargeter, config

    @classmethod
    def from_config(cls, config: AgentConfig) -> "MotionAgent":
        if not config.base_model:
            raise ValueError("agent.base_model is not set: name a folder written by `motion-agent-train base`")
        lm = load_base_model(config.base_model, config.generation)
        folder = tokenizer_folder(config.base_model)
        encoder = MotionTokenizer.load(folder)
        decoder = encoder if config.decoder_backend == "torch" else load_decoder(folder, "onnx")
        return cls(lm, encoder, decoder, Retargeter(load_robot(config.robot)), config)

    @property
    def fingerprint(self) -> str:
        return self.lm.fingerprint

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Motion codes -> (T, 22, 3) joint positions."""
        with torch.inference_mode():
            features = self.decoder.denormalize(self.decoder.decode(np.asarray(codes, dtype=np.int64)[None]))[0]
        return recover_joints(torch.as_tensor(np.asarray(features), dtype=torch.float64)).numpy()

    def generate(self, text: object, seed: int | None = None) -> MotionResult:
        clock = _Clock()
        text = check_text(text, self.config.max_text_chars)
        expert = "base"
        clock.lap("route")
        codes = self.lm.generate_motion([text], seed=self.config.seed if seed is None else seed)[0]
        clock.lap("language_model")
        joints = self.decode(codes)
        clock.lap("decode")
        trajectory = self.retargeter.retarget(joints, fps=self.config.features.fps)
        clock.lap("retarget")
        return MotionResult(text, codes, joints, trajectory, expert, clock.marks)

    def caption(self, joints: object) -> CaptionResult:
        clock = _Clock()
        window = check_poses(joints, self.config)
        features = joints_to_features(window, self.config.features)
        codes = self.encoder.motion_codes(features)
        clock.lap("encode")
        text = self.lm.caption([codes])[0]
        clock.lap("language_model")
        return CaptionResult(text, len(window), "base", clock.marks)
