"""The conformance cases: one named attack each, in the spirit of TUF's conformance suite.

Every case prepares the store (a store with lane_merge 1.0.0 active, made by `Rig.store`) as the attack
needs it and returns the attempt: a bundle, and the keyring, clock and options the robot installs it
with. The runner (runner.py) installs it and checks that it is refused for the named reason, with a
message saying what is wrong, and that the store and the set of experts a node would serve are exactly
as before. Attack classes: TUF's (arbitrary package, rollback, freeze, mix-and-match, endless data, key
compromise) and the archive-level ones a tar format adds (malformed archive, parser exhaustion), plus
a model the expert was not trained for.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from motion_agent.bundles.archive import write_archive
from motion_agent.bundles.conformance.rig import (
    INSTALLED,
    NAME,
    Rig,
    add_member,
    digits_pax,
    members,
    resign,
    rewrite,
    tar_info,
    tar_with_header,
)
from motion_agent.bundles.manifest import ADAPTER_WEIGHTS, EVAL_FIGURES, MANIFEST_NAME, SIGNATURE_NAME
from motion_agent.bundles.store import ExpertStore
from motion_agent.bundles.trust import SCOPES_FILE

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)  # the robot's clock in the freeze cases
HOSTILE_PAX_BYTES = 320_000  # 61 s in tarfile's pax parser on CPython 3.11.7
SPARSE_HUGE_BYTES = 600 * 1024 * 1024  # over the default archive limit, yet no disk used (a sparse file)


@dataclass(frozen=True)
class Attempt:
    """What the robot is asked to install, and how: its keyring (default the rig's), its clock (default
    the real one) and whether the operator forced the install."""

    bundle: Path
    keyring: Path | None = None
    now: datetime | None = None
    force: bool = False


Build = Callable[[Rig, ExpertStore, Path], Attempt]


@dataclass(frozen=True)
class Case:
    name: str
    attack: str  # the attack class
    reason: str  # BundleError.reason the refusal must carry
    says: str  # a phrase the refusal message must contain
    build: Build
    doc: str


CASES: dict[str, Case] = {}


def case(name: str, attack: str, reason: str, says: str) -> Callable[[Build], Build]:
    """Register a case; the function's docstring says what the attacker does."""

    def register(build: Build) -> Build:
        if name in CASES:
            raise ValueError(f"two conformance cases are named {name!r}")
        CASES[name] = Case(name, attack, reason, says, build, " ".join((build.__doc__ or "").split()))
        return build

    return register


def _next(rig: Rig) -> Path:
    return rig.bundles["1.1.0"]


# ------------------------------------------------------------------------------ arbitrary package


