"""Perform (action, emotion) pairs through the forward kinematics and write the corpus in the
HumanML3D layout:

    new_joints/<id>.npy       (T, 22, 3) joint positions, metres
    new_joint_vecs/<id>.npy   (T - 1, 263) features
    texts/<id>.txt            caption#tokens#0.0#0.0 per line
    Mean.npy, Std.npy         over the train split
    train.txt val.txt test.txt all.txt
    metadata.json             {id: {action, scenario, emotion}}
    corpus.json               how it was made

Every motion has its own random stream seeded by (seed, index), so a corpus is byte-identical for a
seed whatever order or machine it is generated on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from motion_agent.motion.features import FeatureConfig
from motion_agent.motion.skeleton import forward_kinematics
from training.data.humanml3d import split_ids
from training.data.layout_writer import write_index, write_motion
from training.data.synth import take as A
from training.data.synth.actions import ACTIONS, SCENARIOS, Action
from training.data.synth.captions import captions
from training.data.synth.emotions import EMOTIONS, Style
from training.data.synth.take import Take
from training.data.synth.unseen import UNSEEN_ACTIONS, UNSEEN_SCENARIOS

EVERY_ACTION: dict[str, Action] = {**ACTIONS, **UNSEEN_ACTIONS}  # corpus v1's and the unseen scenarios'


@dataclass(frozen=True)
class CorpusConfig:
    motions: int = 300
    seed: int = 0
    fps: float = 20.0
    min_seconds: float = 2.5
    max_seconds: float = 8.0  # HumanML3D keeps 40..196 feature frames: 2.05..9.85 s at 20 fps
    style_jitter: float = 0.25  # how differently two performers act the same emotion
    max_speed: float = 3.0  # m/s; a sprinting emotion must not make the pelvis jump between frames
    captions_per_motion: int = 3
    emotion_caption_rate: float = 0.85
    split: tuple[float, float, float] = (0.8, 0.05, 0.15)
    # Motions made after the first `motions` that go to the test split only: more clips to score, while
    # the first `motions` (byte for byte), their split and every model trained on it stay the same.
    extra_test_motions: int = 0
    # Which scenarios to perform; empty: corpus v1's (actions.SCENARIOS). Names may also come from
    # unseen.UNSEEN_SCENARIOS, motions no embedded model has seen (a new scenario's clips, its evaluator).
    scenarios: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in SCENARIOS and s not in UNSEEN_SCENARIOS]
        if unknown:
            known = ", ".join([*SCENARIOS, *UNSEEN_SCENARIOS])
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {known}")
        if self.motions < 1:
            raise ValueError(f"motions must be at least 1, got {self.motions}")
        if self.extra_test_motions < 0:
            raise ValueError(f"extra_test_motions must be at least 0, got {self.extra_test_motions}")
        if not 2.05 <= self.min_seconds <= self.max_seconds <= 9.85:
            raise ValueError("min_seconds..max_seconds must lie within 2.05..9.85 s (40..196 frames at 20 fps)")
        if abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must add up to 1, got {self.split}")


def _posture(k: Take) -> None:
    """The emotion's posture and qualities on top of the action (not scaled by amplitude)."""
    s, aa, t = k.style, k.aa, k.t
    aa[:, [A.SPINE1, A.SPINE2, A.SPINE3], A.X] += s.lean / 3
    aa[:, [A.NECK, A.HEAD], A.X] += s.head_pitch / 2
    aa[:, A.L_COLLAR, A.Z] += s.shrug
    aa[:, A.R_COLLAR, A.Z] -= s.shrug
    aa[:, [A.L_KNEE, A.R_KNEE], A.X] += s.knee_bend
    aa[:, [A.L_HIP, A.R_HIP], A.X] -= 0.6 * s.knee_bend
    if s.arms_in > 0:  # guarded: arms drawn in front of the body
        aa[:, [A.L_SHOULDER, A.R_SHOULDER], A.X] -= 0.5 * s.arms_in
        aa[:, [A.L_ELBOW, A.R_ELBOW], A.X] -= 1.0 * s.arms_in
    else:  # open: arms away from the body
        aa[:, A.L_SHOULDER, A.Z] -= 0.6 * s.arms_in
        aa[:, A.R_SHOULDER, A.Z] += 0.6 * s.arms_in
    startle = s.startle * k.pulse(0.0, 0.3)
    aa[:, A.L_SHOULDER, A.Z] += 1.6 * startle
    aa[:, A.R_SHOULDER, A.Z] -= 1.6 * startle
    aa[:, [A.L_ELBOW, A.R_ELBOW], A.X] -= 1.0 * startle[:, None]
    aa[:, A.SPINE2, A.X] -= 0.25 * startle
    if s.tremor > 0:
        for joint in (A.HEAD, A.L_ELBOW, A.R_ELBOW, A.L_WRIST, A.R_WRIST, A.L_KNEE, A.R_KNEE):
            hz, phase = k.rng.uniform(6, 10), k.rng.uniform(0, 2 * np.pi)
            aa[:, joint, A.X] += s.tremor * np.sin(2 * np.pi * hz * t + phase)
    k.air += s.bounce * np.abs(np.sin(2 * np.pi * 1.6 * s.tempo * t))
    # Muscles low-pass every movement a little; soft, sluggish emotions much more.
    k.aa = gaussian_filter1d(aa, sigma=1.0 + 3.0 * max(s.sharpness - 1.0, 0.0), axis=0, mode="nearest")


