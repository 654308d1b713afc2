"""The frozen evaluator that scores text-to-motion and motion-to-text: a contrastive text encoder and
motion encoder pair (in the spirit of HumanML3D's text / motion evaluator and of TMR) plus a motion
emotion classifier. It is trained once on the training split, frozen, and every later model is
measured with the same weights.

    text      MiniLM sentence embedding (384, frozen) -> MLP projection -> unit-length latent
    motion    (T, 263) features, normalised with the dataset's Mean / Std (stored inside the
              evaluator) -> per-frame linear -> stride-2 1D convolutions with masking -> masked mean
              and max pooling -> linear -> unit-length latent of the same size
    emotion   MLP head on the motion latent (before its normalisation) -> one of `model.emotions`

Loss: symmetric InfoNCE over the batch with a fixed temperature (TMR), plus cross-entropy of the
emotion head (clips without an emotion label are ignored). Each step pairs every clip with one of its
captions, drawn at random, and a random crop of the clip. The epoch with the best validation
R-Precision top-1 (32-way pools) is the one kept.

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
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

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
            nn.Linear(config.text_dim, config.text_hidden), nn.GELU(), nn.Dropout(config.dropout),
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
            nn.Sequential(nn.Linear(model.latent_dim, model.emotion_hidden), nn.GELU(), nn.Dropout(model.dropout),
                          nn.Linear(model.emotion_hidden, len(model.emotions)))
            if model.emotions else None
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
        out = [self.text_latents(embeddings[i : i + batch_size].to(self.mean.device)).cpu()
               for i in range(0, len(embeddings), batch_size)]
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
                raise ValueError(f"motion {i} has {len(f)} frames; the evaluator needs at least "
                                 f"{self.config.model.min_frames}")
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
        header = "# Frozen text-motion evaluator (training.evaluation.evaluator.EvaluatorConfig), saved with its weights.\n"
        (folder / CONFIG_FILE).write_text(header + yaml.safe_dump(config, sort_keys=False))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "Evaluator":
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


# ---- training ---------------------------------------------------------------------------------------


def info_nce(text: torch.Tensor, motion: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of unit-length (B, L) text and motion latents, row i paired with row i."""
    logits = text @ motion.T / temperature
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _learning_rate(step: int, steps: int, warmup: int, run: EvaluatorTrainingConfig) -> float:
    if step < warmup:
        return run.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    low = run.lr * run.final_lr_fraction
    return low + (run.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def _crop(
    motion: torch.Tensor, run: EvaluatorTrainingConfig, rng: np.random.Generator, min_frames: int
) -> torch.Tensor:
    """A random crop of at least crop_min of the clip (and of min_frames), at most max_frames long."""
    frames = min(len(motion), run.max_frames)
    shortest = max(min_frames, min(frames, int(math.ceil(run.crop_min * frames))))
    length = int(rng.integers(shortest, frames + 1))
    start = int(rng.integers(0, len(motion) - length + 1))
    return motion[start : start + length]


@dataclass
class _Split:
    """Clips of one split ready for training: normalised tensors, caption rows and emotion labels."""

    motions: list[torch.Tensor]
    raw: list[np.ndarray]
    captions: list[list[int]]  # rows of the caption embedding table, per clip
    labels: list[int]  # -1: no (known) emotion
    emotions: list[str | None] = field(default_factory=list)


def _prepare(clips, evaluator: Evaluator, rows: dict[str, int], min_frames: int) -> _Split:
    clips = [c for c in clips if len(c.features) >= min_frames and c.captions]
    index = {name: i for i, name in enumerate(evaluator.emotions)}
    mean, std = evaluator.mean.numpy(), evaluator.std.numpy()
    return _Split(
        motions=[torch.from_numpy((c.features - mean) / std) for c in clips],
        raw=[c.features for c in clips],
        captions=[[rows[caption.text] for caption in c.captions] for c in clips],
        labels=[index.get(c.emotion, -1) if c.emotion else -1 for c in clips],
        emotions=[c.emotion for c in clips],
    )


def _validate(evaluator: Evaluator, split: _Split, table: np.ndarray, repeats: int) -> dict[str, float]:
    """Validation R-Precision (mean over caption draws and pool shuffles) and emotion F1."""
    from training.evaluation.metrics import r_precision, weighted_f1

    motion, raw = evaluator._encode(split.raw, 64)
    text = evaluator.encode_text_embeddings(table)
    pool = min(POOL, len(split.raw))
    scores = []
    for repeat in range(repeats):
        rng = np.random.default_rng(repeat)
        rows = [c[int(rng.integers(len(c)))] for c in split.captions]
        scores.append(np.asarray(r_precision(text[rows], motion, pool=pool, top_k=TOP_K, seed=repeat), float))
    mean = np.mean(scores, axis=0)
    figures = {f"r_precision_top{k + 1}": float(mean[k]) for k in range(len(mean))}
    labelled = [i for i, label in enumerate(split.labels) if label >= 0]
    if evaluator.emotion_head is not None and labelled:
        with torch.no_grad():
            logits = evaluator.emotion_logits(torch.from_numpy(raw[labelled]))
        predicted = [evaluator.emotions[i] for i in logits.argmax(-1).tolist()]
        figures["emotion_f1"] = float(weighted_f1([split.emotions[i] for i in labelled], predicted))
    return figures


def train_evaluator(
    corpus_root: str | Path,
    out_folder: str | Path,
    config: EvaluatorConfig = EvaluatorConfig(),
    progress: bool = True,
    *,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> dict:
    """Train the evaluator on the train split of a HumanML3D-layout folder, keep the epoch with the best
    validation R-Precision top-1 (the last epoch when there is no validation split), save it into
    `out_folder` and return figures about the run (JSON-ready). `embed` replaces the MiniLM sentence
    embedder (texts -> (N, 384) unit vectors), for tests."""
    from tqdm.auto import tqdm

    from training.data.humanml3d import DatasetError, HumanML3D

    if embed is None:
        from training.data.text_embeddings import embed
    run = config.training
    data = HumanML3D(corpus_root)
    train_clips = data.clips("train")
    val_clips = data.clips("val") if (data.root / "val.txt").is_file() else []
    min_frames = config.model.min_frames
    if len([c for c in train_clips if len(c.features) >= min_frames]) < 2:
        raise DatasetError(f"{data.root} has fewer than 2 usable training clips")

    found = sorted({c.emotion for c in train_clips if c.emotion})
    emotions = config.model.emotions or tuple(found)
    unknown = sorted(set(found) - set(emotions))
    if unknown:
        raise ValueError(f"training clips have emotions {unknown} missing from model.emotions {list(emotions)}")
    config = EvaluatorConfig(dataclasses.replace(config.model, emotions=tuple(emotions)), run)

    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    evaluator = Evaluator(config, data.mean, data.std)

    began = time.perf_counter()
    texts = sorted({caption.text for clip in train_clips + val_clips for caption in clip.captions})
    table = np.asarray(embed(texts), dtype=np.float32)
    if table.shape != (len(texts), config.model.text_dim):
        expected = (len(texts), config.model.text_dim)
        raise ValueError(f"the text embedder gave shape {table.shape}, expected {expected}")
    rows = {text: i for i, text in enumerate(texts)}
    table_t = torch.from_numpy(table)
    embed_seconds = time.perf_counter() - began

    train = _prepare(train_clips, evaluator, rows, min_frames)
    val = _prepare(val_clips, evaluator, rows, min_frames)
    has_val = len(val.raw) >= TOP_K  # R-Precision top-3 needs pools of at least 3
    labels = torch.tensor(train.labels)
    use_emotion = evaluator.emotion_head is not None and bool((labels >= 0).any()) and run.emotion_weight > 0

    batch_size = min(run.batch_size, len(train.motions))
    steps_per_epoch = max(1, len(train.motions) // batch_size)  # the remainder of a shuffle is dropped
    steps = run.epochs * steps_per_epoch
    warmup = run.warmup_epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(evaluator.parameters(), lr=run.lr, weight_decay=run.weight_decay)

    history: list[dict] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] = {}
    best_epoch = 0
    step = 0
    train_began = time.perf_counter()
    bar = tqdm(total=run.epochs, desc="evaluator", unit="epoch", disable=not progress)
    for epoch in range(1, run.epochs + 1):
        evaluator.train()
        order = rng.permutation(len(train.motions))
        totals = {"loss": 0.0, "contrastive": 0.0, "emotion": 0.0}
        for b in range(steps_per_epoch):
            picks = order[b * batch_size : (b + 1) * batch_size]
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, steps, warmup, run)
            batch, lengths = pad_batch([_crop(train.motions[i], run, rng, min_frames) for i in picks])
            caption_rows = [train.captions[i][int(rng.integers(len(train.captions[i])))] for i in picks]
            text = evaluator.text_latents(table_t[caption_rows])
            motion, raw = evaluator.motion_latents(batch, lengths)
            contrastive = info_nce(text, motion, run.temperature)
            loss = contrastive
            emotion = torch.zeros(())
            if use_emotion:
                target = labels[picks]
                if (target >= 0).any():
                    emotion = F.cross_entropy(evaluator.emotion_logits(raw), target, ignore_index=-1)
                    loss = loss + run.emotion_weight * emotion
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if run.grad_clip > 0:
                nn.utils.clip_grad_norm_(evaluator.parameters(), run.grad_clip)
            optimizer.step()
            step += 1
            for name, value in (("loss", loss), ("contrastive", contrastive), ("emotion", emotion)):
                totals[name] += float(value.detach()) / steps_per_epoch
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **totals}
        if has_val:
            record.update({f"val_{k}": v for k, v in _validate(evaluator, val, table, run.val_repeats).items()})
            score = (record["val_r_precision_top1"], record.get("val_emotion_f1", 0.0))
        else:
            score = (float(epoch), 0.0)  # no validation: the last epoch is kept
        history.append(record)
        if best is None or score > best:
            best, best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in evaluator.state_dict().items()}
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss']:.3f}",
                        **({"val_top1": f"{record['val_r_precision_top1']:.3f}"} if has_val else {}))
    bar.close()
    train_seconds = time.perf_counter() - train_began

    evaluator.load_state_dict(best_state)
    evaluator.eval()
    folder = evaluator.save(out_folder)
    chosen = history[best_epoch - 1]
    return {
        "folder": str(folder),
        "epochs": run.epochs,
        "best_epoch": best_epoch,
        "selected_by": "val_r_precision_top1" if has_val else "last epoch (no validation clips)",
        "train_clips": len(train.motions),
        "val_clips": len(val.raw),
        "captions": len(texts),
        "emotions": list(emotions),
        "steps": steps,
        "embed_seconds": round(embed_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        **{k: v for k, v in chosen.items() if k.startswith("val_")},
        "history": history,
    }


# ---- ground-truth figures ---------------------------------------------------------------------------


def draw_captions(clips, seed: int) -> list[str]:
    """One caption per clip, drawn at random (HumanML3D's evaluation draws one per clip)."""
    rng = np.random.default_rng(seed)
    return [clip.captions[int(rng.integers(len(clip.captions)))].text for clip in clips]


def evaluate_ground_truth(evaluator: Evaluator, clips, seed: int = 0, repeats: int = 10, pool: int = POOL) -> dict:
    """How the evaluator scores real motions against their own captions: R-Precision top-1/2/3 on
    `pool`-way pools (one random caption per clip; mean over `repeats` caption draws and pool
    shuffles), MM-Dist (Euclidean, between unit-length latents) and the emotion classifier's weighted
    F1 and accuracy on the clips that have an emotion label."""
    from training.evaluation.metrics import mm_dist, r_precision, weighted_f1

    clips = [c for c in clips if c.captions and len(c.features) >= evaluator.config.model.min_frames]
    if len(clips) < TOP_K:
        raise ValueError(f"need at least {TOP_K} clips to evaluate (R-Precision top-{TOP_K}), got {len(clips)}")
    motion, raw = evaluator._encode([c.features for c in clips], 64)
    texts = sorted({caption.text for clip in clips for caption in clip.captions})
    latents = dict(zip(texts, evaluator.encode_text(texts)))
    pool = min(pool, len(clips))
    scores, distances = [], []
    for repeat in range(repeats):
        text = np.stack([latents[t] for t in draw_captions(clips, seed + repeat)])
        scores.append(np.asarray(r_precision(text, motion, pool=pool, top_k=TOP_K, seed=seed + repeat), float))
        distances.append(float(mm_dist(text, motion)))
    mean = np.mean(scores, axis=0)
    figures: dict = {"clips": len(clips), "pool": pool, "repeats": repeats}
    figures.update({f"r_precision_top{k + 1}": float(mean[k]) for k in range(len(mean))})
    figures["mm_dist"] = float(np.mean(distances))
    labelled = [i for i, c in enumerate(clips) if c.emotion]
    if evaluator.emotion_head is not None and labelled:
        with torch.no_grad():
            logits = evaluator.emotion_logits(torch.from_numpy(raw[labelled]).to(evaluator.mean.device))
        predicted = [evaluator.emotions[i] for i in logits.argmax(-1).tolist()]
        true = [clips[i].emotion for i in labelled]
        figures["emotion_f1"] = float(weighted_f1(true, predicted))
        figures["emotion_accuracy"] = float(np.mean([t == p for t, p in zip(true, predicted)]))
        names = list(evaluator.emotions) + sorted(set(true) - set(evaluator.emotions))
        confusion = np.zeros((len(names), len(names)), dtype=int)
        for t, p in zip(true, predicted):
            confusion[names.index(t), names.index(p)] += 1
        figures["emotion_labels"] = names
        figures["emotion_confusion"] = confusion.tolist()  # rows: true, columns: predicted
    else:
        figures["emotion_f1"] = None
    return figures
