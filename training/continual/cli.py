"""`motion-agent-train continual`: train one method on a task stream, task by task, scoring every task
(seen and unseen, T2M and M2T) after each one.

Inputs are the folders the earlier stages write: a task stream (`motion-agent-data streams`), the corpus
it was cut from (HumanML3D layout), a base model (`motion-agent-train base`) and a frozen evaluator
(`motion-agent-train evaluator`). OUT receives:

  OUT/run.json                 per finished task: training figures and the scores of every task
  OUT/experts/<task>/adapter/  the expert that task left (peft, safetensors)
  OUT/baseline.json            every task scored by the base model alone (forward transfer's reference)
  OUT/report.json, report.md   score matrices r[i][j], AF AR AD AMM AWF FR BWT FWT (R-Precision in points)
  OUT/heatmaps/<method>.png    the matrices as heatmaps

Run the same command again to continue an interrupted run: finished tasks are not retrained.
On a real HumanML3D folder:
  motion-agent-data streams --corpus HumanML3D --kind clusters --out streams/clusters
  motion-agent-train continual --stream streams/clusters --corpus HumanML3D --base base --evaluator evaluator \\
      --method o-lora --out runs/o-lora
Multi-GPU: `accelerate launch -m training.cli continual ...`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from motion_agent.config import ConfigError
from training.data.humanml3d import DatasetError

INPUT_FOLDERS = ("stream", "corpus", "base", "evaluator")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The inputs and overrides shared by `continual` and `benchmark`."""
    parser.add_argument("--stream", type=Path, required=True, help="task stream folder (motion-agent-data streams)")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder in HumanML3D layout the stream cuts")
    parser.add_argument("--base", type=Path, required=True, help="base-model folder (motion-agent-train base)")
    parser.add_argument("--evaluator", type=Path, required=True, help="evaluator folder (motion-agent-train evaluator)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; an unfinished run there is continued")
    parser.add_argument(
        "--order",
        nargs="+",
        metavar="TASK",
        help="task order: names (or 0-based positions) of the stream's tasks; a subset runs only those",
    )
    parser.add_argument("--config", type=Path, help="YAML settings (default: config/training/continual.yaml)")
    parser.add_argument("--steps", type=int, help="training steps per task (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="examples per step (overrides the config)")
    parser.add_argument("--lr", type=float, help="peak learning rate (overrides the config)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config)")
    parser.add_argument("--eval-clips", type=int, help="test clips scored per task, 0 = all (overrides the config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def settings(args: argparse.Namespace):
    """The config file with the command-line overrides applied; checks the input folders exist."""
    from training.continual.config import load_continual_config

    for name in INPUT_FOLDERS:
        if not getattr(args, name).is_dir():
            raise FileNotFoundError(f"--{name} {getattr(args, name)} is not a folder")
    config = load_continual_config(args.config)
    flags = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "seed") if getattr(args, k) is not None}
    config = replace(config, training=replace(config.training, **flags))
    if args.eval_clips is not None:
        config = replace(config, evaluation=replace(config.evaluation, clips_per_task=args.eval_clips))
    return config


def known_errors() -> tuple[type[Exception], ...]:
    from motion_agent.model.backbone import BackboneError
    from motion_agent.model.base_model import BaseModelError

    return ConfigError, DatasetError, BackboneError, BaseModelError, ValueError, FileNotFoundError


def build_parser() -> argparse.ArgumentParser:
    from training.continual.methods import METHODS

    parser = argparse.ArgumentParser(
        prog="motion-agent-train continual",
        description="Train one continual method on a task stream and score every task after every task.",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--method",
        required=True,
        choices=list(METHODS),
        help="mtl (upper bound), seq-lora (lower bound), lwf-lora, o-lora, ...",
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.continual.report import comparison, summary_lines, write_report
    from training.continual.trainer import run_continual

    try:
        config = settings(args)
        state = run_continual(
            args.stream,
            args.corpus,
            args.base,
            args.evaluator,
            args.method,
            args.out,
            config,
            args.order,
            progress=not args.quiet,
        )
        record = comparison({args.method: [state]})
        paths = write_report(record, args.out)
    except known_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = sum(step["train"]["seconds"] for step in state["steps"])
    print(f"{args.method}: {len(state['steps'])} tasks trained in {seconds:.0f} s, experts in {args.out / 'experts'}")
    print("\n".join(summary_lines(record)))
    print(f"  report: {paths['markdown']}, {paths['json']}, heatmaps in {args.out / 'heatmaps'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
