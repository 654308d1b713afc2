"""How fast a motion request comes back on this CPU, and whether it stays that way.

The question (issue 10): how fast does a request come back on my CPU, does it get slower as experts
accumulate, what happens while a new expert installs, and does it stay up for hours. Six parts answer it;
each is one module of bench/runtime/parts/ and can run alone with --only:

  latency   The agent node runs in a child process (`python -m motion_agent.nodes.motion_node`, as
            `motion-agent launch` starts it) with SERVING_EXPERTS experts in its expert store; this process
            is its client over real topics. One std_msgs/String request on `text_command` at a time (the
            node lets the latest request win, so requests never overlap), timed from publish to the
            JointTrajectory arriving here, for 2, 4 and 8 s motions and for each backbone profile (tiny;
            smollm2-135m with --smollm2-base). The node's OK diagnostic carries its own time per stage
            (queue, route, language_model, decode, retarget, total); `middleware` = client time - agent
            total: transport both ways, the request callback, building and serialising the messages.
            real_time_factor = seconds of motion / seconds waited; router_fraction = route / total for
            the 4 s requests of the tiny profile.
  caption   MotionAgent.caption in this process (not over topics) on a 2 s, 40-frame pose window.
  ratios    A/B pairs measured side by side, alternating, in this process (`ratios_doc` says what each is):
            one peft mixed batch vs set_adapter + one generate per request; the torch vs the onnxruntime
            motion decoder; installing a bundle into a serving MotionAgent vs restarting it.
  experts   1, 4, 16 and 64 experts installed one after another into the store of one MotionAgent in a
            fresh process (bench/runtime/scaling_worker.py, so its resident memory is the agent's alone):
            generate() of a 4 s motion, p50/p99, and VmRSS.
  hot_swap  The node with `node.keyring` and `node.bundle_inbox` set; a steady stream of sequential
            requests, first alone, then while signed bundles are dropped into the inbox every
            HOT_SWAP_INTERVAL_S, then alone again. lost = requests with no answer at all.
  soak      --soak N requests over topics, good (short motions) and bad (empty, whitespace, word-less,
            over-long, 1 MB, invalid UTF-8) mixed, each awaited; the node's VmRSS at start and end.

Experts are made with the project's own code as training makes them (training.synthetic_experts, which
the tests use too): a peft LoRA of the shape config/training/continual.yaml gives every moe-hard expert
(random, non-zero weights: what is measured is cost, not quality) and an autoencoder router
(training.continual.router_training.fit_autoencoder) fitted on a family of requests, signed with
motion_agent.bundles.archive.pack_bundle and installed through ExpertStore.install /
MotionAgent.install_bundle / the node's bundle inbox. The client over topics is the one `motion-agent say`
uses (motion_agent.nodes.client.AgentClient).

The smollm2-135m latency needs a base model of that backbone. Without --smollm2-base the benchmark
uses the embedded one (motion_agent/embedded/smollm2-135m) when the checkout has it, else builds a
latency-only one once (out/bench-runtime/, reused afterwards): SmolLM2-135M with the motion
tokens added, trained for LATENCY_BASE_STEPS steps on a small procedural corpus. Its motions mean
nothing, but a request's work does not depend on training: the requested duration fixes the number of
motion tokens decoded. --no-smollm2 skips the profile.

Run: python bench/bench_runtime.py [--tiny-base DIR] [--smollm2-base DIR | --no-smollm2] [--requests N]
                                   [--soak N] [--quick] [--only PART ...]
A full run writes bench/results/runtime.json and runtime.md. --quick (tiny counts, a smoke run) and
--only (some parts) write both into a temporary folder instead, so they never replace real results.

This file is the entry point (arguments, which parts run, the result); the package bench/runtime/ holds
the rest, one concept a module: workload (counts, requests), processes (children, the node, its client),
experts, context (what parts share), parts/ (one module per part), report (targets, summary, result files).
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmark the source tree; bench/ (this folder) is sys.path[0]: common, runtime

# rclpy reads these when it is first imported (only inside the functions that talk ROS, and in the node
# children, which inherit them): this run talks on a ROS 2 domain of its own, on loopback only, as the
# tests do (test/conftest.py). Set them outside to choose another domain.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from runtime.context import LATENCY_BASE_DIR, Bench, shown_path  # noqa: E402
from runtime.processes import stop_all_children  # noqa: E402
from runtime.report import targets, write_results  # noqa: E402
from runtime.stats import deep_merge  # noqa: E402
from runtime.workload import PARTS, QUICK, Counts  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny-base",
        help="tiny base-model folder (default: motion_agent/embedded/tiny/base, else out/default-model/base)",
    )
    parser.add_argument(
        "--smollm2-base",
        help="smollm2-135m base-model folder (default: the embedded one in "
        "motion_agent/embedded/smollm2-135m/base, else a latency-only one, "
        f"built once in {LATENCY_BASE_DIR.relative_to(REPO)}/)",
    )
    parser.add_argument("--no-smollm2", action="store_true", help="skip the smollm2-135m profile")
    parser.add_argument(
        "--requests",
        type=int,
        help="timed requests per motion length, per expert count and before the hot swap (default 50; --quick 3)",
    )
    parser.add_argument("--soak", type=int, help="soak requests (default 5000; --quick 30)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts, a smoke run; results go to a temporary folder"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        metavar="PART",
        help=f"run these parts only ({', '.join(PARTS)}); results go to a temporary folder",
    )
    parser.add_argument("--workdir", type=Path, help="where stores, bundles and logs are made (default: temporary)")
    return parser.parse_args(argv)


def counts_for(args: argparse.Namespace) -> Counts:
    counts = QUICK if args.quick else Counts()
    if args.requests is not None:
        counts = replace(
            counts, latency_requests=args.requests, scaling_requests=args.requests, hot_swap_requests=args.requests
        )
    if args.soak is not None:
        counts = replace(counts, soak=args.soak)
    return counts


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally, so the children are stopped


def run_parts(bench: Bench, parts: list[str], figures: dict) -> None:
    from runtime.parts import PART_FUNCTIONS

    for part in parts:
        print(f"\n=== {part} ===", flush=True)
        start = time.perf_counter()
        deep_merge(figures, PART_FUNCTIONS[part](bench))
        figures.setdefault("part_seconds", {})[part] = round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    atexit.register(stop_all_children)
    counts = counts_for(args)
    parts = [p for p in PARTS if p in (args.only or PARTS)]
    import torch

    figures: dict = {
        "parts": parts,
        "quick": args.quick,
        "counts": asdict(counts),
        "torch_threads": torch.get_num_threads(),
        "ros_domain_id": os.environ["ROS_DOMAIN_ID"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-runtime-", dir=args.workdir) as temp:
        try:
            bench = Bench(args, counts, Path(temp))
            figures["base_models"] = {k: shown_path(v) for k, v in bench.bases.items()}
            figures["skipped"] = bench.skipped
            run_parts(bench, parts, figures)
        finally:
            stop_all_children()
            try:
                import rclpy

                rclpy.try_shutdown()
            except ImportError:
                pass
    figures["targets"] = targets(figures)
    official = not args.quick and args.only is None
    path, markdown, lines = write_results(figures, official)
    print("\n" + "\n".join(lines))
    print(f"\nwrote {path} and {markdown}" + ("" if official else " (a smoke or partial run: bench/results untouched)"))


if __name__ == "__main__":
    main()
