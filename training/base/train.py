"""Base stage: teach a backbone the motion "language" in both directions.

The motion tokens are added to the vocabulary; their embedding rows (peft `trainable_token_indices`) and
one base LoRA are trained on text-to-motion and motion-to-text examples mixed in every batch, while the
backbone stays frozen. What is written is small: the peft adapter folder (LoRA + token rows), a copy of
the motion tokenizer, and `base.json` with the fingerprints (see motion_agent.model.base_model). The runtime
merges the adapter into the backbone at load and freezes the result; experts are trained on top of it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from motion_agent.config import config_dir, load_yaml
from motion_agent.model.backbone import load_backbone, weights_fingerprint
from motion_agent.model.base_model import ADAPTER_DIR, SPEC_FILE, TOKENIZER_DIR, BaseModelSpec, base_fingerprint
from motion_agent.model.language_model import MotionVocabulary, add_motion_tokens, m2t_prompt, t2m_prompt
from motion_agent.model.tokenizer import MotionTokenizer, folder_fingerprint
from training.data.humanml3d import HumanML3D, MotionClip

HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoint"  # inside OUT while a run is unfinished; removed when the model is saved
MIXED_PRECISION = ("no", "bf16")  # bf16: the forward pass under torch.autocast
IGNORE = -100  # label value the loss skips (prompt and padding positions)


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def peft_config(self, **extra):
        """peft's LoraConfig for these settings (plus any other LoraConfig field)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
            **extra,
        )


def sort_saved_target_modules(adapter_dir: Path) -> None:
    """peft keeps `target_modules` as a set and writes it in hash order, so two builds of the same adapter
    would differ byte-wise (and in every manifest hash of the config); sorted, rebuilds compare equal."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True))


@dataclass(frozen=True)
class BaseRunConfig:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    t2m_fraction: float = 0.5  # share of each batch that is text-to-motion; the rest is motion-to-text
    seed: int = 0
    log_every: int = 25
    val_batches: int = 8
    checkpoint_every: int = 100  # steps between resumable checkpoints; 0: none
    mixed_precision: str = (
        "no"  # "bf16" autocasts the forward pass (CPUs with AMX/AVX512-BF16, GPUs); weights stay fp32
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps, batch_size and lr must be positive")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}"
            )
        if not 0.0 <= self.t2m_fraction <= 1.0:
            raise ValueError(f"t2m_fraction must be in [0, 1], got {self.t2m_fraction}")


@dataclass(frozen=True)
class BaseTrainingConfig:
    backbone: str = "tiny"
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: BaseRunConfig = field(default_factory=BaseRunConfig)
    # train the embedding rows of the tokens the training captions use (and end-of-text) beside the
    # motion tokens: the embeddings are tied to the output layer, and a backbone without language
    # pretraining (tiny) cannot put probability on caption words through random frozen rows
    caption_rows: bool = True


def default_config_path() -> Path:
    return config_dir() / "training" / "base.yaml"


def load_base_config(path: str | Path | None = None) -> BaseTrainingConfig:
    return load_yaml(BaseTrainingConfig, path or default_config_path())


@dataclass
class Example:
    """One clip as the language model sees it: its motion codes, every caption and, in emotional
    corpora, its emotion label; in imported corpora the recording it was cut or augmented from."""

    codes: np.ndarray
    captions: list[str]
    emotion: str | None = None
    source: str | None = None  # clips of one source are one group wherever held-out data is drawn


def encode(tokenizer: MotionTokenizer, clips: list[MotionClip]) -> list[Example]:
    """Motion codes (trimmed to whole tokens) and captions of each clip, in order."""
    return [
        Example(
            tokenizer.motion_codes(clip.features),
            [c.text for c in clip.captions],
            clip.emotion,
            clip.metadata.get("source"),
        )  # fmt: skip
        for clip in clips
    ]


def pair(
    example: Example, t2m: bool, vocabulary: MotionVocabulary, eos: str, rng: np.random.Generator
) -> tuple[str, str]:
    """(prompt, target) for one direction; the caption is drawn at random each time."""
    caption = example.captions[rng.integers(len(example.captions))]
    if t2m:
        return t2m_prompt(caption), vocabulary.motion_text(example.codes)
    return m2t_prompt(vocabulary, example.codes), caption + eos


def collate(tokenizer, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Right-padded input ids with the loss on the target part only."""
    rows, labels = [], []
    for prompt, target in pairs:
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        t = tokenizer(target, add_special_tokens=False).input_ids
        rows.append(p + t)
        labels.append([IGNORE] * len(p) + t)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels]),
    }


