"""`motion-agent-data`: make the procedural corpus, import your own clips, and cut continual task streams."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from motion_agent.config import ConfigError
from motion_agent.motion.features import canonicalize
from motion_agent.motion.preview import plot_stick_figures
from training.data.humanml3d import DatasetError
from training.data.streams import KINDS, StreamConfig, write_stream
from training.data.synth.corpus import CorpusConfig, write_corpus

PREVIEW_PER_EMOTION = 2


def emotion_preview(corpus_root: Path, path: Path, per_emotion: int = PREVIEW_PER_EMOTION) -> Path:
    """Rows of stick figures, a few motions per emotion of the same actions, so that a person can see
    that sad walking looks sad. Motions are turned to face +Z (the front of the 3D preview's camera)."""
    metadata = json.loads((corpus_root / "metadata.json").read_text())
    by_action: dict[str, dict[str, str]] = {}
    for motion_id, meta in sorted(metadata.items()):
        by_action.setdefault(meta["action"], {}).setdefault(meta["emotion"], motion_id)
    emotions = sorted({m["emotion"] for m in metadata.values()})
    actions = [a for a in ("walk", "jog", "wave", "bow", "jump") if set(by_action.get(a, {})) == set(emotions)]
    actions = (actions or [a for a, e in by_action.items() if len(e) == len(emotions)])[:per_emotion]
    picks = [(emotion, action, by_action[action][emotion]) for emotion in emotions for action in actions]
    if not picks:  # a small corpus where no action was performed with every emotion: any actions then
        picks = [(meta["emotion"], meta["action"], motion_id) for motion_id, meta in sorted(metadata.items())]
        picks = [p for e in emotions for p in [q for q in picks if q[0] == e][:per_emotion]]
    rows = {}
    for emotion, action, motion_id in picks:
        joints = np.load(corpus_root / "new_joints" / f"{motion_id}.npy")
        rows[f"{emotion}\n{action}"] = canonicalize(joints).numpy()
    return plot_stick_figures(rows, path, frames_per_motion=5, title="procedural corpus: actions by emotion")


def _synth(args: argparse.Namespace) -> int:
    config = CorpusConfig(motions=args.motions, seed=args.seed, extra_test_motions=args.extra_test_motions)
    out = write_corpus(args.out, config)
    metadata = json.loads((out / "metadata.json").read_text())
    preview = emotion_preview(out, out / "emotions.png")
    print(f"\nwrote {len(metadata)} motions to {out}")
    for key in ("scenario", "emotion"):
        counts = Counter(m[key] for m in metadata.values())
        print(f"  {key + 's':<10} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"  actions    {len({m['action'] for m in metadata.values()})} distinct")
    print(
        "  splits     "
        + ", ".join(f"{s} {len((out / f'{s}.txt').read_text().split())}" for s in ("train", "val", "test"))
    )
    print(f"  preview    {preview}")
    return 0


def _streams(args: argparse.Namespace) -> int:
    config = StreamConfig(kind=args.kind, clusters=args.k, seed=args.seed)
    result = write_stream(args.corpus, args.out, config)
    print(f"wrote the {args.kind} stream to {args.out}: {len(result['tasks'])} tasks in this order")
    for name in result["tasks"]:
        sizes = result["sizes"][name]
        words = ", ".join(result.get("top_words", {}).get(name, []))
        print(f"  {name:<26} train {sizes['train']:>5}  val {sizes['val']:>4}  test {sizes['test']:>4}  {words}")
    if "centroid_cosine_similarity" in result:
        matrix = np.array(result["centroid_cosine_similarity"])
        off = matrix[~np.eye(len(matrix), dtype=bool)]
        print(
            f"  centroid cosine similarity between clusters: mean {off.mean():.3f}, max {off.max():.3f}"
            f" (report: {Path(args.out) / 'cluster_report.json'}, {Path(args.out) / 'cluster_similarity.png'})"
        )
    return 0


def _factors(text: str | None, flag: str) -> tuple[float, ...]:
    """'0.8,1.25' -> (0.8, 1.25); refuses what is not a list of positive numbers, naming the flag."""
    try:
        factors = tuple(float(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise SystemExit(f"error: {flag} takes numbers separated by commas, e.g. 0.9,1.1 (got {text!r})") from None
    if any(f <= 0 for f in factors):
        raise SystemExit(f"error: {flag} factors must be positive (got {text!r})")
    return factors


def _split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> train, val, test fractions; refuses a split that is not three fractions adding to 1."""
    try:
        split = tuple(float(v) for v in text.split(","))
    except ValueError:
        split = ()
    if len(split) != 3 or min(split) < 0 or split[0] == 0 or abs(sum(split) - 1.0) > 1e-6:
        raise SystemExit(
            f"error: --split takes train,val,test fractions adding up to 1, e.g. 0.8,0.1,0.1 (got {text!r})"
        )
    return split


def _import(args: argparse.Namespace) -> int:
    from training.data.clips import ImportConfig, import_clips

    speeds, bodies = _factors(args.speeds, "--speeds"), _factors(args.bodies, "--bodies")
    split = _split(args.split)
    config = ImportConfig(args.scenario, split, args.seed, args.mirror, speeds, bodies)
    summary = import_clips(args.clips, args.out, config, args.captions)
    print(f"\nwrote {summary['motions']} motions of {summary['clips']} clips ({args.scenario}) to {args.out}")
    print("  splits     " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    for name, reason in summary["skipped"].items():
        print(f"  skipped    {name}: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motion-agent-data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser(
        "synth",
        help="write the procedural emotional motion corpus in HumanML3D layout",
        description="Perform scenario x action x emotion programs through the forward kinematics and write "
        "new_joints/, new_joint_vecs/, texts/, Mean/Std, split files, metadata.json and emotions.png. "
        "The same seed gives byte-identical files.",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument(
        "--motions", type=int, default=CorpusConfig.motions, help="number of motions (default: %(default)s)"
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    synth.add_argument(
        "--extra-test-motions",
        type=int,
        default=CorpusConfig.extra_test_motions,
        help="motions added to the test split only; the others and their split stay as without (default: %(default)s)",
    )
    synth.set_defaults(func=_synth)
    streams = sub.add_parser(
        "streams",
        help="split a corpus into a continual task stream",
        description="clusters: k-means over caption embeddings (all-MiniLM-L6-v2), with a report of sizes, top "
        "words and centroid similarities; unseen: one scenario per task; mixed: each task mostly one scenario. "
        "Writes tasks.json and <task>/{train,val,test}.txt (each task keeps the corpus's own train/val/test "
        "split of its motions).",
    )
    streams.add_argument("--corpus", required=True, help="a HumanML3D-layout folder")
    streams.add_argument("--kind", required=True, choices=KINDS)
    streams.add_argument("--out", required=True, help="output folder for the stream")
    streams.add_argument(
        "--k", type=int, default=StreamConfig.clusters, help="tasks for --kind clusters (default: %(default)s)"
    )
    streams.add_argument("--seed", type=int, default=0)
    streams.set_defaults(func=_streams)
    clips = sub.add_parser(
        "import",
        help="turn a folder of your own motion clips and their captions into a corpus of one scenario",
        description="Read every .bvh, .npz (AMASS-style SMPL parameters) and .npy (HumanML3D) file of CLIPS into "
        "the 22 SMPL joints (metres, +Y up, 20 fps), and write a HumanML3D-layout corpus with their captions "
        "(from --captions, lines 'clip<TAB>caption', or a CLIP.txt beside each file) and metadata scenario "
        "SCENARIO, split train/val/test by clip. Clips over 196 frames are cut into parts; unreadable or "
        "shorter clips are skipped and named.",
    )
    clips.add_argument("--clips", required=True, help="folder of motion files")
    clips.add_argument("--scenario", required=True, help="the scenario name these clips teach, e.g. greeting")
    clips.add_argument("--captions", help="captions file: 'clip<TAB>caption' per line (default: CLIP.txt files)")
    clips.add_argument("--out", required=True, help="output folder")
    clips.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split (default: %(default)s)")
    clips.add_argument(
        "--split",
        default="0.8,0.1,0.1",
        metavar="TRAIN,VAL,TEST",
        help="fractions of the clips for training and held out (val, test: scored, never augmented) "
        "(default: %(default)s)",
    )
    clips.add_argument("--mirror", action="store_true", help="also train on mirrored copies (left/right words swapped)")
    clips.add_argument("--speeds", metavar="F,F", help="also train on copies played this much faster, e.g. 0.8,1.25")
    clips.add_argument(
        "--bodies", metavar="F,F", help="also train on copies with arms and legs this many times as long, e.g. 0.9,1.1"
    )
    clips.set_defaults(func=_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatasetError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
