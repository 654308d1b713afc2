"""`motion-agent-bundle`: sign, check and install expert bundles; manage a robot's expert store.

Every refusal prints one line, `error: <sentence naming what is wrong>`, to stderr and exits 1;
usage mistakes exit 2. Nothing a bundle contains can make this command print a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from motion_agent.bundles.archive import pack_bundle
from motion_agent.bundles.keys import generate_keypair, load_keyring, load_private_key
from motion_agent.bundles.manifest import (
    ADAPTER_CONFIG,
    DEFAULT_LIMITS,
    BundleError,
    BundleLimits,
    check_fingerprint,
    load_model_fingerprints,
    parse_utc,
)
from motion_agent.bundles.store import ExpertStore, StoreConfig
from motion_agent.bundles.trust import TrustPolicy
from motion_agent.bundles.verify import VerifiedBundle, extract_verified, read_eval_figures

PROG = "motion-agent-bundle"


def _fingerprints(args: argparse.Namespace, required: bool) -> tuple[str | None, str | None]:
    """Fingerprints from --model-manifest or from the two flags (never both)."""
    flags = (args.backbone_fingerprint, args.tokenizer_fingerprint)
    if args.model_manifest is not None:
        if any(flag is not None for flag in flags):
            raise BundleError("Give either --model-manifest or the fingerprint flags, not both.", "usage")
        return load_model_fingerprints(args.model_manifest)
    if required and None in flags:
        raise BundleError(
            "This robot's fingerprints are needed: give --model-manifest, or both --backbone-fingerprint "
            "and --tokenizer-fingerprint.",
            "usage",
        )
    backbone, tokenizer = flags
    return (
        check_fingerprint(backbone, "backbone") if backbone is not None else None,
        check_fingerprint(tokenizer, "tokenizer") if tokenizer is not None else None,
    )


def _limits(args: argparse.Namespace) -> BundleLimits:
    if args.max_bytes is None:
        return DEFAULT_LIMITS
    return dataclasses.replace(DEFAULT_LIMITS, max_archive_bytes=args.max_bytes)


def _count(text: str) -> int:
    """argparse type for counts and sizes: a whole number, zero or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of zero or more")
    return value


def _keygen(args: argparse.Namespace) -> int:
    private, public, key_id = generate_keypair(args.key)
    print(f"wrote private key {private} (keep it secret) and public key {public}, key id {key_id}")
    print(f"to trust it on a robot, copy {public.name} into the robot's keyring folder")
    return 0


def _pack(args: argparse.Namespace) -> int:
    backbone, tokenizer = _fingerprints(args, required=True)
    manifest = pack_bundle(
        args.expert_dir,
        args.output,
        load_private_key(args.key),
        name=args.name,
        scenario=args.scenario,
        version=args.version,
        backbone_fingerprint=backbone,
        tokenizer_fingerprint=tokenizer,
        created=args.created,
        expires=_expiry(args),
    )
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: expert {manifest.name} {manifest.version}, {size} bytes")
    return 0


def _expiry(args: argparse.Namespace) -> str | None:
    """The manifest's `expires`: --expires as given, or --expires-in days after the creation time."""
    if args.expires_in is None:
        return args.expires
    created = parse_utc(args.created) if args.created else datetime.now(timezone.utc).replace(microsecond=0)
    return (created + timedelta(days=args.expires_in)).isoformat().replace("+00:00", "Z")


def _describe(bundle: VerifiedBundle, path: str) -> dict:
    manifest = bundle.manifest
    return {
        "bundle": path,
        "bundle_bytes": bundle.archive_bytes,
        "signed_by": bundle.key_id,
        "signature_checked": bundle.signature_checked,
        **manifest.to_mapping(),
        "eval": read_eval_figures(bundle.root),
    }


