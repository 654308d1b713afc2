"""`make default-model`: build the embedded default model that `make run` serves, with the project's
own training commands, and write it into the package (motion_agent/default_model/).

Stages (each is the public command, called in process): `motion-agent-data synth` (the procedural
corpus), `motion-agent-train tokenizer`, `motion-agent-train base`. The scratch folder keeps every
stage's full output (checkpoints, plots, histories), so an interrupted build resumes where the
tokenizer stopped; only the small parts the runtime needs are copied into the package, next to a
manifest.json that records the commands, the commit and the sizes.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from motion_agent.base_model import DEFAULT_MODEL_DIR, MANIFEST_FILE, BaseModelSpec
from training.provenance import git_commit

SIZE_LIMIT_MB = 40.0  # what the repository carries for the embedded model
SKIP = {"README.md"}  # what peft writes beside an adapter that the runtime does not read


def commands(scratch: Path, profile: str, motions: int, seed: int, base_steps: int | None) -> list[list[str]]:
    corpus, tokenizer, base = scratch / "corpus", scratch / "tokenizer", scratch / "base"
    base_cmd = ["motion-agent-train", "base", "--data", str(corpus), "--tokenizer", str(tokenizer / "tokenizer"),
                "--out", str(base), "--backbone", profile]
    return [
        ["motion-agent-data", "synth", "--out", str(corpus), "--motions", str(motions), "--seed", str(seed)],
        ["motion-agent-train", "tokenizer", "--data", str(corpus), "--out", str(tokenizer)],
        base_cmd + (["--steps", str(base_steps)] if base_steps else []),
    ]


def run(command: list[str]) -> None:
    """Run one project command in process through its own entry point."""
    from training import cli as train_cli
    from training import data_cli

    print(f"\n$ {' '.join(command)}", flush=True)
    entry = {"motion-agent-data": data_cli.main, "motion-agent-train": train_cli.main}[command[0]]
    status = entry(command[1:])
    if status:
        raise SystemExit(f"{' '.join(command[:2])} failed with status {status}")


def package(base: Path, out: Path) -> int:
    """Copy the runtime parts of the base model into `out`; returns the bytes written."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out, ignore=lambda folder, names: [
        n for n in names if n in SKIP or n.endswith((".png", ".pt")) or n in ("checkpoints", "eval", "history.json")])
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="backbone profile of the base model (default: tiny)")
    parser.add_argument("--scratch", type=Path, default=Path("out/default-model"),
                        help="where the stages write their full output (default: out/default-model)")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help=f"package folder (default: {DEFAULT_MODEL_DIR})")
    parser.add_argument("--motions", type=int, default=1200, help="procedural corpus size (default: 1200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-steps", type=int, help="base-stage steps (default: config/training/base.yaml)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    steps = commands(args.scratch, args.profile, args.motions, args.seed, args.base_steps)
    for command in steps:
        run(command)
    size = package(args.scratch / "base", args.out / "base")
    if size > SIZE_LIMIT_MB * 2**20:
        raise SystemExit(f"the default model is {size / 2**20:.1f} MB, over the {SIZE_LIMIT_MB:.0f} MB limit")
    spec = BaseModelSpec.read(args.out / "base")
    manifest = {"profile": args.profile, "fingerprint": spec.fingerprint, "commit": git_commit(),
                "commands": [" ".join(c) for c in steps], "bytes": size,
                "built_seconds": round(time.perf_counter() - began, 1)}
    (args.out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"\ndefault model ({args.profile}, {size / 2**20:.1f} MB, fingerprint {spec.fingerprint[:12]}) "
          f"written to {args.out} in {manifest['built_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
