"""The small statistics and measuring helpers every part uses: percentiles, medians, ratios, a process's
resident memory, A/B timing side by side, and merging a part's figures into the result's nested keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of a process (VmRSS of /proc/<pid>/status), in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def deep_merge(into: dict, new: dict) -> dict:
    """Nested dicts are how the dotted keys of BENCHMARKS.md are written; parts add to the same trees."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value
    return into


def time_side_by_side(calls: dict[str, Callable[[], object]], repeats: int, desc: str) -> dict[str, list[float]]:
    """Milliseconds of each call, alternating between them, after one untimed call each: an A/B
    measured this way shares whatever else the machine was doing."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in tqdm(range(repeats), desc=desc, unit="round"):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times
