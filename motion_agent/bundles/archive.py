"""Writing bundles: the canonical archive layout and `pack_bundle`.

Canonical layout. `pack_bundle` writes every member as a plain POSIX ustar header with fixed fields
(mode 0644, owner 0, mtime 0, no user names), zero padding, and the end-of-archive marker padded to a
tar record, and verification refuses any other layout. Every byte of a valid bundle is therefore
either signed (manifest.yaml), fixed by the signature (manifest.sig, which must be in canonical
encoding), pinned by a sha256 in the signed manifest (the expert files), or fixed by the layout
(headers, padding, end marker): any change to any byte is refused, not just the changes a tar reader
happens to notice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from motion_agent.bundles.keys import sign_manifest
from motion_agent.bundles.manifest import (
    ADAPTER_CONFIG,
    DEFAULT_LIMITS,
    EXPERT_FILES,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    BundleLimits,
    FileEntry,
    Manifest,
    MiB,
    check_contents,
    read_json_object,
    utc_now_iso,
)

BLOCK = 512  # tar block
END_MARKER = 2 * BLOCK  # two zero blocks end a tar archive
RECORD = 20 * BLOCK  # tar record: archives are padded to a multiple of this
COPY_CHUNK = MiB


def ustar_header(name: str, size: int) -> bytes:
    """The one header a bundle member may have: POSIX ustar, mode 0644, owner 0, mtime 0."""
    encoded = name.encode("ascii")
    if len(encoded) > 100 or size >= 8**11:
        raise BundleError(f"The member {name!r} does not fit a plain ustar header.", "usage")

    def octal(value: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, value)

    header = bytearray(BLOCK)
    header[0 : len(encoded)] = encoded
    header[100:108] = octal(0o644, 8)
    header[108:116] = octal(0, 8)  # uid
    header[116:124] = octal(0, 8)  # gid
    header[124:136] = octal(size, 12)
    header[136:148] = octal(0, 12)  # mtime: bundles are reproducible; the manifest says when
    header[148:156] = b" " * 8  # checksum placeholder, counted as spaces
    header[156:157] = tarfile.REGTYPE
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[329:337] = octal(0, 8)  # devmajor
    header[337:345] = octal(0, 8)  # devminor
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def padding(size: int, unit: int) -> int:
    return -size % unit


def canonical_archive_size(sizes: Iterable[int]) -> int:
    body = sum(BLOCK + size + padding(size, BLOCK) for size in sizes) + END_MARKER
    return body + padding(body, RECORD)


def write_archive(out_path: str | Path, members: Iterable[tuple[str, bytes | Path]]) -> int:
    """Write members (name, bytes or a file to copy) in the canonical layout; returns the size.

    The archive is written next to `out_path` and renamed into place, so a reader never sees half.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".partial-", dir=out_path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            for name, content in members:
                size = len(content) if isinstance(content, bytes) else Path(content).stat().st_size
                out.write(ustar_header(name, size))
                if isinstance(content, bytes):
                    out.write(content)
                else:
                    with open(content, "rb") as source:
                        shutil.copyfileobj(source, out, COPY_CHUNK)
                out.write(b"\0" * padding(size, BLOCK))
            out.write(b"\0" * END_MARKER)
            out.write(b"\0" * padding(out.tell(), RECORD))
            out.flush()
            os.fsync(out.fileno())
            total = out.tell()
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, out_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return total


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pack_bundle(
    expert_dir: str | Path,
    out_path: str | Path,
    private_key: Ed25519PrivateKey,
    *,
    name: str,
    scenario: str,
    version: str,
    backbone_fingerprint: str,
    tokenizer_fingerprint: str,
    created: str | None = None,
    expires: str | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> Manifest:
    """Sign and write a bundle of an expert folder. Other files in the folder (e.g. the README that
    peft writes next to the adapter) are not part of the format and are left out.

    The folder is checked as strictly as a robot will check it, so a bundle that would be refused
    on the robot is refused here instead.
    """
    root = Path(expert_dir)
    missing = [path for path in EXPERT_FILES if not (root / path).is_file()]
    if missing:
        raise BundleError(f"The expert folder {root} has no {missing[0]}.", "missing-file")
    adapter_config = read_json_object(root / ADAPTER_CONFIG, ADAPTER_CONFIG, limits)
    files = tuple(FileEntry(path, (root / path).stat().st_size, sha256_file(root / path)) for path in EXPERT_FILES)
    manifest = Manifest.from_mapping(
        {
            "format_version": FORMAT_VERSION,
            "name": name,
            "scenario": scenario,
            "version": version,
            "created": created or utc_now_iso(),
            "backbone_fingerprint": backbone_fingerprint,
            "tokenizer_fingerprint": tokenizer_fingerprint,
            "adapter_config": adapter_config,
            "files": [dataclasses.asdict(entry) for entry in files],
        }
        | ({"expires": expires} if expires else {})
    )
    manifest_bytes = manifest.to_yaml_bytes()
    if Manifest.from_yaml_bytes(manifest_bytes) != manifest:
        raise BundleError("The adapter config does not survive a YAML round trip unchanged.", "schema")
    check_contents(root, manifest, limits)
    sizes = [len(manifest_bytes), len(sign_manifest(b"", private_key)), *(entry.size for entry in files)]
    total = canonical_archive_size(sizes)
    if total > limits.max_archive_bytes:
        raise BundleError(
            f"The bundle would be {total} bytes, over the limit of {limits.max_archive_bytes} bytes.", "too-large"
        )
    members: list[tuple[str, bytes | Path]] = [
        (MANIFEST_NAME, manifest_bytes),
        (SIGNATURE_NAME, sign_manifest(manifest_bytes, private_key)),
    ]
    members += [(path, root / path) for path in EXPERT_FILES]
    write_archive(out_path, members)
    return manifest
