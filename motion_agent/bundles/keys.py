"""Signing keys and keyrings of expert bundles.

Keys. A signing key is an Ed25519 private key in an unencrypted PKCS#8 PEM file (mode 0600); its
public half is a SubjectPublicKeyInfo PEM file with the same name plus `.pub`. A robot's keyring is a
folder of such `*.pub` files; a key is named by its key id, the first 16 hex digits of the sha256 of
its raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from motion_agent.bundles.manifest import BundleError

KEY_ID_HEX_DIGITS = 16
PUBLIC_KEY_SUFFIX = ".pub"
_SIGNATURE_LINE = re.compile(r"ed25519 ([0-9a-f]{16}) ([A-Za-z0-9+/]{86}==)\n")


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


MAX_KEY_FILE_BYTES = 64 * 1024  # a PEM key is a few hundred bytes


def _read_key_file(path: Path, what: str) -> bytes:
    """A key file's bytes, refusing anything but a small regular file without blocking: a FIFO or a
    device named like a key must not hang every install."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise BundleError(f"Cannot read the {what} {path}: {error.strerror}.", "key") from None
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise BundleError(f"The {what} {path} is not a regular file.", "key")
        if status.st_size > MAX_KEY_FILE_BYTES:
            raise BundleError(f"The {what} {path} is {status.st_size} bytes, too large for a key.", "key")
        return file.read(MAX_KEY_FILE_BYTES + 1)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BundleError(f"{path} is not an unencrypted PEM Ed25519 private key.", "key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 private key.", "key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    path = Path(path)
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise BundleError(f"The keyring file {path} is not a PEM Ed25519 public key.", "key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"The keyring file {path} is not an Ed25519 public key.", "key")
    return key


Keyring = Mapping[str, Ed25519PublicKey]


def load_named_keys(folder: str | Path) -> dict[str, tuple[Ed25519PublicKey, str]]:
    """Every `*.pub` key of a keyring folder by key id, with its file name without `.pub` (possibly none:
    an emptied keyring trusts nothing). A file that is not a key is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"The keyring folder {folder} does not exist.", "key")
    named = {}
    for path in sorted(folder.glob("*" + PUBLIC_KEY_SUFFIX)):
        key = load_public_key(path)
        named[key_id(key)] = (key, path.stem)
    return named


def load_keyring(folder: str | Path) -> dict[str, Ed25519PublicKey]:
    """All `*.pub` keys of a keyring folder, by key id; a keyring without keys is refused."""
    keys = {kid: key for kid, (key, _) in load_named_keys(folder).items()}
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
