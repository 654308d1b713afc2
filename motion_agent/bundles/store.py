"""The on-robot expert store: verified, versioned experts with atomic install, rollback and removal.

A robot must never lose the experts it has and never run a half-installed one, whatever happens
during an install (a refusal, a crash, a power cut). So nothing the runtime can see is ever changed
in place: new files go to a staging folder, are fsynced, and become visible through one atomic
rename of the index.

Layout::

    <store>/index.json                     single source of truth: per expert, the active version
                                           and the previous versions kept for rollback
    <store>/versions/<expert>/<version>/   an expert folder (adapter/, router/, eval.json) plus the
                                           bundle's manifest.yaml and manifest.sig
    <store>/staging/                       private work folders of operations in progress
    <store>/accepted.json                  what the store ever accepted (history.py): rollback
                                           protection that outlives rollback, removal and pruning
    <store>/.lock                          advisory lock that serialises writers

index.json::

    {"format": 1, "generation": 7,
     "experts": {"lane_merge": {"active": "1.2.0", "previous": ["1.1.0", "1.0.0"]}}}

`previous` is newest first and holds at most `StoreConfig.keep_previous` versions.

Install protocol (each step is durable before the next starts):
  1. extract and verify the bundle into staging/<work>/expert; check the signing key's scope, the
     manifest's dates (not expired, not from the future) and the store's memory (no version below
     the highest ever accepted unless forced, no version string reused with other content);
  2. fsync its files and folders, rename it to versions/<expert>/<version>, fsync the parent;
     remember the version in accepted.json;
  3. write index.json.tmp, fsync it, os.replace it over index.json, fsync the store folder --
     the commit point: before it the old version is active, after it the new one;
  4. prune: version folders the index no longer names are moved into staging and deleted.

A crash anywhere leaves the index naming complete version folders only; whatever it left behind
(staging folders, a version folder that was never committed) is unreferenced and is collected at
the start of the next write. Readers never take the lock: they read index.json, which os.replace
swaps atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from motion_agent.bundles.archive import sha256_file
from motion_agent.bundles.durable import (
    checkpoint,
    delete,
    fsync_dir,
    fsync_tree,
    write_json_durably,
)
from motion_agent.bundles.history import HISTORY_NAME, AcceptedVersions, manifest_digest
from motion_agent.bundles.keys import Keyring
from motion_agent.bundles.manifest import (
    DEFAULT_LIMITS,
    MANIFEST_NAME,
    BundleError,
    BundleLimits,
    Manifest,
    clause,
    parse_utc,
)
from motion_agent.bundles.trust import TrustPolicy
from motion_agent.bundles.verify import extract_verified

INDEX_NAME = "index.json"
INDEX_FORMAT = 1
VERSIONS_DIR = "versions"
STAGING_DIR = "staging"
LOCK_NAME = ".lock"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreConfig:
    """How many previous versions each expert keeps for rollback, the bundle limits, and how far the
    robot's clock may be off from the signer's when dates are checked."""

    keep_previous: int = 2
    limits: BundleLimits = DEFAULT_LIMITS
    clock_skew_s: float = 300.0

    def __post_init__(self) -> None:
        if self.keep_previous < 0:
            raise ValueError("keep_previous must be zero or more")
        if self.clock_skew_s < 0:
            raise ValueError("clock_skew_s must be zero or more")


@dataclass(frozen=True)
class ExpertRecord:
    """One expert in the index: its active version and the previous ones, newest first."""

    name: str
    active: str
    previous: tuple[str, ...] = ()

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.active, *self.previous)


@dataclass(frozen=True)
class InstallResult:
    name: str
    version: str
    replaced: str | None  # the version that was active before, if any
    path: Path
    changed: bool  # False when this exact version was already active


class ExpertStore:
    """A store folder on the robot. The runtime only needs `active_experts()`, which reads the
    index and nothing else; every writer holds the store lock."""

    def __init__(self, root: str | Path, config: StoreConfig | None = None) -> None:
        self.root = Path(root)
        self.config = config or StoreConfig()

    # ---------------------------------------------------------------------------------- reading

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def version_path(self, name: str, version: str) -> Path:
        return self.root / VERSIONS_DIR / name / version

    def read_index(self) -> dict[str, ExpertRecord]:
        """The experts of the index, by name; an empty store (no index yet) has none."""
        try:
            data = json.loads(self.index_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise BundleError(f"The store index {self.index_path} is unreadable: {clause(error)}.", "store") from None
        try:
            if data["format"] != INDEX_FORMAT:
                raise ValueError(f"format {data['format']} is not {INDEX_FORMAT}")
            return {
                name: ExpertRecord(name, str(entry["active"]), tuple(str(v) for v in entry["previous"]))
                for name, entry in data["experts"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BundleError(f"The store index {self.index_path} is malformed ({clause(error)}).", "store") from None

    def active_experts(self, trust: TrustPolicy | None = None) -> dict[str, Path]:
        """Folder of the active version of each expert: what the runtime loads. With `trust`, only the
        versions still signed by a key it trusts (for the expert), so revoking a key stops its experts."""
        active = {name: self.version_path(name, record.active) for name, record in self.read_index().items()}
        if trust is None:
            return active
        refused = self.untrusted(trust)
        return {name: folder for name, folder in active.items() if name not in refused}

    def untrusted(self, trust: TrustPolicy) -> dict[str, str]:
        """Active experts whose signature no key of `trust` verifies (or whose key may not sign them),
        with the reason: what a revoked key leaves behind."""
        refused = {}
        for name, record in self.read_index().items():
            try:
                trust.signer(self.version_path(name, record.active), name)
            except BundleError as error:
                refused[name] = f"{name} {record.active}: {error}"
        return refused

    def manifest(self, name: str, version: str) -> Manifest:
        return Manifest.from_yaml_bytes((self.version_path(name, version) / MANIFEST_NAME).read_bytes())

    def check(self, trust: TrustPolicy | None = None) -> list[str]:
        """Problems of the store, one sentence each (empty when healthy): every version the index
        names must be a complete folder whose files match its manifest's sizes and sha256; with
        `trust`, every active version must still be signed by a trusted key (else it is not served)."""
        problems = list(self.untrusted(trust).values()) if trust is not None else []
        for name, record in self.read_index().items():
            for version in record.versions:
                folder = self.version_path(name, version)
                try:
                    manifest = self.manifest(name, version)
                except (OSError, BundleError) as error:
                    problems.append(f"{name} {version}: the manifest cannot be read ({clause(error)}).")
                    continue
                if (manifest.name, manifest.version) != (name, version):
                    problems.append(f"{name} {version}: the folder holds {manifest.name} {manifest.version}.")
                for entry in manifest.files:
                    path = folder / entry.path
                    if not path.is_file():
                        problems.append(f"{name} {version}: {entry.path} is missing.")
                    elif path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
                        problems.append(f"{name} {version}: {entry.path} does not match its manifest.")
        return problems

    # ---------------------------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, ExpertRecord]]:
        """Hold the store lock, make sure the store exists, collect what crashes left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            (self.root / STAGING_DIR).mkdir(exist_ok=True)
            (self.root / VERSIONS_DIR).mkdir(exist_ok=True)
            if not self.index_path.exists():
                if any((self.root / VERSIONS_DIR).iterdir()):
                    raise BundleError(
                        f"The store {self.root} has expert versions but no index, so it is left untouched.", "store"
                    )
                self._write_index({}, generation=0, announce=False)
            index = self.read_index()
            try:
                self._collect_garbage(index)
            except OSError as error:  # leftovers of a crash stay unreferenced; the index is untouched
                where = f" ({error.filename})" if error.filename else ""
                raise BundleError(
                    f"Cannot clean up the store {self.root}{where}: {clause(error)}; it still serves what it served.",
                    "io",
                ) from None
            yield index
        finally:
            os.close(lock)  # closing releases the lock; so does the death of the process

    def generation(self) -> int:
        """The index generation: it grows by one with every committed write (0 for an empty store)."""
        try:
            return int(json.loads(self.index_path.read_text()).get("generation", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def _write_index(
        self, experts: dict[str, ExpertRecord], generation: int | None = None, announce: bool = True
    ) -> None:
        """Replace index.json atomically and durably (the commit point of every write)."""
        data = {
            "format": INDEX_FORMAT,
            "generation": self.generation() + 1 if generation is None else generation,
            "experts": {
                name: {"active": record.active, "previous": list(record.previous)}
                for name, record in sorted(experts.items())
            },
        }
        temp = write_json_durably(self.index_path, data)
        if announce:
            checkpoint("index-written")
        os.replace(temp, self.index_path)
        if announce:
            checkpoint("index-replaced")
        try:
            fsync_dir(self.root)
        except OSError as error:  # committed and visible; a power cut now may bring back the old index
            LOG.warning("the new index of %s is in place but not yet on disk: %s", self.root, error)
        if announce:
            checkpoint("committed")

    def _collect_garbage(self, experts: dict[str, ExpertRecord]) -> None:
        """Delete staging leftovers and every version folder the index does not name.

        Folders are first renamed into staging (atomic), then deleted, so versions/ never holds a
        half-deleted folder even if the process dies while deleting.
        """
        staging = self.root / STAGING_DIR
        for leftover in list(staging.iterdir()):
            delete(leftover)
        keep = {(name, version) for name, record in experts.items() for version in record.versions}
        for expert_dir in sorted((self.root / VERSIONS_DIR).iterdir()):
            for version_dir in sorted(expert_dir.iterdir()):
                if (expert_dir.name, version_dir.name) not in keep:
                    trash = Path(tempfile.mkdtemp(prefix="trash-", dir=staging))
                    os.rename(version_dir, trash / "version")
                    checkpoint("pruning")
                    delete(trash)
            if not any(expert_dir.iterdir()):
                expert_dir.rmdir()
        fsync_dir(self.root / VERSIONS_DIR)

    def install(
        self,
        bundle_path: str | Path,
        keyring: Keyring | str | Path,
        *,
        backbone_fingerprint: str,
        tokenizer_fingerprint: str,
        force: bool = False,
        now: datetime | None = None,
    ) -> InstallResult:
        """Verify a bundle against the keyring (its keys and their scopes) and this robot's
        fingerprints, then make it active.

        A version older than the highest this store ever accepted is refused unless `force` (a
        deliberate downgrade, logged in accepted.json). A version string accepted before is accepted
        again only with a byte-identical manifest: one version never names two different experts. An
        expired bundle, or one created in the future, is refused (dates are checked against `now`,
        default the clock, with `StoreConfig.clock_skew_s` allowed either way). Any refusal leaves the
        store as it was.
        """
        trust = TrustPolicy.of(keyring)
        with self._writing() as experts:
            work = Path(tempfile.mkdtemp(prefix="install-", dir=self.root / STAGING_DIR))
            try:
                verified = extract_verified(
                    bundle_path,
                    work / "expert",
                    trust.keys,
                    backbone_fingerprint=backbone_fingerprint,
                    tokenizer_fingerprint=tokenizer_fingerprint,
                    limits=self.config.limits,
                )
                checkpoint("verified")
                manifest = verified.manifest
                current = experts.get(manifest.name)
                trust.check_scope(verified.key_id, manifest.name)
                self._refuse_stale(manifest, now)
                history = self._history(experts)
                digest = manifest_digest((verified.root / MANIFEST_NAME).read_bytes())
                downgrade = history.check(manifest, digest, force)
                target = self.version_path(manifest.name, manifest.version)
                if target.exists():
                    if (target / MANIFEST_NAME).read_bytes() != (verified.root / MANIFEST_NAME).read_bytes():
                        raise BundleError(
                            f"Version {manifest.version} of expert {manifest.name!r} is already in the store with "
                            "different content; publish the new build under a new version.",
                            "version-conflict",
                        )
                else:
                    fsync_tree(verified.root)
                    checkpoint("staged")
                    target.parent.mkdir(exist_ok=True)
                    fsync_dir(target.parent.parent)
                    os.rename(verified.root, target)
                    fsync_dir(target.parent)
                    checkpoint("renamed")
                history.remember(manifest.name, manifest.version, digest)
                if downgrade:
                    history.log_downgrade(manifest)
                history.write(self.history_path)
                if current is not None and current.active == manifest.version:
                    return InstallResult(manifest.name, manifest.version, current.active, target, changed=False)
                older = () if current is None else current.versions
                previous = tuple(v for v in older if v != manifest.version)[: self.config.keep_previous]
                experts = dict(experts)
                experts[manifest.name] = ExpertRecord(manifest.name, manifest.version, previous)
                self._write_index(experts)
            except OSError as error:  # a full disk, say: before the commit point, so nothing changed
                where = f" ({error.filename})" if error.filename else ""
                raise BundleError(
                    f"Installing {Path(bundle_path).name} into the store {self.root} failed{where}: {clause(error)}; "
                    "the experts it served before are still active.",
                    "io",
                ) from None
            finally:
                if work.exists():
                    delete(work)
            try:
                self._collect_garbage(experts)
            except OSError as error:  # committed already; the next write collects what is left
                LOG.warning("pruning the store %s after installing %s failed: %s", self.root, manifest.name, error)
            return InstallResult(
                manifest.name, manifest.version, current.active if current else None, target, changed=True
            )

    def adopt(self, versions: dict[str, tuple[str, Path]]) -> list[str]:
        """Make installed version folders of another store (expert -> (version, folder), each with its
        signed manifest) the first experts of this store; only a store never written, else []. The
        folders are copied through staging and committed by one index write, as installs are."""
        with self._writing() as experts:
            if experts or self.history_path.exists():
                return []
            history = AcceptedVersions()
            for name, (version, folder) in sorted(versions.items()):
                work = Path(tempfile.mkdtemp(prefix="adopt-", dir=self.root / STAGING_DIR))
                shutil.copytree(folder, work / "expert")
                fsync_tree(work / "expert")
                target = self.version_path(name, version)
                target.parent.mkdir(exist_ok=True)
                os.rename(work / "expert", target)
                os.rmdir(work)
                history.remember(name, version, manifest_digest((target / MANIFEST_NAME).read_bytes()))
            fsync_dir(self.root / VERSIONS_DIR)
            history.write(self.history_path)
            self._write_index({name: ExpertRecord(name, version, ()) for name, (version, _) in versions.items()})
            return sorted(versions)

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_NAME

    def _history(self, experts: dict[str, ExpertRecord]) -> AcceptedVersions:
        """The store's memory; a store from before it starts from the versions its index names."""
        history = AcceptedVersions.read(self.history_path)
        if history is None:
            history = AcceptedVersions()
            for name, record in experts.items():
                for version in reversed(record.versions):
                    manifest = self.version_path(name, version) / MANIFEST_NAME
                    try:
                        history.remember(name, version, manifest_digest(manifest.read_bytes()))
                    except OSError:  # a damaged version (`check` names it) still counts as accepted
                        history.remember(name, version, "")
        return history

    def _refuse_stale(self, manifest: Manifest, now: datetime | None) -> None:
        """TUF's freeze attack: refuse an expired bundle, and one whose creation time lies ahead."""
        now = now or datetime.now(timezone.utc)
        skew = timedelta(seconds=self.config.clock_skew_s)
        if manifest.expires and parse_utc(manifest.expires) + skew < now:
            raise BundleError(
                f"The bundle of expert {manifest.name!r} {manifest.version} expired at {manifest.expires}.",
                "expired",
            )
        if parse_utc(manifest.created) - skew > now:
            raise BundleError(
                f"The bundle of expert {manifest.name!r} {manifest.version} was created at {manifest.created}, "
                "in the future: check the signer's and this robot's clocks.",
                "from-the-future",
            )

    def rollback(self, name: str, to: str | None = None) -> ExpertRecord:
        """Make a previous version active again (the newest previous one unless `to` names one).

        The versions newer than the one rolled back to leave the store: a rolled-back build is
        abandoned, and can be installed again from its bundle.
        """
        with self._writing() as experts:
            record = self._record(experts, name)
            if not record.previous:
                raise BundleError(f"Expert {name!r} has no previous version to roll back to.", "no-previous")
            target = to if to is not None else record.previous[0]
            if target not in record.previous:
                raise BundleError(
                    f"Expert {name!r} has no previous version {target} (kept: {', '.join(record.previous)}).",
                    "no-previous",
                )
            position = record.previous.index(target)
            updated = ExpertRecord(name, target, record.previous[position + 1 :])
            experts = dict(experts) | {name: updated}
            self._write_index(experts)
            self._collect_garbage(experts)
            return updated

    def remove(self, name: str, version: str | None = None) -> None:
        """Remove an expert with all its versions, or only one of its previous (inactive) versions."""
        with self._writing() as experts:
            record = self._record(experts, name)
            experts = dict(experts)
            if version is None:
                del experts[name]
            elif version == record.active:
                raise BundleError(
                    f"Version {version} of expert {name!r} is active; roll back first or remove the whole expert.",
                    "active-version",
                )
            elif version not in record.previous:
                raise BundleError(f"Expert {name!r} has no version {version} in the store.", "unknown-version")
            else:
                experts[name] = ExpertRecord(name, record.active, tuple(v for v in record.previous if v != version))
            self._write_index(experts)
            self._collect_garbage(experts)

    @staticmethod
    def _record(experts: dict[str, ExpertRecord], name: str) -> ExpertRecord:
        if name not in experts:
            raise BundleError(f"The store has no expert named {name!r}.", "unknown-expert")
        return experts[name]
