"""`motion-agent-train`: one entry point for the offline training stages.

Each stage lives in its own module with a `main(argv)`; this file only dispatches, so `--help` of a
stage is that module's own parser.
"""

from __future__ import annotations

import importlib
import sys

STAGES = {
    "tokenizer": ("training.tokenizer.cli", "train, evaluate and export the VQ-VAE motion tokenizer"),
    "evaluator": ("training.evaluation.cli", "train the frozen text-motion evaluator and emotion classifier"),
    "base": ("training.base.cli", "add motion tokens to a backbone and train the base adapter (T2M and M2T)"),
    "continual": ("training.continual.cli", "train one method on a task stream, scoring every task after each"),
    "benchmark": ("training.continual.benchmark_cli", "every method on a stream, several orders: the forgetting table"),
    "expert": ("training.expert.cli", "one new scenario's expert for a robot's deployed model and experts"),
}


def usage() -> str:
    lines = ["usage: motion-agent-train STAGE [--help | options]", "", "stages:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in STAGES.items()]
    lines += ["", "`motion-agent-train STAGE --help` explains a stage's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"error: unknown stage {stage!r}; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[stage][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
