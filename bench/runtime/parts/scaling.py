"""experts: 1, 16, 64 and 256 experts installed one after another into the store of one MotionAgent in a
fresh process (runtime/scaling_worker.py, so that its resident memory is the agent's alone): generate()
of a 4 s motion, p50/p99, VmRSS, and the install and load of the last expert at each count; for
smollm2-135m (the headline `experts`, when the run has it) and tiny (`experts_tiny`)."""

from __future__ import annotations

import json
import sys

from runtime.context import Bench
from runtime.processes import start_child, stop_child
from runtime.scaling_worker import WORKER
from runtime.workload import HEADLINE_S


def part_experts(bench: Bench) -> dict:
    """Latency, memory and install time as experts accumulate, per profile, each in a fresh process."""
    profiles = [p for p in ("smollm2-135m", "tiny") if p in bench.bases]
    figures: dict = {}
    for profile in profiles:
        result, job = scale(bench, profile)
        counts = job["counts"]
        key = "experts" if profile == profiles[0] else f"experts_{profile}"
        figures[key] = {str(n): {k: result[str(n)][k] for k in ("p50_ms", "p99_ms", "rss_mb")} for n in counts}
        figures[f"{key}_details"] = result | {"profile": profile}
        if key == "experts":
            figures["expert_load_ms"] = {
                str(n): round(result[str(n)]["last_install_ms"] + result[str(n)]["last_load_ms"], 2) for n in counts
            }
            figures["adapter_bytes"] = result["adapter_bytes"]
    first = profiles[0]
    figures["experts_doc"] = (
        f"experts: the {first} profile (experts_tiny: tiny). One MotionAgent (config/agent.yaml's: the onnx language "
        f"model) in a fresh process; experts installed one after another into its store (ExpertStore.install, then "
        f"reload_experts), and at each count {bench.counts.scaling_requests} generate() calls of a {HEADLINE_S} s "
        "motion (family of expert_00, which no other expert shares: hard routing runs one expert); then the "
        "experts beyond the first count removed and the first count timed again (<first>_after_<last> in the "
        "details): its p50/p99 pool both passes, so that drift over the process's life is not booked to the "
        "experts (its first pass alone: first_pass_p50_ms). rss_mb: VmRSS of that process; details under 0 are "
        "the agent before any expert. expert_load_ms: the last expert of each count alone, install to serving: "
        "verified and committed into the store (last_install_ms in the details), then loaded into the serving "
        "agent (reload_experts: its router and LoRA factors; last_load_ms). adapter_bytes: one expert's adapter file."
    )
    return figures


def scale(bench: Bench, profile: str) -> tuple[dict, dict]:
    factory = bench.factory(profile)
    counts = bench.counts.scaling_counts
    job = {
        "base_model": str(bench.bases[profile]),
        "bundles": [str(b) for b in factory.bundles(range(max(counts)), desc=f"expert bundles ({profile})")],
        "keyring": str(bench.signer.keyring),
        "store": str(bench.work / "stores" / f"scaling-{profile}"),
        "counts": list(counts),
        "requests": bench.counts.scaling_requests,
    }
    job_path, out_path = bench.work / f"scaling-job-{profile}.json", bench.work / f"scaling-result-{profile}.json"
    job_path.write_text(json.dumps(job))
    command = [sys.executable, str(WORKER), str(job_path), str(out_path)]
    process = start_child(command, None)  # its progress bars and errors go to this terminal
    try:
        process.wait()
    finally:
        stop_child(process)
    if process.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"the scaling worker failed with status {process.returncode} (its output is above)")
    return json.loads(out_path.read_text()), job
