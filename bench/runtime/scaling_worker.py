"""The expert-count part's measurement, run by the benchmark in a fresh process of its own (so that its
resident memory is the agent's alone):

    python bench/runtime/scaling_worker.py JOB.json RESULT.json

JOB.json (written by runtime.parts.scaling) names the base model, the bundles, the keyring, the store
and the expert counts; RESULT.json gets p50/p99 of generate() and VmRSS at each count."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

WORKER = Path(__file__).resolve()
if __name__ == "__main__":  # run as a script: the benchmark's folder and the repository on sys.path instead of ours
    sys.path[0:1] = [str(WORKER.parent.parent), str(WORKER.parent.parent.parent)]

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from training.synthetic_experts import family_request  # noqa: E402

from runtime.experts import expert_family  # noqa: E402
from runtime.processes import agent_config  # noqa: E402
from runtime.stats import median, percentiles, rss_mb  # noqa: E402
from runtime.workload import HEADLINE_S, SEED, WARMUP_REQUESTS  # noqa: E402


def scaling_worker(job_path: Path, out_path: Path) -> None:
    """Run in a child process (this file as a script): p50/p99 of generate() and VmRSS at each expert count,
    going up through the counts and then back down to the first. A process's latency drifts over its
    lifetime by a few per cent either way (allocator state, caches, the machine), which one pass upwards
    would book to the experts; the first count measured before and after the largest brackets that drift,
    and its figures pool both passes (each pass is in the details)."""
    from motion_agent.agent import MotionAgent
    from motion_agent.bundles.store import ExpertStore

    job = json.loads(Path(job_path).read_text())
    agent = MotionAgent.from_config(agent_config(job["base_model"], job["store"]))
    store = ExpertStore(job["store"])
    rng = np.random.default_rng(SEED)
    texts = [family_request(expert_family(0), rng, HEADLINE_S) for _ in range(job["requests"])]
    results: dict[str, dict] = {"0": {"rss_mb": rss_mb()}}
    passes: dict[str, list[float]] = {}
    installed = 0

    def install(bundle: str) -> None:
        store.install(
            bundle,
            job["keyring"],
            backbone_fingerprint=agent.fingerprint,
            tokenizer_fingerprint=agent.tokenizer_fingerprint,
        )

    for count in job["counts"]:
        for bundle in tqdm(job["bundles"][installed : count - 1], desc=f"installing up to {count}", unit="expert"):
            install(bundle)
        agent.reload_experts()
        start = time.perf_counter()
        install(job["bundles"][count - 1])  # the last one alone: its install, then its load into the agent
        installed_at = time.perf_counter()
        agent.reload_experts()
        loaded_at = time.perf_counter()
        installed = count
        results[str(count)], passes[str(count)] = _scaling_pass(agent, texts, f"{count} experts")
        results[str(count)]["last_install_ms"] = round((installed_at - start) * 1000.0, 2)
        results[str(count)]["last_load_ms"] = round((loaded_at - installed_at) * 1000.0, 2)
    results["adapter_bytes"] = sum(
        f.stat().st_size for f in (Path(store.active_experts()["expert_00"]) / "adapter").glob("*.safetensors")
    )
    first, last = job["counts"][0], job["counts"][-1]
    if last != first:
        for name in sorted(store.active_experts())[first:]:
            store.remove(name)
        back = f"{first}_after_{last}"
        results[back], passes[back] = _scaling_pass(agent, texts, f"{first} expert(s) again")
        pooled = percentiles(passes[str(first)] + passes[back])
        results[str(first)] = {
            **results[str(first)],
            "p50_ms": pooled["p50"],
            "p99_ms": pooled["p99"],
            "first_pass_p50_ms": results[str(first)]["p50_ms"],
        }
    Path(out_path).write_text(json.dumps(results, indent=2))


def _scaling_pass(agent, texts: list[str], label: str) -> tuple[dict, list[float]]:
    """Serve the store's experts as they are now, then time `texts` one by one."""
    start = time.perf_counter()
    agent.reload_experts()
    reload_ms = (time.perf_counter() - start) * 1000.0
    for text in texts[:WARMUP_REQUESTS]:
        agent.generate(text)
    times, route, served = [], [], []
    for text in tqdm(texts, desc=label, unit="request"):
        start = time.perf_counter()
        result = agent.generate(text)
        times.append((time.perf_counter() - start) * 1000.0)
        served.append(result.expert)
        route.append(result.timings_ms["route"])
    stats, experts = percentiles(times), Counter(served)
    figures = {
        "p50_ms": stats["p50"],
        "p99_ms": stats["p99"],
        "rss_mb": rss_mb(),
        "experts": len(agent.experts.names),
        "route_ms_p50": median(route),
        "reload_ms": round(reload_ms, 1),
        "routed_to_an_expert": round(1.0 - experts.get("unknown", 0) / len(times), 3),
        # experts of the same request family share the requests; each change of expert re-merges
        "experts_served": len(experts),
        "expert_changes": sum(a != b for a, b in zip(served, served[1:])),
    }
    print(f"{label}: {figures}", flush=True)
    return figures, times


# --- hot swap under load ------------------------------------------------------------------------


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: python {WORKER.relative_to(WORKER.parents[2])} JOB.json RESULT.json")
    scaling_worker(Path(sys.argv[1]), Path(sys.argv[2]))
