"""Quality of a motion-language model, scored by the frozen evaluator: T2M and M2T on held-out clips.

T2M: each clip's first caption is turned into a motion (asking for the clip's own duration, as the
HumanML3D protocol does), decoded to features, and embedded by the evaluator beside the caption; FID
compares generated with real motion embeddings, R-Precision asks whether each caption finds its own
generated motion among 32, and the emotion classifier checks that the requested emotion shows.
M2T: each clip's real motion codes are captioned and scored against all its reference captions
(BLEU, ROUGE-L, CIDEr) and by evaluator R-Precision (generated caption vs real motion). The same
figures for the ground truth (real motions, real captions) come from `ground_truth`, so a report can
put the model beside the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from motion_agent.model.language_model import MotionLanguageModel
from motion_agent.model.tokenizer import MotionTokenizer
from training.data.humanml3d import MotionClip
from training.evaluation import metrics
from training.evaluation.evaluator import Evaluator

MM_REPEATS = 10  # generations per caption for MultiModality
MM_CAPTIONS = 32  # captions used for MultiModality


@dataclass(frozen=True)
class EvalSettings:
    seed: int = 0
    batch_size: int = 16
    mm_captions: int = MM_CAPTIONS
    mm_repeats: int = MM_REPEATS
    r_precision_seeds: int = 5  # R-Precision is averaged over this many pool shuffles


def _r_precision(text: np.ndarray, motion: np.ndarray, settings: EvalSettings) -> np.ndarray:
    """Top-1..3 on 32-way pools (one smaller pool when fewer clips are scored), averaged over shuffles."""
    pool = min(metrics.R_PRECISION_POOL, len(text))
    runs = [
        metrics.r_precision(text, motion, pool=pool, seed=settings.seed + s) for s in range(settings.r_precision_seeds)
    ]
    return np.mean(runs, axis=0)


def _t2m_figures(
    evaluator: Evaluator,
    captions: list[str],
    motions: list[np.ndarray],
    real_motion: np.ndarray,
    emotions: list[str],
    settings: EvalSettings,
) -> dict[str, float]:
    text = evaluator.encode_text(captions)
    motion = evaluator.encode_motion(motions)
    top = _r_precision(text, motion, settings)
    figures = {
        "r_precision_top1": float(top[0]),
        "r_precision_top2": float(top[1]),
        "r_precision_top3": float(top[2]),
        "fid": metrics.fid(real_motion, motion),
        "diversity": metrics.diversity(motion, seed=settings.seed),
        "mm_dist": metrics.mm_dist(text, motion),
    }
    if all(emotions):
        figures["emotion_f1"] = metrics.weighted_f1(emotions, evaluator.classify_emotion(motions))
    return figures


def ground_truth(evaluator: Evaluator, clips: list[MotionClip], settings: EvalSettings = EvalSettings()) -> dict:
    """The evaluator's figures on real motions and real captions: the ceiling for T2M and M2T."""
    captions = [clip.captions[0].text for clip in clips]
    motions = [clip.features for clip in clips]
    real = evaluator.encode_motion(motions)
    t2m = _t2m_figures(evaluator, captions, motions, real, [c.emotion or "" for c in clips], settings)
    t2m["fid"] = 0.0  # real against itself
    t2m["multimodality"] = float("nan")  # one real motion per caption
    return {"t2m": t2m, "m2t": {"r_precision_top3": t2m["r_precision_top3"]}}


def _decode(tokenizer: MotionTokenizer, codes: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        features = tokenizer.decode(torch.as_tensor(codes, dtype=torch.long)[None])[0]
        return np.asarray(tokenizer.denormalize(features.cpu().numpy()), dtype=np.float32)


def generate_motions(
    lm: MotionLanguageModel,
    tokenizer: MotionTokenizer,
    captions: list[str],
    seconds: list[float],
    settings: EvalSettings,
    seed: int,
    adapter_names: list[str] | None = None,
    desc: str = "T2M",
) -> list[np.ndarray]:
    """Features of one generated motion per caption, each asked for its own duration with its own seed
    (one request at a time, as a robot serves them)."""
    out: list[np.ndarray] = []
    for i in tqdm(range(len(captions)), desc=desc, leave=False):
        names = [adapter_names[i]] if adapter_names is not None else None
        codes = lm.generate_motion([captions[i]], seed=seed + i, seconds=seconds[i], adapter_names=names)[0]
        out.append(_decode(tokenizer, codes))
    return out


def evaluate_t2m(
    lm: MotionLanguageModel,
    tokenizer: MotionTokenizer,
    evaluator: Evaluator,
    clips: list[MotionClip],
    settings: EvalSettings = EvalSettings(),
    adapter_names: list[str] | None = None,
) -> dict[str, float]:
    captions = [clip.captions[0].text for clip in clips]
    seconds = [len(clip.features) / lm.config.fps for clip in clips]
    generated = generate_motions(lm, tokenizer, captions, seconds, settings, settings.seed, adapter_names)
    real = evaluator.encode_motion([clip.features for clip in clips])
    figures = _t2m_figures(evaluator, captions, generated, real, [c.emotion or "" for c in clips], settings)
    count = min(settings.mm_captions, len(clips))
    groups = []
    for r in range(settings.mm_repeats):
        names = adapter_names[:count] if adapter_names is not None else None
        repeat = generate_motions(
            lm,
            tokenizer,
            captions[:count],
            seconds[:count],
            settings,
            settings.seed + 1000 * (r + 1),
            names,
            desc=f"MultiModality {r + 1}",
        )
        groups.append(evaluator.encode_motion(repeat))
    figures["multimodality"] = metrics.multimodality(np.stack(groups, axis=1), seed=settings.seed)
    return figures


def caption_clips(
    lm: MotionLanguageModel,
    tokenizer: MotionTokenizer,
    clips: list[MotionClip],
    settings: EvalSettings,
    adapter_names: list[str] | None = None,
) -> list[str]:
    captions = []
    for start in tqdm(range(0, len(clips), settings.batch_size), desc="M2T", leave=False):
        batch = clips[start : start + settings.batch_size]
        codes = [tokenizer.motion_codes(clip.features) for clip in batch]
        names = adapter_names[start : start + len(batch)] if adapter_names is not None else None
        captions += lm.caption(codes, adapter_names=names)
    return captions


def evaluate_m2t(
    lm: MotionLanguageModel,
    tokenizer: MotionTokenizer,
    evaluator: Evaluator,
    clips: list[MotionClip],
    settings: EvalSettings = EvalSettings(),
    adapter_names: list[str] | None = None,
) -> dict:
    hypotheses = caption_clips(lm, tokenizer, clips, settings, adapter_names)
    references = [[c.text for c in clip.captions] for clip in clips]
    bleu = metrics.bleu(hypotheses, references)
    top = _r_precision(
        evaluator.encode_text(hypotheses), evaluator.encode_motion([c.features for c in clips]), settings
    )
    return {
        "bleu1": bleu[0],
        "bleu4": bleu[3],
        "rouge_l": metrics.rouge_l(hypotheses, references),
        "cider": metrics.cider(hypotheses, references),
        "r_precision_top3": float(top[2]),
        "examples": [{"reference": r[0], "generated": h} for r, h in list(zip(references, hypotheses))[:8]],
    }
