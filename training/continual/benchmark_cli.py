"""`motion-agent-train benchmark`: every continual method on one task stream, in several task orders,
under the same settings; writes the comparison.

  OUT/report.md                  Table-2 style: AF AR AD AMM AWF FR BWT FWT per method (mean over orders)
  OUT/report.json                the same figures, every score matrix r[i][j], each order's figures
  OUT/heatmaps/<method>.png      r[i][j] heatmaps (first order)
  OUT/<method>/order_<k>/        each run (see `motion-agent-train continual --help`)

Run the same command again to continue an interrupted benchmark. The benchmark of the procedural corpus,
which also trains the tokenizer, evaluator and base model it needs: `python bench/bench_continual.py`.
"""

from __future__ import annotations

import argparse
import sys

from training.continual.cli import add_common_arguments, known_errors, settings


def build_parser() -> argparse.ArgumentParser:
    from training.continual.methods import METHODS

    parser = argparse.ArgumentParser(
        prog="motion-agent-train benchmark",
        description="Run every continual method on one task stream in several task orders and compare them.",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="methods to run (default: the config's)")
    parser.add_argument("--orders", type=int, help="task orders to average (default: the config's, 3)")
    parser.add_argument("--profile", default="", help="label recorded with the results (e.g. tiny)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.continual.benchmark import run_benchmark
    from training.continual.report import summary_lines

    try:
        config = settings(args)
        record = run_benchmark(
            args.stream,
            args.corpus,
            args.base,
            args.evaluator,
            args.out,
            config,
            args.methods,
            args.orders,
            args.order,
            args.profile,
            progress=not args.quiet,
        )
    except known_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(record)))
    print(
        f"  table: {args.out / 'report.md'}; figures and matrices: {args.out / 'report.json'}; "
        f"heatmaps: {args.out / 'heatmaps'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
