"""Which code produced an artefact: benchmark results and the embedded default model both record it,
so that a figure or a model can be traced to the commit that made it."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The checked-out commit, or "uncommitted" when there is none (or no git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "uncommitted"
    return result.stdout.strip() or "uncommitted"