def sample_batch(
    examples, size, t2m_fraction, vocabulary, tokenizer, rng, emotions: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """A random batch of both directions. With `emotions` (class names) it also holds `emotion_labels`,
    each example's class index or IGNORE, for methods with an emotion loss (not a model input)."""
    picks = rng.integers(len(examples), size=size)
    directions = rng.random(size) < t2m_fraction
    pairs = [pair(examples[i], bool(d), vocabulary, tokenizer.eos_token, rng) for i, d in zip(picks, directions)]
    batch = collate(tokenizer, pairs)
    if emotions is not None:
        index = {name: k for k, name in enumerate(emotions)}
        batch["emotion_labels"] = torch.tensor([index.get(examples[i].emotion, IGNORE) for i in picks])
    return batch


def forward_precision(run: BaseRunConfig, device: torch.device) -> torch.autocast:
    """The forward pass's autocast for `run.mixed_precision`. torch's own rather than accelerate's
    `Accelerator(mixed_precision=)`: accelerate keeps one state per process, which an earlier stage in
    the same process (the tokenizer's training in a benchmark) has fixed already."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.mixed_precision == "bf16")


def learning_rate(step: int, run: BaseRunConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth. A Python float: it lands in the optimizer's state,
    which a checkpoint reloads with torch's weights-only unpickler (a numpy scalar there is refused)."""
    if step < run.warmup_steps:
        return run.lr * (step + 1) / run.warmup_steps
    progress = (step - run.warmup_steps) / max(1, run.steps - run.warmup_steps)
    return run.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validation_loss(model, examples, vocabulary, tokenizer, run: BaseRunConfig) -> dict[str, float]:
    """Mean target-token loss per direction on fixed validation batches."""
    model.eval()
    figures = {}
    for name, fraction in (("val_t2m_loss", 1.0), ("val_m2t_loss", 0.0)):
        rng = np.random.default_rng(run.seed)
        losses = [
            model(**sample_batch(examples, run.batch_size, fraction, vocabulary, tokenizer, rng)).loss.item()
            for _ in range(run.val_batches)
        ]
        figures[name] = float(np.mean(losses))
    model.train()
    return figures


def caption_token_ids(tokenizer, examples: list[Example]) -> list[int]:
    """Every token id the examples' captions are written with, and end-of-text (a caption's last target)."""
    ids = {tokenizer.eos_token_id}
    for example in examples:
        for caption in example.captions:
            ids.update(tokenizer(caption, add_special_tokens=False).input_ids)
    return sorted(ids)


def peft_model(model, vocabulary: MotionVocabulary, lora: LoraSettings, text_ids: list[int] = ()):
    from peft import get_peft_model

    token_ids = vocabulary.motion_ids + list(text_ids)
    return get_peft_model(model, lora.peft_config(trainable_token_indices={"embed_tokens": token_ids}))


def train_base(
    corpus_root: str | Path,
    tokenizer_dir: str | Path,
    out: str | Path,
    config: BaseTrainingConfig = BaseTrainingConfig(),
    progress: bool = True,
    exclude: Collection[str] = (),
) -> dict:
    """Train and save a base model into `out`; returns the run's figures. Motion ids in `exclude` stay
    out of its data: a continual benchmark keeps its tasks' motions from the base, so that they are new."""
    from accelerate import Accelerator

    out, run = Path(out), config.training
    motion_tokenizer = MotionTokenizer.load(tokenizer_dir).eval()
    corpus = HumanML3D(corpus_root)
    exclude = frozenset(exclude)
    train, val = (
        encode(motion_tokenizer, corpus.clips(ids=[i for i in corpus.ids(split) if i not in exclude]))
        for split in ("train", "val")
    )
    if not train:
        raise ValueError(
            f"{corpus_root} has no usable training clip" + (" outside the excluded ids" if exclude else "")
        )
    torch.manual_seed(run.seed)
    model, tokenizer = load_backbone(config.backbone)
    backbone_hash = weights_fingerprint(model)
    vocabulary = add_motion_tokens(model, tokenizer, motion_tokenizer.config.codebook_size)
    model = peft_model(
        model, vocabulary, config.lora, caption_token_ids(tokenizer, train) if config.caption_rows else []
    )
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=run.lr, weight_decay=run.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    accelerator.register_save_state_pre_hook(only(trainable))
    progress_state = RunProgress(config, np.random.default_rng(run.seed + accelerator.process_index))
    checkpoint = out / CHECKPOINT_DIR
    if (checkpoint / PROGRESS_FILE).is_file():
        progress_state.load(checkpoint)
        load_checkpoint(accelerator, checkpoint, trainable)
    else:
        progress_state.history = [{"step": 0, **validation_loss(model, val or train, vocabulary, tokenizer, run)}]
    rng, history = progress_state.rng, progress_state.history
    model.train()
    began = time.perf_counter()
    bar = tqdm(
        range(progress_state.step, run.steps),
        desc=f"base ({config.backbone})",
        initial=progress_state.step,
        total=run.steps,
        disable=not (progress and accelerator.is_main_process),
    )
    running, resumed_from = progress_state.running, progress_state.step
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, run)
        batch = sample_batch(train, run.batch_size, run.t2m_fraction, vocabulary, tokenizer, rng)
        with forward_precision(run, accelerator.device):
            loss = model(**{k: v.to(accelerator.device) for k, v in batch.items()}).loss
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if run.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), run.grad_clip)
        optimizer.step()
        running += loss.item()
        if (step + 1) % run.log_every == 0 or step + 1 == run.steps:
            count = step % run.log_every + 1
            history.append({"step": step + 1, "lr": group["lr"], "loss": running / count})
            bar.set_postfix(loss=f"{running / count:.3f}")
            running = 0.0
        if run.checkpoint_every and (step + 1) % run.checkpoint_every == 0 and step + 1 < run.steps:
            progress_state.step, progress_state.running = step + 1, running
            save_checkpoint(accelerator, progress_state, checkpoint)
    seconds = time.perf_counter() - began
    history.append({"step": run.steps, **validation_loss(model, val or train, vocabulary, tokenizer, run)})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_base(
            accelerator.unwrap_model(model),
            Path(tokenizer_dir),
            out,
            config.backbone,
            backbone_hash,
            motion_tokenizer.config.codebook_size,
        )
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1) + "\n")
        shutil.rmtree(checkpoint, ignore_errors=True)
    return {
        "train_seconds": round(seconds, 1),
        "train_clips": len(train),
        "val_clips": len(val),
        "excluded_motions": len(exclude),
        "resumed_from_step": resumed_from,
        **{k: v for k, v in history[-1].items() if k.startswith("val_")},
        "config": asdict(config),
    }


