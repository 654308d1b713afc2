"""experts: 1, 4, 16 and 64 experts installed one after another into the store of one MotionAgent in a
fresh process (runtime/scaling_worker.py, so that its resident memory is the agent's alone): generate()
of a 4 s motion, p50/p99, and VmRSS at each count."""

from __future__ import annotations

import json
import sys

from runtime.context import Bench
from runtime.processes import start_child, stop_child
from runtime.scaling_worker import WORKER
from runtime.workload import HEADLINE_S


def part_experts(bench: Bench) -> dict:
    """Latency and memory as experts accumulate, in a fresh process (runtime/scaling_worker.py)."""
    factory = bench.factory("tiny")
    counts = bench.counts.scaling_counts
    job = {
        "base_model": str(bench.bases["tiny"]),
        "bundles": [str(b) for b in factory.bundles(range(max(counts)))],
        "keyring": str(bench.signer.keyring),
        "store": str(bench.work / "stores" / "scaling"),
        "counts": list(counts),
        "requests": bench.counts.scaling_requests,
    }
    job_path, out_path = bench.work / "scaling-job.json", bench.work / "scaling-result.json"
    job_path.write_text(json.dumps(job))
    command = [sys.executable, str(WORKER), str(job_path), str(out_path)]
    process = start_child(command, None)  # its progress bars and errors go to this terminal
    try:
        process.wait()
    finally:
        stop_child(process)
    if process.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"the scaling worker failed with status {process.returncode} (its output is above)")
    result = json.loads(out_path.read_text())
    return {
        "experts": {str(n): {k: result[str(n)][k] for k in ("p50_ms", "p99_ms", "rss_mb")} for n in counts},
        "experts_details": result,
        "experts_doc": (
            f"One MotionAgent in a fresh process; experts installed one after another into its store (ExpertStore."
            f"install, then reload_experts), and at each count {job['requests']} generate() calls of a {HEADLINE_S} s "
            f"motion (family of expert_00, which no other expert shares: hard routing runs one expert); then the "
            f"experts beyond the first {counts[0]} removed and the first count timed again "
            f"({counts[0]}_after_{counts[-1]} in the details): "
            f"its p50/p99 pool both passes, so that drift over the process's life is not booked to the experts "
            f"(its first pass alone: first_pass_p50_ms). rss_mb: VmRSS of that process; details under 0 are the "
            "agent before any expert."
        ),
    }
