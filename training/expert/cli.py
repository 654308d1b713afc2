"""`motion-agent-train expert`: one new scenario's expert for a robot that already serves others."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from training.continual.config import load_continual_config
from training.expert.report import write_report
from training.expert.train import MAX_SHARE, ExpertRun, train_expert


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="motion-agent-train expert",
        description="Train one moe-hard expert for a new scenario on a robot's deployed base model, orthogonal "
        "to the experts its store already serves (O-LoRA), with its router; measure where held-out requests of "
        "the new and the deployed scenarios are routed before and after (OUT/report.md, OUT/routing.png, "
        "OUT/expert.json). Refused (exit 1, no bundle) when the new expert would take more than --max-share of "
        "a deployed expert's requests, unless --force. With --key it writes the signed bundle OUT/SCENARIO.tar.",
    )
    parser.add_argument("--corpus", required=True, help="the new clips as a corpus (`motion-agent-data import`)")
    parser.add_argument("--scenario", required=True, help="the new expert's name, e.g. greeting")
    parser.add_argument("--base", required=True, help="the robot's base-model folder")
    parser.add_argument("--store", required=True, help="the robot's expert store (its deployed experts)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--deployed-corpus", help="a corpus with requests of the deployed scenarios, to measure them")
    parser.add_argument(
        "--evaluator", help="an evaluator folder: also score the new scenario's T2M and M2T before/after"
    )
    parser.add_argument("--config", help="continual training YAML (default: config/training/continual.yaml)")
    parser.add_argument("--steps", type=int, help="training steps (default: the YAML's)")
    parser.add_argument("--max-share", type=float, default=MAX_SHARE, help="default: %(default)s")
    parser.add_argument("--force", action="store_true", help="write the bundle even over --max-share")
    parser.add_argument("--key", help="private key (motion-agent-bundle keygen): also write the signed bundle")
    parser.add_argument("--version", default="1.0.0", help="the bundle's version (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_continual_config(args.config)
    if args.steps:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, steps=args.steps))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deployed_corpus = Path(args.deployed_corpus) if args.deployed_corpus else None
    run = ExpertRun(Path(args.corpus), args.scenario, Path(args.base), Path(args.store), out, deployed_corpus,
                    args.max_share, args.force, Path(args.evaluator) if args.evaluator else None)  # fmt: skip
    try:
        result = train_expert(run, config)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report = write_report(result, out)
    if args.key and not result["refused"]:
        from motion_agent.bundles.archive import pack_bundle
        from motion_agent.bundles.keys import load_private_key
        from motion_agent.model.base_model import BaseModelSpec

        spec = BaseModelSpec.read(run.base)
        bundle = out / f"{args.scenario}.tar"
        pack_bundle(out / "expert", bundle, load_private_key(args.key), name=args.scenario, scenario=args.scenario,
                    version=args.version, backbone_fingerprint=spec.fingerprint,
                    tokenizer_fingerprint=spec.tokenizer_fingerprint)  # fmt: skip
        result["bundle"] = str(bundle)
    (out / "expert.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.scenario}: {result['new']['routed_to_new']:.0%} of its held-out requests routed to it; "
          f"deployed routing {result['deployed_routing_accuracy']}; report {report}")  # fmt: skip
    if result["tokenizer_reach"]["warning"]:
        print(f"warning: {result['tokenizer_reach']['warning']}", file=sys.stderr)
    if result["refused"]:
        print(f"error: refused: {result['refusal']}", file=sys.stderr)
        return 1
    if "bundle" in result:
        print(f"bundle: {result['bundle']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
