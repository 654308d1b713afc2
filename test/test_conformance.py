"""The bundle conformance suite (motion_agent.bundles.conformance): every named attack is refused for
its reason, with one bounded sentence, and leaves the store's bytes and the served experts as they were.

The extended-header cases also show that the refusal comes from the project's own header walk, before
the standard tar reader could parse (CVE-2024-6232) or expand (GNU sparse maps) anything, and that the
walk's cost does not grow with the hostile header's body.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from pathlib import Path

import pytest

from motion_agent.bundles.cli import main
from motion_agent.bundles.conformance import CASES, Rig, run_case
from motion_agent.bundles.conformance.rig import BACKBONE, TOKENIZER, digits_pax
from motion_agent.bundles.manifest import DEFAULT_LIMITS, BundleError
from motion_agent.bundles.verify import _open_bundle, _refuse_extended_headers

ATTACK_CLASSES = {
    "arbitrary-package",
    "malformed-archive",
    "parser-exhaustion",
    "endless-data",
    "malformed-manifest",
    "wrong-model",
    "mix-and-match",
    "rollback",
    "freeze",
    "key-compromise",
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    return Rig.build(tmp_path_factory.mktemp("conformance"))


def test_the_suite_names_at_least_thirty_attacks_over_every_attack_class() -> None:
    assert len(CASES) >= 30
    assert {case.attack for case in CASES.values()} == ATTACK_CLASSES
    assert all(case.doc for case in CASES.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_is_refused_and_changes_nothing(rig: Rig, tmp_path: Path, name: str) -> None:
    outcome = run_case(CASES[name], rig, tmp_path)
    assert outcome.passed, outcome.problems


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.attack == "parser-exhaustion"))
def test_extended_headers_are_refused_before_the_tar_reader_opens_the_file(
    rig: Rig, tmp_path: Path, monkeypatch, name: str
) -> None:
    store = rig.store(tmp_path / "store")
    attempt = CASES[name].build(rig, store, tmp_path)

    def no_tar_reader(*args, **kwargs):
        raise AssertionError("tarfile opened a bundle with an extended header")

    monkeypatch.setattr(tarfile, "open", no_tar_reader)
    with pytest.raises(BundleError) as caught:
        rig.install(store, attempt.bundle)
    assert caught.value.reason == "extended-header"


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.attack in ("rollback", "key-compromise")))
def test_the_install_command_refuses_with_the_same_one_line_message(rig: Rig, tmp_path: Path, name: str) -> None:
    """`motion-agent-bundle install` prints the library's refusal as one `error:` line and exits 1."""
    store = rig.store(tmp_path / "store")
    attempt = CASES[name].build(rig, store, tmp_path)
    keyring = attempt.keyring or rig.keyring
    with pytest.raises(BundleError) as caught:
        rig.install(store, attempt.bundle, keyring, force=attempt.force)
    argv = ["install", attempt.bundle, "--store", store.root, "--keyring", keyring, "--keep", "2"]
    argv += ["--backbone-fingerprint", BACKBONE, "--tokenizer-fingerprint", TOKENIZER]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv] + (["--force"] if attempt.force else []))
    assert code == 1 and err.getvalue() == f"error: {caught.value}\n"


def test_the_header_walk_reads_the_same_bytes_whatever_the_hostile_body(tmp_path: Path) -> None:
    """Doubling the 320 KB digit body does not double the work: the walk stops at the header."""
    read = {}
    for length in (320_000, 640_000):
        bundle = digits_pax(tmp_path / f"redos-{length}.tar", length)
        raw, size = _open_bundle(bundle, DEFAULT_LIMITS)
        with raw:
            with pytest.raises(BundleError) as caught:
                _refuse_extended_headers(raw, size, DEFAULT_LIMITS)
            read[length] = raw.tell()
        assert caught.value.reason == "extended-header"
    assert read[640_000] <= read[320_000] <= 1024
