"""Training of the motion tokenizer (VQ-VAE) on random windows of normalised HumanML3D features.

Losses, all smooth L1 on normalised features unless named otherwise:

    reconstruction   all 263 features
    root             root angular velocity, XZ velocity and height, weighted up: they are 4 of 263
                     numbers, yet `recover_joints` integrates them into the heading and trajectory
    drift            the running sums of the root velocities over the window: a small bias in a
                     velocity is a large error once integrated, and this term sees the bias
    positions        root-relative joint positions, what MPJPE measures
    velocity         frame-to-frame differences, so the reconstruction does not jitter
    commitment       mean squared distance of encoder outputs to their codes

The codebook itself learns by moving averages inside the quantizer, not by gradients.

Checkpoints never use pickle. `out_dir/checkpoints/step-NNNNNNN/` holds:

    tokenizer.safetensors, tokenizer.yaml, mean.npy, std.npy   a loadable tokenizer folder
    trainer.safetensors   the optimiser's tensors, flattened to "state.<param>.<name>", and the
                          random number generator states ("rng.torch", "rng.windows")
    trainer.json          the step, the optimiser's scalar state and parameter groups

so a resumed run continues with the same Adam moments and the same window sequence as an
uninterrupted one. The finished tokenizer goes to `out_dir/tokenizer/`, the loss history to
`out_dir/history.json`.

`accelerate` runs the same function on one CPU or several GPUs: every process draws its own windows
(seeded by its rank), the quantizer sums its statistics across processes, and only the main process
writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from tqdm.auto import tqdm

from motion_agent.config import load_yaml
from motion_agent.model.tokenizer import MotionTokenizer, TokenizerConfig
from motion_agent.motion.features import RIC_SLICE, mean_std

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
TOKENIZER_DIR = "tokenizer"
HISTORY_FILE = "history.json"
TRAINER_TENSORS = "trainer.safetensors"
TRAINER_JSON = "trainer.json"
CHECKPOINT_FORMAT = 1
ROOT_SLICE = slice(0, RIC_SLICE.start)  # root angular velocity, XZ velocity and height
VELOCITY_SLICE = slice(0, 3)  # root angular and XZ velocity: what recover_joints integrates


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training losses (see the module docstring)."""

    reconstruction: float = 1.0
    root: float = 5.0
    drift: float = 0.1
    positions: float = 1.0
    velocity: float = 0.5
    commitment: float = 0.02

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"LossWeights.{field.name} must be >= 0, got {getattr(self, field.name)}")


@dataclass(frozen=True)
class RunConfig:
    """The hyper-parameters every run names (YAML section `training`); command-line flags override them."""

    steps: int = 12000
    batch_size: int = 64
    window: int = 64  # frames per training window
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"RunConfig.lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class TrainingOptions:
    """Everything else about a run (YAML section `options`)."""

    loss: LossWeights = LossWeights()
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    warmup_steps: int = 100  # linear learning-rate warm-up from zero
    decay_at: tuple[float, ...] = (0.7, 0.9)  # fractions of the run at which the learning rate drops
    decay_factor: float = 0.2  # by this factor, each time
    checkpoint_every: int = 500  # steps; the final step is always checkpointed
    keep_checkpoints: int = 2  # the newest ones; older ones are deleted
    log_every: int = 50  # steps between history records
    val_every: int = 500  # steps between validation passes; 0: only at the start and the end
    val_windows: int = 256  # most validation windows scored per pass

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise ValueError("warmup_steps >= 0, checkpoint_every, keep_checkpoints and log_every >= 1 required")
        if self.val_every < 0 or self.val_windows < 1:
            raise ValueError("val_every must be >= 0 and val_windows >= 1")
        if not 0 < self.decay_factor <= 1:
            raise ValueError(f"decay_factor must be in (0, 1], got {self.decay_factor}")
        if any(not 0 <= f <= 1 for f in self.decay_at):
            raise ValueError(f"decay_at holds fractions of the run, got {self.decay_at}")


@dataclass(frozen=True)
class TokenizerTrainingConfig:
    """The whole YAML file: `model`, `training` and `options` sections."""

    model: TokenizerConfig = TokenizerConfig()
    training: RunConfig = RunConfig()
    options: TrainingOptions = TrainingOptions()


def load_training_config(path: str | Path) -> TokenizerTrainingConfig:
    """Read a tokenizer training YAML (unknown keys and wrong types are refused, naming the key)."""
    return load_yaml(TokenizerTrainingConfig, path)


def default_config_path() -> Path:
    """The embedded default, `config/training/tokenizer.yaml`."""
    from motion_agent.config import config_dir

    return config_dir() / "training" / "tokenizer.yaml"


@dataclass
class TrainResult:
    """The trained tokenizer (CPU, eval mode), where it was saved, and how the run went."""

    tokenizer: MotionTokenizer
    folder: Path
    history: list[dict]
    seconds: float  # wall time of this call's training steps
    start_step: int  # 0, or the step a checkpoint resumed from


