"""Expert parameter bundles: one signed archive per trained scenario expert, and its manifest.

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

Every byte of a valid bundle is signed, pinned by a sha256 in the signed manifest, or fixed by the
canonical layout that archive.py writes and verify.py enforces. keys.py holds the keys; store.py the
on-robot store; trust.py and history.py what a robot trusts beyond a signature.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import total_ordering
from pathlib import Path
from typing import Any

import yaml

from motion_agent.config import ConfigError, from_mapping, parse_yaml

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

MiB = 1024 * 1024

HEX64 = re.compile(r"[0-9a-f]{64}")
_EXPERT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
)
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


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
        if not HEX64.fullmatch(self.sha256):
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
    # After this ISO 8601 UTC time a robot refuses the bundle (TUF's freeze attack: a robot cut off from
    # updates must notice instead of installing stale experts forever). Empty: the bundle never expires,
    # and the manifest leaves the key out, so bundles without an expiry keep their exact bytes.
    expires: str = ""

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
        if self.expires:
            if not _ISO_UTC.fullmatch(self.expires):
                raise ValueError(f"expires {self.expires!r} is not an ISO 8601 UTC time like 2025-01-31T12:00:00Z")
            if parse_utc(self.expires) <= parse_utc(self.created):
                raise ValueError(f"expires {self.expires} is not after created {self.created}")
        for field in ("backbone_fingerprint", "tokenizer_fingerprint"):
            if not HEX64.fullmatch(getattr(self, field)):
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
        mapping = dataclasses.asdict(self) | {"files": [dataclasses.asdict(entry) for entry in self.files]}
        if not self.expires:
            del mapping["expires"]
        return mapping

    def to_yaml_bytes(self) -> bytes:
        return yaml.safe_dump(self.to_mapping(), sort_keys=False, allow_unicode=False).encode("ascii")

    @classmethod
    def from_mapping(cls, mapping: Any) -> Manifest:
        """Validate a parsed manifest against the schema; failures raise BundleError("schema")."""
        if not isinstance(mapping, dict):
            raise BundleError("The manifest fails schema validation: it is not a mapping.", "schema")
        required = [f for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [field.name for field in required if field.name not in mapping]
        if missing:
            raise BundleError(f"The manifest fails schema validation: it has no {missing[0]}.", "schema")
        try:
            return from_mapping(cls, mapping, where="manifest")
        except (ConfigError, ValueError, TypeError) as error:
            raise BundleError(f"The manifest fails schema validation: {clause(error)}.", "schema") from None

    @classmethod
    def from_yaml_bytes(cls, data: bytes) -> Manifest:
        try:
            mapping = parse_yaml(data.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            raise BundleError(f"The manifest is not valid YAML: {clause(error)}.", "schema") from None
        return cls.from_mapping(mapping)


def clause(error: BaseException) -> str:
    """An exception's text squeezed onto one line, without a trailing period, to embed in a sentence."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split()).rstrip(".")


def parse_utc(value: str) -> datetime:
    """An ISO 8601 UTC time of a manifest ("...Z") as an aware datetime."""
    return datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=timezone.utc)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def check_fingerprint(value: str, what: str) -> str:
    """Normalise a fingerprint given by a user (lowercase) and refuse one that is not a hex sha256."""
    value = value.strip().lower()
    if not HEX64.fullmatch(value):
        raise BundleError(f"The {what} fingerprint {value!r} is not a hex sha256 (64 hex digits).", "usage")
    return value


def load_model_fingerprints(path: str | Path) -> tuple[str, str]:
    """Read (backbone, tokenizer) fingerprints from a model manifest YAML with those two keys, or from
    a base model's base.json: experts adapt the frozen base model, so there the base model's own
    `fingerprint` (backbone + base adapter + tokenizer) is what a bundle must name as its backbone."""
    path = Path(path)
    try:
        data = parse_yaml(path.read_text())
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


def read_json_object(path: Path, label: str, limits: BundleLimits) -> dict[str, Any]:
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


def check_contents(root: Path, manifest: Manifest, limits: BundleLimits) -> None:
    """Step 7: each file is what its name says it is."""
    if read_json_object(root / ADAPTER_CONFIG, ADAPTER_CONFIG, limits) != manifest.adapter_config:
        raise BundleError(f"The file {ADAPTER_CONFIG} differs from the adapter config in the manifest.", "content")
    read_json_object(root / EVAL_FIGURES, EVAL_FIGURES, limits)
    check_safetensors(root / ADAPTER_WEIGHTS, ADAPTER_WEIGHTS, limits)
    check_safetensors(root / ROUTER_WEIGHTS, ROUTER_WEIGHTS, limits)


def check_compatibility(
    manifest: Manifest, backbone_fingerprint: str | None, tokenizer_fingerprint: str | None
) -> None:
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
