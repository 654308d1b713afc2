"""Can a fleet trust the update path, and can the running node be starved, crashed or left inconsistent?

Five parts (--only picks some), written to bench/results/reliability.json (+ .png):

  conformance  Every case of the bundle conformance suite (motion_agent.bundles.conformance: tampered,
               replayed, expired, out-of-scope, malformed and parser-exhausting bundles, TUF's attack
               classes plus archive-level ones) against a fresh store: refused for its reason, one bounded
               sentence, the store's bytes and the served experts unchanged. Also the header walk's time
               on pax bodies of 80 KB .. 640 KB of digits (CVE-2024-6232: quadratic in CPython < 3.11.10).
  fuzz         --fuzz N mutations of a valid bundle (bit flips, tar header fields and types, truncation,
               appended, inserted and deleted bytes, members reordered, dropped or duplicated, manifest
               fields changed and re-signed by an untrusted key): none may install or raise anything but
               a one-line refusal, and the store's bytes must not change.
  topics       `motion-agent launch` (agent node and speech node, bundle installs on) with the embedded tiny
               model: first a text request's latency alone and under a flood of 10,000-pose PoseArrays at
               85 Hz, then --topic-messages N hostile messages over every topic the nodes subscribe to (read
               from the ROS graph), a fifth of them raw bytes that are no valid serialisation; crashes =
               node processes gone; then one good request must be answered.
  node_kill    --kill-trials N installs SIGKILLed at each step of the install protocol, each followed by
               a restart of the agent node on that store: it must serve the index's experts, and the
               index must be the old one before the commit point and the new one after it.
  soak         --soak N mixed good and hostile requests to the agent node on the embedded smollm2-135m
               default, one at a time over topics; crashes and resident memory at start and end.

--quick runs small counts into a temporary folder (bench/results untouched).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmark the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability.report import plot, summary_lines  # noqa: E402

from common import RESULTS_DIR, write_result  # noqa: E402
from runtime.processes import stop_all_children  # noqa: E402

PARTS = ("conformance", "fuzz", "topics", "node_kill", "soak")
FULL = {"fuzz": 10_000, "topic_messages": 100_000, "kill_trials": 24, "soak": 2_000}
QUICK = {"fuzz": 300, "topic_messages": 2_000, "kill_trials": 3, "soak": 20}
PAX_SIZES = (80_000, 160_000, 320_000, 640_000)


def part_conformance(work: Path) -> dict:
    from motion_agent.bundles.conformance import CASES, Rig, run_suite
    from motion_agent.bundles.conformance.rig import digits_pax
    from motion_agent.bundles.manifest import BundleError

    rig = Rig.build(work / "rig")
    outcomes = run_suite(rig, work=work / "cases")
    walk = {}
    for size in PAX_SIZES:
        bundle = digits_pax(work / f"pax-{size}.tar", size)
        store = rig.store(work / f"pax-store-{size}")
        started = time.perf_counter()
        try:
            rig.install(store, bundle)
        except BundleError as error:
            assert error.reason == "extended-header", error
        walk[str(size)] = round((time.perf_counter() - started) * 1000.0, 3)
    return {
        "conformance": {
            "cases": len(outcomes),
            "refused": sum(o.outcome == "refused" for o in outcomes),
            "passed": sum(o.passed for o in outcomes),
            "attack_classes": sorted({c.attack for c in CASES.values()}),
            "by_case": {
                o.name: {
                    "attack": o.attack,
                    "outcome": o.outcome,
                    "reason": o.reason,
                    "message": o.message,
                    "store_unchanged": o.store_unchanged,
                    "serving_unchanged": o.serving_unchanged,
                    "seconds": o.seconds,
                    "passed": o.passed,
                }  # fmt: skip
                for o in outcomes
            },
            "pax_digits_refusal_ms": walk,
            "python": sys.version.split()[0],
        }
    }


def part_fuzz(work: Path, count: int) -> dict:
    from reliability.bundle_fuzz import run_bundle_fuzz

    from motion_agent.bundles.conformance import Rig

    return {"fuzz": run_bundle_fuzz(Rig.build(work / "fuzz-rig"), work, count)}


def tiny_experts(work: Path):
    """(tiny base, signed bundles by NAME-VERSION, keyring, a store holding juggling) for the node parts."""
    from motion_agent.model.base_model import BaseModelSpec
    from training.synthetic_experts import ExpertMaker, Signer, install_into

    from runtime.context import default_tiny_base

    base = default_tiny_base().resolve()
    signer = Signer.create(work / "keys")
    maker = ExpertMaker(base, work / "experts", signer)
    bundles = {
        "juggling-1.0.0": maker.bundle("juggling", "juggling", 0),
        "juggling-1.1.0": maker.bundle("juggling", "juggling", 0, version="1.1.0"),
        "juggling-1.2.0": maker.bundle("juggling", "juggling", 0, version="1.2.0"),
        "swimming-1.0.0": maker.bundle("swimming", "swimming", 2),
    }
    store = install_into(work / "serving-store", [bundles["juggling-1.0.0"]], signer.keyring, BaseModelSpec.read(base))
    return base, bundles, signer.keyring, store


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    parser.add_argument("--quick", action="store_true", help="small counts, a smoke run into a temporary folder")
    parser.add_argument("--fuzz", type=int, help=f"fuzzed bundles (default {FULL['fuzz']})")
    parser.add_argument("--topic-messages", type=int, help=f"hostile topic messages (default {FULL['topic_messages']})")
    parser.add_argument("--kill-trials", type=int, help=f"killed installs (default {FULL['kill_trials']})")
    parser.add_argument("--soak", type=int, help=f"soak requests (default {FULL['soak']})")
    parser.add_argument("--workdir", type=Path, help="where stores, bundles and logs go (default: temporary)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    atexit.register(stop_all_children)
    os.environ.setdefault("ROS_DOMAIN_ID", str(60 + os.getpid() % 40))
    counts = dict(QUICK if args.quick else FULL)
    for key in counts:
        if getattr(args, key) is not None:
            counts[key] = getattr(args, key)
    parts = [p for p in PARTS if p in (args.only or PARTS)]
    figures: dict = {"parts": parts, "quick": args.quick, "counts": counts, "part_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="bench-reliability-", dir=args.workdir) as temp:
        work = Path(temp)
        node_kit = None
        for part in parts:
            print(f"\n=== {part} ===", flush=True)
            started = time.perf_counter()
            folder = work / part
            folder.mkdir()
            if part == "conformance":
                figures.update(part_conformance(folder))
            elif part == "fuzz":
                figures.update(part_fuzz(folder, counts["fuzz"]))
            elif part == "soak":
                from reliability.soak import part_soak

                figures.update(part_soak(folder, counts["soak"]))
            else:
                node_kit = node_kit or tiny_experts(work / "node-kit")
                base, bundles, keyring, store = node_kit
                if part == "topics":
                    from reliability.topic_fuzz import part_topics

                    figures.update(part_topics(base, store, keyring, folder, counts["topic_messages"]))
                else:
                    from reliability.node_kill import run_node_kill

                    figures["node_kill"] = run_node_kill(base, bundles, keyring, folder, counts["kill_trials"])
            figures["part_seconds"][part] = round(time.perf_counter() - started, 1)
        stop_all_children()
    official = not args.quick and args.only is None
    folder = RESULTS_DIR if official else Path(tempfile.mkdtemp(prefix="reliability-results-"))
    path = write_result("reliability", figures, folder)
    png = plot(figures, folder / "reliability.png")
    print("\n" + "\n".join(summary_lines(figures)))
    print(f"\nwrote {path} and {png}" + ("" if official else " (a smoke or partial run: bench/results untouched)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
