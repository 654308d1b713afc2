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

`--profile tiny` (default) runs every method in 3 orders on 5 of the stream's 8 tasks (the other 3 are
held out of training for the routers' unknown detection; config/training/continual.yaml), hours on 2 CPU
cores; `--profile smollm2-135m` runs mtl, seq-lora (and moe-hard where it exists) in one order, on a GPU
when one is visible. For a quick check of the plumbing, shrink it:
  python bench/bench_continual.py --motions 480 --extra-test-motions 0 --tokenizer-steps 50 --base-steps 20 --evaluator-epochs 2 \\
      --steps 5 --eval-clips 3 --orders 1 --work-dir /tmp/continual-check --no-result
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from common import write_result  # noqa: E402  (bench/common.py, beside this file)

from training.continual.config import ContinualConfig, load_continual_config  # noqa: E402
from training.continual.report import json_ready, summary_lines  # noqa: E402
from training.streams import KINDS  # noqa: E402

CORPUS_MOTIONS = 1200  # as the tokenizer benchmark: about 150 motions per scenario
EXTRA_TEST_MOTIONS = 360  # test-only: about 45 more test clips per scenario, for steadier R-Precision
CORPUS_SEED = 0
TINY = "tiny"
SMOLLM2 = "smollm2-135m"
REAL_BACKBONE_METHODS = ("mtl", "seq-lora", "moe-hard")  # moe-hard only where it is registered
DEFAULT_WORK_DIR = REPO / "out" / "bench_continual"


def result_name(kind: str, profile: str) -> str:
    return f"continual_{kind}" if profile == TINY else f"continual_{kind}_{profile}"


@contextmanager
def timed(stage: str, seconds: dict[str, float]):
    """Record the wall time of a stage (0 when it was already done and skipped)."""
    began = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - began, 1)


def make_corpus(work: Path, motions: int, extra_test: int) -> Path:
    """The procedural corpus; one made with other extra test motions is extended or cut in place (its
    first `motions` and their split are the same either way, so models trained on it stay valid)."""
    from training.synth.corpus import CorpusConfig, write_corpus

    folder = work / "corpus"
    config = CorpusConfig(motions=motions, seed=CORPUS_SEED, extra_test_motions=extra_test)
    made = json.loads((folder / "corpus.json").read_text())["config"] if (folder / "corpus.json").is_file() else None
    if made is None or made.get("motions") != motions or made.get("extra_test_motions", 0) != extra_test:
        write_corpus(folder, config)
    return folder


def make_stream(work: Path, corpus: Path, kind: str) -> Path:
    from training.streams import StreamConfig, write_stream

    folder = work / f"stream_{kind}"
    made, synth = folder / "tasks.json", corpus / "corpus.json"
    if not made.is_file() or (synth.is_file() and made.stat().st_mtime < synth.stat().st_mtime):
        write_stream(corpus, folder, StreamConfig(kind=kind))  # new, or the corpus was made again since
    return folder


def make_tokenizer(work: Path, corpus: Path, steps: int | None) -> Path:
    from motion_agent.tokenizer import CONFIG_FILE
    from training.tokenizer_cli import load_humanml3d
    from training.tokenizer_training import default_config_path, load_training_config, train_tokenizer

    folder = work / "tokenizer"
    if not (folder / "tokenizer" / CONFIG_FILE).is_file():
        config = load_training_config(default_config_path())
        run = config.training
        data = load_humanml3d(corpus, run.window)
        train_tokenizer(data.train, data.val, config.model, folder, steps or run.steps, run.batch_size, run.window,
                        run.lr, run.seed, resume=True, options=config.options, mean=data.mean, std=data.std)
    return folder / "tokenizer"


def make_evaluator(work: Path, corpus: Path, epochs: int | None) -> Path:
    from training.evaluator import CONFIG_FILE, default_config_path, load_config, train_evaluator

    folder = work / "evaluator"
    if not (folder / CONFIG_FILE).is_file():
        config = load_config(default_config_path())
        if epochs:
            config = replace(config, training=replace(config.training, epochs=epochs))
        train_evaluator(corpus, folder, config)
    return folder


def embedded_base(args: argparse.Namespace) -> Path | None:
    """The embedded default base model, when it is the one this benchmark would train: the tiny profile
    on the same procedural corpus (its manifest's synth command) with the default steps. It saves the
    half hour the tokenizer and base stages take on 2 cores, and benchmarks the model users get."""
    from motion_agent.base_model import DEFAULT_MODEL_DIR, default_base_model

    manifest = DEFAULT_MODEL_DIR / "manifest.json"
    if args.profile != TINY or args.corpus or args.base_steps or args.tokenizer_steps or args.train_base:
        return None
    if default_base_model() is None or not manifest.is_file():
        return None
    synth = f"--motions {args.motions} --seed {CORPUS_SEED}"
    built = json.loads(manifest.read_text())
    return default_base_model() if any(synth in command for command in built.get("commands", [])) else None


