"""Expert parameter bundles: one signed archive per trained scenario expert.

Scenario experts are trained offline and pushed to robots. A robot must never run a tampered,
truncated or mismatched expert, so a bundle carries a signed manifest that names every byte it may
contain, and a robot checks all of it before anything is installed.

Bundle archive (an uncompressed tar, members in this order)::

    manifest.yaml                       the Manifest below, signed
    manifest.sig                        "ed25519 <key id> <base64 signature>\\n" over manifest.yaml
    adapter/adapter_config.json         peft LoraConfig, as peft's save_pretrained writes it
    adapter/adapter_model.safetensors   LoRA adapter weights
    eval.json                           evaluation figures (a JSON object)
    router/router.safetensors           router parameters and statistics

The last four are an *expert folder* (EXPERT_FILES), the unit that `pack_bundle` consumes, that the
expert store keeps per installed version, and that the runtime loads.

Canonical layout. `pack_bundle` writes every member as a plain POSIX ustar header with fixed fields
(mode 0644, owner 0, mtime 0, no user names), zero padding, and the end-of-archive marker padded to a
tar record, and verification refuses any other layout. Every byte of a valid bundle is therefore
either signed (manifest.yaml), fixed by the signature (manifest.sig, which must be in canonical
encoding), pinned by a sha256 in the signed manifest (the expert files), or fixed by the layout
(headers, padding, end marker): any change to any byte is refused, not just the changes a tar reader
happens to notice.

Keys. A signing key is an Ed25519 private key in an unencrypted PKCS#8 PEM file (mode 0600); its
public half is a SubjectPublicKeyInfo PEM file with the same name plus `.pub`. A robot's keyring is a
folder of such `*.pub` files; a key is named by its key id, the first 16 hex digits of the sha256 of
its raw 32-byte public key.

Verification order (each step refuses with a BundleError naming what is wrong):
  1. the archive's size is under the limit, before anything is read;
  2. every tar entry is a regular file with a safe relative name, no duplicates, the running total
     under the limit, and the archive ends in an intact end-of-archive marker (truncation);
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

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import total_ordering
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from motion_agent.config import ConfigError, from_mapping

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
SIGNATURE_NAME = "manifest.sig"
ADAPTER_CONFIG = "adapter/adapter_config.json"
ADAPTER_WEIGHTS = "adapter/adapter_model.safetensors"
ROUTER_WEIGHTS = "router/router.safetensors"
EVAL_FIGURES = "eval.json"
# The expert folder, in archive order (sorted, so that the order is a fact of the names alone).
EXPERT_FILES: tuple[str, ...] = tuple(sorted((ADAPTER_CONFIG, ADAPTER_WEIGHTS, ROUTER_WEIGHTS, EVAL_FIGURES)))
ARCHIVE_ORDER: tuple[str, ...] = (MANIFEST_NAME, SIGNATURE_NAME, *EXPERT_FILES)

KEY_ID_HEX_DIGITS = 16
PUBLIC_KEY_SUFFIX = ".pub"
MiB = 1024 * 1024

_BLOCK = 512  # tar block
_END_MARKER = 2 * _BLOCK  # two zero blocks end a tar archive
_RECORD = 20 * _BLOCK  # tar record: archives are padded to a multiple of this
_COPY_CHUNK = MiB

_HEX64 = re.compile(r"[0-9a-f]{64}")
_EXPERT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
)
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_SIGNATURE_LINE = re.compile(r"ed25519 ([0-9a-f]{16}) ([A-Za-z0-9+/]{86}==)\n")


class BundleError(Exception):
    """A bundle, key or store operation was refused; the message is one sentence naming what is wrong.

    `reason` is a short stable tag (e.g. "bad-signature") for callers and tests that branch on the
    kind of refusal without parsing the sentence.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class BundleLimits:
    """Bounds applied to untrusted bundles before and while they are read (bytes, counts)."""

    max_archive_bytes: int = 512 * MiB  # whole archive on disk, and total extracted bytes
    max_entries: int = 16  # tar entries; a valid bundle has len(ARCHIVE_ORDER)
    max_manifest_bytes: int = 1 * MiB
    max_signature_bytes: int = 256
    max_json_bytes: int = 16 * MiB  # eval.json, adapter_config.json, safetensors headers
    max_entry_name_chars: int = 100  # what fits a plain ustar name field


