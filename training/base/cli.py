"""`motion-agent-train base`: the base stage of the motion-language model.

Reads a corpus in HumanML3D layout and a trained motion tokenizer folder (from `motion-agent-train
tokenizer`), adds the motion tokens to the backbone, trains their embedding rows and a base LoRA on
text-to-motion and motion-to-text, and writes OUT:

  OUT/base.json       backbone, fingerprints (the one experts and bundles must name)
  OUT/adapter/        peft adapter: LoRA weights and motion-token rows (safetensors)
  OUT/tokenizer/      the motion tokenizer the codes come from
  OUT/history.json    training and validation losses
  OUT/loss.png        the same, plotted

Long runs checkpoint every `checkpoint_every` steps into OUT/checkpoint/ (model, optimizer, random
states, progress); the same command with the same OUT and settings continues from there after an
interruption, bit for bit as if it had not stopped. The checkpoint is removed once the model is saved.

Load it with motion_agent.model.base_model.load_base_model(OUT).
Multi-GPU: `accelerate launch -m training.cli base ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from motion_agent.config import ConfigError
from training.base.train import MIXED_PRECISION
from training.data.humanml3d import DatasetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motion-agent-train base",
        description="Train the base motion-language model (motion-token embeddings + base LoRA, both directions).",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="corpus folder in HumanML3D layout")
    parser.add_argument("--tokenizer", type=Path, required=True, help="trained motion tokenizer folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the base model")
    parser.add_argument("--config", type=Path, help="training YAML (default: config/training/base.yaml)")
    parser.add_argument("--backbone", help="profile (tiny, smollm2-135m) or model folder (overrides the config)")
    parser.add_argument("--steps", type=int, help="training steps (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="examples per step (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument(
        "--checkpoint-every", type=int, help="steps between resumable checkpoints, 0 for none (overrides the config)"
    )
    parser.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        help="bf16 autocasts the forward pass: faster on CPUs with AMX or AVX512-BF16 and on GPUs "
        "(overrides the config)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def plot_history(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [h for h in history if "loss" in h]
    ax.plot([h["step"] for h in train], [h["loss"] for h in train], label="train (mixed)")
    for key in ("val_t2m_loss", "val_m2t_loss"):
        points = [h for h in history if key in h]
        ax.plot([h["step"] for h in points], [h[key] for h in points], "o--", label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy on target tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from motion_agent.model.backbone import BackboneError
    from training.base.train import HISTORY_FILE, load_base_config, train_base

    try:
        for flag, path in (("--data", args.data), ("--tokenizer", args.tokenizer)):
            if not path.is_dir():
                raise FileNotFoundError(f"{flag} {path} is not a folder")
        config = load_base_config(args.config)
        flags = {
            k: getattr(args, k)
            for k in ("steps", "batch_size", "lr", "seed", "checkpoint_every", "mixed_precision")
            if getattr(args, k) is not None
        }
        config = replace(config, training=replace(config.training, **flags))
        if args.backbone:
            config = replace(config, backbone=args.backbone)
        figures = train_base(args.data, args.tokenizer, args.out, config, progress=not args.quiet)
    except (ConfigError, DatasetError, BackboneError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    history = json.loads((args.out / HISTORY_FILE).read_text())
    plot = plot_history(history, args.out / "loss.png")
    print(f"base model ({config.backbone}) written to {args.out}")
    resumed = f" (resumed at step {figures['resumed_from_step']})" if figures["resumed_from_step"] else ""
    print(
        f"  trained {config.training.steps} steps on {figures['train_clips']} clips "
        f"in {figures['train_seconds']:.0f} s{resumed}"
    )
    print(f"  validation loss: text->motion {figures['val_t2m_loss']:.3f}, motion->text {figures['val_m2t_loss']:.3f}")
    print(f"  loss curve: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
