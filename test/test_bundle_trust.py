"""What a fleet trusts, beyond a valid signature (TUF's attack classes): rollback protection that outlives
rollback, removal and pruning; expiry against freeze attacks; keys scoped to the experts they may sign;
revocation that stops a removed key's experts. Every refusal leaves the store as it was."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

# kit and store are test_bundle's fixtures, used here by name
from test_bundle import (
    BACKBONE,
    NAME,
    TOKENIZER,
    assert_intact,
    assert_refused,
    cli,
    cli_install,
    install,
    kit,
    store,
)

from motion_agent.bundles.manifest import BundleError
from motion_agent.bundles.store import ExpertStore
from motion_agent.bundles.trust import SCOPES_FILE, TrustPolicy

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def keyring(kit, tmp_path: Path) -> Path:
    """A private copy of the kit's keyring, free to change: the release key and the stranger's."""
    folder = tmp_path / "keyring"
    shutil.copytree(kit.keyring, folder)
    shutil.copy(kit.stranger_key.with_name(kit.stranger_key.name + ".pub"), folder / "stranger.pub")
    return folder


def install_with(store: ExpertStore, bundle: Path, keyring: Path, **options):
    return store.install(bundle, keyring, backbone_fingerprint=BACKBONE, tokenizer_fingerprint=TOKENIZER, **options)


# ---------------------------------------------------------------------------------------- rollback


def test_an_older_version_is_refused_after_rollback_and_after_remove(kit, store) -> None:
    install(store, kit, kit.bundles["1.2.0"])
    store.rollback(NAME, to="1.0.0")  # the operator's own choice: allowed
    assert "accepted before (rollback protection)" in assert_refused(store, kit, kit.bundles["1.1.0"], "older-version")
    store.remove(NAME)
    with pytest.raises(BundleError) as caught:
        install(store, kit, kit.bundles["1.1.0"])
    assert caught.value.reason == "older-version" and "1.2.0" in str(caught.value)
    assert store.read_index() == {}


def test_a_forced_downgrade_installs_and_is_logged(kit, store) -> None:
    install(store, kit, kit.bundles["1.2.0"])
    store.remove(NAME)
    code, out, _ = cli_install(store, kit, kit.bundles["1.1.0"], "--force")
    assert code == 0 and "installed lane_merge 1.1.0" in out
    memory = json.loads(store.history_path.read_text())
    assert memory["experts"][NAME]["highest"] == "1.2.0"
    assert [(d["expert"], d["version"], d["highest"]) for d in memory["downgrades"]] == [(NAME, "1.1.0", "1.2.0")]


def test_a_reused_version_string_is_refused_even_forced_after_its_copy_is_pruned(kit, store, tmp_path) -> None:
    store.remove(NAME)  # the old 1.0.0 is gone from the store
    rebuilt = kit.pack(tmp_path / "rebuilt.tar", "1.0.0", scenario="Highway lane merge, retrained")
    with pytest.raises(BundleError) as caught:
        install(store, kit, rebuilt, force=True)
    assert caught.value.reason == "version-conflict" and "accepted before with other content" in str(caught.value)
    install(store, kit, kit.bundles["1.0.0"])  # the very same build may come back
    assert_intact(store)


def test_the_memory_survives_a_reinstalled_index(kit, store) -> None:
    install(store, kit, kit.bundles["1.2.0"])
    store.index_path.unlink()  # an index rebuilt by hand forgets; the memory does not
    shutil.rmtree(store.root / "versions")
    with pytest.raises(BundleError) as caught:
        install(store, kit, kit.bundles["1.1.0"])
    assert caught.value.reason == "older-version" and store.read_index() == {}


def test_a_store_from_before_the_memory_starts_from_its_index(kit, store) -> None:
    install(store, kit, kit.bundles["1.2.0"])
    store.history_path.unlink()
    with pytest.raises(BundleError) as caught:
        install(store, kit, kit.bundles["1.1.0"])
    assert caught.value.reason == "older-version"


# ------------------------------------------------------------------------------------------ freeze


def test_dates_within_the_clock_skew_install(kit, store, tmp_path) -> None:
    ahead = kit.pack(tmp_path / "ahead.tar", "1.1.0", created="2026-06-01T00:04:00Z")  # 4 minutes ahead
    install(store, kit, ahead, now=NOW)
    just_expired = kit.pack(
        tmp_path / "expired.tar", "1.2.0", created="2026-01-01T00:00:00Z", expires="2026-05-31T23:56:00Z"
    )
    install(store, kit, just_expired, now=NOW)  # expired 4 minutes ago: within the 5 minute skew
    assert store.read_index()[NAME].active == "1.2.0"


def test_pack_writes_an_expiry_the_store_enforces(kit, store, tmp_path) -> None:
    out = tmp_path / "expiring.tar"
    code, _, err = cli(
        *("pack", kit.expert, "-o", out, "--key", kit.key, "--name", NAME, "--scenario", "Highway lane merge"),
        *("--version", "1.1.0", "--created", "2026-01-01T00:00:00Z", "--expires-in", "30"),
        *("--backbone-fingerprint", BACKBONE, "--tokenizer-fingerprint", TOKENIZER),
    )
    assert code == 0, err
    code, out_text, _ = cli("inspect", out, "--json")
    assert json.loads(out_text)["expires"] == "2026-01-31T00:00:00Z"
    with pytest.raises(BundleError, match="expired at 2026-01-31T00:00:00Z"):
        install(store, kit, out, now=NOW)


# -------------------------------------------------------------------------------- scopes, revocation


def test_a_key_scoped_to_other_experts_cannot_sign_this_one(kit, tmp_path, keyring) -> None:
    (keyring / SCOPES_FILE).write_text("release: [sports, dance_*]\nstranger: ['*']\n")
    store = ExpertStore(tmp_path / "store")
    with pytest.raises(BundleError) as caught:
        install_with(store, kit.bundles["1.0.0"], keyring)
    assert caught.value.reason == "key-scope" and "may not sign expert 'lane_merge'" in str(caught.value)
    assert "sports, dance_*" in str(caught.value) and store.read_index() == {}
    (keyring / SCOPES_FILE).write_text(f"release: [{NAME}]\n")
    install_with(store, kit.bundles["1.0.0"], keyring)
    assert store.read_index()[NAME].active == "1.0.0"


def test_a_scopes_file_naming_an_unknown_key_is_refused(kit, keyring) -> None:
    (keyring / SCOPES_FILE).write_text("nobody: ['*']\n")
    with pytest.raises(BundleError, match="'nobody', which is not a key of the keyring"):
        TrustPolicy.load(keyring)


def test_a_revoked_keys_experts_stop_serving_and_the_check_says_so(kit, tmp_path, keyring) -> None:
    store = ExpertStore(tmp_path / "store")
    install_with(store, kit.bundles["1.0.0"], keyring)
    assert set(store.active_experts(TrustPolicy.load(keyring))) == {NAME}
    (keyring / "release.pub").unlink()  # revoke the release key; the stranger's stays trusted
    trust = TrustPolicy.load(keyring)
    assert store.active_experts(trust) == {} and set(store.active_experts()) == {NAME}
    assert "no longer signed by a trusted key" in store.untrusted(trust)[NAME]
    code, out, err = cli("list", "--store", store.root, "--check", "--keyring", keyring)
    assert code == 1 and "no longer signed by a trusted key" in out + err
    code, out, _ = cli("list", "--store", store.root, "--check")  # without a keyring only the files are checked
    assert code == 0 and "store check: ok" in out
