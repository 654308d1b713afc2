"""soak: the embedded smollm2-135m default (its base and its experts) in the agent node, asked N mixed
requests over topics one at a time (good ones and hostile ones: bench_runtime's soak mix and loop), with
its resident memory at the start (after WARMUP_MIXED mixed requests) and the end."""

from __future__ import annotations

from pathlib import Path

from runtime.parts.soak import run_soak
from runtime.processes import NodeProcess, open_client, write_agent_yaml
from runtime.workload import SOAK_SECONDS

WARMUP_MIXED = 50  # mixed requests before the resident memory at the start is read


def embedded_smollm2() -> tuple[Path, Path] | None:
    """(base folder, expert store) of the embedded smollm2-135m default, or None when absent."""
    from motion_agent.model.base_model import default_base_model

    base = default_base_model("smollm2-135m")
    if base is None:
        return None
    return base, Path(base).parent / "experts"


def part_soak(work: Path, count: int) -> dict:
    found = embedded_smollm2()
    if found is None:
        return {"soak_smollm2": {"skipped": "no embedded smollm2-135m model in this checkout"}}
    base, store = found
    config = write_agent_yaml(work / "agent-soak.yaml", store)
    with NodeProcess(base, config, work / "soak.log") as node, open_client(config) as client:
        node.wait_ready(client)
        node.warm_up(client, SOAK_SECONDS)
        run_soak(client, node, WARMUP_MIXED)  # every kind once or more: allocator pools reach their size
        figures = run_soak(client, node, count)
    soak = figures["soak"]
    growth = None
    if soak["rss_start_mb"] and soak["rss_end_mb"]:
        growth = round(soak["rss_end_mb"] / soak["rss_start_mb"] - 1.0, 4)
    return {
        "soak_smollm2": soak
        | {"rss_growth": growth, "base_model": "embedded smollm2-135m", "warmup_mixed_requests": WARMUP_MIXED}
    }
