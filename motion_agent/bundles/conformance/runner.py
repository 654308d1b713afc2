"""Running conformance cases: each in a fresh store, checking the refusal and that nothing changed.

"Nothing changed" is checked twice: the store's bytes (every file under the store folder, the lock
aside, by sha256: index, rollback memory, version folders, and an empty staging folder) and the serving
set (the experts `ExpertStore.active_experts` gives a node under the attempt's keyring, with the digest
of each one's manifest), before and after the attempt.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from motion_agent.bundles.archive import sha256_file
from motion_agent.bundles.conformance.cases import CASES, Case
from motion_agent.bundles.conformance.rig import Rig
from motion_agent.bundles.history import manifest_digest
from motion_agent.bundles.manifest import MANIFEST_NAME, BundleError
from motion_agent.bundles.store import LOCK_NAME, ExpertStore
from motion_agent.bundles.trust import TrustPolicy

MAX_MESSAGE_CHARS = 600  # a refusal quotes at most a bounded prefix of what it was given


@dataclass(frozen=True)
class Outcome:
    """What one case did: `outcome` is "refused", "installed" or "crashed" (an exception that is not a
    BundleError); `reason` and `message` are the refusal's."""

    name: str
    attack: str
    expected: str
    outcome: str
    reason: str
    message: str
    store_unchanged: bool
    serving_unchanged: bool
    seconds: float

    @property
    def problems(self) -> list[str]:
        """Why the case failed; empty when it passed."""
        case = CASES[self.name]
        found = []
        if self.outcome != "refused":
            found.append(f"{self.outcome} instead of refused: {self.message}")
        elif self.reason != self.expected:
            found.append(f"refused for {self.reason!r}, not {self.expected!r}: {self.message}")
        if self.outcome == "refused" and case.says not in self.message:
            found.append(f"the message does not say {case.says!r}: {self.message}")
        if "\n" in self.message or len(self.message) > MAX_MESSAGE_CHARS or not self.message.endswith("."):
            found.append(f"the message is not one bounded sentence ({len(self.message)} chars)")
        if not self.store_unchanged:
            found.append("the store changed")
        if not self.serving_unchanged:
            found.append("the set of served experts changed")
        return found

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return asdict(self) | {"passed": self.passed}


def store_snapshot(store: ExpertStore) -> dict[str, str]:
    """sha256 of every file of the store (the advisory lock file aside), by path inside the store."""
    files = {}
    for path in sorted(store.root.rglob("*")):
        if path.is_file() and path.name != LOCK_NAME:
            files[str(path.relative_to(store.root))] = sha256_file(path)
        elif path.is_dir() and not any(path.iterdir()):
            files[str(path.relative_to(store.root)) + "/"] = "empty folder"
    return files


def serving_set(store: ExpertStore, keyring: Path) -> dict[str, str]:
    """What a node with this keyring serves: expert -> digest of its signed manifest."""
    try:
        active = store.active_experts(TrustPolicy.load(keyring))
    except BundleError as error:  # a keyring the node cannot read: it serves nothing, and says why
        return {"(keyring)": str(error)}
    return {name: manifest_digest((path / MANIFEST_NAME).read_bytes()) for name, path in active.items()}


def run_case(case: Case, rig: Rig, work: Path) -> Outcome:
    """Prepare a fresh store for `case`, make the attempt, and report what happened."""
    work.mkdir(parents=True, exist_ok=True)
    store = rig.store(work / "store")
    attempt = case.build(rig, store, work)
    keyring = attempt.keyring or rig.keyring
    before, serving_before = store_snapshot(store), serving_set(store, keyring)
    started = time.perf_counter()
    try:
        rig.install(store, attempt.bundle, keyring, now=attempt.now, force=attempt.force)
        outcome, reason, message = "installed", "", f"{attempt.bundle.name} was installed."
    except BundleError as error:
        outcome, reason, message = "refused", error.reason, str(error)
    except Exception as error:  # noqa: BLE001 -- a crash is an outcome the suite reports, not raises
        outcome, reason, message = "crashed", type(error).__name__, f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - started
    return Outcome(
        case.name,
        case.attack,
        case.reason,
        outcome,
        reason,
        message,
        store_snapshot(store) == before,
        serving_set(store, keyring) == serving_before,
        round(seconds, 4),
    )


def run_suite(rig: Rig | None = None, names: list[str] | None = None, work: Path | None = None) -> list[Outcome]:
    """Run the named cases (default: all) against a rig (default: a fresh one in a temporary folder)."""
    unknown = sorted(set(names or ()) - set(CASES))
    if unknown:
        raise KeyError(f"no conformance case named {', '.join(unknown)}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="conformance-") as temp:
        work = Path(work or temp)
        rig = rig or Rig.build(work / "rig")
        return [run_case(CASES[name], rig, work / name) for name in (names or CASES)]