def _print_description(info: dict) -> None:
    adapter = info["adapter_config"]
    targets = adapter.get("target_modules")
    signature = f"key {info['signed_by']} " + (
        "(verified)" if info["signature_checked"] else "(claimed, not checked: no --keyring given)"
    )
    rows = [
        ("bundle", f"{info['bundle']} ({info['bundle_bytes']} bytes)"),
        ("expert", f"{info['name']} {info['version']}"),
        ("scenario", info["scenario"]),
        ("created", info["created"]),
        ("expires", info.get("expires") or "never"),
        ("backbone", info["backbone_fingerprint"]),
        ("tokenizer", info["tokenizer_fingerprint"]),
        ("signature", signature),
        ("adapter", f"r={adapter.get('r')} alpha={adapter.get('lora_alpha')} targets={targets}"),
    ]
    for label, value in rows:
        print(f"{label + ':':<11}{value}")
    print("files:")
    for entry in info["files"]:
        print(f"  {entry['size']:>12}  {entry['sha256'][:16]}  {entry['path']}")
    print(f"eval:      {json.dumps(info['eval'], sort_keys=True)}")


def _inspect(args: argparse.Namespace) -> int:
    keyring = load_keyring(args.keyring) if args.keyring else None
    with tempfile.TemporaryDirectory(prefix="bundle-inspect-") as work:
        bundle = extract_verified(args.bundle, Path(work) / "expert", keyring, limits=_limits(args))
        info = _describe(bundle, args.bundle)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_description(info)
    return 0


def _verify(args: argparse.Namespace) -> int:
    backbone, tokenizer = _fingerprints(args, required=False)
    trust = TrustPolicy.load(args.keyring)
    with tempfile.TemporaryDirectory(prefix="bundle-verify-") as work:
        bundle = extract_verified(
            args.bundle,
            Path(work) / "expert",
            trust.keys,
            backbone_fingerprint=backbone,
            tokenizer_fingerprint=tokenizer,
            limits=_limits(args),
        )
    trust.check_scope(bundle.key_id, bundle.manifest.name)
    checked = " and fingerprints" if backbone or tokenizer else ""
    print(
        f"ok: {bundle.manifest.name} {bundle.manifest.version} is intact, signed by trusted key "
        f"{bundle.key_id}{checked}"
    )
    return 0


def _store(args: argparse.Namespace) -> ExpertStore:
    keep = getattr(args, "keep", None)
    config = (
        StoreConfig(limits=_limits(args)) if keep is None else StoreConfig(keep_previous=keep, limits=_limits(args))
    )
    return ExpertStore(args.store, config)


def _install(args: argparse.Namespace) -> int:
    backbone, tokenizer = _fingerprints(args, required=True)
    assert backbone is not None and tokenizer is not None
    result = _store(args).install(
        args.bundle,
        TrustPolicy.load(args.keyring),  # its keys and scopes.yaml
        backbone_fingerprint=backbone,
        tokenizer_fingerprint=tokenizer,
        force=args.force,
    )
    if not result.changed:
        print(f"{result.name} {result.version} is already installed and active; nothing changed")
    elif result.replaced:
        print(f"installed {result.name} {result.version} (was {result.replaced})")
    else:
        print(f"installed {result.name} {result.version}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    experts = store.read_index()
    rows = []
    for name, record in sorted(experts.items()):
        try:
            scenario = store.manifest(name, record.active).scenario
        except (OSError, BundleError):
            scenario = "(manifest unreadable)"
        rows.append({"name": name, "active": record.active, "previous": list(record.previous), "scenario": scenario})
    problems = store.check(TrustPolicy.load(args.keyring) if args.keyring else None) if args.check else []
    if args.json:
        print(json.dumps({"experts": rows, "problems": problems} if args.check else {"experts": rows}, indent=2))
    elif not rows:
        print(f"no experts installed in {store.root}")
    else:
        print(f"{'expert':<24}{'active':<12}{'previous':<24}scenario")
        for row in rows:
            print(f"{row['name']:<24}{row['active']:<12}{', '.join(row['previous']) or '-':<24}{row['scenario']}")
    if args.check and not args.json:
        print("store check: ok" if not problems else "store check found problems:")
        for problem in problems:
            print(f"  {problem}")
    if problems:
        raise BundleError(f"The store check found {len(problems)} problem(s), the first: {problems[0]}", "store")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    record = _store(args).rollback(args.name, to=args.to)
    print(f"{record.name} is back at {record.active}")
    return 0


def _conformance(args: argparse.Namespace) -> int:
    from motion_agent.bundles.conformance import CASES, run_suite

    if args.list:
        for case in CASES.values():
            print(f"{case.name:30} {case.attack:20} {case.doc}")
        return 0
    print(f"running {len(args.case or CASES)} attacks, each against a fresh store ...", flush=True)
    outcomes = run_suite(names=args.case)
    for outcome in outcomes:
        mark = "ok  " if outcome.passed else "FAIL"
        said = outcome.reason or outcome.outcome
        print(f"{mark} {outcome.name:30} {outcome.attack:20} {said:18} {outcome.seconds:7.3f} s")
        for problem in outcome.problems:
            print(f"       {problem}")
    failed = [o.name for o in outcomes if not o.passed]
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} attacks refused for the expected reason, "
        "the store and the served experts unchanged" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps([o.to_json() for o in outcomes], indent=2) + "\n")
    return 1 if failed else 0


