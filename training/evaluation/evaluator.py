"""The frozen evaluator that scores text-to-motion and motion-to-text: a contrastive text encoder and
motion encoder pair (in the spirit of HumanML3D's text / motion evaluator and of TMR) plus a motion
emotion classifier. It is trained once on the training split (`evaluator_training.py`), frozen, and every
later model is measured with the same weights.

    text      MiniLM sentence embedding (384, frozen) -> MLP projection -> unit-length latent
    motion    (T, 263) features, normalised with the dataset's Mean / Std (stored inside the
              evaluator) -> per-frame linear -> stride-2 1D convolutions with masking -> masked mean
              and max pooling -> linear -> unit-length latent of the same size
    emotion   MLP head on the motion latent (before its normalisation) -> one of `model.emotions`

Latents are L2-normalised, so the Euclidean distances of HumanML3D's R-Precision and MM-Dist are
monotone in cosine similarity (|a - b|^2 = 2 - 2 cos) and lie in [0, 2]; they are not rescaled, so
MM-Dist and FID figures of this evaluator are on a smaller scale than the published HumanML3D ones
and are only comparable with each other.

A saved evaluator is a folder (no pickle anywhere):

    evaluator.safetensors   weights, and the Mean / Std buffers
    evaluator.yaml          the EvaluatorConfig, including the emotion names in label order

Variable lengths: frames past a clip's end are zeroed before every convolution and left out of the
pooling, so a clip's latent does not depend on what it is batched with (up to float rounding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors_bytes
from torch import nn
from torch.nn import functional as F

from motion_agent.config import load_yaml
from motion_agent.motion.features import FEATURE_DIM

WEIGHTS_FILE = "evaluator.safetensors"
CONFIG_FILE = "evaluator.yaml"
TEXT_DIM = 384  # all-MiniLM-L6-v2
POOL = 32  # HumanML3D's R-Precision pool size
TOP_K = 3


@dataclass(frozen=True)
class EvaluatorModelConfig:
    """Sizes of the networks (YAML section `model`); saved with the weights."""

    feature_dim: int = FEATURE_DIM
    text_dim: int = TEXT_DIM
    latent_dim: int = 256  # shared text / motion latent
    text_hidden: int = 512  # hidden width of the text projection
    motion_hidden: int = 128  # channels of the motion encoder
    downsample: int = 2  # stride-2 convolutions: the encoder sees one step per 2 ** downsample frames
    emotion_hidden: int = 128  # hidden width of the emotion head
    dropout: float = 0.1
    emotions: tuple[str, ...] = ()  # label order of the emotion head; empty: taken from the training data

    def __post_init__(self) -> None:
        for name in ("feature_dim", "text_dim", "latent_dim", "text_hidden", "motion_hidden", "emotion_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.downsample < 0:
            raise ValueError(f"downsample must be >= 0, got {self.downsample}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"emotions must be distinct, got {self.emotions}")

    @property
    def min_frames(self) -> int:
        """The shortest motion the encoder accepts: one step after the downsampling."""
        return 2**self.downsample


@dataclass(frozen=True)
class EvaluatorTrainingConfig:
    """How the evaluator is trained (YAML section `training`); command-line flags override some."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1.0e-3  # peak, then cosine decay to lr * final_lr_fraction
    final_lr_fraction: float = 0.05
    warmup_epochs: int = 1
    weight_decay: float = 1.0e-4
    temperature: float = 0.1  # InfoNCE temperature (TMR's)
    emotion_weight: float = 1.0  # weight of the emotion cross-entropy next to the contrastive loss
    max_frames: int = 196  # longer clips are randomly cropped to this many frames
    crop_min: float = 0.75  # a training crop keeps at least this fraction of the clip (1: no cropping)
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    val_repeats: int = 4  # validation R-Precision is averaged over this many caption draws / pool shuffles
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_frames", "val_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2: InfoNCE needs negatives")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError("lr and temperature must be positive")
        if not 0 < self.final_lr_fraction <= 1 or not 0 < self.crop_min <= 1:
            raise ValueError("final_lr_fraction and crop_min must be in (0, 1]")
        if self.warmup_epochs < 0 or self.weight_decay < 0 or self.emotion_weight < 0 or self.grad_clip < 0:
            raise ValueError("warmup_epochs, weight_decay, emotion_weight and grad_clip must be >= 0")