def make_base(work: Path, corpus: Path, tokenizer: Path, profile: str, steps: int | None) -> Path:
    from motion_agent.base_model import SPEC_FILE
    from training.base_training import load_base_config, train_base

    folder = work / f"base_{profile}"
    if not (folder / SPEC_FILE).is_file():
        config = replace(load_base_config(), backbone=profile)
        if steps:
            config = replace(config, training=replace(config.training, steps=steps))
        train_base(corpus, tokenizer, folder, config)
    return folder


def benchmark_settings(args: argparse.Namespace) -> tuple[ContinualConfig, list[str] | None, int | None]:
    """The continual config with the flags applied, and the methods and order count for the profile."""
    from training.continual.methods import METHODS

    config = load_continual_config(args.config)
    if args.steps:
        config = replace(config, training=replace(config.training, steps=args.steps))
    if args.eval_clips is not None:
        config = replace(config, evaluation=replace(config.evaluation, clips_per_task=args.eval_clips))
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
    with timed("evaluator", seconds):
        evaluator = args.evaluator or make_evaluator(work, corpus, args.evaluator_epochs)
    base = args.base or embedded_base(args)
    if base is None:
        with timed("tokenizer", seconds):
            tokenizer = make_tokenizer(work, corpus, args.tokenizer_steps)
        with timed("base", seconds):
            base = make_base(work, corpus, tokenizer, args.profile, args.base_steps)
    config, methods, orders = benchmark_settings(args)
    out = work / f"benchmark_{args.kind}_{args.profile}"
    with timed("benchmark", seconds):
        record = run_benchmark(stream, corpus, base, evaluator, out, config, methods, orders, profile=args.profile)
    record = json_ready(record)
    record.update(
        stream_kind=args.kind, stage_seconds=seconds, settings=asdict(config),
        data=str(args.corpus) if args.corpus else (f"procedural corpus ({args.motions} motions, seed {CORPUS_SEED}, "
                                                    f"{args.extra_test_motions} more in the test split)"),
        report=str(out / "report.md"),
    )
    return record, out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=TINY, help=f"backbone profile: {TINY} (default) or {SMOLLM2}")
    parser.add_argument("--kind", default="unseen", choices=KINDS, help="stream kind (default: unseen)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="where the corpus, models and runs live; kept, so a rerun continues (default: %(default)s)")
    parser.add_argument("--corpus", type=Path, help="HumanML3D-layout folder (default: the procedural corpus)")
    parser.add_argument("--stream", type=Path, help="task stream folder (default: made from the corpus)")
    parser.add_argument("--base", type=Path, help="base-model folder (default: trained here)")
    parser.add_argument("--evaluator", type=Path, help="evaluator folder (default: trained here)")
    parser.add_argument("--train-base", action="store_true",
                        help="train the tokenizer and base model here even when the embedded default one fits")
    parser.add_argument("--config", type=Path, help="continual YAML (default: config/training/continual.yaml)")
    parser.add_argument("--methods", nargs="+", help="methods (default: the config's; mtl, seq-lora[, moe-hard] "
                        "for a real backbone)")
    parser.add_argument("--orders", type=int, help="task orders (default: the config's; 1 for a real backbone)")
    parser.add_argument("--motions", type=int, default=CORPUS_MOTIONS, help="procedural corpus size")
    parser.add_argument("--extra-test-motions", type=int, default=EXTRA_TEST_MOTIONS,
                        help="procedural motions added to the test split only (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="training steps per task (default: the config's)")
    parser.add_argument("--eval-clips", type=int, help="test clips scored per task (default: the config's)")
    parser.add_argument("--tokenizer-steps", type=int, help="tokenizer training steps (default: its config's)")
    parser.add_argument("--base-steps", type=int, help="base-model training steps (default: its config's)")
    parser.add_argument("--evaluator-epochs", type=int, help="evaluator epochs (default: its config's)")
    parser.add_argument("--no-result", action="store_true", help="do not write bench/results (for quick checks)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    record, out = run(args)
    record["wall_seconds"] = round(time.perf_counter() - began, 1)
    print("\n".join(summary_lines(record)))
    print(f"table: {out / 'report.md'}  heatmaps: {out / 'heatmaps'}  wall time {record['wall_seconds']:.0f} s")
    if not args.no_result:
        path = write_result(result_name(args.kind, args.profile), record)
        summary = path.with_suffix(".md")
        summary.write_text(f"# Continual benchmark: {args.kind} stream, {args.profile}\n\n"
                           f"`python bench/bench_continual.py` at commit {json.loads(path.read_text())['commit'][:10]}"
                           f", {record['orders']} task order(s)\n\n"
                           + (out / "report.md").read_text())
        print(f"wrote {path} and {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
