"""How good is a tokenizer: reconstruction error in millimetres and how much of its codebook it uses.

MPJPE is measured on joint positions: both the original and the reconstructed features are
denormalised and turned into joints with `recover_joints`, and the Euclidean distance of every joint
in every frame is averaged. Two figures come out:

    mpjpe_mm          joints relative to each frame's pelvis, in both motions: the convention of
                      published tokenizer evaluations; it scores the body, including its heading
                      (integrated root rotation), but not where the walk ended up
    mpjpe_global_mm   the recovered trajectories as they are: root velocity errors accumulate over
                      the whole motion, so this grows with motion length and mostly measures drift

Codebook usage is the fraction of codes that occur at least once when the evaluated motions are
encoded; perplexity is exp(entropy) of the code frequencies (the number of equally used codes that
would give the same entropy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from motion_agent.model.tokenizer import MotionTokenizer
from motion_agent.motion.features import recover_joints
from motion_agent.motion.preview import plot_stick_figures

EVAL_JSON = "tokenizer_eval.json"
EVAL_PNG = "tokenizer_eval.png"
MILLIMETRES = 1000.0
PLOT_FRAMES = 6  # stick figures per row in the comparison image


def reconstruct(tokenizer: MotionTokenizer, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (T, 263) features -> (original cut to whole tokens, reconstruction, tokens), raw features."""
    tokens = tokenizer.encode(tokenizer.normalize(features)[None])
    decoded = tokenizer.denormalize(tokenizer.decode(tokens)[0].cpu().numpy())
    return np.asarray(features, dtype=np.float32)[: len(decoded)], decoded, tokens[0].cpu().numpy()


def joint_errors(original: np.ndarray, reconstruction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame, per-joint distances in metres (root-aligned and global), and the reconstruction's joints."""
    reference = recover_joints(torch.as_tensor(original, dtype=torch.float64)).numpy()
    rebuilt = recover_joints(torch.as_tensor(reconstruction, dtype=torch.float64)).numpy()
    aligned = (rebuilt - rebuilt[:, :1]) - (reference - reference[:, :1])
    return np.linalg.norm(aligned, axis=-1), np.linalg.norm(rebuilt - reference, axis=-1), rebuilt


def evaluate_tokenizer(
    tokenizer: MotionTokenizer,
    features: list[np.ndarray],
    out_dir: str | Path | None = None,
    names: list[str] | None = None,
    plot_count: int = 3,
    title: str | None = None,
) -> dict:
    """Figures over raw (T, 263) feature arrays; with out_dir, also the JSON and a comparison PNG."""
    tokenizer = tokenizer.cpu().eval()
    names = names or [f"motion {i}" for i in range(len(features))]
    usable = [(n, f) for n, f in zip(names, features) if len(f) >= tokenizer.downsampling]
    if not usable:
        raise ValueError(f"no motion has at least {tokenizer.downsampling} frames to evaluate")
    shown = set(np.linspace(0, len(usable) - 1, min(plot_count, len(usable))).round().astype(int).tolist())
    errors, global_errors, per_motion, all_tokens, plots = [], [], [], [], {}
    for index, (name, motion) in enumerate(usable):
        original, reconstruction, tokens = reconstruct(tokenizer, motion)
        error, global_error, rebuilt = joint_errors(original, reconstruction)
        errors.append(error.ravel())
        global_errors.append(global_error.ravel())
        per_motion.append(float(error.mean()) * MILLIMETRES)
        all_tokens.append(tokens)
        if index in shown:  # spread over the list, which is often sorted by kind
            plots[f"{name} original"] = recover_joints(torch.as_tensor(original, dtype=torch.float64)).numpy()
            plots[f"{name} decoded"] = rebuilt
    tokens = np.concatenate(all_tokens)
    counts = np.bincount(tokens, minlength=tokenizer.config.codebook_size)
    frequencies = counts[counts > 0] / counts.sum()
    figures = {
        "mpjpe_mm": float(np.concatenate(errors).mean()) * MILLIMETRES,
        "mpjpe_global_mm": float(np.concatenate(global_errors).mean()) * MILLIMETRES,
        "mpjpe_worst_motion_mm": max(per_motion),
        "codebook_usage": float((counts > 0).mean()),
        "codes_used": int((counts > 0).sum()),
        "codebook_size": tokenizer.config.codebook_size,
        "perplexity": float(np.exp(-(frequencies * np.log(frequencies)).sum())),
        "motions": len(usable),
        "tokens": int(len(tokens)),
        "fingerprint": tokenizer.fingerprint(),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if plots:
            caption = title or f"tokenizer reconstruction, MPJPE {figures['mpjpe_mm']:.1f} mm"
            plot_stick_figures(plots, out_dir / EVAL_PNG, PLOT_FRAMES, caption)
        (out_dir / EVAL_JSON).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def format_summary(figures: dict) -> str:
    """A few readable lines for the terminal."""
    lines = [
        f"motions evaluated      {figures['motions']} ({figures['tokens']} tokens)",
        f"MPJPE                  {figures['mpjpe_mm']:.1f} mm "
        f"(worst motion {figures['mpjpe_worst_motion_mm']:.1f} mm; "
        f"with trajectory drift {figures['mpjpe_global_mm']:.1f} mm)",
        f"codebook usage         {figures['codebook_usage']:.1%} "
        f"({figures['codes_used']} of {figures['codebook_size']} codes, perplexity {figures['perplexity']:.1f})",
    ]
    if "onnx_max_abs_diff" in figures:
        lines.append(f"ONNX vs torch decoder  max |diff| {figures['onnx_max_abs_diff']:.2e}")
    return "\n".join(lines)
