"""The bundle inbox: a folder where a fleet file sync drops expert bundles for the robot to install.

A bundle is taken only once it has stopped changing (same size and modification time on two polls),
so a half-copied file is never read; copying to a temporary name and renaming into place is still
the safest way to deliver one. A bundle is offered once: until it is settled it is not offered
again, however long its install takes (polls keep coming meanwhile). After the install attempt the
file moves to `installed/` or `refused/` (with `<bundle>.reason.txt` beside it), so the inbox never
retries a bundle forever and nothing is lost: a refused bundle stays inspectable.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

BUNDLE_SUFFIX = ".tar"
INSTALLED_DIR = "installed"
REFUSED_DIR = "refused"


class BundleInbox:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seen: dict[Path, tuple[int, int]] = {}
        self._taken: set[Path] = set()  # offered, not settled yet (settle runs on another thread)
        self._lock = threading.Lock()

    def ready(self) -> list[Path]:
        """Bundles unchanged since the previous call and not offered before, oldest first."""
        current = {}
        for path in self.folder.glob(f"*{BUNDLE_SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved away between listing and stat
                continue
            current[path] = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            ready = [p for p, signature in current.items() if self._seen.get(p) == signature and p not in self._taken]
            self._taken.update(ready)
            self._seen = current
        return sorted(ready, key=lambda p: (current[p][1], p.name))

    def settle(self, bundle: Path, error: str | None = None) -> Path:
        """Move a bundle out of the inbox: to installed/, or to refused/ with the reason beside it.
        A bundle that was taken away meanwhile leaves only the reason (if any) behind."""
        target_dir = self.folder / (INSTALLED_DIR if error is None else REFUSED_DIR)
        target_dir.mkdir(exist_ok=True)
        target = target_dir / bundle.name
        try:
            os.replace(bundle, target)
        except FileNotFoundError:
            pass
        if error is not None:
            target.with_name(target.name + ".reason.txt").write_text(error + "\n")
        with self._lock:
            self._taken.discard(bundle)
            self._seen.pop(bundle, None)
        return target
