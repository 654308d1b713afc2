"""The stages benchmarks share: the procedural corpus, its task stream, the motion tokenizer, the
evaluator and the base model, each made with the shipped config/training/*.yaml in a work folder and
skipped when its output is already there (so an interrupted benchmark continues where it stopped)."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

CORPUS_MOTIONS = 1200  # as the tokenizer benchmark: about 150 motions per scenario
EXTRA_TEST_MOTIONS = 360  # test-only: about 45 more test clips per scenario, for steadier R-Precision
CORPUS_SEED = 0
TINY = "tiny"
SMOLLM2 = "smollm2-135m"


@contextmanager
def timed(stage: str, seconds: dict[str, float]):
    """Record the wall time of a stage (0 when it was already done and skipped)."""
    began = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - began, 1)


def make_corpus(work: Path, motions: int, extra_test: int) -> Path:
    """The procedural corpus; one made with other extra test motions is extended or cut in place (its
    first `motions` and their split are the same either way, so models trained on it stay valid)."""
    from training.data.synth.corpus import CorpusConfig, write_corpus

    folder = work / "corpus"
    config = CorpusConfig(motions=motions, seed=CORPUS_SEED, extra_test_motions=extra_test)
    made = json.loads((folder / "corpus.json").read_text())["config"] if (folder / "corpus.json").is_file() else None
    if made is None or made.get("motions") != motions or made.get("extra_test_motions", 0) != extra_test:
        write_corpus(folder, config)
    return folder


def make_stream(work: Path, corpus: Path, kind: str) -> Path:
    from training.data.streams import StreamConfig, write_stream

    folder = work / f"stream_{kind}"
    made, synth = folder / "tasks.json", corpus / "corpus.json"
    if not made.is_file() or (synth.is_file() and made.stat().st_mtime < synth.stat().st_mtime):
        write_stream(corpus, folder, StreamConfig(kind=kind))  # new, or the corpus was made again since
    return folder


def make_tokenizer(work: Path, corpus: Path, steps: int | None) -> Path:
    from motion_agent.model.tokenizer import CONFIG_FILE
    from training.tokenizer.cli import load_humanml3d
    from training.tokenizer.train import default_config_path, load_training_config, train_tokenizer

    folder = work / "tokenizer"
    if not (folder / "tokenizer" / CONFIG_FILE).is_file():
        config = load_training_config(default_config_path())
        run = config.training
        data = load_humanml3d(corpus, run.window)
        train_tokenizer(
            data.train,
            data.val,
            config.model,
            folder,
            steps or run.steps,
            run.batch_size,
            run.window,
            run.lr,
            run.seed,
            resume=True,
            options=config.options,
            mean=data.mean,
            std=data.std,
        )
    return folder / "tokenizer"


def make_evaluator(work: Path, corpus: Path, epochs: int | None) -> Path:
    from training.evaluation.evaluator import CONFIG_FILE, default_config_path, load_config
    from training.evaluation.evaluator_training import train_evaluator

    folder = work / "evaluator"
    if not (folder / CONFIG_FILE).is_file():
        config = load_config(default_config_path())
        if epochs:
            config = replace(config, training=replace(config.training, epochs=epochs))
        train_evaluator(corpus, folder, config)
    return folder


def embedded_base(profile: str, motions: int) -> Path | None:
    """The embedded model's base of `profile`, when it is the one this benchmark would train: built on the
    same procedural corpus (its manifest's corpus, or for older manifests their synth command). It
    saves the hours the tokenizer and base stages take on 2 cores, and benchmarks the model users get."""
    from motion_agent.model.base_model import MANIFEST_FILE, embedded_model

    folder = embedded_model(profile)
    if folder is None or not (folder / MANIFEST_FILE).is_file():
        return None
    built = json.loads((folder / MANIFEST_FILE).read_text())
    synth = f"--motions {motions} --seed {CORPUS_SEED}"
    same = built.get("corpus") == {"motions": motions, "seed": CORPUS_SEED} or any(
        synth in command for command in built.get("commands", [])
    )
    return folder / "base" if same else None


def add_base_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The base stage's flags, the same in every benchmark that trains a base model."""
    from training.base.train import MIXED_PRECISION

    parser.add_argument("--base-steps", type=int, help="base-model training steps (default: its config's)")
    parser.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        help="training precision of the base model (and of the experts, where the benchmark "
        "trains them) (default: the configs'); bf16 trained smollm2-135m 1.6x as fast on "
        "a 2-core AMX CPU",
    )


def make_base(
    work: Path, corpus: Path, tokenizer: Path, profile: str, steps: int | None, mixed_precision: str | None = None
) -> Path:
    """The base model of `profile`, trained once; an interrupted training continues from its checkpoint."""
    from motion_agent.model.base_model import SPEC_FILE
    from training.base.train import load_base_config, train_base

    folder = work / f"base_{profile}"
    if not (folder / SPEC_FILE).is_file():
        config = replace(load_base_config(), backbone=profile)
        overrides = {k: v for k, v in (("steps", steps), ("mixed_precision", mixed_precision)) if v}
        config = replace(config, training=replace(config.training, **overrides))
        train_base(corpus, tokenizer, folder, config)
    return folder