def _root(k: Take, heading0: float, fps: float, max_speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole-body orientation (axis-angle) and horizontal pelvis path from the take's travel."""
    heading = heading0 + np.cumsum(k.yaw_rate) / fps
    orientation = Rotation.from_euler("YXZ", np.stack([heading, k.pitch, k.roll], axis=-1))
    forward = np.stack([np.sin(heading), np.zeros_like(heading), np.cos(heading)], axis=-1)
    left = np.stack([np.cos(heading), np.zeros_like(heading), -np.sin(heading)], axis=-1)
    velocity = k.speed[:, None] * forward + k.side[:, None] * left
    speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
    step = velocity * np.minimum(1.0, max_speed / np.maximum(speed, 1e-9)) / fps
    path = np.cumsum(step, axis=0) - step[0]
    return orientation.as_rotvec(), path


def corpus_actions(config: CorpusConfig) -> dict[str, Action]:
    """The actions the corpus performs, in registry order (corpus v1's when no scenario is named)."""
    if not config.scenarios:
        return ACTIONS
    return {name: action for name, action in EVERY_ACTION.items() if action.scenario in config.scenarios}


def perform(action: str, emotion: str, seconds: float, rng: np.random.Generator, config: CorpusConfig) -> np.ndarray:
    """(T, 22, 3) joint positions of one performance, lowest joint on the floor unless airborne."""
    style: Style = EMOTIONS[emotion].jittered(rng, config.style_jitter)
    frames = int(round(seconds * config.fps)) + 1
    take = Take(t=np.arange(frames) / config.fps, style=style, rng=rng)
    EVERY_ACTION[action].program(take)
    _posture(take)
    take.aa[:, 0], path = _root(take, rng.uniform(-np.pi, np.pi), config.fps, config.max_speed)
    aa = torch.as_tensor(take.aa, dtype=torch.float64)
    joints = forward_kinematics(torch.zeros(frames, 3, dtype=torch.float64), aa).numpy()
    joints[..., [0, 2]] += path[:, None, [0, 2]]
    joints[..., 1] += _height(-joints[..., 1].min(axis=-1), take.air)[:, None]
    return joints


FLIGHT_HEIGHT = 0.05  # metres of `air` above which the body is in flight rather than bouncing
GROUND_SMOOTHING = 1.5  # frames


def _height(ground: np.ndarray, air: np.ndarray) -> np.ndarray:
    """Pelvis lift per frame: the lowest joint on the floor, except in flight, where the body follows
    its ballistic path from take-off to landing (however it rotates) and never dips under the floor."""
    # Quick leg swings make the lowest joint switch fast; a body lowers smoothly, but never into the floor.
    ground = np.maximum(gaussian_filter1d(ground, GROUND_SMOOTHING, mode="nearest"), ground)
    airborne = air > FLIGHT_HEIGHT
    if airborne.any() and (~airborne).any():
        frames = np.arange(len(ground))
        carried = np.interp(frames, frames[~airborne], ground[~airborne])
        ground = np.where(airborne, np.maximum(carried, ground - air), ground)
    return ground + air


def motion_plan(config: CorpusConfig) -> list[tuple[str, str]]:
    """Balanced (action, emotion) pairs: every pair appears before any appears twice."""
    pairs = [(a, e) for a in corpus_actions(config) for e in EMOTIONS]
    rng = np.random.default_rng(config.seed)
    plan: list[tuple[str, str]] = []
    total = config.motions + config.extra_test_motions
    while len(plan) < total:
        plan += [pairs[i] for i in rng.permutation(len(pairs))]
    return plan[:total]


def write_corpus(
    out: str | Path, config: CorpusConfig, features: FeatureConfig = FeatureConfig(), progress: bool = True
) -> Path:
    """Generate and write the whole corpus; returns the folder."""
    out = Path(out)
    metadata: dict[str, dict[str, str]] = {}
    vectors: dict[str, np.ndarray] = {}
    plan, actions = motion_plan(config), corpus_actions(config)
    for index, (action, emotion) in enumerate(tqdm(plan, desc="synthesising motions", disable=not progress)):
        rng = np.random.default_rng([config.seed, 0, index])
        motion_id = f"{index:06d}"
        seconds = rng.uniform(config.min_seconds, config.max_seconds)
        joints = perform(action, emotion, seconds, rng, config)
        texts = captions(action, emotion, rng, config.captions_per_motion, config.emotion_caption_rate)
        vectors[motion_id] = write_motion(out, motion_id, joints, texts, features)
        metadata[motion_id] = {"action": action, "scenario": actions[action].scenario, "emotion": emotion}
    every = sorted(metadata)
    splits = split_ids(every[: config.motions], config.split, [config.seed, 1])
    splits["test"] = splits["test"] + every[config.motions :]
    about = {
        "generator": "motion_agent procedural corpus v1",
        "config": {k: v for k, v in asdict(config).items() if k != "scenarios" or v},  # v1 corpora: as before
        "actions": len(actions),
        "emotions": sorted(EMOTIONS),
        "scenarios": sorted({a.scenario for a in actions.values()}),
    }
    write_index(out, vectors, metadata, splits, about, features)
    return out