DEFAULT_LIMITS = BundleLimits()


# --------------------------------------------------------------------------------------------------
# Versions and the manifest schema


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A semantic version MAJOR.MINOR.PATCH[-PRERELEASE], ordered by semver precedence.

    Build metadata (+...) is not accepted: two builds of one version would be indistinguishable in
    precedence, and the store names version folders by this string.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _SEMVER.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version like 1.2.0")
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)

    def _key(self) -> tuple:
        # A release outranks its prereleases; numeric identifiers rank below alphanumeric ones.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + ("-" + ".".join(self.prerelease) if self.prerelease else "")


@dataclass(frozen=True)
class FileEntry:
    """One expert file of a bundle: its archive path, size in bytes and hex sha256."""

    path: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        if self.path not in EXPERT_FILES:
            raise ValueError(f"file path {self.path!r} is not one of {', '.join(EXPERT_FILES)}")
        if self.size < 0:
            raise ValueError(f"file {self.path!r} has a negative size")
        if not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"file {self.path!r} has a sha256 that is not 64 lowercase hex digits")


@dataclass(frozen=True)
class Manifest:
    """The signed description of a bundle; `files` lists exactly EXPERT_FILES, in that order."""

    format_version: int
    name: str
    scenario: str
    version: str
    created: str
    backbone_fingerprint: str
    tokenizer_fingerprint: str
    adapter_config: dict[str, Any]
    files: tuple[FileEntry, ...]

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version {self.format_version} is not the supported {FORMAT_VERSION}")
        if not _EXPERT_NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must be 1-64 of a-z, 0-9, _ and -, starting with a letter or digit")
        if not self.scenario.strip():
            raise ValueError("scenario is empty")
        SemVer.parse(self.version)
        if len(self.version) > 64:
            raise ValueError("version is longer than 64 characters")
        if not _ISO_UTC.fullmatch(self.created):
            raise ValueError(f"created {self.created!r} is not an ISO 8601 UTC time like 2025-01-31T12:00:00Z")
        datetime.fromisoformat(self.created)  # rejects impossible dates such as month 13
        for field in ("backbone_fingerprint", "tokenizer_fingerprint"):
            if not _HEX64.fullmatch(getattr(self, field)):
                raise ValueError(f"{field} is not a hex sha256 (64 lowercase hex digits)")
        paths = tuple(entry.path for entry in self.files)
        if paths != EXPERT_FILES:
            raise ValueError(f"files must list exactly {', '.join(EXPERT_FILES)} in that order")

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    def file(self, path: str) -> FileEntry:
        return next(entry for entry in self.files if entry.path == path)

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"files": [dataclasses.asdict(entry) for entry in self.files]}

    def to_yaml_bytes(self) -> bytes:
        return yaml.safe_dump(self.to_mapping(), sort_keys=False, allow_unicode=False).encode("ascii")

    @classmethod
    def from_mapping(cls, mapping: Any) -> Manifest:
        """Validate a parsed manifest against the schema; failures raise BundleError("schema")."""
        if not isinstance(mapping, dict):
            raise BundleError("The manifest fails schema validation: it is not a mapping.", "schema")
        missing = [field.name for field in dataclasses.fields(cls) if field.name not in mapping]
        if missing:
            raise BundleError(f"The manifest fails schema validation: it has no {missing[0]}.", "schema")
        try:
            return from_mapping(cls, mapping, where="manifest")
        except (ConfigError, ValueError, TypeError) as error:
            raise BundleError(f"The manifest fails schema validation: {clause(error)}.", "schema") from None

    @classmethod
    def from_yaml_bytes(cls, data: bytes) -> Manifest:
        try:
            mapping = yaml.safe_load(data.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            raise BundleError(f"The manifest is not valid YAML: {clause(error)}.", "schema") from None
        return cls.from_mapping(mapping)


def clause(error: BaseException) -> str:
    """An exception's text squeezed onto one line, without a trailing period, to embed in a sentence."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split()).rstrip(".")


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def check_fingerprint(value: str, what: str) -> str:
    """Normalise a fingerprint given by a user (lowercase) and refuse one that is not a hex sha256."""
    value = value.strip().lower()
    if not _HEX64.fullmatch(value):
        raise BundleError(f"The {what} fingerprint {value!r} is not a hex sha256 (64 hex digits).", "usage")
    return value


def load_model_fingerprints(path: str | Path) -> tuple[str, str]:
    """Read (backbone, tokenizer) fingerprints from a model manifest YAML with those two keys, or from
    a base model's base.json: experts adapt the frozen base model, so there the base model's own
    `fingerprint` (backbone + base adapter + tokenizer) is what a bundle must name as its backbone."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BundleError(f"Cannot read the model manifest {path}: {clause(error)}.", "usage") from None
    if not isinstance(data, dict):
        raise BundleError(f"The model manifest {path} does not hold a mapping.", "usage")
    if isinstance(data.get("fingerprint"), str):  # a base.json
        data = {**data, "backbone_fingerprint": data["fingerprint"]}
    found = []
    for key in ("backbone_fingerprint", "tokenizer_fingerprint"):
        if not isinstance(data.get(key), str):
            raise BundleError(f"The model manifest {path} has no string {key}.", "usage")
        found.append(check_fingerprint(data[key], key.split("_")[0]))
    return found[0], found[1]


# --------------------------------------------------------------------------------------------------
# Keys


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_DIGITS]


