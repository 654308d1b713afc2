"""fuzz: mutations of valid bundles (bytes, tar headers, members, manifest fields) thrown at a store.

An attacker without the release key: every mutation must be refused with a BundleError (one line), never
installed, never a traceback, and the store's bytes must stay as they were. A mutation that re-signs a
changed manifest signs it with the stranger's key, or keeps the old signature."""

from __future__ import annotations

import tarfile
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from motion_agent.bundles.archive import write_archive
from motion_agent.bundles.conformance.rig import Rig, members
from motion_agent.bundles.conformance.runner import store_snapshot
from motion_agent.bundles.keys import load_private_key, sign_manifest
from motion_agent.bundles.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleError

HEADER_FIELDS = {  # ustar header field -> (offset, length)
    "name": (0, 100),
    "mode": (100, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "checksum": (148, 8),
    "type": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 8),
    "prefix": (345, 155),
}
TYPE_BYTES = b"0123456789xgLKSMNDV\0A"
MANIFEST_VALUES = ["", "../x", "9.9.9", 2**70, -1, None, [], {"a": 1}, "ee" * 32, "2099-01-01T00:00:00Z", "x" * 5000]
SHOWN_TRACEBACKS = 5


class Mutator:
    """One random mutation of the valid bundle per call, by kind."""

    def __init__(self, rig: Rig, rng: np.random.Generator) -> None:
        self.rig, self.rng = rig, rng
        self.data = rig.bundles["1.1.0"].read_bytes()
        self.parts = members(rig.bundles["1.1.0"])
        with tarfile.open(rig.bundles["1.1.0"]) as tar:
            self.headers = [info.offset for info in tar.getmembers()]
        self.kinds = {
            "flip": self.flip,
            "header-field": self.header_field,
            "header-type": self.header_type,
            "truncate": self.truncate,
            "append": self.append,
            "insert": self.insert,
            "delete": self.delete,
            "reorder-members": self.reorder,
            "drop-member": self.drop,
            "duplicate-member": self.duplicate,
            "manifest-field": self.manifest_field,
        }

    def __call__(self, kind: str) -> bytes:
        return self.kinds[kind]()

    def _int(self, high: int) -> int:
        return int(self.rng.integers(0, high))

    def flip(self) -> bytes:
        damaged = bytearray(self.data)
        for _ in range(1 + self._int(8)):
            damaged[self._int(len(damaged))] ^= 1 + self._int(255)
        return bytes(damaged)

    def header_field(self) -> bytes:
        offset, length = list(HEADER_FIELDS.values())[self._int(len(HEADER_FIELDS))]
        start = self.headers[self._int(len(self.headers))] + offset
        value = self.rng.integers(0, 256, size=1 + self._int(length), dtype=np.uint8).tobytes()
        return self.data[:start] + value + self.data[start + len(value) :]

    def header_type(self) -> bytes:
        start = self.headers[self._int(len(self.headers))] + HEADER_FIELDS["type"][0]
        kind = TYPE_BYTES[self._int(len(TYPE_BYTES))]
        return self.data[:start] + bytes([kind]) + self.data[start + 1 :]

    def truncate(self) -> bytes:
        return self.data[: self._int(len(self.data))]

    def append(self) -> bytes:
        size = 1 + self._int(20480)
        tail = bytes(size) if self.rng.random() < 0.5 else self.rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        return self.data + tail

    def insert(self) -> bytes:
        at, chunk = self._int(len(self.data)), self.rng.integers(0, 256, 1 + self._int(1024), dtype=np.uint8)
        return self.data[:at] + chunk.tobytes() + self.data[at:]

    def delete(self) -> bytes:
        at = self._int(len(self.data))
        return self.data[:at] + self.data[at + 1 + self._int(2048) :]

    def _archive(self, parts: list[tuple[str, bytes]]) -> bytes:
        path = self.rig.root / "fuzz-archive.tar"
        write_archive(path, parts)
        return path.read_bytes()

    def reorder(self) -> bytes:
        order = self.rng.permutation(len(self.parts))
        if list(order) == sorted(order):
            order = order[::-1]
        return self._archive([self.parts[i] for i in order])

    def drop(self) -> bytes:
        gone = self._int(len(self.parts))
        return self._archive([p for i, p in enumerate(self.parts) if i != gone])

    def duplicate(self) -> bytes:
        twice = self.parts[self._int(len(self.parts))]
        return self._archive([*self.parts, twice] if self.rng.random() < 0.5 else [twice, *self.parts])

    def manifest_field(self) -> bytes:
        parts = dict(self.parts)
        mapping = yaml.safe_load(parts[MANIFEST_NAME])
        keys = [k for k in mapping if k != "files"] + ["files"]
        key = keys[self._int(len(keys))]
        value = MANIFEST_VALUES[self._int(len(MANIFEST_VALUES))]
        if key == "files":
            mapping["files"][self._int(len(mapping["files"]))]["sha256"] = "00" * 32
        else:
            mapping[key] = value
        manifest = yaml.safe_dump(mapping, sort_keys=False).encode()
        parts[MANIFEST_NAME] = manifest
        if self.rng.random() < 0.5:  # signed by a key the robot does not trust; else the old signature stays
            parts[SIGNATURE_NAME] = sign_manifest(manifest, load_private_key(self.rig.stranger_key))
        return self._archive(list(parts.items()))


def run_bundle_fuzz(rig: Rig, work: Path, count: int, seed: int = 0) -> dict:
    """`count` mutations against one store holding 1.0.0; the store's bytes are compared after each."""
    rng = np.random.default_rng(seed)
    mutate = Mutator(rig, rng)
    store = rig.store(work / "fuzz-store")
    before = store_snapshot(store)
    bundle = work / "fuzzed.tar"
    kinds = list(mutate.kinds)
    tally: Counter = Counter()
    reasons: Counter = Counter()
    installed, tracebacks, changed, unchanged_bytes = 0, [], 0, 0
    progress, number = tqdm(total=count, desc="bundle fuzz", unit="bundle"), 0
    while sum(tally.values()) < count:
        kind = kinds[number % len(kinds)]
        number += 1
        data = mutate(kind)
        if data == mutate.data:  # a mutation that happened to change nothing is not a fuzzed bundle
            unchanged_bytes += 1
            continue
        progress.update()
        bundle.write_bytes(data)
        tally[kind] += 1
        try:
            rig.install(store, bundle)
            installed += 1
            store = rig.store(work / f"fuzz-store-{number}")  # start again from a clean store
            before = store_snapshot(store)
        except BundleError as error:
            reasons[error.reason] += 1
            if "\n" in str(error):
                tracebacks.append(f"{kind}: a refusal of more than one line: {str(error)[:300]}")
        except Exception:  # noqa: BLE001 -- counted and shown: the point of the fuzzer
            tracebacks.append(f"{kind}: {traceback.format_exc()[-1500:]}")
        if store_snapshot(store) != before:
            changed += 1
            before = store_snapshot(store)
    progress.close()
    return {
        "bundles": sum(tally.values()),
        "installed": installed,
        "tracebacks": len(tracebacks),
        "store_changed": changed,
        "identical_mutations_skipped": unchanged_bytes,
        "by_mutation": dict(sorted(tally.items())),
        "refusal_reasons": dict(reasons.most_common()),
        "traceback_samples": tracebacks[:SHOWN_TRACEBACKS],
    }