PROGRESS_FILE = "progress.json"


class RunProgress:
    """What a checkpoint holds beside accelerate's model, optimizer and torch/numpy RNG states: the step,
    the loss history and the batch sampler's generator (so that a resumed run draws the very batches the
    uninterrupted one would have drawn), and the configuration it belongs to."""

    def __init__(self, config: BaseTrainingConfig, rng: np.random.Generator) -> None:
        self.config, self.rng = config, rng
        self.step, self.history, self.running = 0, [], 0.0  # running: loss sum since the last log line

    def save(self, folder: Path) -> None:
        state = {
            "step": self.step,
            "history": self.history,
            "running": self.running,
            "rng": self.rng.bit_generator.state,
            "config": _resumable(self.config),
        }
        (folder / PROGRESS_FILE).write_text(json.dumps(state) + "\n")

    def load(self, folder: Path) -> None:
        """Take the step, history and sampler state of a checkpoint; refuse one of another configuration,
        since a resume would then mix two runs."""
        state = json.loads((folder / PROGRESS_FILE).read_text())
        if state["config"] != _resumable(self.config):
            mine, saved = _flatten(_resumable(self.config)), _flatten(state["config"])
            changed = sorted(k for k in mine.keys() | saved.keys() if mine.get(k) != saved.get(k))
            raise ValueError(
                f"{folder} is a checkpoint of another configuration (differs in: {', '.join(changed)}); "
                "remove it to start over, or train into another folder"
            )
        self.step, self.history, self.running = state["step"], state["history"], state["running"]
        self.rng.bit_generator.state = state["rng"]


