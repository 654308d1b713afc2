"""What a robot trusts: the keys of its keyring, which experts each key may sign, and whether an installed
expert is still signed by a key the robot trusts.

Experts that ship inside the package (its embedded models' stores, seeded into a robot's own store by
seed.py) are trusted by their exact manifest bytes, without a key (`shipped_manifests`).

A keyring folder holds `*.pub` keys (see keys.py) and, optionally, `scopes.yaml`, which limits what each
key may sign (TUF's delegations in their simplest form): a key trusted for "dance" cannot replace
"sports". Without the file every key may sign every expert, as before scopes existed::

    # scopes.yaml: key (file name without .pub, or key id) -> expert names it may sign (fnmatch patterns)
    release: ["*"]
    dance-team: [dance, dance_*]

A key listed nowhere in an existing scopes.yaml may sign nothing. Removing a key file revokes the key:
experts it signed stop being served (`ExpertStore.active_experts(trust)`) and `list --check` names them.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from motion_agent.bundles.history import manifest_digest
from motion_agent.bundles.keys import Keyring, check_signature, load_named_keys
from motion_agent.bundles.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleError, clause
from motion_agent.config import parse_yaml

SCOPES_FILE = "scopes.yaml"
MAX_SCOPES_BYTES = 64 * 1024
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "embedded"  # motion_agent/embedded/<profile>/experts
SHIPPED_SIGNER = "shipped"  # signer() of an expert that ships inside the package


@functools.lru_cache(maxsize=1)
def shipped_manifests() -> frozenset[str]:
    """sha256 of every expert manifest inside the package's embedded models."""
    return frozenset(
        manifest_digest(path.read_bytes()) for path in EMBEDDED_DIR.glob(f"*/experts/versions/*/*/{MANIFEST_NAME}")
    )


@dataclass(frozen=True)
class TrustPolicy:
    """Trusted keys by key id, and per key id the expert-name patterns it may sign (None: unscoped)."""

    keys: dict[str, Ed25519PublicKey]
    scopes: dict[str, tuple[str, ...]] | None = None
    folder: Path | None = None
    names: dict[str, str] = field(default_factory=dict)  # key id -> key file name, for messages
    pinned: frozenset[str] = field(default_factory=shipped_manifests)  # manifest sha256s trusted without a key

    @classmethod
    def of(cls, keyring: TrustPolicy | Keyring | str | Path) -> TrustPolicy:
        """A policy from a keyring folder, or an unscoped one from keys already loaded."""
        if isinstance(keyring, TrustPolicy):
            return keyring
        if isinstance(keyring, (str, Path)):
            return cls.load(keyring)
        return cls(dict(keyring))

    @classmethod
    def load(cls, folder: str | Path) -> TrustPolicy:
        folder = Path(folder)
        named = load_named_keys(folder)  # refuses a missing or unreadable keyring; empty: every key revoked
        keys = {kid: key for kid, (key, _) in named.items()}
        names = {kid: name for kid, (_, name) in named.items()}
        scopes = _read_scopes(folder, keys, names) if keys else None
        return cls(keys, scopes, folder, names)

    def allows(self, kid: str, expert: str) -> bool:
        if self.scopes is None:
            return True
        return any(fnmatch.fnmatchcase(expert, pattern) for pattern in self.scopes.get(kid, ()))

    def check_scope(self, kid: str, expert: str) -> None:
        """Refuse `expert` signed by key `kid` when the keyring's scopes do not let that key sign it."""
        if not self.allows(kid, expert):
            allowed = ", ".join(self.scopes.get(kid, ())) if self.scopes else ""
            shown = self.names.get(kid, kid)
            raise BundleError(
                f"The key {shown} ({kid}) may not sign expert {expert!r}"
                + (f" (it may sign: {allowed})" if allowed else " (scopes.yaml gives it no experts)")
                + ".",
                "key-scope",
            )

    def signer(self, version_folder: Path, expert: str) -> str:
        """The trusted key that signed an installed version, checked again now (SHIPPED_SIGNER for an
        expert shipped inside the package); BundleError("revoked")
        when no key of this keyring verifies its signature any more, or its key may not sign it."""
        try:
            manifest = (version_folder / MANIFEST_NAME).read_bytes()
            signature = (version_folder / SIGNATURE_NAME).read_bytes()
        except OSError as error:
            raise BundleError(
                f"Cannot read the signed manifest of {version_folder}: {clause(error)}.", "store"
            ) from None
        if manifest_digest(manifest) in self.pinned:
            return SHIPPED_SIGNER
        try:
            kid = check_signature(manifest, signature, self.keys)
        except BundleError as error:
            raise BundleError(f"It is no longer signed by a trusted key: {error}", "revoked") from None
        try:
            self.check_scope(kid, expert)
        except BundleError as error:
            raise BundleError(str(error), "revoked") from None
        return kid

    def fingerprint(self) -> str:
        """A digest of the keyring folder's keys and scopes: it changes when a key is added or revoked."""
        digest = hashlib.sha256()
        for kid in sorted(self.keys):
            digest.update(kid.encode())
        digest.update(repr(sorted((self.scopes or {}).items())).encode())
        return digest.hexdigest()


def keyring_fingerprint(folder: str | Path) -> str:
    """What `TrustPolicy.load(folder).fingerprint()` would say, or why the folder cannot be read: cheap
    enough to poll."""
    try:
        return TrustPolicy.load(folder).fingerprint()
    except BundleError as error:
        return f"unreadable: {error}"


def _read_scopes(folder: Path, keys: dict[str, Ed25519PublicKey], names: dict[str, str]):
    path = folder / SCOPES_FILE
    if not path.exists():
        return None
    if not path.is_file() or path.stat().st_size > MAX_SCOPES_BYTES:
        raise BundleError(f"The keyring's {path} is not a small regular file.", "key")
    try:
        data = parse_yaml(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BundleError(f"The keyring's {path} cannot be read: {clause(error)}.", "key") from None
    if not isinstance(data, dict):
        raise BundleError(f"The keyring's {path} must map key names to lists of expert names.", "key")
    by_name = {name: kid for kid, name in names.items()}
    scopes: dict[str, tuple[str, ...]] = {}
    for key, patterns in data.items():
        kid = by_name.get(str(key), str(key))
        if kid not in keys:
            raise BundleError(f"The keyring's {path} names {key!r}, which is not a key of the keyring.", "key")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise BundleError(f"The keyring's {path} gives {key!r} no list of expert names.", "key")
        scopes[kid] = tuple(patterns)
    return scopes
