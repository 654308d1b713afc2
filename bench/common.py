"""What every benchmark result records besides its figures: the commit, the machine and the time.

A figure without the code version and hardware it was measured on cannot be compared later, so
every benchmark writes its result through `write_result`.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from training.provenance import git_commit  # every benchmark puts the repository on sys.path first

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    """CPU model, usable cores, and the library versions that shape the figures."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "torch": torch_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, figures: dict, folder: Path | None = None) -> Path:
    """Write bench/results/<name>.json: the figures plus commit, machine and creation time. `folder`
    instead of bench/results: where smoke and partial runs write theirs, so they never replace real results.
    Values JSON has no type for (paths, say) are written as their str()."""
    folder = RESULTS_DIR if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {
        **figures,
        "commit": git_commit(),
        "machine": machine_info(),
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    }
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