@dataclass(frozen=True)
class EvaluatorConfig:
    """The whole YAML file: `model` and `training` sections."""

    model: EvaluatorModelConfig = EvaluatorModelConfig()
    training: EvaluatorTrainingConfig = EvaluatorTrainingConfig()


def load_config(path: str | Path) -> EvaluatorConfig:
    """Read an evaluator YAML (unknown keys and wrong types are refused, naming the key)."""
    return load_yaml(EvaluatorConfig, path)


def default_config_path() -> Path:
    """The embedded default, `config/training/evaluator.yaml`."""
    from motion_agent.config import config_dir

    return config_dir() / "training" / "evaluator.yaml"


# ---- the networks ---------------------------------------------------------------------------------


class MotionEncoder(nn.Module):
    """(B, T, F) normalised features with zeros past each length -> (B, latent) raw latents."""

    def __init__(self, config: EvaluatorModelConfig) -> None:
        super().__init__()
        width = config.motion_hidden
        self.input = nn.Linear(config.feature_dim, width)
        self.input_norm = nn.LayerNorm(width)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 4, stride=2, padding=1) for _ in range(config.downsample))
        self.refine = nn.Conv1d(width, width, 3, padding=1)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, config.latent_dim))

    @staticmethod
    def _mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
        return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).to(torch.float32)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = self._mask(lengths, x.shape[1])
        h = F.gelu(self.input_norm(self.input(x))) * mask[..., None]
        h = self.dropout(h).transpose(1, 2)  # (B, C, T)
        for conv in self.convs:
            # alone, a clip of length T gives T // 2 steps, and everything past its end is zero, as the
            # conv's own padding would be: batching does not change a clip's steps
            lengths = lengths // 2
            h = F.gelu(conv(h)) * self._mask(lengths, h.shape[-1] // 2)[:, None, :]
        mask = self._mask(lengths, h.shape[-1])[:, None, :]
        h = h + F.gelu(self.refine(h)) * mask
        pooled_mean = (h * mask).sum(-1) / lengths[:, None].clamp(min=1)
        pooled_max = h.masked_fill(mask == 0, float("-inf")).amax(-1)
        return self.output(torch.cat([pooled_mean, pooled_max], dim=-1))


class TextProjection(nn.Module):
    """(B, 384) sentence embeddings -> (B, latent) raw latents."""

    def __init__(self, config: EvaluatorModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.text_dim, config.text_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.text_hidden, config.latent_dim),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)


