"""Expert bundles and the on-robot expert store.

Every refusal the format promises has its own test, and each one also checks that the experts
already installed keep working afterwards. Random byte damage is thrown at a valid bundle
(hypothesis), and installs are killed with SIGKILL at every step of the install protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motion_agent.bundles.archive import pack_bundle, write_archive
from motion_agent.bundles.cli import main
from motion_agent.bundles.keys import generate_keypair, load_keyring, load_private_key, sign_manifest
from motion_agent.bundles.manifest import (
    ADAPTER_WEIGHTS,
    ARCHIVE_ORDER,
    EVAL_FIGURES,
    EXPERT_FILES,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    BundleLimits,
    SemVer,
)
from motion_agent.bundles.store import PAUSE_ENV, STEPS, ExpertStore, StoreConfig
from motion_agent.bundles.verify import verify_bundle

REPO = Path(__file__).resolve().parent.parent
BACKBONE = "ab" * 32
TOKENIZER = "cd" * 32
NAME = "lane_merge"


# ------------------------------------------------------------------------------------------ fixtures


@dataclasses.dataclass(frozen=True)
class Kit:
    """Everything a test needs: an expert folder, a trusted and an untrusted key, bundles of it."""

    expert: Path
    key: Path
    keyring: Path
    stranger_key: Path
    bundles: dict[str, Path]  # version -> bundle signed by the trusted key


def _make_expert(folder: Path) -> None:
    """An expert folder as the model code will write it: a real peft adapter, a router, eval figures."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
    )
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(folder / "adapter")
    (folder / "router").mkdir()
    save_file(
        {"mu": torch.tensor([0.4]), "sigma": torch.tensor([0.1]), "centroid": torch.randn(64)},
        folder / "router" / "router.safetensors",
    )
    (folder / EVAL_FIGURES).write_text(json.dumps({"success_rate": 0.93, "episodes": 200}))


def pack(kit: Kit, out: Path, version: str = "1.0.0", key: Path | None = None, **fields) -> Path:
    values = dict(
        name=NAME,
        scenario="Highway lane merge",
        version=version,
        backbone_fingerprint=BACKBONE,
        tokenizer_fingerprint=TOKENIZER,
        created="2025-01-31T12:00:00Z",
    )
    pack_bundle(kit.expert, out, load_private_key(key or kit.key), **(values | fields))
    return out


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("kit")
    (root / "expert").mkdir()
    _make_expert(root / "expert")
    (root / "keyring").mkdir()
    generate_keypair(root / "release.key")
    shutil.copy(root / "release.key.pub", root / "keyring" / "release.pub")
    generate_keypair(root / "stranger.key")
    kit = Kit(root / "expert", root / "release.key", root / "keyring", root / "stranger.key", {})
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        kit.bundles[version] = pack(kit, root / f"{NAME}-{version}.tar", version)
    return kit


@pytest.fixture
def store(kit: Kit, tmp_path: Path) -> ExpertStore:
    """A store with 1.0.0 installed and active: what every refusal must leave working."""
    store = ExpertStore(tmp_path / "store")
    install(store, kit, kit.bundles["1.0.0"])
    return store


def install(store: ExpertStore, kit: Kit, bundle: Path, **options):
    fingerprints = dict(backbone_fingerprint=BACKBONE, tokenizer_fingerprint=TOKENIZER)
    return store.install(bundle, kit.keyring, **(fingerprints | options))


def members(bundle: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar.getmembers()]


def cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def cli_install(store: ExpertStore, kit: Kit, bundle: Path, *extra: str) -> tuple[int, str, str]:
    return cli(
        "install",
        bundle,
        "--store",
        store.root,
        "--keyring",
        kit.keyring,
        "--backbone-fingerprint",
        BACKBONE,
        "--tokenizer-fingerprint",
        TOKENIZER,
        *extra,
    )


def assert_intact(store: ExpertStore, active: str = "1.0.0", previous: tuple[str, ...] = ()) -> None:
    """The installed experts are exactly as before, and complete."""
    index = store.read_index()
    assert {name: (r.active, r.previous) for name, r in index.items()} == {NAME: (active, previous)}
    assert store.active_experts() == {NAME: store.root / "versions" / NAME / active}
    assert store.check() == []
    assert not any((store.root / "staging").iterdir())


