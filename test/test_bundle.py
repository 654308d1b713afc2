"""Expert bundles and the on-robot expert store.

Every refusal the format promises has its own test, and each one also checks that the experts
already installed keep working afterwards. Random byte damage is thrown at a valid bundle
(hypothesis), and installs are killed with SIGKILL at every step of the install protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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

from motion_agent.bundles.cli import main
from motion_agent.bundles.conformance.rig import BACKBONE, NAME, TOKENIZER, Rig, resign
from motion_agent.bundles.durable import PAUSE_ENV, STEPS
from motion_agent.bundles.keys import load_keyring
from motion_agent.bundles.manifest import (
    ADAPTER_WEIGHTS,
    ARCHIVE_ORDER,
    EVAL_FIGURES,
    EXPERT_FILES,
    MANIFEST_NAME,
    BundleError,
    BundleLimits,
    SemVer,
)
from motion_agent.bundles.store import ExpertStore, StoreConfig
from motion_agent.bundles.verify import verify_bundle

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """The conformance suite's rig: an expert, the release key (trusted), a stranger's key, bundles."""
    return Rig.build(tmp_path_factory.mktemp("kit"))


@pytest.fixture
def store(kit: Rig, tmp_path: Path) -> ExpertStore:
    """A store with 1.0.0 installed and active: what every refusal must leave working."""
    store = ExpertStore(tmp_path / "store")
    install(store, kit, kit.bundles["1.0.0"])
    return store


def install(store: ExpertStore, kit: Rig, bundle: Path, **options):
    return kit.install(store, bundle, **options)


def cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def cli_install(store: ExpertStore, kit: Rig, bundle: Path, *extra: str) -> tuple[int, str, str]:
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


def assert_refused(store: ExpertStore, kit: Rig, bundle: Path, reason: str, *cli_extra: str, **options) -> str:
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


# ------------------------------------------------------------------------------------------ accepted


def test_valid_bundle_verifies_installs_and_keeps_the_files(kit: Rig, tmp_path: Path) -> None:
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


def test_archive_is_a_plain_tar_in_canonical_order(kit: Rig) -> None:
    with tarfile.open(kit.bundles["1.0.0"]) as tar:
        infos = tar.getmembers()
    assert [info.name for info in infos] == list(ARCHIVE_ORDER)
    assert all(info.isreg() and info.mode == 0o644 for info in infos)
    assert kit.bundles["1.0.0"].stat().st_size % 10240 == 0


def test_packing_is_reproducible(kit: Rig, tmp_path: Path) -> None:
    again = kit.pack(tmp_path / "again.tar")
    assert again.read_bytes() == kit.bundles["1.0.0"].read_bytes()


def test_installed_adapter_loads_with_safetensors(kit: Rig, store: ExpertStore) -> None:
    from safetensors.torch import load_file

    tensors = load_file(store.active_experts()[NAME] / ADAPTER_WEIGHTS)
    assert any("lora_A" in name for name in tensors)


def test_newer_version_replaces_and_keeps_previous(kit: Rig, store: ExpertStore) -> None:
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


@pytest.mark.parametrize("cut", ["tiny", "first-data", "half", "mid-header", "end-marker", "record-padding"])
def test_refuses_truncated_archive(kit: Rig, store: ExpertStore, tmp_path: Path, cut: str) -> None:
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


def test_refuses_archive_over_size_limit(kit: Rig, store: ExpertStore) -> None:
    bundle = kit.bundles["1.1.0"]
    limit = bundle.stat().st_size - 1
    with pytest.raises(BundleError) as caught:
        install(ExpertStore(store.root, StoreConfig(limits=BundleLimits(max_archive_bytes=limit))), kit, bundle)
    assert caught.value.reason == "too-large" and str(limit) in str(caught.value)
    assert_intact(store)
    code, _, err = cli_install(store, kit, bundle, "--max-bytes", str(limit))
    assert code == 1 and err.startswith("error: The bundle is ") and "over the limit" in err
    assert_intact(store)


def test_size_limit_is_checked_before_reading(kit: Rig, store: ExpertStore, tmp_path: Path) -> None:
    """A 600 MiB (sparse) file is refused by its size alone, with the default limit."""
    bundle = tmp_path / "huge.tar"
    with open(bundle, "wb") as handle:
        handle.truncate(600 * 1024 * 1024)
    assert "over the limit of 536870912 bytes" in assert_refused(store, kit, bundle, "too-large")


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
def test_refuses_manifest_failing_schema(kit: Rig, store: ExpertStore, tmp_path: Path, damage: str) -> None:
    bundle = resign(kit, kit.bundles["1.1.0"], tmp_path / "schema.tar", SCHEMA_DAMAGE[damage])
    assert "schema" in assert_refused(store, kit, bundle, "schema")


def test_refuses_older_version_unless_forced(kit: Rig, store: ExpertStore) -> None:
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


def test_refuses_data_after_the_end(kit: Rig, store: ExpertStore, tmp_path: Path) -> None:
    bundle = tmp_path / "appended.tar"
    bundle.write_bytes(kit.bundles["1.1.0"].read_bytes() + b"\0" * 10240)
    assert_refused(store, kit, bundle, "layout")
    bundle.write_bytes(kit.bundles["1.1.0"].read_bytes()[:-1] + b"x")
    assert_refused(store, kit, bundle, "corrupt")


def test_pack_refuses_incomplete_expert_folder(kit: Rig, tmp_path: Path) -> None:
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


def test_pack_refuses_bad_safetensors(kit: Rig, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    shutil.copytree(kit.expert, expert)
    (expert / "router" / "router.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}      ")
    with pytest.raises(BundleError, match="router/router.safetensors"):
        dataclasses.replace(kit, expert=expert).pack(tmp_path / "b.tar")


# ------------------------------------------------------------------------------------------ store


def test_a_full_disk_at_any_write_names_the_file_and_leaves_the_store_as_it_was(
    kit: Rig, store: ExpertStore, monkeypatch
) -> None:
    """Every fsync of the install fails in turn (ENOSPC), as on a disk that fills up at that moment: each
    attempt is refused naming where, leaves no half-written index or memory, and the next one installs."""
    real_fsync, calls = os.fsync, {"n": 0, "fail_at": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for fail_at in range(1, 100):
        calls.update(n=0, fail_at=fail_at)
        try:
            install(store, kit, kit.bundles["1.1.0"])
        except BundleError as error:
            assert error.reason == "io" and "No space left on device" in str(error), error
            assert str(store.root) in str(error) and "\n" not in str(error)
            assert not list(store.root.glob("*.tmp"))
            assert_intact(store)
            continue
        break
    assert fail_at > 3  # staged files, the memory and the index were each hit before one install got through
    assert_intact(store, "1.1.0", ("1.0.0",))


def test_keeps_n_previous_versions_and_prunes_older(kit: Rig, tmp_path: Path) -> None:
    store = ExpertStore(tmp_path / "store", StoreConfig(keep_previous=1))
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        install(store, kit, kit.bundles[version])
    assert_intact(store, "1.2.0", ("1.1.0",))
    assert sorted(p.name for p in (store.root / "versions" / NAME).iterdir()) == ["1.1.0", "1.2.0"]


def test_rollback_and_remove(kit: Rig, store: ExpertStore) -> None:
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


def test_rollback_to_named_version(kit: Rig, store: ExpertStore) -> None:
    install(store, kit, kit.bundles["1.1.0"])
    install(store, kit, kit.bundles["1.2.0"])
    assert store.rollback(NAME, to="1.0.0").active == "1.0.0"
    assert_intact(store, "1.0.0", ())


def test_runtime_view_reads_the_index_only(tmp_path: Path) -> None:
    missing = tmp_path / "no-store"
    assert ExpertStore(missing).active_experts() == {}
    assert not missing.exists()


def test_store_with_versions_but_no_index_is_left_alone(kit: Rig, store: ExpertStore) -> None:
    store.index_path.unlink()
    with pytest.raises(BundleError, match="no index"):
        install(store, kit, kit.bundles["1.1.0"])
    assert (store.root / "versions" / NAME / "1.0.0" / MANIFEST_NAME).is_file()


def test_check_finds_a_damaged_installed_file(kit: Rig, store: ExpertStore) -> None:
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


def test_a_fifo_or_a_huge_file_in_the_keyring_is_refused_without_hanging(kit: Rig, store: ExpertStore) -> None:
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


def test_cli_pack_inspect_verify_install_list_with_model_manifest(kit: Rig, tmp_path: Path) -> None:
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


def test_cli_install_needs_the_robot_fingerprints(kit: Rig, tmp_path: Path) -> None:
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
def damage_rig(kit: Rig, tmp_path_factory: pytest.TempPathFactory):
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


def test_random_damage_is_always_refused(kit: Rig, damage_rig) -> None:
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


def test_damaged_bundle_through_a_real_process(kit: Rig, damage_rig) -> None:
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
def crash_template(kit: Rig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store keeping one previous version, with 1.0.0 and 1.1.0 installed: installing 1.2.0 both
    switches the active version and prunes 1.0.0, so every step of the protocol is exercised."""
    root = tmp_path_factory.mktemp("crash") / "store"
    store = ExpertStore(root, StoreConfig(keep_previous=1))
    install(store, kit, kit.bundles["1.0.0"])
    install(store, kit, kit.bundles["1.1.0"])
    return root


@pytest.mark.parametrize("step", STEPS)
def test_install_killed_at_each_step_leaves_a_consistent_store(
    kit: Rig, crash_template: Path, tmp_path: Path, step: str
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
