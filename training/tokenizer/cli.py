"""Command line: train the motion tokenizer on a HumanML3D-layout folder, evaluate it, export it to ONNX.

Reads DATA/new_joint_vecs/<id>.npy ((T, 263) features), DATA/Mean.npy, DATA/Std.npy and the split lists
DATA/train.txt, val.txt, test.txt (one id per line). Writes into OUT:

    checkpoints/step-NNNNNNN/   resumable checkpoints (safetensors + JSON, no pickle)
    tokenizer/                  the trained tokenizer, with decoder.onnx / encoder.onnx
    history.json                losses over training
    eval/tokenizer_eval.json    MPJPE, codebook usage, perplexity, ONNX agreement
    eval/tokenizer_eval.png     originals next to their reconstructions

Running it again with the same OUT continues from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from motion_agent.config import ConfigError
from training.data.humanml3d import DatasetError, HumanML3D

SPLITS = ("train", "val", "test")


@dataclass
class FeatureSplits:
    """Raw (T, 263) features per split, the ids of the test motions, and the dataset's Mean / Std."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    test_ids: list[str]
    mean: np.ndarray | None = None  # the dataset's own normalisation, when it ships one
    std: np.ndarray | None = None


def load_humanml3d(folder: str | Path, window: int) -> FeatureSplits:
    """Features of every split through the project's HumanML3D reader; motions shorter than `window`
    frames cannot fill a training window and are left out."""
    data = HumanML3D(folder)
    splits: dict[str, list[tuple[str, np.ndarray]]] = {split: [] for split in SPLITS}
    for split in (s for s in SPLITS if (data.root / f"{s}.txt").is_file()):
        splits[split] = data.features(split, window)
        left_out = len(data.ids(split)) - len(splits[split])
        if left_out:
            print(
                f"{split}: {len(splits[split])} motions ({left_out} listed but missing or shorter than {window} frames)"
            )
    return FeatureSplits(
        [f for _, f in splits["train"]],
        [f for _, f in splits["val"]],
        [f for _, f in splits["test"]],
        [i for i, _ in splits["test"]],
        data.mean,
        data.std,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motion-agent-train tokenizer",
        description="Train the motion tokenizer (a VQ-VAE that turns HumanML3D features into discrete tokens), "
        "evaluate it on a held-out split and export its decoder and encoder to ONNX.",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="folder in HumanML3D layout (see below)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; an existing run there is resumed")
    parser.add_argument("--config", type=Path, help="training YAML (default: config/training/tokenizer.yaml)")
    parser.add_argument("--steps", type=int, help="total training steps (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="windows per step (overrides the config)")
    parser.add_argument("--window", type=int, help="frames per training window, a multiple of 4 (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--eval-split", choices=SPLITS, default="test", help="split to evaluate on (default: test)")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch even if OUT holds checkpoints")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.tokenizer.evaluate import EVAL_JSON, evaluate_tokenizer, format_summary
    from training.tokenizer.train import default_config_path, load_training_config, train_tokenizer

    try:
        config = load_training_config(args.config or default_config_path())
        flags = ("steps", "batch_size", "window", "lr", "seed")
        run = replace(config.training, **{k: getattr(args, k) for k in flags if getattr(args, k) is not None})
        if run.window % config.model.downsampling:
            raise ValueError(f"the window ({run.window}) must be a multiple of {config.model.downsampling} frames")
        data = load_humanml3d(args.data, run.window)
        if not data.train:
            raise ValueError(f"{args.data} has no training motion of at least {run.window} frames")
        result = train_tokenizer(
            data.train,
            data.val,
            config.model,
            args.out,
            run.steps,
            run.batch_size,
            run.window,
            run.lr,
            run.seed,
            resume=not args.no_resume,
            options=config.options,
            mean=data.mean,
            std=data.std,
            progress=not args.quiet,
        )
    except (ConfigError, DatasetError, ValueError, FileNotFoundError) as error:  # bad input, said in one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    split = {"train": data.train, "val": data.val, "test": data.test}[args.eval_split]
    names = data.test_ids if args.eval_split == "test" else None
    eval_dir = args.out / "eval"
    figures = evaluate_tokenizer(result.tokenizer, split, eval_dir, names) if split else {}
    if not args.no_export:
        from training.tokenizer.export import export_onnx, onnx_max_abs_diff

        export_onnx(result.tokenizer, result.folder)
        figures["onnx_max_abs_diff"] = onnx_max_abs_diff(result.tokenizer, result.folder, seed=run.seed)
    if split:
        (eval_dir / EVAL_JSON).write_text(json.dumps(figures, indent=2) + "\n")
        print(format_summary(figures))
    else:
        print(f"no {args.eval_split} motions to evaluate")
        if "onnx_max_abs_diff" in figures:
            print(f"ONNX vs torch decoder max |diff| {figures['onnx_max_abs_diff']:.2e}")
    print(f"tokenizer {result.tokenizer.fingerprint()} saved to {result.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