def public_key_path(private_key_path: str | Path) -> Path:
    return Path(str(private_key_path) + PUBLIC_KEY_SUFFIX)


def generate_keypair(private_key_path: str | Path) -> tuple[Path, Path, str]:
    """Write a new private key (mode 0600) and its `.pub`; returns (private, public, key id).

    Existing files are never overwritten: losing a signing key silently is worse than an error.
    """
    private_path = Path(private_key_path)
    public_path = public_key_path(private_path)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if path.exists():
            raise BundleError(f"{path} already exists, and keygen never overwrites a key file.", "exists")
    _write_new_file(private_path, private_pem, mode=0o600)
    _write_new_file(public_path, public_pem, mode=0o644)
    return private_path, public_path, key_id(key.public_key())


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise BundleError(f"{path} already exists, and keygen never overwrites a key file.", "exists") from None
    except OSError as error:
        raise BundleError(f"Cannot create {path}: {error.strerror}.", "io") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise BundleError(f"Cannot read the private key {path}: {error.strerror}.", "key") from None
    except (ValueError, TypeError):
        raise BundleError(f"{path} is not an unencrypted PEM Ed25519 private key.", "key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 private key.", "key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise BundleError(f"Cannot read the public key {path}: {error.strerror}.", "key") from None
    except (ValueError, TypeError):
        raise BundleError(f"The keyring file {path} is not a PEM Ed25519 public key.", "key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"The keyring file {path} is not an Ed25519 public key.", "key")
    return key


Keyring = Mapping[str, Ed25519PublicKey]


def load_keyring(folder: str | Path) -> dict[str, Ed25519PublicKey]:
    """All `*.pub` keys of a keyring folder, by key id. A file that is not a key is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"The keyring folder {folder} does not exist.", "key")
    keys = {}
    for path in sorted(folder.glob("*" + PUBLIC_KEY_SUFFIX)):
        key = load_public_key(path)
        keys[key_id(key)] = key
    if not keys:
        raise BundleError(f"The keyring folder {folder} holds no *{PUBLIC_KEY_SUFFIX} public keys.", "key")
    return keys


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The canonical manifest.sig content for these manifest bytes."""
    signature = base64.b64encode(private_key.sign(manifest_bytes)).decode("ascii")
    return f"ed25519 {key_id(private_key.public_key())} {signature}\n".encode("ascii")


def parse_signature(data: bytes) -> tuple[str, bytes]:
    """(key id, raw signature) from manifest.sig, which must be in exactly the form sign_manifest writes."""
    try:
        match = _SIGNATURE_LINE.fullmatch(data.decode("ascii"))
    except UnicodeDecodeError:
        match = None
    if match is None:
        raise BundleError("The signature file manifest.sig is malformed.", "bad-signature")
    signature = base64.b64decode(match.group(2), validate=True)
    if base64.b64encode(signature).decode("ascii") != match.group(2):
        # base64 has spare bits; a re-encoding that differs means bytes were altered.
        raise BundleError("The signature file manifest.sig is not in canonical encoding.", "bad-signature")
    return match.group(1), signature


def check_signature(manifest_bytes: bytes, signature_file: bytes, keyring: Keyring) -> str:
    """Verify manifest.sig over the manifest bytes with a keyring key; returns the signer's key id."""
    signer, signature = parse_signature(signature_file)
    public_key = keyring.get(signer)
    if public_key is None:
        raise BundleError(f"The bundle is signed by key {signer}, which is not in the robot's keyring.", "unknown-key")
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError(
            f"The signature does not match the manifest for key {signer}, so the manifest or its "
            "signature was altered.",
            "bad-signature",
        ) from None
    return signer


# --------------------------------------------------------------------------------------------------
# Canonical archive writing


def ustar_header(name: str, size: int) -> bytes:
    """The one header a bundle member may have: POSIX ustar, mode 0644, owner 0, mtime 0."""
    encoded = name.encode("ascii")
    if len(encoded) > 100 or size >= 8**11:
        raise BundleError(f"The member {name!r} does not fit a plain ustar header.", "usage")

    def octal(value: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, value)

    header = bytearray(_BLOCK)
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


def _padding(size: int, unit: int) -> int:
    return -size % unit


def canonical_archive_size(sizes: Iterable[int]) -> int:
    body = sum(_BLOCK + size + _padding(size, _BLOCK) for size in sizes) + _END_MARKER
    return body + _padding(body, _RECORD)


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
                        shutil.copyfileobj(source, out, _COPY_CHUNK)
                out.write(b"\0" * _padding(size, _BLOCK))
            out.write(b"\0" * _END_MARKER)
            out.write(b"\0" * _padding(out.tell(), _RECORD))
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
        for chunk in iter(lambda: handle.read(_COPY_CHUNK), b""):
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
    adapter_config = _read_json_object(root / ADAPTER_CONFIG, ADAPTER_CONFIG, limits)
    files = tuple(
        FileEntry(path, (root / path).stat().st_size, sha256_file(root / path)) for path in EXPERT_FILES
    )
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
    )
    manifest_bytes = manifest.to_yaml_bytes()
    if Manifest.from_yaml_bytes(manifest_bytes) != manifest:
        raise BundleError("The adapter config does not survive a YAML round trip unchanged.", "schema")
    _check_contents(root, manifest, limits)
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


# --------------------------------------------------------------------------------------------------
# Reading and verification


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
    if (
        len(name) > limits.max_entry_name_chars
        or not _ENTRY_NAME.fullmatch(name)
        or name.count("/") > 2
    ):
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
            chunk = source.read(min(_COPY_CHUNK, remaining))
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


def _extract_all(raw: BinaryIO, archive_bytes: int, dest: Path, limits: BundleLimits) -> list[_Entry]:
    """Step 2: bounded, link-free extraction of an untrusted archive into the empty folder `dest`."""
    entries: list[_Entry] = []
    seen: set[str] = set()
    total = 0
    try:
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
        if archive_bytes >= _BLOCK and raw.tell() <= _BLOCK and not entries:
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
    if archive_bytes - end < _END_MARKER:
        raise BundleError("The bundle archive is truncated (its end-of-archive marker is missing).", "truncated")
    raw.seek(end)
    position = end
    for chunk in iter(lambda: raw.read(_COPY_CHUNK), b""):
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
            raise BundleError(f"The bundle is missing the file {expected.path} that its manifest lists.", "missing-file")
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
        if entry.offset != offset or raw.read(_BLOCK) != ustar_header(entry.name, entry.size):
            raise BundleError(f"The archive header of {entry.name} is not in the canonical bundle form.", "layout")
        raw.seek(offset + _BLOCK + entry.size)
        if raw.read(_padding(entry.size, _BLOCK)).count(0) != _padding(entry.size, _BLOCK):
            raise BundleError(f"The padding after {entry.name} in the archive is not zero.", "layout")
        offset += _BLOCK + entry.size + _padding(entry.size, _BLOCK)
    expected = canonical_archive_size(entry.size for entry in entries)
    if archive_bytes < expected:
        raise BundleError(f"The bundle archive is truncated ({expected - archive_bytes} bytes short).", "truncated")
    if archive_bytes > expected:
        raise BundleError(f"The bundle archive has {archive_bytes - expected} bytes after its end.", "layout")


def _read_json_object(path: Path, label: str, limits: BundleLimits) -> dict[str, Any]:
    if path.stat().st_size > limits.max_json_bytes:
        raise BundleError(f"The file {label} is over the limit of {limits.max_json_bytes} bytes.", "content")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"The file {label} is not valid JSON.", "content") from None
    if not isinstance(value, dict):
        raise BundleError(f"The file {label} does not hold a JSON object.", "content")
    return value


