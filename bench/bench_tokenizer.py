"""Benchmark: train the default motion tokenizer, evaluate it on held-out motions, export it to ONNX.

Writes bench/results/tokenizer.json with `mpjpe_mm`, `codebook_usage`, `onnx_max_abs_diff`, the
training time and the remaining evaluation figures, plus commit, machine and creation time.
The acceptance targets are MPJPE below 30 mm and more than half of the codebook in use.

Data: `--data DIR` reads a folder in HumanML3D layout (its `test` split is held out). Without it the
benchmark builds its own corpus from the built-in demo motions (walk, turn, jump), varied in playback
speed, body size, mirroring and length; held-out motions use speeds and sizes that training never
sees. The procedural motion corpus replaces this built-in corpus as the default once it exists: pass
its builder as `data_source` to `run_benchmark`.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from common import machine_info, write_result  # noqa: E402  (bench/common.py, beside this file)

from motion_agent.demo import DEMO_KINDS, demo_motion  # noqa: E402
from motion_agent.features import joints_to_features  # noqa: E402
from motion_agent.skeleton import JOINT_NAMES  # noqa: E402
from training.tokenizer_cli import load_humanml3d  # noqa: E402
from training.tokenizer_eval import evaluate_tokenizer, format_summary  # noqa: E402
from training.tokenizer_export import export_onnx, onnx_max_abs_diff  # noqa: E402
from training.tokenizer_training import default_config_path, load_training_config, train_tokenizer  # noqa: E402

RESULT_NAME = "tokenizer"
FPS = 20.0


@dataclass
class Corpus:
    """Raw (T, 263) features: training, validation and held-out test motions, with the test names."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    test_names: list[str]
    mean: np.ndarray | None = None  # the dataset's own normalisation, when it ships one
    std: np.ndarray | None = None


@dataclass(frozen=True)
class DemoCorpusSpec:
    """Which variations of the demo motions go into each split."""

    train_speeds: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
    train_scales: tuple[float, ...] = (0.9, 1.0, 1.1)
    held_out_speeds: tuple[float, ...] = (0.75, 0.95, 1.15, 1.25)
    held_out_scales: tuple[float, ...] = (0.95, 1.05)
    min_seconds: float = 5.0
    max_seconds: float = 10.0
    val_fraction: float = 0.5  # of the held-out variations; the rest is the test split
    seed: int = 0


def _mirror(joints: np.ndarray) -> np.ndarray:
    """Left and right swapped, the X axis flipped: a turn to the left becomes one to the right."""
    swapped_names = [n.replace("left_", "@").replace("right_", "left_").replace("@", "right_") for n in JOINT_NAMES]
    swap = [JOINT_NAMES.index(n) for n in swapped_names]
    mirrored = joints[:, swap].copy()
    mirrored[..., 0] *= -1
    return mirrored


def demo_variant(kind: str, seconds: float, speed: float, scale: float, mirror: bool) -> np.ndarray:
    """A demo motion played `speed` times faster (sampled exactly, no interpolation), for a body
    `scale` times the default size, optionally mirrored: (T, 22, 3) joints."""
    joints = demo_motion(kind, seconds * speed, fps=FPS / speed) * scale
    return _mirror(joints) if mirror else joints


def demo_corpus(spec: DemoCorpusSpec = DemoCorpusSpec()) -> Corpus:
    """The built-in corpus: every kind x speed x scale x mirroring, with random lengths."""
    rng = np.random.default_rng(spec.seed)

    def motions(speeds, scales):
        out = []
        for kind in DEMO_KINDS:
            for speed in speeds:
                for scale in scales:
                    for mirror in (False, True):
                        seconds = float(rng.uniform(spec.min_seconds, spec.max_seconds))
                        name = f"{kind} x{speed:g} s{scale:g}{' mirrored' if mirror else ''}"
                        out.append((name, joints_to_features(demo_variant(kind, seconds, speed, scale, mirror))))
        return out

    train = motions(spec.train_speeds, spec.train_scales)
    held_out = motions(spec.held_out_speeds, spec.held_out_scales)
    order = rng.permutation(len(held_out))
    cut = int(round(spec.val_fraction * len(held_out)))
    val = [held_out[i] for i in order[:cut]]
    test = [held_out[i] for i in sorted(order[cut:])]
    return Corpus([f for _, f in train], [f for _, f in val], [f for _, f in test], [n for n, _ in test])


def folder_corpus(folder: str | Path, window: int) -> Corpus:
    """A HumanML3D-layout folder: its train / val / test splits and its Mean / Std."""
    data = load_humanml3d(folder, window)
    return Corpus(data.train, data.val, data.test, data.test_ids, data.mean, data.std)


def run_benchmark(
    data_source: Callable[[], Corpus] = demo_corpus,
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
            corpus.train, corpus.val, config.model, out, run.steps, run.batch_size, run.window, run.lr, run.seed,
            resume=False, options=config.options, mean=corpus.mean, std=corpus.std, progress=progress,
        )
        figures = evaluate_tokenizer(result.tokenizer, corpus.test, out / "eval", corpus.test_names)
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
    parser.add_argument("--data", type=Path, help="HumanML3D-layout folder; default: the built-in demo corpus")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--config", type=Path, help="training YAML (default: config/training/tokenizer.yaml)")
    parser.add_argument("--work-dir", type=Path, help="keep checkpoints and plots here (default: a temporary folder)")
    args = parser.parse_args(argv)
    config = load_training_config(args.config or default_config_path())
    source = (lambda: folder_corpus(args.data, config.training.window)) if args.data else demo_corpus
    began = time.perf_counter()
    figures = run_benchmark(source, args.steps, args.config, args.work_dir)
    figures["wall_seconds"] = round(time.perf_counter() - began, 1)
    figures["data"] = str(args.data) if args.data else "built-in demo corpus"
    path = write_result(RESULT_NAME, figures)
    print(format_summary(figures))
    print(f"training: {figures['training_seconds']:.0f} s for {figures['steps']} steps on {machine_info()['cpu']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