@case("tampered-manifest", "arbitrary-package", "bad-signature", "signature does not match")
def _tampered_manifest(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """One word of the signed manifest changed after signing."""

    def change(parts: dict) -> None:
        parts[MANIFEST_NAME] = parts[MANIFEST_NAME].replace(b"Highway lane merge", b"Highway lane MERGE")

    return Attempt(rewrite(_next(rig), work / "tampered.tar", change))


@case("stranger-key", "arbitrary-package", "unknown-key", "not in the robot's keyring")
def _stranger_key(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A well-formed bundle signed by a key the robot does not trust."""
    return Attempt(rig.pack(work / "stranger.tar", "1.1.0", key=rig.stranger_key))


@case("swapped-weights", "arbitrary-package", "digest", ADAPTER_WEIGHTS)
def _swapped_weights(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The adapter weights changed by one bit; the signed manifest left as it was."""

    def change(parts: dict) -> None:
        weights = bytearray(parts[ADAPTER_WEIGHTS])
        weights[-1] ^= 0x01
        parts[ADAPTER_WEIGHTS] = bytes(weights)

    return Attempt(rewrite(_next(rig), work / "weights.tar", change))


@case("missing-file", "arbitrary-package", "missing-file", EVAL_FIGURES)
def _missing_file(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A file the manifest names left out."""
    return Attempt(rewrite(_next(rig), work / "missing.tar", lambda parts: parts.pop(EVAL_FIGURES)))


@case("extra-file", "arbitrary-package", "extra-file", "notes.txt")
def _extra_file(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A file the manifest does not name, appended in the canonical layout."""
    bundle = work / "extra.tar"
    write_archive(bundle, [*members(_next(rig)), ("notes.txt", b"not listed")])
    return Attempt(bundle)


@case("non-canonical-signature", "arbitrary-package", "bad-signature", "canonical")
def _non_canonical_signature(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The signature's base64 re-encoded with other spare bits: same signature bytes, other file bytes."""

    def change(parts: dict) -> None:
        signature = parts[SIGNATURE_NAME]
        last = signature.index(b"==") - 1  # the digit before "==" carries 4 spare bits
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        digit = alphabet.index(signature[last : last + 1]) ^ 1
        parts[SIGNATURE_NAME] = signature[:last] + alphabet[digit : digit + 1] + signature[last + 1 :]

    return Attempt(rewrite(_next(rig), work / "signature.tar", change))


@case("empty-signature", "arbitrary-package", "bad-signature", "signature")
def _empty_signature(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The signature file emptied: an unsigned bundle."""
    return Attempt(rewrite(_next(rig), work / "unsigned.tar", lambda parts: parts.update({SIGNATURE_NAME: b""})))


@case("repacked-by-tar", "arbitrary-package", "layout", "canonical")
def _repacked(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The same signed content repacked by a standard tar writer (GNU format, another mtime)."""
    bundle = work / "repacked.tar"
    with tarfile.open(bundle, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in members(_next(rig)):
            info = tar_info(name, len(content))
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    return Attempt(bundle)


@case("data-after-the-end", "arbitrary-package", "layout", "after")
def _data_after_end(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A valid bundle with another tar record appended: bytes no signature covers."""
    bundle = work / "appended.tar"
    bundle.write_bytes(_next(rig).read_bytes() + bytes(10240))
    return Attempt(bundle)


@case("compressed", "arbitrary-package", "corrupt", "not an uncompressed tar archive")
def _compressed(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The bundle gzip-compressed (readers that auto-detect compression would open it)."""
    bundle = work / "bundle.tar.gz"
    bundle.write_bytes(gzip.compress(_next(rig).read_bytes()))
    return Attempt(bundle)


# ------------------------------------------------------------------------------ malformed archive


@case("truncated-half", "malformed-archive", "truncated", "truncated")
def _truncated_half(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The first half of a valid bundle (an interrupted download)."""
    bundle = work / "half.tar"
    data = _next(rig).read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    return Attempt(bundle)


@case("truncated-end-marker", "malformed-archive", "truncated", "truncated")
def _truncated_end(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A valid bundle without its last byte of record padding."""
    bundle = work / "cut.tar"
    bundle.write_bytes(_next(rig).read_bytes()[:-1])
    return Attempt(bundle)


def _member_case(name: str, info: Callable[[], tarfile.TarInfo], data: bytes, reason: str, says: str, doc: str):
    def build(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
        return Attempt(add_member(_next(rig), work / f"{name}.tar", info(), data))

    build.__doc__ = doc
    case(name, "malformed-archive", reason, says)(build)


_member_case("parent-path", lambda: tar_info("../evil.txt", 4), b"evil", "unsafe-path", "../evil.txt",
             "A member that climbs out of the extraction folder.")  # fmt: skip
_member_case("absolute-path", lambda: tar_info("/tmp/evil.txt", 4), b"evil", "unsafe-path", "/tmp/evil.txt",
             "A member with an absolute path.")  # fmt: skip
_member_case("hidden-path", lambda: tar_info("adapter/.hidden", 4), b"evil", "unsafe-path", ".hidden",
             "A hidden file next to the adapter.")  # fmt: skip
_member_case("symlink", lambda: tar_info("link.txt", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), b"", "link",
             "symbolic link", "A symbolic link to /etc/passwd.")  # fmt: skip
_member_case("hardlink", lambda: tar_info("link.txt", kind=tarfile.LNKTYPE, linkname=EVAL_FIGURES), b"", "link",
             "hard link", "A hard link to a bundle file.")  # fmt: skip
_member_case("char-device", lambda: tar_info("dev", kind=tarfile.CHRTYPE), b"", "special-entry", "dev",
             "A character device node.")  # fmt: skip
_member_case("fifo-member", lambda: tar_info("fifo", kind=tarfile.FIFOTYPE), b"", "special-entry", "fifo",
             "A FIFO, which would block whoever opens it.")  # fmt: skip
_member_case("directory-member", lambda: tar_info("adapter2", kind=tarfile.DIRTYPE), b"", "special-entry",
             "adapter2", "A directory entry (the canonical layout has none).")  # fmt: skip
_member_case("duplicate-member", lambda: tar_info(EVAL_FIGURES, 2), b"{}", "duplicate", EVAL_FIGURES,
             "A second eval.json after the signed one (last one wins in most extractors).")  # fmt: skip


@case("huge-size-field", "endless-data", "too-large", "more than the limit")
def _huge_size(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A member header that claims 7 GiB of data in a 10 KB file."""
    bundle = work / "huge-size.tar"
    header = tar_info(EVAL_FIGURES, 7 * 1024**3).tobuf(format=tarfile.USTAR_FORMAT)
    bundle.write_bytes(header + bytes(10240 - len(header)))
    return Attempt(bundle)


@case("empty-file", "malformed-archive", "truncated", "truncated")
def _empty_file(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A file of zero bytes (a failed copy)."""
    bundle = work / "empty.tar"
    bundle.write_bytes(b"")
    return Attempt(bundle)


# ------------------------------------------------------------------------------ parser exhaustion


def _header_case(name: str, kind: bytes, body: bytes, doc: str) -> None:
    def build(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
        return Attempt(tar_with_header(work / f"{name}.tar", kind, body))

    build.__doc__ = doc
    case(name, "parser-exhaustion", "extended-header", "extended tar header")(build)


@case("pax-digits-320k", "parser-exhaustion", "extended-header", "extended tar header")
def _pax_digits(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A pax header body of 320 KB of digits: CPython 3.11.7's pax parser is quadratic in it
    (CVE-2024-6232, about 61 s), holding the GIL and the store lock."""
    return Attempt(digits_pax(work / "redos.tar", HOSTILE_PAX_BYTES))


_header_case("gnu-sparse-500mb", tarfile.XHDTYPE, b"23 GNU.sparse.map=0,1\n30 GNU.sparse.size=524288000\n",
             "A 10 KB file whose pax sparse map makes a tar reader write 500 MB before any check.")  # fmt: skip
_header_case("pax-global", tarfile.XGLTYPE, b"19 comment=anything\n",
             "A pax global header (it would change how every later member is read).")  # fmt: skip
_header_case("gnu-longname", tarfile.GNUTYPE_LONGNAME, b"x" * 300 + b"\0",
             "A GNU long-name header (names no ustar header can hold).")  # fmt: skip
_header_case("gnu-sparse-member", tarfile.GNUTYPE_SPARSE, b"", "An old-style GNU sparse member.")


# ------------------------------------------------------------------------------ endless data


@case("huge-file", "endless-data", "too-large", "over the limit")
def _huge_file(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A 600 MiB file (sparse on disk): refused by its size before a byte is read."""
    bundle = work / "huge.tar"
    with open(bundle, "wb") as handle:
        handle.truncate(SPARSE_HUGE_BYTES)
    return Attempt(bundle)


@case("too-many-entries", "endless-data", "too-large", "entries")
def _too_many(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """Twenty extra one-byte members."""
    bundle = work / "many.tar"
    write_archive(bundle, [*members(_next(rig)), *((f"n{i}.txt", b"x") for i in range(20))])
    return Attempt(bundle)


@case("gzip-bomb", "endless-data", "corrupt", "not an uncompressed tar archive")
def _gzip_bomb(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """64 MiB of zeros gzip-compressed into about 64 KB."""
    bundle = work / "bomb.tar.gz"
    bundle.write_bytes(gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9))
    return Attempt(bundle)


# ------------------------------------------------------------------------------ malformed manifest


def _schema_case(name: str, change: Callable[[dict], object], doc: str) -> None:
    def build(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
        return Attempt(resign(rig, _next(rig), work / f"{name}.tar", change))

    build.__doc__ = doc
    case(name, "malformed-manifest", "schema", "schema")(build)


_schema_case(
    "manifest-unknown-field", lambda m: m.update(priority=1), "A signed manifest with a field the schema lacks."
)
_schema_case("manifest-bad-version", lambda m: m.update(version="1.1"), "A version that is not semantic versioning.")
_schema_case("manifest-negative-size", lambda m: m["files"][0].update(size=-1), "A file of negative size.")
_schema_case("manifest-not-a-mapping", lambda m: m.clear(), "An empty manifest.")


# ------------------------------------------------------------------------------ wrong model, mix-and-match


@case("other-backbone", "wrong-model", "backbone-mismatch", "backbone fingerprint")
def _other_backbone(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A validly signed expert trained on another backbone than the robot's."""
    return Attempt(rig.pack(work / "backbone.tar", "1.1.0", backbone_fingerprint="ee" * 32))


@case("other-tokenizer", "wrong-model", "tokenizer-mismatch", "tokenizer fingerprint")
def _other_tokenizer(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A validly signed expert for another motion tokenizer."""
    return Attempt(rig.pack(work / "tokenizer.tar", "1.1.0", tokenizer_fingerprint="ee" * 32))


@case("signature-of-another-version", "mix-and-match", "bad-signature", "signature does not match")
def _mixed_signature(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The manifest of 1.1.0 with the (valid) signature of 1.2.0."""
    newer = dict(members(rig.bundles["1.2.0"]))
    return Attempt(rewrite(_next(rig), work / "mixed.tar", lambda p: p.update({SIGNATURE_NAME: newer[SIGNATURE_NAME]})))


# ------------------------------------------------------------------------------ rollback


@case("older-version", "rollback", "older-version", "rollback protection")
def _older(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """1.2.0 is installed; the validly signed 1.1.0 is replayed."""
    rig.install(store, rig.bundles["1.2.0"])
    return Attempt(rig.bundles["1.1.0"])


@case("older-after-rollback", "rollback", "older-version", "rollback protection")
def _older_after_rollback(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """1.2.0 was installed and the operator rolled back to 1.0.0; 1.1.0 is replayed."""
    rig.install(store, rig.bundles["1.2.0"])
    store.rollback(NAME, to=INSTALLED)
    return Attempt(rig.bundles["1.1.0"])


@case("older-after-remove", "rollback", "older-version", "rollback protection")
def _older_after_remove(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """1.2.0 was installed, then the expert removed; 1.1.0 is replayed into the empty slot."""
    rig.install(store, rig.bundles["1.2.0"])
    store.remove(NAME)
    return Attempt(rig.bundles["1.1.0"])


@case("reused-version", "rollback", "version-conflict", "other content")
def _reused(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """Another build published under the installed version string."""
    return Attempt(rig.pack(work / "rebuilt.tar", INSTALLED, scenario="Highway lane merge, retrained"))


@case("reused-version-after-prune", "rollback", "version-conflict", "other content")
def _reused_after_prune(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """Another build under version 1.0.0, forced, once 1.0.0's copy was pruned from the store."""
    for version in ("1.1.0", "1.2.0"):
        rig.install(store, rig.bundles[version])
    rig.install(store, rig.pack(work / "1.3.0.tar", "1.3.0"))  # keeps two previous: 1.0.0 is pruned
    return Attempt(rig.pack(work / "rebuilt.tar", INSTALLED, scenario="Highway lane merge, retrained"), force=True)


# ------------------------------------------------------------------------------ freeze


@case("expired", "freeze", "expired", "expired at")
def _expired(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A bundle whose signed expiry passed a day ago (a mirror replaying old metadata)."""
    bundle = rig.pack(work / "expired.tar", "1.1.0", created="2026-01-01T00:00:00Z", expires="2026-05-31T00:00:00Z")
    return Attempt(bundle, now=NOW)


@case("created-2099", "freeze", "from-the-future", "in the future")
def _future(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A bundle dated 2099 (made to outlive any expiry check)."""
    return Attempt(rig.pack(work / "future.tar", "1.1.0", created="2099-01-01T00:00:00Z"), now=NOW)


@case("created-ten-minutes-ahead", "freeze", "from-the-future", "in the future")
def _ahead(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """Created ten minutes ahead of the robot's clock: beyond the five minutes of allowed skew."""
    return Attempt(rig.pack(work / "ahead.tar", "1.1.0", created="2026-06-01T00:10:00Z"), now=NOW)


# ------------------------------------------------------------------------------ key compromise


@case("key-out-of-scope", "key-compromise", "key-scope", "may not sign expert")
def _out_of_scope(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A key trusted for "dance" signs lane_merge (a team's key stolen to replace another's expert)."""
    keyring = rig.private_keyring(work / "keyring")
    (keyring / SCOPES_FILE).write_text(f"release: [{NAME}]\nstranger: [dance, dance_*]\n")
    return Attempt(rig.pack(work / "scoped.tar", "1.1.0", key=rig.stranger_key), keyring=keyring)


@case("revoked-key", "key-compromise", "unknown-key", "not in the robot's keyring")
def _revoked(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """The release key was revoked (removed from the keyring); a bundle it signed arrives."""
    keyring = rig.private_keyring(work / "keyring")
    (keyring / "release.pub").unlink()
    return Attempt(_next(rig), keyring=keyring)


@case("fifo-in-keyring", "key-compromise", "key", "not a regular file")
def _fifo_keyring(rig: Rig, store: ExpertStore, work: Path) -> Attempt:
    """A FIFO named *.pub in the keyring: reading it would block every install."""
    keyring = rig.private_keyring(work / "keyring")
    os.mkfifo(keyring / "trap.pub")
    return Attempt(_next(rig), keyring=keyring)
