"""Reading and verifying bundles, before anything reaches the expert store.

Verification order (each step refuses with a BundleError naming what is wrong):
  1. the archive's size is under the limit, before anything is read;
  2. no entry has an extended (pax or GNU) header, found by walking the headers before any tar
     reader parses them; every tar entry is a regular file with a safe relative name, no duplicates,
     the running total under the limit, and the archive ends in an intact end-of-archive marker
     (truncation);
     entries are extracted into a private folder while their sha256 is computed;
  3. the signature verifies with a key of the keyring (unknown key, bad signature) -- untrusted YAML
     is never parsed before this;
  4. the manifest passes schema validation;
  5. the archive holds exactly the files the manifest names, with the named sizes and sha256;
  6. the archive is in the canonical layout;
  7. the files are what they claim to be (JSON objects, safetensors headers, the adapter config
     equals the manifest's copy);
  8. the backbone and tokenizer fingerprints equal the robot's, when the caller gives them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from motion_agent.bundles.archive import BLOCK, COPY_CHUNK, END_MARKER, canonical_archive_size, padding, ustar_header
from motion_agent.bundles.keys import Keyring, check_signature, parse_signature
from motion_agent.bundles.manifest import (
    ARCHIVE_ORDER,
    DEFAULT_LIMITS,
    EVAL_FIGURES,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    BundleLimits,
    Manifest,
    check_compatibility,
    check_contents,
    clause,
)

_ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    sha256: str
    offset: int  # of its header


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check; `root` holds its extracted files (an expert folder plus
    manifest.yaml and manifest.sig). `signature_checked` is False only for an inspection without a
    keyring, where `key_id` is merely the key the bundle claims to be signed with."""

    manifest: Manifest
    key_id: str
    signature_checked: bool
    root: Path
    archive_bytes: int


def _refuse_member(info: tarfile.TarInfo, seen: set[str], limits: BundleLimits) -> None:
    name = info.name
    shown = name[:120]
    if len(name) > limits.max_entry_name_chars or not _ENTRY_NAME.fullmatch(name) or name.count("/") > 2:
        raise BundleError(f"The archive entry {shown!r} has an unsafe or invalid path.", "unsafe-path")
    if info.issym() or info.islnk():
        kind = "symbolic link" if info.issym() else "hard link"
        raise BundleError(f"The archive entry {shown!r} is a {kind}, and bundles may not contain links.", "link")
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise BundleError(f"The archive entry {shown!r} is not a regular file.", "special-entry")
    if name in seen:
        raise BundleError(f"The archive holds {shown!r} more than once.", "duplicate")
    if any(other.startswith(name + "/") or name.startswith(other + "/") for other in seen):
        raise BundleError(f"The archive entry {shown!r} clashes with a folder of the same name.", "unsafe-path")


