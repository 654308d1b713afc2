"""Durable file operations of the expert store, and the checkpoints its crash tests stop at.

Everything the store makes visible must survive a power cut at any instant: files and folders are
fsynced before they are renamed into place, JSON files are written beside their target and swapped in
with os.replace, and folders are deleted file by file only after they left the store's view.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from motion_agent.bundles.manifest import BundleError, clause

# Test hook: a process whose environment names one of the steps below stops there and waits, so a
# crash test can SIGKILL it at exactly that point of the install protocol.
PAUSE_ENV = "MOTION_AGENT_STORE_PAUSE_AT"
STEPS = ("verified", "staged", "renamed", "index-written", "index-replaced", "committed", "pruning", "deleting")


def checkpoint(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"paused at {step}\n")
        sys.stderr.flush()
        while True:
            time.sleep(60)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under root, children before their folder."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def delete(path: Path) -> None:
    """Remove a file, or a folder with everything in it."""
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.unlink(os.path.join(folder, name))
                checkpoint("deleting")
            for name in dirs:
                os.rmdir(os.path.join(folder, name))
        os.rmdir(path)
    else:
        path.unlink(missing_ok=True)


def write_json_durably(path: Path, data: dict) -> Path:
    """Write `data` as JSON to `path`.tmp and fsync it, for the caller to os.replace over `path`.

    On a failed write (a full disk) the half-written file is removed and the error names it: the file
    it was to replace is untouched, so the store is as it was."""
    temp = path.with_name(path.name + ".tmp")
    try:
        with open(temp, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise BundleError(f"Cannot write {temp}: {clause(error)}; {path.name} is unchanged.", "io") from None
    return temp
