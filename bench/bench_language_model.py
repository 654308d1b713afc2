"""Benchmark: text-to-motion and motion-to-text quality of the base model, beside the ground truth.

Scores a base motion-language model on the held-out test split of the procedural corpus with the frozen
evaluator, and scores the real motions and captions of the same clips with the same evaluator, so that
each figure stands beside its ceiling. Issue targets: generated motions reach 80 % of the ground truth's
R-Precision top-3, generated captions 80 % of the real captions' evaluator R-Precision top-3.

Which model: `--profile tiny` (default) scores the embedded default base model, the one `make run`
serves, when it was built from this corpus; `--profile smollm2-135m` (or `--train`) trains a base of
that profile here first, on the embedded model's tokenizer, on a GPU when one is visible (hours on 2
CPU cores). Writes bench/results/language_model.json for smollm2-135m, the reported profile, and
language_model_<profile>.json for any other; a bar chart (language_model.png) and the captions
it wrote land in the work folder, which keeps the corpus, evaluator and models so a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from common import write_result  # noqa: E402  (bench/common.py, beside this file)
from stages import (
    CORPUS_MOTIONS,
    CORPUS_SEED,
    EXTRA_TEST_MOTIONS,
    SMOLLM2,
    TINY,
    add_base_training_arguments,  # noqa: E402
    embedded_base,
    make_base,
    make_corpus,
    make_evaluator,
    make_tokenizer,
    timed,
)

DEFAULT_WORK_DIR = REPO / "out" / "bench_language_model"
TARGET_SHARE = 0.8  # of the ground truth's R-Precision top-3, in both directions
PLOTTED = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "emotion_f1")


def base_model(args: argparse.Namespace, work: Path, corpus: Path, seconds: dict[str, float]) -> Path:
    """The embedded model of the profile when it fits the request, else one trained here (kept for reruns)."""
    from motion_agent.model.base_model import default_base_model, tokenizer_folder

    embedded = None if args.train else embedded_base(args.profile, CORPUS_MOTIONS)
    if embedded is not None:
        return embedded
    with timed("tokenizer", seconds):
        shipped = default_base_model()
        tokenizer = tokenizer_folder(shipped) if shipped is not None else make_tokenizer(work, corpus, None)
    with timed("base", seconds):
        return make_base(work, corpus, tokenizer, args.profile, args.base_steps, args.mixed_precision)


def score(base: Path, evaluator_dir: Path, corpus: Path, clips: int | None, weights: str | None = None) -> dict:
    """Model and ground-truth figures on the same held-out clips, by the same evaluator; with `weights`,
    the model runs through the fast path (agent.language_model.backend onnx) with those weights."""
    from motion_agent.model.base_model import BaseModelSpec, load_base_model, tokenizer_folder
    from motion_agent.model.tokenizer import MotionTokenizer
    from training.data.humanml3d import HumanML3D
    from training.evaluation.evaluator import Evaluator
    from training.evaluation.evaluator_training import evaluate_ground_truth
    from training.evaluation.lm_eval import EvalSettings, evaluate_m2t, evaluate_t2m, ground_truth

    evaluator = Evaluator.load(evaluator_dir)
    test = HumanML3D(corpus).clips("test")[:clips]
    lm = load_base_model(base)
    if weights is not None:
        from motion_agent.model.onnx_language_model import LanguageModelRuntime, OnnxLanguageModel

        lm = OnnxLanguageModel(lm, LanguageModelRuntime(weights=weights))
    tokenizer = MotionTokenizer.load(tokenizer_folder(base))
    settings = EvalSettings()
    truth = ground_truth(evaluator, test, settings)
    real = evaluate_ground_truth(evaluator, test)
    figures = {
        "profile": Path(BaseModelSpec.read(base).backbone).name,  # a profile, or a backbone folder's name
        "t2m": evaluate_t2m(lm, tokenizer, evaluator, test, settings),
        "t2m_ground_truth": truth["t2m"],
        "m2t": evaluate_m2t(lm, tokenizer, evaluator, test, settings),
        "m2t_ground_truth": truth["m2t"],
        "evaluator": {k: real[k] for k in ("r_precision_top1", "r_precision_top3", "emotion_f1", "clips")},
        "clips": len(test),
        "fingerprint": lm.fingerprint,
    }
    for direction in ("t2m", "m2t"):
        share = figures[direction]["r_precision_top3"] / max(
            figures[f"{direction}_ground_truth"]["r_precision_top3"], 1e-9
        )
        figures[f"{direction}_r_precision_top3_of_ground_truth"] = share
    figures["targets"] = {
        f"{d}_r_precision_top3_of_ground_truth": {
            "value": figures[f"{d}_r_precision_top3_of_ground_truth"],
            "target": TARGET_SHARE,
            "met": figures[f"{d}_r_precision_top3_of_ground_truth"] >= TARGET_SHARE,
        }
        for d in ("t2m", "m2t")
    }
    return figures


def plot(figures: dict, path: Path) -> Path:
    """Model beside ground truth, bar by bar: the comparison people look for first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PLOTTED if k in figures["t2m"]]  # emotion F1 only where the corpus has emotions
    names = keys + ["m2t r_precision_top3"]
    model = [figures["t2m"][k] for k in keys] + [figures["m2t"]["r_precision_top3"]]
    truth = [figures["t2m_ground_truth"][k] for k in keys] + [figures["m2t_ground_truth"]["r_precision_top3"]]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([i - 0.2 for i in x], truth, 0.4, label="ground truth", color="0.6")
    ax.bar([i + 0.2 for i in x], model, 0.4, label=f"base model ({figures['profile']})", color="tab:blue")
    ax.set_xticks(list(x), [n.replace("_", " ") for n in names], rotation=15)
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    ax.set_title(f"Held-out quality by the frozen evaluator ({figures['clips']} clips)")
    ax.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary_lines(figures: dict) -> list[str]:
    t2m, gt, m2t = figures["t2m"], figures["t2m_ground_truth"], figures["m2t"]
    lines = [
        f"base model {figures['profile']} ({figures['fingerprint'][:12]}), {figures['clips']} held-out clips",
        f"{'':<22}{'model':>9}{'ground truth':>14}",
    ]
    for key in ("r_precision_top1", "r_precision_top3", "fid", "diversity", "multimodality", "mm_dist", "emotion_f1"):
        if key in t2m:
            lines.append(f"T2M {key:<18}{t2m[key]:>9.3f}{gt.get(key, float('nan')):>14.3f}")
    lines.append(
        f"M2T {'r_precision_top3':<18}{m2t['r_precision_top3']:>9.3f}"
        f"{figures['m2t_ground_truth']['r_precision_top3']:>14.3f}"
    )
    lines.append(f"M2T BLEU-4 {m2t['bleu4']:.3f}, ROUGE-L {m2t['rouge_l']:.3f}, CIDEr {m2t['cider']:.3f}")
    for name, target in figures["targets"].items():
        lines.append(
            f"{name}: {100 * target['value']:.0f} % (target {100 * target['target']:.0f} %: "
            f"{'met' if target['met'] else 'NOT met'})"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=TINY, help=f"backbone profile: {TINY} (default) or {SMOLLM2}")
    parser.add_argument("--train", action="store_true", help="train a base model here even when the embedded one fits")
    add_base_training_arguments(parser)
    parser.add_argument("--base", type=Path, help="score this base-model folder instead")
    parser.add_argument("--clips", type=int, help="score only the first N test clips (default: all)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="where the corpus, evaluator and models live; kept (default: %(default)s)",
    )
    parser.add_argument("--no-result", action="store_true", help="do not write bench/results (for quick checks)")
    parser.add_argument(
        "--fast",
        choices=("int4", "int8", "float32"),
        help="also score the fast path (the onnx language model) with these weights, beside the reference in "
        "the same run: writes language_model_fast[_<profile>].json",
    )
    return parser