def _extract_entry(tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path) -> str:
    """Copy one regular entry to dest/<name> (never following or creating links); returns its sha256."""
    target = dest.joinpath(*info.name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(info)
    assert source is not None  # a regular file always has data
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        remaining = info.size
        while remaining:
            chunk = source.read(min(COPY_CHUNK, remaining))
            if not chunk:
                raise EOFError("unexpected end of data")
            remaining -= len(chunk)  # tarfile never returns more than the header's size
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _open_bundle(path: Path, limits: BundleLimits) -> tuple[BinaryIO, int]:
    """Step 1: open the archive once (every later check reads this same handle) and check its size
    before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang the reader
    except OSError as error:
        raise BundleError(f"Cannot read the bundle {path}: {clause(error)}.", "io") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise BundleError(f"The bundle {path} is not a regular file.", "io")
    if status.st_size > limits.max_archive_bytes:
        os.close(fd)
        raise BundleError(
            f"The bundle is {status.st_size} bytes, over the limit of {limits.max_archive_bytes} bytes.", "too-large"
        )
    return os.fdopen(fd, "rb"), status.st_size


# Header types that make a tar reader parse more than the 512-byte header: pax extended (x, g), GNU long
# names and links (L, K), GNU sparse, multi-volume and dump entries (S, M, N, D, V). The canonical layout
# has none, and parsing them is where tarfile can be made slow (pax bodies of digits: CVE-2024-6232) or
# large (a sparse map expands 10 KB into 500 MB), so they are refused before tarfile sees the archive.
EXTENDED_TYPES = frozenset(b"xgLKSMNDV")
HEADER_TYPE_OFFSET, HEADER_SIZE_FIELD = 156, slice(124, 136)


def _refuse_extended_headers(raw: BinaryIO, archive_bytes: int, limits: BundleLimits) -> None:
    """Step 2a: walk the headers without parsing any entry body; refuse extended headers.

    Reads one 512-byte header per entry (at most `limits.max_entries` + 1), so its cost is linear in
    the entry count whatever the file holds. Anything it cannot read as a plain header (a damaged or
    base-256 size, a short file) is left to the tar reader, which refuses it in step 2b."""
    position = 0
    for _ in range(limits.max_entries + 1):
        if position + BLOCK > archive_bytes:
            break
        raw.seek(position)
        header = raw.read(BLOCK)
        if header.count(0) == BLOCK:
            break  # the end-of-archive marker
        if header[HEADER_TYPE_OFFSET] in EXTENDED_TYPES:
            kind = chr(header[HEADER_TYPE_OFFSET])
            raise BundleError(
                f"The archive has an extended tar header (type {kind!r}) at byte {position}; bundles hold "
                "plain ustar entries only.",
                "extended-header",
            )
        try:
            size = int(header[HEADER_SIZE_FIELD].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            break
        position += BLOCK + size + padding(size, BLOCK)
    raw.seek(0)


def _extract_all(raw: BinaryIO, archive_bytes: int, dest: Path, limits: BundleLimits) -> list[_Entry]:
    """Step 2b: bounded, link-free extraction of an untrusted archive into the empty folder `dest`."""
    entries: list[_Entry] = []
    seen: set[str] = set()
    total = 0
    try:
        _refuse_extended_headers(raw, archive_bytes, limits)
        # "r:" reads uncompressed tar only: no decompression, so no decompression bomb.
        with tarfile.open(fileobj=raw, mode="r:") as tar:
            for info in tar:
                if len(entries) >= limits.max_entries:
                    raise BundleError(f"The archive has more than {limits.max_entries} entries.", "too-large")
                _refuse_member(info, seen, limits)
                total += info.size
                if total > limits.max_archive_bytes:
                    raise BundleError(
                        f"The archive's entries add up to more than the limit of {limits.max_archive_bytes} bytes.",
                        "too-large",
                    )
                seen.add(info.name)
                entries.append(_Entry(info.name, info.size, _extract_entry(tar, info, dest), info.offset))
            end = tar.offset
    except (tarfile.TarError, EOFError, ValueError, OverflowError):
        # tarfile reports damaged headers with its own errors, and occasionally with plain ones.
        if archive_bytes >= BLOCK and raw.tell() <= BLOCK and not entries:
            raise BundleError(
                "The bundle is not an uncompressed tar archive, or its first header is damaged.", "corrupt"
            ) from None
        raise BundleError("The bundle archive is truncated (its data ends early).", "truncated") from None
    except OSError as error:
        raise BundleError(f"Cannot extract the bundle: {clause(error)}.", "io") from None
    _check_end(raw, end, archive_bytes)
    return entries


def _check_end(raw: BinaryIO, end: int, archive_bytes: int) -> None:
    """Where the tar reader stopped there must be an intact, all-zero end-of-archive marker.

    A tar reader stops quietly at a damaged header or a short file, so this is where truncation and
    damage to later headers are caught.
    """
    if archive_bytes - end < END_MARKER:
        raise BundleError("The bundle archive is truncated (its end-of-archive marker is missing).", "truncated")
    raw.seek(end)
    position = end
    for chunk in iter(lambda: raw.read(COPY_CHUNK), b""):
        if chunk.count(0) != len(chunk):
            where = position + next(i for i, byte in enumerate(chunk) if byte)
            raise BundleError(
                f"The bundle archive is damaged at byte {where} (a broken entry header or data after its end).",
                "corrupt",
            )
        position += len(chunk)


def _check_files(entries: list[_Entry], manifest: Manifest) -> None:
    """Step 5: exactly the manifest's files, each with its size and sha256."""
    by_name = {entry.name: entry for entry in entries}
    for expected in manifest.files:
        entry = by_name.get(expected.path)
        if entry is None:
            raise BundleError(
                f"The bundle is missing the file {expected.path} that its manifest lists.", "missing-file"
            )
        if entry.size != expected.size:
            raise BundleError(
                f"The file {expected.path} is {entry.size} bytes, but the manifest says {expected.size}.", "digest"
            )
        if entry.sha256 != expected.sha256:
            raise BundleError(
                f"The sha256 of {expected.path} does not match the manifest, so the file was altered.", "digest"
            )
    listed = {entry.path for entry in manifest.files} | {MANIFEST_NAME, SIGNATURE_NAME}
    extra = [entry.name for entry in entries if entry.name not in listed]
    if extra:
        raise BundleError(f"The bundle holds the file {extra[0]}, which its manifest does not list.", "extra-file")


def _check_layout(raw: BinaryIO, entries: list[_Entry], archive_bytes: int) -> None:
    """Step 6: member order, headers, padding and length exactly as write_archive writes them."""
    names = tuple(entry.name for entry in entries)
    if names != ARCHIVE_ORDER:
        raise BundleError("The archive members are not in the canonical bundle order.", "layout")
    offset = 0
    for entry in entries:
        raw.seek(offset)
        if entry.offset != offset or raw.read(BLOCK) != ustar_header(entry.name, entry.size):
            raise BundleError(f"The archive header of {entry.name} is not in the canonical bundle form.", "layout")
        raw.seek(offset + BLOCK + entry.size)
        if raw.read(padding(entry.size, BLOCK)).count(0) != padding(entry.size, BLOCK):
            raise BundleError(f"The padding after {entry.name} in the archive is not zero.", "layout")
        offset += BLOCK + entry.size + padding(entry.size, BLOCK)
    expected = canonical_archive_size(entry.size for entry in entries)
    if archive_bytes < expected:
        raise BundleError(f"The bundle archive is truncated ({expected - archive_bytes} bytes short).", "truncated")
    if archive_bytes > expected:
        raise BundleError(f"The bundle archive has {archive_bytes - expected} bytes after its end.", "layout")


def extract_verified(
    bundle_path: str | Path,
    dest: str | Path,
    keyring: Keyring | None,
    *,
    backbone_fingerprint: str | None = None,
    tokenizer_fingerprint: str | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> VerifiedBundle:
    """Extract a bundle into `dest` (created; must not exist) and run every check on it.

    On any refusal `dest` is removed again. `keyring=None` skips only the signature (for inspecting
    a bundle on a machine without the keyring); everything that installs must pass a keyring.
    Nothing is fsynced here: a caller that keeps the files makes them durable itself.
    """
    bundle, dest = Path(bundle_path), Path(dest)
    raw, archive_bytes = _open_bundle(bundle, limits)
    with raw:
        dest.mkdir(mode=0o755)  # outside the cleanup below: a folder that was already there is not ours
        try:
            entries = _extract_all(raw, archive_bytes, dest, limits)
            by_name = {entry.name: entry for entry in entries}
            for required, limit in (
                (MANIFEST_NAME, limits.max_manifest_bytes),
                (SIGNATURE_NAME, limits.max_signature_bytes),
            ):
                if required not in by_name:
                    raise BundleError(f"The bundle has no {required}.", "missing-file")
                if by_name[required].size > limit:
                    raise BundleError(f"The bundle's {required} is over the limit of {limit} bytes.", "too-large")
            manifest_bytes = (dest / MANIFEST_NAME).read_bytes()
            signature_file = (dest / SIGNATURE_NAME).read_bytes()
            if keyring is not None:
                signer = check_signature(manifest_bytes, signature_file, keyring)
            else:
                signer, _ = parse_signature(signature_file)
            manifest = Manifest.from_yaml_bytes(manifest_bytes)
            _check_files(entries, manifest)
            _check_layout(raw, entries, archive_bytes)
            check_contents(dest, manifest, limits)
            check_compatibility(manifest, backbone_fingerprint, tokenizer_fingerprint)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return VerifiedBundle(manifest, signer, keyring is not None, dest, archive_bytes)


def verify_bundle(
    bundle_path: str | Path,
    keyring: Keyring,
    *,
    backbone_fingerprint: str | None = None,
    tokenizer_fingerprint: str | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> VerifiedBundle:
    """Run every check on a bundle in a temporary folder that is removed again (`root` is gone)."""
    with tempfile.TemporaryDirectory(prefix="bundle-verify-") as work:
        return extract_verified(
            bundle_path,
            Path(work) / "expert",
            keyring,
            backbone_fingerprint=backbone_fingerprint,
            tokenizer_fingerprint=tokenizer_fingerprint,
            limits=limits,
        )


def read_eval_figures(expert_dir: str | Path) -> dict[str, Any]:
    """The evaluation figures of an extracted or installed expert folder."""
    return json.loads((Path(expert_dir) / EVAL_FIGURES).read_text())
