"""Training the frozen evaluator (`evaluator.Evaluator`), and the ground-truth figures every model is
measured against.

Loss: symmetric InfoNCE over the batch with a fixed temperature (TMR), plus cross-entropy of the
emotion head (clips without an emotion label are ignored). Each step pairs every clip with one of its
captions, drawn at random, and a random crop of the clip. The epoch with the best validation
R-Precision top-1 (32-way pools) is the one kept.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.evaluation.evaluator import POOL, TOP_K, Evaluator, EvaluatorConfig, EvaluatorTrainingConfig, pad_batch

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
        bar.set_postfix(
            loss=f"{totals['loss']:.3f}", **({"val_top1": f"{record['val_r_precision_top1']:.3f}"} if has_val else {})
        )
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
