"""Command line: train the frozen text-motion evaluator and emotion classifier on a HumanML3D-layout
folder, then score the ground truth of its test split with it.

Reads DATA/new_joint_vecs/<id>.npy ((T, 263) features), DATA/texts/<id>.txt (captions), DATA/Mean.npy,
DATA/Std.npy, the split lists DATA/train.txt, val.txt, test.txt and, for emotion labels,
DATA/metadata.json ({id: {"emotion": ...}}). Writes into OUT:

    evaluator.safetensors   weights and the Mean / Std normalisation (no pickle)
    evaluator.yaml          the config the weights belong to, emotion names included
    eval.json               ground-truth figures on the test split, and how training went
    evaluator.png           text-motion similarities of one 32-clip test pool, emotion confusion matrix

`training.evaluation.evaluator.Evaluator.load(OUT)` gives the frozen evaluator back.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from motion_agent.config import ConfigError
from training.data.humanml3d import DatasetError

EVAL_JSON = "eval.json"
EVAL_PNG = "evaluator.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motion-agent-train evaluator",
        description="Train the frozen evaluator that scores text-to-motion and motion-to-text: a contrastive "
        "text encoder (MiniLM + projection) and motion encoder, plus a motion emotion classifier. The epoch with "
        "the best validation R-Precision is kept; ground-truth R-Precision, MM-Dist and emotion F1 on the test "
        "split are reported.",
        epilog=__doc__.split("\n", 3)[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="folder in HumanML3D layout (see below)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; files there are replaced)")
    parser.add_argument("--config", type=Path, help="evaluator YAML (default: config/training/evaluator.yaml)")
    parser.add_argument("--epochs", type=int, help="training epochs (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def plot_evaluation(evaluator, clips, figures: dict, path: Path, seed: int = 0) -> Path:
    """Cosine similarities between the captions and motions of the first 32 clips (matched pairs on
    the diagonal) next to the emotion confusion matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.evaluation.evaluator import POOL
    from training.evaluation.evaluator_training import draw_captions

    pool = clips[:POOL]
    text = evaluator.encode_text(draw_captions(pool, seed))
    motion = evaluator.encode_motion([c.features for c in pool])
    similarity = text @ motion.T
    confusion = figures.get("emotion_confusion")
    fig, axes = plt.subplots(1, 2 if confusion else 1, figsize=(12 if confusion else 6, 5.2), squeeze=False)
    ax = axes[0, 0]
    image = ax.imshow(similarity, cmap="viridis", vmin=-1, vmax=1)
    ax.set_title(
        f"text-motion cosine similarity, {len(pool)} test clips\n"
        f"R-Precision top-1 {figures['r_precision_top1']:.3f} (chance {1 / figures['pool']:.3f})"
    )
    ax.set_xlabel("motion")
    ax.set_ylabel("caption")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if confusion:
        ax = axes[0, 1]
        matrix = np.asarray(confusion)
        labels = figures["emotion_labels"]
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > matrix.max() / 2 else "black",
                fontsize=9,
            )
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"emotion on test motions\nweighted F1 {figures['emotion_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_summary(training: dict, figures: dict | None, out: Path) -> str:
    lines = [
        f"evaluator trained on {training['train_clips']} clips ({training['captions']} captions) for "
        f"{training['epochs']} epochs in {training['train_seconds']:.1f} s "
        f"(+ {training['embed_seconds']:.1f} s of sentence embeddings)",
    ]
    if "val_r_precision_top1" in training:
        lines.append(
            f"  kept epoch {training['best_epoch']}: validation R-Precision top-1 "
            f"{training['val_r_precision_top1']:.3f} on {training['val_clips']} clips"
        )
    else:
        lines.append(f"  kept the last epoch ({training['selected_by']})")
    if figures is not None:
        pool = figures["pool"]
        lines += [
            f"test split ground truth, {figures['clips']} clips, {pool}-way pools, mean of {figures['repeats']} "
            "caption draws:",
            "  R-Precision top-1/2/3   "
            + " / ".join(f"{figures[f'r_precision_top{k}']:.3f}" for k in (1, 2, 3))
            + "   (chance "
            + " / ".join(f"{k / pool:.3f}" for k in (1, 2, 3))
            + ")",
            f"  MM-Dist                 {figures['mm_dist']:.3f}   (Euclidean, unit-length latents: 0..2)",
        ]
        if figures.get("emotion_f1") is not None:
            lines.append(
                f"  emotion weighted F1     {figures['emotion_f1']:.3f}   (accuracy "
                f"{figures['emotion_accuracy']:.3f}, {len(figures['emotion_labels'])} emotions)"
            )
        else:
            lines.append("  emotion                 no emotion labels in the test split")
    else:
        lines.append("no test split with at least 3 clips: nothing evaluated")
    lines.append(
        f"saved to {out}: evaluator.safetensors, evaluator.yaml, {EVAL_JSON}"
        + (f", {EVAL_PNG}" if figures is not None else "")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.data.humanml3d import HumanML3D
    from training.evaluation.evaluator import TOP_K, Evaluator, default_config_path, load_config
    from training.evaluation.evaluator_training import evaluate_ground_truth, train_evaluator

    try:
        if not args.data.is_dir():
            raise DatasetError(f"data folder {args.data} does not exist")
        config = load_config(args.config or default_config_path())
        flags = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k) is not None}
        config = replace(config, training=replace(config.training, **flags))
        data = HumanML3D(args.data)
        test = data.clips("test") if (data.root / "test.txt").is_file() else []
        training = train_evaluator(args.data, args.out, config, progress=not args.quiet)
    except (ConfigError, DatasetError, ValueError, FileNotFoundError) as error:  # bad input, said in one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    evaluator = Evaluator.load(args.out)
    seed = config.training.seed
    figures = evaluate_ground_truth(evaluator, test, seed=seed) if len(test) >= TOP_K else None
    if figures is not None:
        plot_evaluation(evaluator, test, figures, args.out / EVAL_PNG, seed=seed)
    result = {"data": str(args.data), "test": figures, "training": training}
    (args.out / EVAL_JSON).write_text(json.dumps(result, indent=2) + "\n")
    print(format_summary(training, figures, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
