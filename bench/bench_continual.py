"""Benchmark: the continual methods on a task stream of the procedural corpus, in several task orders.

Writes bench/results/continual_<kind>.json (the `tiny` profile) or continual_<kind>_<profile>.json (and
the Table-2 style summary beside it as .md), with
`profile`, `tasks`, `orders` and, under `methods.<name>`, FR AR AF AD AMM AWF BWT FWT (R-Precision-based
figures in points), the score matrices r[i][j] and `train_seconds` (the project's results contract),
plus commit, machine and creation time. The Table-2 style Markdown and the heatmaps land beside the runs
in the work folder (OUT/benchmark_<kind>_<profile>/report.md, heatmaps/).

Everything it needs is made when not given: the corpus (CORPUS_MOTIONS motions, fixed seed, and
EXTRA_TEST_MOTIONS more that go to its test split only, so that each task is scored on about 65 clips
rather than 22 while the train split, and so the embedded base model, stay valid), its stream,
the motion tokenizer, the evaluator and the base model, each with the shipped config/training/*.yaml.
The `tiny` profile uses the embedded default base model instead when it was built from the same corpus
(`--train-base` trains one here anyway). All
of it lives in the work folder (default: out/bench_continual, git-ignored), and each stage is skipped when
its output is there, so running the command again after an interruption continues the benchmark.
Each finished run (one method, one task order) also leaves its record, its run.json, in
bench/results/continual_<kind>[_<profile>]_runs/, committed with the results, beside a copy of the
evaluator that scored them: the benchmark continues from those on a fresh checkout or another machine,
scoring with that evaluator, as long as the base model and settings are the same.
Hours of runs can be split over processes with --methods (say, two on 2 cores); such a `tiny` run records
its finished runs but writes no comparison, which one plain run does at the end from every record. A real
backbone's run (one order, one process) writes the comparison of the methods it ran.

`--profile tiny` (default) runs every method in 3 orders on 5 of the stream's 8 tasks (the other 3 are
held out of training for the routers' unknown detection; config/training/continual.yaml), hours on 2 CPU
cores; `--profile smollm2-135m` runs mtl, seq-lora (and moe-hard where it exists) in one order, on a GPU
when one is visible. For a quick check of the plumbing, shrink it:
  python bench/bench_continual.py --motions 480 --extra-test-motions 80 --tokenizer-steps 50 \\
      --base-steps 20 --evaluator-epochs 2 \\
      --steps 5 --eval-clips 3 --orders 1 --work-dir /tmp/continual-check --no-result
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from training.continual.config import ContinualConfig, load_continual_config  # noqa: E402
from training.continual.report import json_ready, summary_lines  # noqa: E402
from training.data.streams import KINDS  # noqa: E402
from training.evaluation.evaluator import CONFIG_FILE as EVALUATOR_CONFIG  # noqa: E402

from common import RESULTS_DIR, write_result  # noqa: E402  (bench/common.py, beside this file)
from stages import (
    CORPUS_MOTIONS,
    CORPUS_SEED,
    EXTRA_TEST_MOTIONS,
    SMOLLM2,
    TINY,
    add_base_training_arguments,
    embedded_base,  # noqa: E402
    make_base,
    make_corpus,
    make_evaluator,
    make_stream,
    make_tokenizer,
    timed,
)

REAL_BACKBONE_METHODS = ("mtl", "seq-lora", "moe-hard")  # moe-hard only where it is registered
DEFAULT_WORK_DIR = REPO / "out" / "bench_continual"


def result_name(kind: str, profile: str) -> str:
    return f"continual_{kind}" if profile == TINY else f"continual_{kind}_{profile}"


def benchmark_settings(args: argparse.Namespace) -> tuple[ContinualConfig, list[str] | None, int | None]:
    """The continual config with the flags applied, and the methods and order count for the profile."""
    from training.continual.methods import METHODS

    config = load_continual_config(args.config)
    if args.steps:
        config = replace(config, training=replace(config.training, steps=args.steps))
    if args.eval_clips is not None:
        config = replace(config, evaluation=replace(config.evaluation, clips_per_task=args.eval_clips))
    if args.mixed_precision:
        config = replace(config, training=replace(config.training, mixed_precision=args.mixed_precision))
    methods, orders = args.methods, args.orders
    if args.profile != TINY:
        methods = methods or [m for m in REAL_BACKBONE_METHODS if m in METHODS]
        orders = orders or 1
    return config, methods, orders


def run(args: argparse.Namespace) -> tuple[dict, Path]:
    from training.continual.benchmark import run_benchmark

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with timed("corpus", seconds):
        corpus = args.corpus or make_corpus(work, args.motions, args.extra_test_motions)
        stream = args.stream or make_stream(work, corpus, args.kind)
    records = None if args.no_result else RESULTS_DIR / f"{result_name(args.kind, args.profile)}_runs"
    with timed("evaluator", seconds):
        evaluator, records = scoring_evaluator(args, work, corpus, records)
    custom = args.corpus or args.base_steps or args.tokenizer_steps or args.train_base
    base = args.base or (None if custom else embedded_base(args.profile, args.motions))
    if base is None:
        with timed("tokenizer", seconds):
            tokenizer = make_tokenizer(work, corpus, args.tokenizer_steps)
        with timed("base", seconds):
            base = make_base(work, corpus, tokenizer, args.profile, args.base_steps, args.mixed_precision)
    config, methods, orders = benchmark_settings(args)
    out = work / f"benchmark_{args.kind}_{args.profile}"
    with timed("benchmark", seconds):
        record = run_benchmark(
            stream, corpus, base, evaluator, out, config, methods, orders, profile=args.profile, records=records
        )
    record = json_ready(record)
    record.update(
        stream_kind=args.kind,
        stage_seconds=seconds,
        settings=asdict(config),
        data=str(args.corpus)
        if args.corpus
        else (
            f"procedural corpus ({args.motions} motions, seed {CORPUS_SEED}, "
            f"{args.extra_test_motions} more in the test split)"
        ),
        report=str(out / "report.md"),
    )
    return record, out


def scoring_evaluator(
    args: argparse.Namespace, work: Path, corpus: Path, records: Path | None
) -> tuple[Path, Path | None]:
    """The frozen evaluator, and the records folder to continue from. Every run of one comparison must be
    scored by the same evaluator, and one trained again elsewhere differs (floating point, thread counts),
    so the records keep the evaluator their runs were scored with: it is used when there, and one trained
    here is copied there. A profile without one of its own uses the tiny profile's (the same procedural
    corpus), so that both backbones are scored alike. An --evaluator of one's own is not mixed with the records."""
    if args.evaluator:
        return args.evaluator, None
    kept = records / "evaluator" if records else None
    if kept is not None and (kept / EVALUATOR_CONFIG).is_file():
        return kept, records
    tiny = RESULTS_DIR / f"{result_name(args.kind, TINY)}_runs" / "evaluator"
    if kept is not None and not args.corpus and (tiny / EVALUATOR_CONFIG).is_file():
        return tiny, records  # the same corpus: a real backbone is scored as the tiny one was
    evaluator = make_evaluator(work, corpus, args.evaluator_epochs)
    if kept is not None:
        shutil.copytree(evaluator, kept)
    return evaluator, records


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=TINY, help=f"backbone profile: {TINY} (default) or {SMOLLM2}")
    parser.add_argument("--kind", default="unseen", choices=KINDS, help="stream kind (default: unseen)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="where the corpus, models and runs live; kept, so a rerun continues (default: %(default)s)",
    )
    parser.add_argument("--corpus", type=Path, help="HumanML3D-layout folder (default: the procedural corpus)")
    parser.add_argument("--stream", type=Path, help="task stream folder (default: made from the corpus)")
    parser.add_argument("--base", type=Path, help="base-model folder (default: trained here)")
    parser.add_argument("--evaluator", type=Path, help="evaluator folder (default: trained here)")
    parser.add_argument(
        "--train-base",
        action="store_true",
        help="train the tokenizer and base model here even when the embedded default one fits",
    )
    parser.add_argument("--config", type=Path, help="continual YAML (default: config/training/continual.yaml)")
    parser.add_argument(
        "--methods",
        nargs="+",
        help="methods (default: the config's; mtl, seq-lora[, moe-hard] "
        "for a real backbone); with a subset of tiny's, finished runs are recorded but no "
        "comparison is written",
    )
    parser.add_argument("--orders", type=int, help="task orders (default: the config's; 1 for a real backbone)")
    parser.add_argument("--motions", type=int, default=CORPUS_MOTIONS, help="procedural corpus size")
    parser.add_argument(
        "--extra-test-motions",
        type=int,
        default=EXTRA_TEST_MOTIONS,
        help="procedural motions added to the test split only (default: %(default)s)",
    )
    parser.add_argument("--steps", type=int, help="training steps per task (default: the config's)")
    parser.add_argument("--eval-clips", type=int, help="test clips scored per task (default: the config's)")
    parser.add_argument("--tokenizer-steps", type=int, help="tokenizer training steps (default: its config's)")
    add_base_training_arguments(parser)
    parser.add_argument("--evaluator-epochs", type=int, help="evaluator epochs (default: its config's)")
    parser.add_argument(
        "--no-result",
        action="store_true",
        help="write nothing to bench/results, neither the comparison nor run records (quick checks)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    record, out = run(args)
    record["wall_seconds"] = round(time.perf_counter() - began, 1)
    print("\n".join(summary_lines(record)))
    print(f"table: {out / 'report.md'}  heatmaps: {out / 'heatmaps'}  wall time {record['wall_seconds']:.0f} s")
    if not args.no_result and args.methods and args.profile == TINY:
        print(
            f"finished runs recorded in {RESULTS_DIR / (result_name(args.kind, args.profile) + '_runs')}; "
            "run without --methods to write the comparison"
        )
    elif not args.no_result:
        path = write_result(result_name(args.kind, args.profile), record)
        summary = path.with_suffix(".md")
        summary.write_text(
            f"# Continual benchmark: {args.kind} stream, {args.profile}\n\n"
            f"`{' '.join(['python bench/bench_continual.py', *(argv if argv is not None else sys.argv[1:])])}` "
            f"at commit {json.loads(path.read_text())['commit'][:10]}"
            f", {record['orders']} task order(s)\n\n" + (out / "report.md").read_text()
        )
        print(f"wrote {path} and {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
