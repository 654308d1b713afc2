"""The store's memory of what it accepted: rollback protection that outlives the index.

The index says what is installed; it forgets a version once `rollback`, `remove` or pruning drops it.
An attacker who replays an older, validly signed bundle (TUF's rollback attack) must be refused even
then, and a version string must never name two different builds. So the store keeps, in
`<store>/accepted.json`, per expert the highest version it ever accepted and the digest of every
manifest it accepted under each version, plus a log of deliberate downgrades::

    {"format": 1,
     "experts": {"dance": {"highest": "2.0.0", "manifests": {"1.0.0": "<sha256>", "2.0.0": "<sha256>"}}},
     "downgrades": [{"expert": "dance", "version": "1.0.0", "highest": "2.0.0", "at": "2026-...Z"}]}

It is written (atomically, durably) before the index commits an install, so a crash between the two
leaves a memory that is at most ahead of the index, never behind it. A store from before this file
starts its memory from the versions its index names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from motion_agent.bundles.durable import write_json_durably
from motion_agent.bundles.manifest import BundleError, Manifest, SemVer, clause, utc_now_iso

HISTORY_NAME = "accepted.json"
HISTORY_FORMAT = 1
LOG = logging.getLogger(__name__)


def manifest_digest(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


@dataclass
class ExpertHistory:
    highest: str
    manifests: dict[str, str] = field(default_factory=dict)  # version -> sha256 of its manifest.yaml


@dataclass
class AcceptedVersions:
    """What the store accepted, per expert; `check` refuses what rollback protection forbids."""

    experts: dict[str, ExpertHistory] = field(default_factory=dict)
    downgrades: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> AcceptedVersions | None:
        """The memory in `path`, or None when the store has none yet."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise BundleError(f"The store's memory {path} is unreadable: {clause(error)}.", "store") from None
        try:
            if data["format"] != HISTORY_FORMAT:
                raise ValueError(f"format {data['format']} is not {HISTORY_FORMAT}")
            experts = {
                name: ExpertHistory(str(e["highest"]), {str(v): str(d) for v, d in e["manifests"].items()})
                for name, e in data["experts"].items()
            }
            return cls(experts, [dict(d) for d in data.get("downgrades", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BundleError(f"The store's memory {path} is malformed ({clause(error)}).", "store") from None

    def remember(self, name: str, version: str, digest: str) -> None:
        history = self.experts.setdefault(name, ExpertHistory(version))
        history.manifests[version] = digest
        if SemVer.parse(version) > SemVer.parse(history.highest):
            history.highest = version

    def check(self, manifest: Manifest, digest: str, force: bool) -> bool:
        """Refuse a reused version string with other content (always) and a version below the highest
        ever accepted (unless `force`); returns whether this install is a deliberate downgrade."""
        history = self.experts.get(manifest.name)
        if history is None:
            return False
        known = history.manifests.get(manifest.version)
        if known and known != digest:  # "" : a damaged copy whose content is unknown
            raise BundleError(
                f"Version {manifest.version} of expert {manifest.name!r} was accepted before with other content; "
                "publish the new build under a new version.",
                "version-conflict",
            )
        if manifest.semver >= SemVer.parse(history.highest):
            return False
        if not force:
            raise BundleError(
                f"Version {manifest.version} of expert {manifest.name!r} is older than version {history.highest}, "
                "which this robot accepted before (rollback protection); force the install to downgrade.",
                "older-version",
            )
        return True

    def log_downgrade(self, manifest: Manifest) -> None:
        highest = self.experts[manifest.name].highest if manifest.name in self.experts else ""
        entry = {"expert": manifest.name, "version": manifest.version, "highest": highest, "at": utc_now_iso()}
        self.downgrades.append(entry)
        LOG.warning(
            "forced downgrade of expert %s to %s (highest accepted: %s)", manifest.name, manifest.version, highest
        )

    def write(self, path: Path) -> None:
        """Replace the memory atomically and durably."""
        data = {
            "format": HISTORY_FORMAT,
            "experts": {
                name: {"highest": h.highest, "manifests": dict(sorted(h.manifests.items()))}
                for name, h in sorted(self.experts.items())
            },
            "downgrades": self.downgrades,
        }
        os.replace(write_json_durably(path, data), path)