class Evaluator(nn.Module):
    """Text projection, motion encoder and emotion head, with the normalisation they were trained with."""

    def __init__(self, config: EvaluatorConfig, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.config = config
        model = config.model
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.shape != (model.feature_dim,) or std.shape != (model.feature_dim,):
            raise ValueError(f"mean and std must have shape ({model.feature_dim},), got {mean.shape} and {std.shape}")
        if not (std > 0).all():
            raise ValueError("std must be positive")
        self.register_buffer("mean", torch.from_numpy(mean.copy()))
        self.register_buffer("std", torch.from_numpy(std.copy()))
        self.text = TextProjection(model)
        self.motion = MotionEncoder(model)
        self.emotion_head = (
            nn.Sequential(
                nn.Linear(model.latent_dim, model.emotion_hidden),
                nn.GELU(),
                nn.Dropout(model.dropout),
                nn.Linear(model.emotion_hidden, len(model.emotions)),
            )
            if model.emotions
            else None
        )

    @property
    def emotions(self) -> tuple[str, ...]:
        return self.config.model.emotions

    # ---- tensors in, tensors out (training and batched inference) -----------------------------------

    def text_latents(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, 384) sentence embeddings -> (B, latent) unit-length latents."""
        return F.normalize(self.text(embeddings), dim=-1)

    def motion_latents(self, normalized: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 263) normalised, zero-padded features -> (unit-length latents, raw latents)."""
        raw = self.motion(normalized, lengths)
        return F.normalize(raw, dim=-1), raw

    def emotion_logits(self, raw_latents: torch.Tensor) -> torch.Tensor:
        if self.emotion_head is None:
            raise ValueError("this evaluator was trained without emotion labels")
        return self.emotion_head(raw_latents)

    # ---- numpy in, numpy out ------------------------------------------------------------------------

    @torch.no_grad()
    def encode_text_embeddings(self, embeddings: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, 384) MiniLM embeddings (as `training.data.text_embeddings.embed` gives) -> (N, latent)."""
        self.eval()
        embeddings = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        out = [
            self.text_latents(embeddings[i : i + batch_size].to(self.mean.device)).cpu()
            for i in range(0, len(embeddings), batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.model.latent_dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, latent) unit-length latents of captions."""
        from training.data.text_embeddings import embed

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.config.model.latent_dim), np.float32)
        return self.encode_text_embeddings(embed(texts))

    def _check_features(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        checked = []
        for i, f in enumerate(features):
            f = np.asarray(f, dtype=np.float32)
            if f.ndim != 2 or f.shape[1] != self.config.model.feature_dim:
                raise ValueError(f"motion {i} must have shape (frames, {self.config.model.feature_dim}), has {f.shape}")
            if len(f) < self.config.model.min_frames:
                raise ValueError(
                    f"motion {i} has {len(f)} frames; the evaluator needs at least {self.config.model.min_frames}"
                )
            checked.append(f)
        return checked

    @torch.no_grad()
    def _encode(self, features: Sequence[np.ndarray], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(unit-length latents, raw latents) of un-normalised (T, 263) motions, in input order."""
        self.eval()
        features = self._check_features(features)
        latent = self.config.model.latent_dim
        normed = np.zeros((len(features), latent), np.float32)
        raw = np.zeros((len(features), latent), np.float32)
        order = sorted(range(len(features)), key=lambda i: len(features[i]))  # little padding per batch
        for start in range(0, len(order), batch_size):
            picks = order[start : start + batch_size]
            batch, lengths = pad_batch([torch.from_numpy(features[i]) for i in picks])
            batch = (batch.to(self.mean.device) - self.mean) / self.std
            batch = batch * _frame_mask(lengths, batch.shape[1])[..., None].to(batch.device)
            n, r = self.motion_latents(batch, lengths.to(batch.device))
            normed[picks], raw[picks] = n.cpu().numpy(), r.cpu().numpy()
        return normed, raw

    def encode_motion(self, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(N, latent) unit-length latents of un-normalised (T, 263) motions of any lengths."""
        return self._encode(features, batch_size)[0]

    @torch.no_grad()
    def emotion_probabilities(self, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(N, len(emotions)) class probabilities, columns in the order of `emotions`."""
        raw = torch.from_numpy(self._encode(features, batch_size)[1]).to(self.mean.device)
        return F.softmax(self.emotion_logits(raw), dim=-1).cpu().numpy()

    def classify_emotion(self, features: Sequence[np.ndarray], batch_size: int = 64) -> list[str]:
        """The most likely emotion name of each motion."""
        if not len(features):
            return []
        return [self.emotions[i] for i in self.emotion_probabilities(features, batch_size).argmax(axis=1)]

    # ---- files --------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write evaluator.safetensors and evaluator.yaml into `folder`; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        metadata = {"format": "motion-agent evaluator v1"}
        (folder / WEIGHTS_FILE).write_bytes(save_safetensors_bytes(state, metadata=metadata))
        config = dataclasses.asdict(self.config)
        config["model"]["emotions"] = list(self.config.model.emotions)
        header = (
            "# Frozen text-motion evaluator (training.evaluation.evaluator.EvaluatorConfig), saved with its weights.\n"
        )
        (folder / CONFIG_FILE).write_text(header + yaml.safe_dump(config, sort_keys=False))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> Evaluator:
        """Read an evaluator folder (safetensors and safe YAML, no pickle); comes back in eval mode."""
        folder = Path(folder)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"evaluator folder {folder} has no {WEIGHTS_FILE}")
        config = load_config(folder / CONFIG_FILE)
        state = load_file(str(weights))
        model = cls(config, state["mean"].numpy(), state["std"].numpy())
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def _frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    return (torch.arange(frames)[None, :] < lengths[:, None]).to(torch.float32)


def pad_batch(motions: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, T_max, F) batch and the (B,) lengths."""
    lengths = torch.tensor([len(m) for m in motions], dtype=torch.long)
    batch = torch.zeros(len(motions), int(lengths.max()), motions[0].shape[-1], dtype=torch.float32)
    for i, m in enumerate(motions):
        batch[i, : len(m)] = m
    return batch, lengths