class WindowSampler:
    """Uniformly random windows over all motions, from its own generator (saved in checkpoints)."""

    def __init__(self, motions: list[torch.Tensor], window: int, seed: int) -> None:
        self.motions = motions
        self.window = window
        counts = torch.tensor([len(m) - window + 1 for m in motions])
        self.ends = torch.cumsum(counts, 0)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int) -> torch.Tensor:
        picks = torch.randint(0, int(self.ends[-1]), (batch_size,), generator=self.generator)
        which = torch.searchsorted(self.ends, picks, right=True)
        starts = picks - torch.cat([torch.zeros(1, dtype=self.ends.dtype), self.ends])[which]
        return torch.stack([self.motions[m][s : s + self.window] for m, s in zip(which.tolist(), starts.tolist())])


def validation_windows(motions: list[torch.Tensor], window: int, limit: int) -> torch.Tensor | None:
    """Non-overlapping windows of the validation motions, at most `limit`, spread evenly over them."""
    windows = [m[s : s + window] for m in motions for s in range(0, len(m) - window + 1, window)]
    if not windows:
        return None
    if len(windows) > limit:
        windows = [windows[i] for i in np.linspace(0, len(windows) - 1, limit).round().astype(int)]
    return torch.stack(windows)


def losses(model: MotionTokenizer, batch: torch.Tensor, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The weighted training loss and its parts, for one batch of normalised windows."""
    out = model(batch)
    target = batch[:, : out.reconstruction.shape[1]]
    parts = {
        "reconstruction": F.smooth_l1_loss(out.reconstruction, target),
        "root": F.smooth_l1_loss(out.reconstruction[..., ROOT_SLICE], target[..., ROOT_SLICE]),
        "drift": F.smooth_l1_loss(
            out.reconstruction[..., VELOCITY_SLICE].cumsum(dim=1), target[..., VELOCITY_SLICE].cumsum(dim=1)
        ),
        "positions": F.smooth_l1_loss(out.reconstruction[..., RIC_SLICE], target[..., RIC_SLICE]),
        "velocity": F.smooth_l1_loss(out.reconstruction.diff(dim=1), target.diff(dim=1)),
        "commitment": out.commitment,
    }
    parts["loss"] = sum(getattr(weights, name) * value for name, value in parts.items())
    parts["perplexity"] = out.perplexity
    return parts


def learning_rate(step: int, steps: int, lr: float, options: TrainingOptions) -> float:
    """Linear warm-up, then step decay at fractions of the run: a pure function of the step and the run
    length, so there is no scheduler state to checkpoint."""
    if step < options.warmup_steps:
        return lr * (step + 1) / options.warmup_steps
    drops = sum(step >= math.floor(f * steps) for f in options.decay_at)
    return lr * options.decay_factor**drops


@torch.no_grad()
def validate(model: MotionTokenizer, windows: torch.Tensor | None, weights: LossWeights, batch_size: int) -> dict:
    """Mean losses over the validation windows, in eval mode (the codebook does not move)."""
    if windows is None:
        return {}
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(model.device)
        for name, value in losses(model, batch, weights).items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(batch)
    model.train(was_training)
    return {f"val_{name}": value / len(windows) for name, value in totals.items()}


# ---- checkpoints without pickle -------------------------------------------------------------------


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def checkpoint_steps(out_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in out_dir, oldest first."""
    folder = out_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    steps = []
    for path in folder.iterdir():
        if path.name.startswith(CHECKPOINT_PREFIX) and (path / TRAINER_JSON).is_file():
            suffix = path.name[len(CHECKPOINT_PREFIX) :]
            if suffix.isdigit():
                steps.append(int(suffix))
    return sorted(steps)


def _checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / CHECKPOINT_DIR / f"{CHECKPOINT_PREFIX}{step:07d}"


def save_checkpoint(
    out_dir: Path,
    step: int,
    model: MotionTokenizer,
    optimizer: torch.optim.Optimizer,
    sampler: WindowSampler,
    history: list[dict],
    keep: int,
) -> Path:
    """Write a checkpoint atomically (a half-written folder is never taken for a checkpoint)."""
    final = _checkpoint_path(out_dir, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(partial)
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.windows"] = sampler.generator.get_state()
    save_file(tensors, str(partial / TRAINER_TENSORS))
    meta.update(format=CHECKPOINT_FORMAT, step=step, history=history)
    (partial / TRAINER_JSON).write_text(json.dumps(meta))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    for old in checkpoint_steps(out_dir)[:-keep]:
        shutil.rmtree(_checkpoint_path(out_dir, old))
    return final


def load_checkpoint(
    path: Path, model: MotionTokenizer, optimizer: torch.optim.Optimizer, sampler: WindowSampler
) -> tuple[int, list[dict]]:
    """Restore model, optimiser and random states in place; returns (step, history)."""
    saved = MotionTokenizer.load(path)
    if saved.config != model.config:
        raise ValueError(f"checkpoint {path} has model config {saved.config}, this run uses {model.config}")
    model.load_state_dict(saved.state_dict())
    meta = json.loads((path / TRAINER_JSON).read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {meta.get('format')}, expected {CHECKPOINT_FORMAT}")
    tensors = load_file(str(path / TRAINER_TENSORS))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
    torch.set_rng_state(tensors["rng.torch"])
    sampler.generator.set_state(tensors["rng.windows"])
    return int(meta["step"]), list(meta["history"])


# ---- the training loop ----------------------------------------------------------------------------


def _prepare_motions(features: list[np.ndarray], model: MotionTokenizer, window: int, what: str) -> list[torch.Tensor]:
    kept = [torch.as_tensor(model.normalize(f), dtype=torch.float32) for f in features if len(f) >= window]
    if len(kept) < len(features):
        print(f"{what}: skipped {len(features) - len(kept)} of {len(features)} motions shorter than {window} frames")
    return kept


def train_tokenizer(
    train_features: list[np.ndarray],
    val_features: list[np.ndarray],
    config: TokenizerConfig,
    out_dir: str | Path,
    steps: int,
    batch_size: int,
    window: int,
    lr: float,
    seed: int,
    resume: bool = True,
    *,
    options: TrainingOptions = TrainingOptions(),
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a tokenizer on raw (unnormalised) (T, 263) feature arrays and save it to out_dir/tokenizer.

    `mean` / `std` are the dataset's normalisation (HumanML3D's Mean.npy / Std.npy); without them they
    are computed from the training motions. With `resume`, the newest checkpoint in out_dir is
    continued (its model config must match); `steps` is the total, not the number still to run.
    """
    from accelerate import Accelerator

    RunConfig(steps, batch_size, window, lr, seed)  # validates the numbers
    if window % config.downsampling:
        raise ValueError(f"window ({window}) must be a multiple of the downsampling ({config.downsampling})")
    out_dir = Path(out_dir)
    accelerator = Accelerator()
    if mean is None or std is None:
        mean, std = mean_std(train_features)
    torch.manual_seed(seed)
    model = MotionTokenizer(config, mean, std)
    train = _prepare_motions(train_features, model, window, "train")
    if not train:
        raise ValueError(f"no training motion has at least {window} frames")
    val = validation_windows(_prepare_motions(val_features, model, window, "val"), window, options.val_windows)
    sampler = WindowSampler(train, window, seed + accelerator.process_index)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(options.adam_beta1, options.adam_beta2), weight_decay=options.weight_decay
    )
    start, history = 0, []
    saved = checkpoint_steps(out_dir) if resume else []
    if saved:
        start, history = load_checkpoint(_checkpoint_path(out_dir, saved[-1]), model, optimizer, sampler)
        if accelerator.process_index:  # every process resumes the same state but draws its own windows
            sampler.generator.manual_seed(seed + accelerator.process_index + start)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner: MotionTokenizer = accelerator.unwrap_model(model)
    model.train()
    if start == 0:
        history.append({"step": 0, **validate(inner, val, options.loss, batch_size)})

    began = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc="tokenizer", disable=not (progress and accelerator.is_main_process))
    running: dict[str, torch.Tensor] = {}  # summed on the device; read back only when logged
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, options)
        batch = sampler.sample(batch_size).to(accelerator.device)
        parts = losses(model, batch, options.loss)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(parts["loss"])
        if options.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), options.grad_clip)
        optimizer.step()
        for name, value in parts.items():
            running[name] = running.get(name, 0.0) + value.detach()
        done_steps = step + 1
        bar.update(1)
        record = None
        if done_steps % options.log_every == 0 or done_steps == steps:
            count = (done_steps - 1) % options.log_every + 1
            record = {"step": done_steps, "lr": group["lr"], **{k: v.item() / count for k, v in running.items()}}
            running = {}
            bar.set_postfix(loss=f"{record['loss']:.4f}", ppl=f"{record['perplexity']:.0f}")
        if done_steps == steps or (options.val_every and done_steps % options.val_every == 0):
            record = {**(record or {"step": done_steps}), **validate(inner, val, options.loss, batch_size)}
        if record is not None:
            history.append(record)
        if done_steps % options.checkpoint_every == 0 or done_steps == steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(out_dir, done_steps, inner, optimizer, sampler, history, options.keep_checkpoints)
    bar.close()
    seconds = time.perf_counter() - began

    accelerator.wait_for_everyone()
    tokenizer = accelerator.unwrap_model(model).cpu().eval()
    folder = out_dir / TOKENIZER_DIR
    if accelerator.is_main_process:
        tokenizer.save(folder)
        (out_dir / HISTORY_FILE).write_text(json.dumps(history, indent=1) + "\n")
    return TrainResult(tokenizer, folder, history, seconds, start)
