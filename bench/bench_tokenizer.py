"""Benchmark: train the default motion tokenizer, evaluate it on held-out motions, export it to ONNX.

Writes bench/results/tokenizer.json with `mpjpe_mm`, `codebook_usage`, `onnx_max_abs_diff`, the
training time and the remaining evaluation figures, plus commit, machine and creation time.
The acceptance targets are MPJPE below 30 mm and more than half of the codebook in use.

Data: `--data DIR` reads a folder in HumanML3D layout (its `test` split is held out). Without it the
benchmark generates the procedural emotional corpus (CORPUS_MOTIONS motions, fixed seed) and holds
out its test split.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from training.data.synth.corpus import CorpusConfig, write_corpus  # noqa: E402
from training.tokenizer.cli import FeatureSplits, load_humanml3d  # noqa: E402
from training.tokenizer.evaluate import evaluate_tokenizer, format_summary  # noqa: E402
from training.tokenizer.export import export_onnx, onnx_max_abs_diff  # noqa: E402
from training.tokenizer.train import default_config_path, load_training_config, train_tokenizer  # noqa: E402

from common import machine_info, write_result  # noqa: E402  (bench/common.py, beside this file)

RESULT_NAME = "tokenizer"
FPS = 20.0


CORPUS_MOTIONS = 1200  # the procedural corpus the benchmark trains on; its test split is held out
CORPUS_SEED = 0


def procedural_corpus(motions: int = CORPUS_MOTIONS, seed: int = CORPUS_SEED, window: int = 64) -> FeatureSplits:
    """The project's procedural emotional corpus, generated into a temporary folder and read back."""
    folder = Path(tempfile.mkdtemp(prefix="tokenizer-corpus-"))
    write_corpus(folder, CorpusConfig(motions=motions, seed=seed))
    return load_humanml3d(folder, window)


def run_benchmark(
    data_source: Callable[[], FeatureSplits] = procedural_corpus,
    steps: int | None = None,
    config_path: str | Path | None = None,
    work_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train the configured tokenizer on `data_source()`, evaluate it on the test split, export it."""
    config = load_training_config(config_path or default_config_path())
    run = replace(config.training, steps=steps) if steps else config.training
    corpus = data_source()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(work_dir or scratch)
        result = train_tokenizer(
            corpus.train,
            corpus.val,
            config.model,
            out,
            run.steps,
            run.batch_size,
            run.window,
            run.lr,
            run.seed,
            resume=False,
            options=config.options,
            mean=corpus.mean,
            std=corpus.std,
            progress=progress,
        )
        figures = evaluate_tokenizer(result.tokenizer, corpus.test, out / "eval", corpus.test_ids)
        export_onnx(result.tokenizer, result.folder)
        figures["onnx_max_abs_diff"] = onnx_max_abs_diff(result.tokenizer, result.folder, seed=run.seed)
    figures.update(
        training_seconds=round(result.seconds, 1),
        steps=run.steps,
        batch_size=run.batch_size,
        window=run.window,
        train_motions=len(corpus.train),
        model=asdict(config.model),
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="HumanML3D-layout folder; default: the procedural corpus")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--config", type=Path, help="training YAML (default: config/training/tokenizer.yaml)")
    parser.add_argument("--work-dir", type=Path, help="keep checkpoints and plots here (default: a temporary folder)")
    parser.add_argument(
        "--motions",
        type=int,
        default=CORPUS_MOTIONS,
        help=f"procedural corpus size when --data is not given (default {CORPUS_MOTIONS})",
    )
    args = parser.parse_args(argv)
    config = load_training_config(args.config or default_config_path())
    source = (
        (lambda: load_humanml3d(args.data, config.training.window))
        if args.data
        else (lambda: procedural_corpus(args.motions, window=config.training.window))
    )
    began = time.perf_counter()
    figures = run_benchmark(source, args.steps, args.config, args.work_dir)
    figures["wall_seconds"] = round(time.perf_counter() - began, 1)
    figures["data"] = str(args.data) if args.data else f"procedural corpus ({args.motions} motions, seed {CORPUS_SEED})"
    path = write_result(RESULT_NAME, figures)
    print(format_summary(figures))
    print(f"training: {figures['training_seconds']:.0f} s for {figures['steps']} steps on {machine_info()['cpu']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