def _remove(args: argparse.Namespace) -> int:
    _store(args).remove(args.name, version=args.version)
    print(f"removed {args.name}" + (f" {args.version}" if args.version else " with all its versions"))
    return 0


def _add_fingerprint_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group("robot fingerprints", what)
    group.add_argument("--backbone-fingerprint", metavar="SHA256", help="hex sha256 of the backbone weights")
    group.add_argument("--tokenizer-fingerprint", metavar="SHA256", help="hex sha256 of the tokenizer")
    group.add_argument(
        "--model-manifest",
        metavar="FILE",
        help="YAML file with keys backbone_fingerprint and tokenizer_fingerprint (instead of the two flags)",
    )


def _add_max_bytes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-bytes",
        type=_count,
        metavar="N",
        help=f"refuse bundles larger than N bytes (default {DEFAULT_LIMITS.max_archive_bytes})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sign, check and install expert bundles, and manage the expert store of a robot. "
        "A bundle is one tar archive with a signed manifest, a LoRA adapter, router parameters and "
        "evaluation figures; a robot installs only bundles signed by a key in its keyring, trained "
        "against its own backbone and tokenizer.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary}. {description}")

    keygen = command(
        "keygen",
        "Create an Ed25519 signing key pair",
        "Writes KEY (private, mode 0600, PEM PKCS#8) and KEY.pub (public, PEM); existing files are never "
        "overwritten. Copy KEY.pub into a robot's keyring folder to make the robot trust bundles signed with KEY.",
    )
    keygen.add_argument("key", metavar="KEY", help="path of the private key file to create")
    keygen.set_defaults(run=_keygen)

    pack = command(
        "pack",
        "Sign an expert folder into a bundle",
        f"EXPERT_DIR must hold {ADAPTER_CONFIG}, adapter/adapter_model.safetensors, router/router.safetensors "
        "and eval.json; other files are left out. The folder is checked as strictly as a robot checks it.",
    )
    pack.add_argument("expert_dir", metavar="EXPERT_DIR", help="the expert folder to pack")
    pack.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle file to write")
    pack.add_argument("--key", required=True, metavar="KEY", help="private key file made by keygen")
    pack.add_argument("--name", required=True, help="expert name: 1-64 of a-z, 0-9, _ and -")
    pack.add_argument("--scenario", required=True, help="the scenario the expert serves, in words")
    pack.add_argument("--version", required=True, help="semantic version, e.g. 1.2.0")
    pack.add_argument("--created", metavar="ISO_TIME", help="creation time, e.g. 2025-01-31T12:00:00Z (default: now)")
    expiry = pack.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires", metavar="ISO_TIME", help="robots refuse the bundle after this time, e.g. 2027-01-31T12:00:00Z"
    )
    expiry.add_argument(
        "--expires-in", type=float, metavar="DAYS", help="robots refuse the bundle this many days after its creation"
    )
    _add_fingerprint_options(pack, "What the expert was trained against (required).")
    pack.set_defaults(run=_pack)

    inspect = command(
        "inspect",
        "Show what a bundle holds",
        "Checks the archive, manifest, digests and layout; the signature too when --keyring is given.",
    )
    inspect.add_argument("bundle", metavar="BUNDLE", help="the bundle file (a tar archive made by pack)")
    inspect.add_argument("--keyring", metavar="DIR", help="folder of trusted *.pub keys, to check the signature")
    inspect.add_argument("--json", action="store_true", help="print the description as JSON")
    _add_max_bytes(inspect)
    inspect.set_defaults(run=_inspect)

    verify = command(
        "verify",
        "Check a bundle without installing it",
        "Runs every check an install runs: size limit, archive safety, signature by a keyring key, manifest "
        "schema, file digests, and the fingerprints when given.",
    )
    verify.add_argument("bundle", metavar="BUNDLE", help="the bundle file (a tar archive made by pack)")
    verify.add_argument("--keyring", required=True, metavar="DIR", help="folder of trusted *.pub keys")
    _add_fingerprint_options(verify, "Optional: also refuse a bundle trained against other fingerprints.")
    _add_max_bytes(verify)
    verify.set_defaults(run=_verify)

    install = command(
        "install",
        "Verify a bundle and make it the active version of its expert",
        "The install is atomic: a refusal or a crash leaves the previously installed experts active and "
        "intact. Versions older than the highest this store ever accepted are refused unless --force (a "
        "logged downgrade); a version accepted before is accepted again only with the same content; expired "
        "bundles are refused; with scopes.yaml in the keyring, a key installs only the experts it may sign.",
    )
    install.add_argument("bundle", metavar="BUNDLE", help="the bundle file (a tar archive made by pack)")
    install.add_argument("--store", required=True, metavar="DIR", help="the robot's expert store folder")
    install.add_argument("--keyring", required=True, metavar="DIR", help="folder of trusted *.pub keys")
    install.add_argument(
        "--force", action="store_true", help="allow a version older than the highest accepted (logged as a downgrade)"
    )
    install.add_argument(
        "--keep",
        type=_count,
        metavar="N",
        help=f"previous versions to keep per expert (default {StoreConfig().keep_previous})",
    )
    _add_fingerprint_options(install, "This robot's fingerprints (required).")
    _add_max_bytes(install)
    install.set_defaults(run=_install)

    listing = command("list", "List the installed experts", "Shows each expert's active and previous versions.")
    listing.add_argument("--store", required=True, metavar="DIR", help="the robot's expert store folder")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--check", action="store_true", help="also check every kept version against its manifest")
    listing.add_argument(
        "--keyring",
        metavar="DIR",
        help="with --check: also check that every active expert is still signed by a key of this keyring "
        "(experts of a revoked key are not served)",
    )
    listing.set_defaults(run=_list, max_bytes=None)

    rollback = command(
        "rollback",
        "Make a previous version of an expert active again",
        "The versions newer than the one rolled back to are removed from the store.",
    )
    rollback.add_argument("name", metavar="EXPERT")
    rollback.add_argument("--store", required=True, metavar="DIR", help="the robot's expert store folder")
    rollback.add_argument("--to", metavar="VERSION", help="the previous version to return to (default: the newest)")
    rollback.set_defaults(run=_rollback, max_bytes=None)

    remove = command(
        "remove",
        "Remove an expert, or one of its previous versions",
        "Without --version the expert and all its versions leave the store; the active version cannot be "
        "removed on its own.",
    )
    remove.add_argument("name", metavar="EXPERT")
    remove.add_argument("--store", required=True, metavar="DIR", help="the robot's expert store folder")
    remove.add_argument("--version", metavar="VERSION", help="remove only this previous version")
    remove.set_defaults(run=_remove, max_bytes=None)

    conformance = command(
        "conformance",
        "Attack this installation's verifier and store with every known bundle attack",
        "Each case (a tampered, replayed, expired, out-of-scope, malformed or parser-exhausting bundle, in the "
        "spirit of TUF's conformance suite) runs against a fresh store in a temporary folder, with a throwaway "
        "key and expert; it passes when the bundle is refused for the expected reason and the store and the "
        "experts a node would serve are unchanged. Run it on the robot: some attacks depend on its Python.",
    )
    conformance.add_argument("--case", action="append", metavar="NAME", help="run only this case (repeatable)")
    conformance.add_argument("--list", action="store_true", help="list the cases and exit")
    conformance.add_argument("--json", metavar="FILE", help="also write every outcome as JSON")
    conformance.set_defaults(run=_conformance, max_bytes=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage mistake (2): argparse has printed why
        return int(exit_.code or 0)
    try:
        return args.run(args)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        print(f"error: Cannot access{where}: {error.strerror or error}.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