def check_safetensors(path: Path, label: str, limits: BundleLimits = DEFAULT_LIMITS) -> list[str]:
    """Check a safetensors file's header without loading tensors; returns the tensor names.

    Format: 8-byte little-endian header length, a JSON header of name -> {dtype, shape, data_offsets},
    then the tensor data. Only the header is read, so this stays cheap for large adapters.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > min(size - 8, limits.max_json_bytes):
            raise BundleError(f"The file {label} does not start with a valid safetensors header.", "content")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            header = None
    data_bytes = size - 8 - length
    if not isinstance(header, dict):
        raise BundleError(f"The safetensors header of {label} is not a JSON object.", "content")
    names = []
    for tensor, spec in header.items():
        if tensor == "__metadata__":
            continue
        offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("dtype"), str)
            or not isinstance(spec.get("shape"), list)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(v, int) for v in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise BundleError(f"The safetensors header of {label} describes tensor {tensor[:60]!r} badly.", "content")
        names.append(tensor)
    if not names:
        raise BundleError(f"The safetensors file {label} holds no tensors.", "content")
    return names


def _check_contents(root: Path, manifest: Manifest, limits: BundleLimits) -> None:
    """Step 7: each file is what its name says it is."""
    if _read_json_object(root / ADAPTER_CONFIG, ADAPTER_CONFIG, limits) != manifest.adapter_config:
        raise BundleError(f"The file {ADAPTER_CONFIG} differs from the adapter config in the manifest.", "content")
    _read_json_object(root / EVAL_FIGURES, EVAL_FIGURES, limits)
    check_safetensors(root / ADAPTER_WEIGHTS, ADAPTER_WEIGHTS, limits)
    check_safetensors(root / ROUTER_WEIGHTS, ROUTER_WEIGHTS, limits)


def check_compatibility(manifest: Manifest, backbone_fingerprint: str | None, tokenizer_fingerprint: str | None) -> None:
    """Step 8: an expert only works on the exact backbone and tokenizer it was trained against."""
    for what, expected, actual in (
        ("backbone", backbone_fingerprint, manifest.backbone_fingerprint),
        ("tokenizer", tokenizer_fingerprint, manifest.tokenizer_fingerprint),
    ):
        if expected is not None and check_fingerprint(expected, what) != actual:
            raise BundleError(
                f"The expert was trained against {what} fingerprint {actual}, but this robot's {what} "
                f"fingerprint is {expected}.",
                f"{what}-mismatch",
            )


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
            _check_contents(dest, manifest, limits)
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