def _resumable(config: BaseTrainingConfig) -> dict:
    """The configuration as JSON sees it, less what a resume may change (how often to checkpoint)."""
    settings = json.loads(json.dumps(asdict(config)))
    del settings["training"]["checkpoint_every"]
    return settings


def _flatten(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        flat.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


def only(trainable: set[str]):
    """accelerate save-state hook that keeps the trained tensors of the model's state: the frozen backbone
    is loaded again on resume, so a smollm2-135m checkpoint holds 25 MB of it rather than 560."""

    def hook(models, weights: list[dict], output_dir: str) -> None:
        for state in weights:
            for key in [k for k in state if k not in trainable]:
                del state[key]

    return hook


def load_checkpoint(accelerator, checkpoint: Path, trainable: set[str]) -> None:
    """accelerate's `load_state` over the freshly loaded backbone; every trained tensor must come back."""
    from safetensors import safe_open

    weights = checkpoint / "model.safetensors"
    if weights.is_file():
        with safe_open(str(weights), "pt") as saved:
            missing = sorted(trainable - set(saved.keys()))
        if missing:
            raise ValueError(
                f"{checkpoint} lacks {len(missing)} trained tensors (first: {missing[0]}); remove it to start over"
            )
    accelerator.load_state(str(checkpoint), strict=False)


def save_checkpoint(accelerator, progress: RunProgress, checkpoint: Path) -> None:
    """accelerate's `save_state` (model, optimizer, RNGs) and the run's progress into a fresh folder that
    then replaces the previous checkpoint, so an interruption while writing leaves the older one whole."""
    fresh = checkpoint.with_name(checkpoint.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    accelerator.save_state(str(fresh))
    if accelerator.is_main_process:
        progress.save(fresh)
        old = checkpoint.with_name(checkpoint.name + ".old")
        if checkpoint.exists():
            checkpoint.rename(old)
        fresh.rename(checkpoint)
        shutil.rmtree(old, ignore_errors=True)


def save_base(model, tokenizer_dir: Path, out: Path, backbone: str, backbone_hash: str, codebook_size: int) -> None:
    """Write adapter, tokenizer copy and spec; the spec last, so a folder without it is never loaded."""
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).unlink(missing_ok=True)
    model.save_pretrained(out / ADAPTER_DIR, save_embedding_layers=False)  # the token rows travel on their own
    sort_saved_target_modules(out / ADAPTER_DIR)
    shutil.copytree(tokenizer_dir, out / TOKENIZER_DIR, dirs_exist_ok=True)
    spec = BaseModelSpec(
        backbone,
        codebook_size,
        backbone_hash,
        folder_fingerprint(out / TOKENIZER_DIR),
        base_fingerprint(backbone_hash, out),
    )
    spec.save(out)