FAST_KEYS = (("t2m", "r_precision_top3"), ("t2m", "emotion_f1"), ("m2t", "r_precision_top3"))
FAST_TOLERANCE = 0.01  # the fast path's figures stay this close to the reference's


def beside_reference(fast: dict, reference: dict) -> dict:
    """The fast path's figures with the reference's, scored in the same run on the same clips by the same
    evaluator (same prompts and seeds: only the arithmetic differs), and their differences."""
    differences = {f"{d}.{k}": round(fast[d][k] - reference[d][k], 4) for d, k in FAST_KEYS if k in fast[d]}
    return fast | {
        "reference": {d: reference[d] for d in ("t2m", "m2t")},
        "difference_from_reference": differences,
        "within_tolerance": all(abs(v) <= FAST_TOLERANCE for v in differences.values()),
        "tolerance": FAST_TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with timed("corpus", seconds):
        corpus = make_corpus(work, CORPUS_MOTIONS, EXTRA_TEST_MOTIONS)
    with timed("evaluator", seconds):
        evaluator = make_evaluator(work, corpus, None)
    base = args.base or base_model(args, work, corpus, seconds)
    with timed("scoring", seconds):
        figures = score(base, evaluator, corpus, args.clips)
        if args.fast:
            figures = beside_reference(score(base, evaluator, corpus, args.clips, args.fast), figures)
    figures.update(
        base_model=str(base),
        stage_seconds=seconds,
        wall_seconds=round(time.perf_counter() - began, 1),
        data=f"procedural corpus ({CORPUS_MOTIONS} motions, seed {CORPUS_SEED}, "
        f"{EXTRA_TEST_MOTIONS} more in the test split), test split",
    )
    png = plot(figures, work / "language_model.png")
    (work / "captions.json").write_text(json.dumps(figures["m2t"]["examples"], indent=1) + "\n")
    print("\n".join(summary_lines(figures)))
    print(f"plot: {png}")
    name = "language_model" if figures["profile"] == SMOLLM2 else f"language_model_{figures['profile']}"
    if args.fast:
        figures["weights"] = args.fast
        print(f"fast path ({args.fast}) minus reference: {figures['difference_from_reference']}")
        name = name.replace("language_model", "language_model_fast")
    if not args.no_result:
        print(f"wrote {write_result(name, figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