def assert_refused(store: ExpertStore, kit: Kit, bundle: Path, reason: str, *cli_extra: str, **options) -> str:
    """Refused by the library with `reason`, and by the CLI with one `error:` line and exit 1."""
    with pytest.raises(BundleError) as caught:
        install(store, kit, bundle, **options)
    assert caught.value.reason == reason, str(caught.value)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".")
    assert_intact(store)
    code, _, err = cli_install(store, kit, bundle, *cli_extra)
    assert code == 1
    assert err == f"error: {message}\n"
    assert_intact(store)
    return message


def resign(kit: Kit, bundle: Path, out: Path, change) -> Path:
    """A bundle whose manifest mapping was changed by `change` and then properly signed."""
    parts = dict(members(bundle))
    mapping = yaml.safe_load(parts[MANIFEST_NAME])
    change(mapping)
    manifest_bytes = yaml.safe_dump(mapping, sort_keys=False).encode()
    parts[MANIFEST_NAME] = manifest_bytes
    parts[SIGNATURE_NAME] = sign_manifest(manifest_bytes, load_private_key(kit.key))
    write_archive(out, [(name, parts[name]) for name in ARCHIVE_ORDER])
    return out


def add_member(bundle: Path, out: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """The bundle's members plus one more, written by a standard tar writer."""
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in members(bundle):
            tar.addfile(_info(name, len(content)), io.BytesIO(content))
        tar.addfile(info, io.BytesIO(data) if data else None)
    return out


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


# ------------------------------------------------------------------------------------------ accepted


def test_valid_bundle_verifies_installs_and_keeps_the_files(kit: Kit, tmp_path: Path) -> None:
    verified = verify_bundle(
        kit.bundles["1.0.0"], load_keyring(kit.keyring), backbone_fingerprint=BACKBONE, tokenizer_fingerprint=TOKENIZER
    )
    assert (verified.manifest.name, verified.manifest.version) == (NAME, "1.0.0")
    assert verified.manifest.adapter_config["r"] == 8
    store = ExpertStore(tmp_path / "store")
    result = install(store, kit, kit.bundles["1.0.0"])
    assert result.changed and result.replaced is None
    folder = store.active_experts()[NAME]
    for path in EXPERT_FILES:
        assert (folder / path).read_bytes() == (kit.expert / path).read_bytes()
    assert not (folder / "adapter" / "README.md").exists()  # not part of the format
    assert_intact(store)


def test_archive_is_a_plain_tar_in_canonical_order(kit: Kit) -> None:
    with tarfile.open(kit.bundles["1.0.0"]) as tar:
        infos = tar.getmembers()
    assert [info.name for info in infos] == list(ARCHIVE_ORDER)
    assert all(info.isreg() and info.mode == 0o644 for info in infos)
    assert kit.bundles["1.0.0"].stat().st_size % 10240 == 0


def test_packing_is_reproducible(kit: Kit, tmp_path: Path) -> None:
    again = pack(kit, tmp_path / "again.tar")
    assert again.read_bytes() == kit.bundles["1.0.0"].read_bytes()


def test_installed_adapter_loads_with_safetensors(kit: Kit, store: ExpertStore) -> None:
    from safetensors.torch import load_file

    tensors = load_file(store.active_experts()[NAME] / ADAPTER_WEIGHTS)
    assert any("lora_A" in name for name in tensors)


def test_newer_version_replaces_and_keeps_previous(kit: Kit, store: ExpertStore) -> None:
    result = install(store, kit, kit.bundles["1.1.0"])
    assert (result.replaced, result.changed) == ("1.0.0", True)
    assert_intact(store, "1.1.0", ("1.0.0",))
    again = install(store, kit, kit.bundles["1.1.0"])
    assert not again.changed
    assert_intact(store, "1.1.0", ("1.0.0",))


def test_semver_precedence() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0", "1.10.0"]
    versions = [SemVer.parse(v) for v in order]
    assert versions == sorted(reversed(versions))
    assert [str(v) for v in versions] == order


# ------------------------------------------------------------------------------------------ refusals


def test_refuses_bad_signature(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    parts = dict(members(kit.bundles["1.1.0"]))
    parts[MANIFEST_NAME] = parts[MANIFEST_NAME].replace(b"Highway lane merge", b"Highway lane MERGE")
    bundle = tmp_path / "tampered.tar"
    write_archive(bundle, [(name, parts[name]) for name in ARCHIVE_ORDER])
    assert "signature does not match" in assert_refused(store, kit, bundle, "bad-signature")


def test_refuses_unknown_key(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = pack(kit, tmp_path / "stranger.tar", "1.1.0", key=kit.stranger_key)
    assert "not in the robot's keyring" in assert_refused(store, kit, bundle, "unknown-key")


def test_refuses_file_digest_mismatch(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    parts = dict(members(kit.bundles["1.1.0"]))
    weights = bytearray(parts[ADAPTER_WEIGHTS])
    weights[-1] ^= 0x01
    parts[ADAPTER_WEIGHTS] = bytes(weights)
    bundle = tmp_path / "digest.tar"
    write_archive(bundle, [(name, parts[name]) for name in ARCHIVE_ORDER])
    assert ADAPTER_WEIGHTS in assert_refused(store, kit, bundle, "digest")


def test_refuses_missing_file(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    parts = members(kit.bundles["1.1.0"])
    bundle = tmp_path / "missing.tar"
    write_archive(bundle, [(name, data) for name, data in parts if name != EVAL_FIGURES])
    assert EVAL_FIGURES in assert_refused(store, kit, bundle, "missing-file")


def test_refuses_extra_file(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = tmp_path / "extra.tar"
    write_archive(bundle, [*members(kit.bundles["1.1.0"]), ("notes.txt", b"not listed")])
    assert "notes.txt" in assert_refused(store, kit, bundle, "extra-file")


@pytest.mark.parametrize("cut", ["tiny", "first-data", "half", "mid-header", "end-marker", "record-padding"])
def test_refuses_truncated_archive(kit: Kit, store: ExpertStore, tmp_path: Path, cut: str) -> None:
    data = kit.bundles["1.1.0"].read_bytes()
    with tarfile.open(kit.bundles["1.1.0"]) as tar:
        last = tar.getmembers()[-1]
    length = {
        "tiny": 100,
        "first-data": 600,
        "half": len(data) // 2,
        "mid-header": last.offset + 200,
        "end-marker": last.offset_data + last.size + 300,
        "record-padding": len(data) - 1,
    }[cut]
    bundle = tmp_path / "truncated.tar"
    bundle.write_bytes(data[:length])
    assert "truncated" in assert_refused(store, kit, bundle, "truncated")


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "adapter/../../evil.txt", ".hidden", "a\\b"])
def test_refuses_path_traversal(kit: Kit, store: ExpertStore, tmp_path: Path, name: str) -> None:
    bundle = add_member(kit.bundles["1.1.0"], tmp_path / "traversal.tar", _info(name, 4), b"evil")
    assert assert_refused(store, kit, bundle, "unsafe-path")
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_refuses_links(kit: Kit, store: ExpertStore, tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("link.txt")
    info.type, info.linkname = kind, "/etc/passwd" if kind == tarfile.SYMTYPE else EVAL_FIGURES
    bundle = add_member(kit.bundles["1.1.0"], tmp_path / "link.tar", info)
    assert "link" in assert_refused(store, kit, bundle, "link")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE])
def test_refuses_devices_and_other_special_entries(kit: Kit, store: ExpertStore, tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("special")
    info.type = kind
    bundle = add_member(kit.bundles["1.1.0"], tmp_path / "special.tar", info)
    assert_refused(store, kit, bundle, "special-entry")


def _tar_with_header(path: Path, kind: bytes, body: bytes) -> Path:
    """A tar of one extended header of `kind` with `body`, then a small regular member."""
    info = tarfile.TarInfo("h")
    info.type, info.size = kind, len(body)
    data = info.tobuf(format=tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512)
    member = tarfile.TarInfo(EVAL_FIGURES)
    member.size = 2
    data += member.tobuf(format=tarfile.USTAR_FORMAT) + b"{}" + bytes(510) + bytes(1024)
    path.write_bytes(data + bytes(-len(data) % 10240))
    return path


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        # a pax body of digits: tarfile's pax parser is quadratic in it (CVE-2024-6232; 61 s at 320 KB)
        (tarfile.XHDTYPE, b"1" * 320_000),
        # a GNU sparse map: tarfile would expand 10 KB into a 500 MB member
        (tarfile.XHDTYPE, b"23 GNU.sparse.map=0,1\n30 GNU.sparse.size=524288000\n"),
        (tarfile.XGLTYPE, b"19 comment=anything\n"),
        (tarfile.GNUTYPE_LONGNAME, b"x" * 300 + b"\0"),
        (tarfile.GNUTYPE_SPARSE, b""),
    ],
)
def test_refuses_extended_headers_before_the_tar_reader_parses_them(
    kit: Kit, store: ExpertStore, tmp_path: Path, monkeypatch, kind: bytes, body: bytes
) -> None:
    """The refusal comes from the project's own header walk: tarfile never opens the file."""
    bundle = _tar_with_header(tmp_path / "hostile.tar", kind, body)

    def no_tar_reader(*args, **kwargs):
        raise AssertionError("tarfile opened a bundle with an extended header")

    monkeypatch.setattr(tarfile, "open", no_tar_reader)
    message = assert_refused(store, kit, bundle, "extended-header")
    assert "extended tar header" in message and repr(kind.decode()) in message


def test_refuses_archive_over_size_limit(kit: Kit, store: ExpertStore) -> None:
    bundle = kit.bundles["1.1.0"]
    limit = bundle.stat().st_size - 1
    with pytest.raises(BundleError) as caught:
        install(ExpertStore(store.root, StoreConfig(limits=BundleLimits(max_archive_bytes=limit))), kit, bundle)
    assert caught.value.reason == "too-large" and str(limit) in str(caught.value)
    assert_intact(store)
    code, _, err = cli_install(store, kit, bundle, "--max-bytes", str(limit))
    assert code == 1 and err.startswith("error: The bundle is ") and "over the limit" in err
    assert_intact(store)


def test_size_limit_is_checked_before_reading(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    """A 600 MiB (sparse) file is refused by its size alone, with the default limit."""
    bundle = tmp_path / "huge.tar"
    with open(bundle, "wb") as handle:
        handle.truncate(600 * 1024 * 1024)
    assert "over the limit of 536870912 bytes" in assert_refused(store, kit, bundle, "too-large")


def test_refuses_too_many_entries(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = tmp_path / "many.tar"
    write_archive(bundle, [*members(kit.bundles["1.1.0"]), *((f"n{i}.txt", b"x") for i in range(20))])
    assert "more than 16 entries" in assert_refused(store, kit, bundle, "too-large")


SCHEMA_DAMAGE = {
    "missing-field": lambda m: m.pop("scenario"),
    "unknown-field": lambda m: m.update(priority=1),
    "wrong-type": lambda m: m.update(version=1.1),
    "bad-version": lambda m: m.update(version="1.1"),
    "bad-name": lambda m: m.update(name="../lane_merge"),
    "bad-fingerprint": lambda m: m.update(backbone_fingerprint="xyz"),
    "bad-created": lambda m: m.update(created="yesterday"),
    "future-format": lambda m: m.update(format_version=2),
    "file-list": lambda m: m["files"].pop(),
    "negative-size": lambda m: m["files"][0].update(size=-1),
    "not-a-mapping": lambda m: m.clear(),
}


@pytest.mark.parametrize("damage", sorted(SCHEMA_DAMAGE))
def test_refuses_manifest_failing_schema(kit: Kit, store: ExpertStore, tmp_path: Path, damage: str) -> None:
    bundle = resign(kit, kit.bundles["1.1.0"], tmp_path / "schema.tar", SCHEMA_DAMAGE[damage])
    assert "schema" in assert_refused(store, kit, bundle, "schema")


def test_refuses_backbone_fingerprint_mismatch(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = pack(kit, tmp_path / "other-backbone.tar", "1.1.0", backbone_fingerprint="ee" * 32)
    assert "backbone fingerprint" in assert_refused(store, kit, bundle, "backbone-mismatch")


def test_refuses_tokenizer_fingerprint_mismatch(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = pack(kit, tmp_path / "other-tokenizer.tar", "1.1.0", tokenizer_fingerprint="ee" * 32)
    assert "tokenizer fingerprint" in assert_refused(store, kit, bundle, "tokenizer-mismatch")


def test_refuses_older_version_unless_forced(kit: Kit, store: ExpertStore) -> None:
    install(store, kit, kit.bundles["1.2.0"])
    with pytest.raises(BundleError) as caught:
        install(store, kit, kit.bundles["1.1.0"])
    assert caught.value.reason == "older-version"
    code, _, err = cli_install(store, kit, kit.bundles["1.1.0"])
    assert code == 1 and "older than version 1.2.0, which this robot accepted before" in err
    assert store.read_index()[NAME].active == "1.2.0"
    code, out, _ = cli_install(store, kit, kit.bundles["1.1.0"], "--force")
    assert code == 0 and "installed lane_merge 1.1.0 (was 1.2.0)" in out
    assert_intact(store, "1.1.0", ("1.2.0", "1.0.0"))


def test_refuses_same_version_with_different_content(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    rebuilt = pack(kit, tmp_path / "rebuilt.tar", "1.0.0", scenario="Highway lane merge, retrained")
    assert "accepted before with other content" in assert_refused(store, kit, rebuilt, "version-conflict")


def test_refuses_compressed_archive(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        for name, content in members(kit.bundles["1.1.0"]):
            tar.addfile(_info(name, len(content)), io.BytesIO(content))
    assert_refused(store, kit, bundle, "corrupt")


def test_refuses_non_canonical_layout(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    """Same signed content, repacked by a standard tar writer: headers differ, so it is refused."""
    bundle = tmp_path / "repacked.tar"
    with tarfile.open(bundle, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in members(kit.bundles["1.1.0"]):
            info = _info(name, len(content))
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    assert_refused(store, kit, bundle, "layout")


def test_refuses_data_after_the_end(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    bundle = tmp_path / "appended.tar"
    bundle.write_bytes(kit.bundles["1.1.0"].read_bytes() + b"\0" * 10240)
    assert_refused(store, kit, bundle, "layout")
    bundle.write_bytes(kit.bundles["1.1.0"].read_bytes()[:-1] + b"x")
    assert_refused(store, kit, bundle, "corrupt")


def test_refuses_signature_file_not_in_canonical_encoding(kit: Kit, store: ExpertStore, tmp_path: Path) -> None:
    parts = dict(members(kit.bundles["1.1.0"]))
    signature = parts[SIGNATURE_NAME]
    # The last base64 digit before "==" carries 4 spare bits; changing them keeps the decoded bytes.
    last = signature.index(b"==") - 1
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    digit = alphabet.index(signature[last : last + 1])
    parts[SIGNATURE_NAME] = signature[:last] + alphabet[digit ^ 1 : (digit ^ 1) + 1] + signature[last + 1 :]
    bundle = tmp_path / "sig.tar"
    write_archive(bundle, [(name, parts[name]) for name in ARCHIVE_ORDER])
    assert "canonical" in assert_refused(store, kit, bundle, "bad-signature")


def test_pack_refuses_incomplete_expert_folder(kit: Kit, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    shutil.copytree(kit.expert, expert)
    (expert / "router" / "router.safetensors").unlink()
    code, _, err = cli(
        "pack",
        expert,
        "-o",
        tmp_path / "b.tar",
        "--key",
        kit.key,
        "--name",
        NAME,
        "--scenario",
        "s",
        "--version",
        "1.0.0",
        "--backbone-fingerprint",
        BACKBONE,
        "--tokenizer-fingerprint",
        TOKENIZER,
    )
    assert code == 1 and err == f"error: The expert folder {expert} has no router/router.safetensors.\n"
    assert not (tmp_path / "b.tar").exists()


def test_pack_refuses_bad_safetensors(kit: Kit, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    shutil.copytree(kit.expert, expert)
    (expert / "router" / "router.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}      ")
    with pytest.raises(BundleError, match="router/router.safetensors"):
        pack(dataclasses.replace(kit, expert=expert), tmp_path / "b.tar")


# ------------------------------------------------------------------------------------------ store


def test_keeps_n_previous_versions_and_prunes_older(kit: Kit, tmp_path: Path) -> None:
    store = ExpertStore(tmp_path / "store", StoreConfig(keep_previous=1))
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(store, kit, kit.bundles[version])
    assert_intact(store, "1.2.0", ("1.1.0",))
    assert sorted(p.name for p in (store.root / "versions" / NAME).iterdir()) == ["1.1.0", "1.2.0"]


def test_rollback_and_remove(kit: Kit, store: ExpertStore) -> None:
    install(store, kit, kit.bundles["1.1.0"])
    install(store, kit, kit.bundles["1.2.0"])
    assert_intact(store, "1.2.0", ("1.1.0", "1.0.0"))
    code, out, _ = cli("rollback", NAME, "--store", store.root)
    assert code == 0 and "back at 1.1.0" in out
    assert_intact(store, "1.1.0", ("1.0.0",))
    assert not (store.root / "versions" / NAME / "1.2.0").exists()
    code, _, err = cli("remove", NAME, "--store", store.root, "--version", "1.1.0")
    assert code == 1 and "is active" in err
    assert cli("remove", NAME, "--store", store.root, "--version", "1.0.0")[0] == 0
    assert_intact(store, "1.1.0", ())
    code, _, err = cli("rollback", NAME, "--store", store.root)
    assert code == 1 and err == f"error: Expert '{NAME}' has no previous version to roll back to.\n"
    assert cli("remove", NAME, "--store", store.root)[0] == 0
    assert store.active_experts() == {} and not (store.root / "versions" / NAME).exists()
    code, _, err = cli("remove", NAME, "--store", store.root)
    assert code == 1 and "no expert named" in err


def test_rollback_to_named_version(kit: Kit, store: ExpertStore) -> None:
    install(store, kit, kit.bundles["1.1.0"])
    install(store, kit, kit.bundles["1.2.0"])
    assert store.rollback(NAME, to="1.0.0").active == "1.0.0"
    assert_intact(store, "1.0.0", ())


def test_runtime_view_reads_the_index_only(tmp_path: Path) -> None:
    missing = tmp_path / "no-store"
    assert ExpertStore(missing).active_experts() == {}
    assert not missing.exists()


def test_store_with_versions_but_no_index_is_left_alone(kit: Kit, store: ExpertStore) -> None:
    store.index_path.unlink()
    with pytest.raises(BundleError, match="no index"):
        install(store, kit, kit.bundles["1.1.0"])
    assert (store.root / "versions" / NAME / "1.0.0" / MANIFEST_NAME).is_file()


def test_check_finds_a_damaged_installed_file(kit: Kit, store: ExpertStore) -> None:
    (store.active_experts()[NAME] / EVAL_FIGURES).write_text("{}")
    assert store.check() == [f"{NAME} 1.0.0: {EVAL_FIGURES} does not match its manifest."]
    code, out, err = cli("list", "--store", store.root, "--check")
    assert code == 1 and "does not match" in out and err.startswith("error: The store check found 1 problem")


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    "command", [None, "keygen", "pack", "inspect", "verify", "install", "list", "rollback", "remove"]
)
def test_every_command_explains_itself(command: str | None) -> None:
    code, out, _ = cli(*([command] if command else []), "--help")
    assert code == 0 and "usage: motion-agent-bundle" in out and len(out) > 200


def test_keygen_writes_private_key_0600_and_never_overwrites(tmp_path: Path) -> None:
    code, out, _ = cli("keygen", tmp_path / "k")
    assert code == 0 and "key id" in out
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_keyring(tmp_path) and (tmp_path / "k.pub").is_file()
    before = (tmp_path / "k").read_bytes()
    code, _, err = cli("keygen", tmp_path / "k")
    assert code == 1 and "never overwrites" in err and (tmp_path / "k").read_bytes() == before


def test_a_fifo_or_a_huge_file_in_the_keyring_is_refused_without_hanging(kit: Kit, store: ExpertStore) -> None:
    """A keyring entry that is not a small regular file is named, never read: a FIFO would block the
    reader (and every install with it) until something writes to it."""
    fifo = kit.keyring / "trap.pub"
    os.mkfifo(fifo)
    try:
        assert "trap.pub is not a regular file" in assert_refused(store, kit, kit.bundles["1.0.0"], "key")
    finally:
        fifo.unlink()
    huge = kit.keyring / "huge.pub"  # the kit's keyring is shared by the module's tests
    huge.write_bytes(b"-" * 100_000)
    try:
        assert "too large for a key" in assert_refused(store, kit, kit.bundles["1.0.0"], "key")
    finally:
        huge.unlink()


def test_cli_pack_inspect_verify_install_list_with_model_manifest(kit: Kit, tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"backbone_fingerprint": BACKBONE, "tokenizer_fingerprint": TOKENIZER}))
    bundle = tmp_path / "b.tar"
    code, out, err = cli(
        "pack",
        kit.expert,
        "-o",
        bundle,
        "--key",
        kit.key,
        "--name",
        NAME,
        "--scenario",
        "Merge",
        "--version",
        "2.0.0",
        "--model-manifest",
        model,
    )
    assert code == 0, err
    code, out, _ = cli("inspect", bundle, "--json", "--keyring", kit.keyring)
    info = json.loads(out)
    assert code == 0 and info["version"] == "2.0.0" and info["signature_checked"] and info["eval"]["episodes"] == 200
    code, out, _ = cli("inspect", bundle)
    assert code == 0 and "not checked" in out
    code, out, _ = cli("verify", bundle, "--keyring", kit.keyring, "--model-manifest", model)
    assert code == 0 and out.startswith("ok: lane_merge 2.0.0")
    store = tmp_path / "store"
    code, out, _ = cli("install", bundle, "--store", store, "--keyring", kit.keyring, "--model-manifest", model)
    assert code == 0 and out == "installed lane_merge 2.0.0\n"
    code, out, _ = cli("list", "--store", store, "--json", "--check")
    assert code == 0 and json.loads(out) == {
        "experts": [{"name": NAME, "active": "2.0.0", "previous": [], "scenario": "Merge"}],
        "problems": [],
    }


def test_cli_install_needs_the_robot_fingerprints(kit: Kit, tmp_path: Path) -> None:
    code, _, err = cli("install", kit.bundles["1.0.0"], "--store", tmp_path / "s", "--keyring", kit.keyring)
    assert code == 1 and err.startswith("error: This robot's fingerprints are needed")
    code, _, err = cli("verify", tmp_path / "absent.tar", "--keyring", kit.keyring)
    assert code == 1 and err.startswith("error: Cannot read the bundle") and err.count("\n") == 1


# ------------------------------------------------------------------------------------------ damage


def _damaged(data: bytes, damage: tuple) -> bytes:
    kind, value = damage
    if kind == "flip":
        damaged = bytearray(data)
        for position, mask in value.items():
            damaged[position % len(data)] ^= mask
        return bytes(damaged)
    if kind == "truncate":
        return data[: value % len(data)]
    return data + value


@pytest.fixture(scope="module")
def damage_rig(kit: Kit, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("damage")
    store = ExpertStore(root / "store")
    install(store, kit, kit.bundles["1.0.0"])
    data = kit.bundles["1.1.0"].read_bytes()
    with tarfile.open(kit.bundles["1.1.0"]) as tar:
        headers = [info.offset for info in tar.getmembers()]
    return store, data, headers, root


def _damage_strategy(length: int, headers: list[int]) -> st.SearchStrategy:
    masks = st.integers(1, 255)
    anywhere = st.dictionaries(st.integers(0, length - 1), masks, min_size=1, max_size=4)
    in_headers = st.dictionaries(
        st.builds(lambda h, i: h + i, st.sampled_from(headers), st.integers(0, 511)), masks, min_size=1, max_size=3
    )
    return st.one_of(
        st.tuples(st.just("flip"), anywhere),
        st.tuples(st.just("flip"), in_headers),
        st.tuples(st.just("truncate"), st.integers(0, length - 1)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=1024)),
    )


def test_random_damage_is_always_refused(kit: Kit, damage_rig) -> None:
    store, data, headers, root = damage_rig
    index_before = store.index_path.read_bytes()
    bundle = root / "damaged.tar"

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(damage=_damage_strategy(len(data), headers))
    def attempt(damage: tuple) -> None:
        damaged = _damaged(data, damage)
        assert damaged != data
        bundle.write_bytes(damaged)
        code, out, err = cli_install(store, kit, bundle)
        assert code == 1, out
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert store.index_path.read_bytes() == index_before
        assert not (store.root / "versions" / NAME / "1.1.0").exists()

    attempt()
    assert_intact(store)


def test_damaged_bundle_through_a_real_process(kit: Kit, damage_rig) -> None:
    store, data, headers, root = damage_rig
    bundle = root / "damaged-process.tar"
    bundle.write_bytes(_damaged(data, ("flip", {headers[3] + 130: 0x04, len(data) // 2: 0x80})))
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_agent.bundles.cli",
            "install",
            str(bundle),
            "--store",
            str(store.root),
            "--keyring",
            str(kit.keyring),
            "--backbone-fingerprint",
            BACKBONE,
            "--tokenizer-fingerprint",
            TOKENIZER,
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert process.returncode == 1
    assert process.stderr.startswith("error: ") and process.stderr.count("\n") == 1, process.stderr
    assert_intact(store)


# ------------------------------------------------------------------------------------------ crashes


@pytest.fixture(scope="module")
def crash_template(kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store keeping one previous version, with 1.0.0 and 1.1.0 installed: installing 1.2.0 both
    switches the active version and prunes 1.0.0, so every step of the protocol is exercised."""
    root = tmp_path_factory.mktemp("crash") / "store"
    store = ExpertStore(root, StoreConfig(keep_previous=1))
    install(store, kit, kit.bundles["1.0.0"])
    install(store, kit, kit.bundles["1.1.0"])
    return root


@pytest.mark.parametrize("step", STEPS)
def test_install_killed_at_each_step_leaves_a_consistent_store(
    kit: Kit, crash_template: Path, tmp_path: Path, step: str
) -> None:
    root = tmp_path / "store"
    shutil.copytree(crash_template, root)
    command = [
        sys.executable,
        "-m",
        "motion_agent.bundles.cli",
        "install",
        str(kit.bundles["1.2.0"]),
        "--store",
        str(root),
        "--keyring",
        str(kit.keyring),
        "--backbone-fingerprint",
        BACKBONE,
        "--tokenizer-fingerprint",
        TOKENIZER,
        "--keep",
        "1",
    ]
    env = os.environ | {"PYTHONPATH": str(REPO), PAUSE_ENV: step}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr.readline() == f"paused at {step}\n"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    store = ExpertStore(root, StoreConfig(keep_previous=1))
    committed = STEPS.index(step) >= STEPS.index("index-replaced")
    expected = ("1.2.0", ("1.1.0",)) if committed else ("1.1.0", ("1.0.0",))
    assert {n: (r.active, r.previous) for n, r in store.read_index().items()} == {NAME: expected}
    assert store.check() == []  # every version the index names is complete and matches its manifest
    for version in (expected[0], *expected[1]):
        assert (store.version_path(NAME, version) / MANIFEST_NAME).is_file()

    # The next write collects what the crash left behind and finishes the job.
    install(store, kit, kit.bundles["1.2.0"])
    assert_intact(store, "1.2.0", ("1.1.0",))
    assert sorted(p.name for p in (root / "versions" / NAME).iterdir()) == ["1.1.0", "1.2.0"]
