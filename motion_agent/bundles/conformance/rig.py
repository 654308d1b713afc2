"""The test rig of the conformance suite: one small but real expert, a trusted and an untrusted key, valid
bundles of three versions, and the tools an attacker uses to craft archives from them.

Everything is made locally, without torch (the suite runs where bundles are verified): the expert is a
LoRA of a two-layer Llama in peft's file formats, so the verifier's checks of the adapter config and the
safetensors headers run on real files.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from motion_agent.bundles.archive import pack_bundle, write_archive
from motion_agent.bundles.keys import generate_keypair, load_private_key, sign_manifest
from motion_agent.bundles.manifest import ARCHIVE_ORDER, EVAL_FIGURES, MANIFEST_NAME, SIGNATURE_NAME
from motion_agent.bundles.store import ExpertStore, StoreConfig
from motion_agent.config import parse_yaml

NAME = "lane_merge"
SCENARIO = "Highway lane merge"
BACKBONE = "ab" * 32  # the fingerprints of the robot the rig plays
TOKENIZER = "cd" * 32
CREATED = "2025-01-31T12:00:00Z"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
INSTALLED = "1.0.0"  # what every case's store holds before the attack


LORA_RANK, HIDDEN, LAYERS = 8, 64, 2  # a LoRA of a two-layer Llama of width 64


def make_expert_folder(folder: Path, seed: int = 0) -> Path:
    """An expert folder in the formats the model code writes: a peft LoRA adapter (config and
    safetensors weights under peft's key names), a router, eval figures. Written with numpy, so that the
    suite runs where bundles are verified, without torch."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    (folder / "adapter").mkdir(parents=True, exist_ok=True)
    (folder / "router").mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": None,
        "r": LORA_RANK,
        "lora_alpha": LORA_RANK,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "inference_mode": True,
    }
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps(config, indent=2))
    weights = {}
    for layer in range(LAYERS):
        for module in config["target_modules"]:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            weights[f"{prefix}.lora_A.weight"] = rng.normal(size=(LORA_RANK, HIDDEN)).astype(np.float32)
            weights[f"{prefix}.lora_B.weight"] = np.zeros((HIDDEN, LORA_RANK), np.float32)
    save_file(weights, str(folder / "adapter" / "adapter_model.safetensors"))
    router = {
        "mu": np.array([0.4], np.float32),
        "sigma": np.array([0.1], np.float32),
        "centroid": rng.normal(size=HIDDEN).astype(np.float32),
    }
    save_file(router, str(folder / "router" / "router.safetensors"))
    (folder / EVAL_FIGURES).write_text(json.dumps({"success_rate": 0.93, "episodes": 200}))
    return folder


@dataclass(frozen=True)
class Rig:
    """An expert folder, the release key (trusted: its .pub is in `keyring`), a stranger's key (not
    trusted), and bundles of the expert signed by the release key, by version."""

    root: Path
    expert: Path
    key: Path
    keyring: Path
    stranger_key: Path
    bundles: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def build(cls, root: str | Path, expert: Path | None = None) -> Rig:
        """Make the rig in `root` (an empty folder); `expert` reuses an expert folder made before."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if expert is None:
            expert = make_expert_folder(root / "expert")
        (root / "keyring").mkdir()
        generate_keypair(root / "release.key")
        shutil.copy(root / "release.key.pub", root / "keyring" / "release.pub")
        generate_keypair(root / "stranger.key")
        rig = cls(root, expert, root / "release.key", root / "keyring", root / "stranger.key")
        for version in VERSIONS:
            rig.bundles[version] = rig.pack(root / f"{NAME}-{version}.tar", version)
        return rig

    def pack(self, out: Path, version: str = "1.0.0", key: Path | None = None, **fields) -> Path:
        """A valid bundle of the rig's expert, signed by `key` (default: the release key)."""
        values = dict(
            name=NAME,
            scenario=SCENARIO,
            version=version,
            backbone_fingerprint=BACKBONE,
            tokenizer_fingerprint=TOKENIZER,
            created=CREATED,
        )
        pack_bundle(self.expert, out, load_private_key(key or self.key), **(values | fields))
        return out

    def install(self, store: ExpertStore, bundle: Path, keyring: Path | None = None, **options):
        """Install as the robot does: this rig's fingerprints, its keyring unless another is given."""
        fingerprints = dict(backbone_fingerprint=BACKBONE, tokenizer_fingerprint=TOKENIZER)
        return store.install(bundle, keyring or self.keyring, **(fingerprints | options))

    def store(self, folder: Path, config: StoreConfig | None = None) -> ExpertStore:
        """A store with version 1.0.0 installed and active: what every refusal must leave as it was."""
        store = ExpertStore(folder, config)
        self.install(store, self.bundles[INSTALLED])
        return store

    def private_keyring(self, folder: Path) -> Path:
        """A copy of the keyring that a case may change, with the stranger's key trusted as well."""
        shutil.copytree(self.keyring, folder)
        shutil.copy(self.stranger_key.with_name(self.stranger_key.name + ".pub"), folder / "stranger.pub")
        return folder


# ------------------------------------------------------------------------------ crafting archives


def members(bundle: Path) -> list[tuple[str, bytes]]:
    """(name, content) of every member, read with the standard tar reader (valid bundles only)."""
    with tarfile.open(bundle) as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar.getmembers()]


def rewrite(bundle: Path, out: Path, change) -> Path:
    """The bundle in the canonical layout with `change(parts)` applied to its {name: content} mapping
    (no re-signing: what an attacker without the key can do)."""
    parts = dict(members(bundle))
    change(parts)
    write_archive(out, [(name, parts[name]) for name in ARCHIVE_ORDER if name in parts])
    return out


def resign(rig: Rig, bundle: Path, out: Path, change, key: Path | None = None) -> Path:
    """A bundle whose manifest mapping `change` altered, then properly signed with `key`."""
    parts = dict(members(bundle))
    mapping = parse_yaml(parts[MANIFEST_NAME])
    change(mapping)
    manifest_bytes = yaml.safe_dump(mapping, sort_keys=False).encode()
    parts[MANIFEST_NAME] = manifest_bytes
    parts[SIGNATURE_NAME] = sign_manifest(manifest_bytes, load_private_key(key or rig.key))
    write_archive(out, [(name, parts[name]) for name in ARCHIVE_ORDER])
    return out


def tar_info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, linkname
    return info


def add_member(bundle: Path, out: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """The bundle's members plus one more, written by the standard tar writer."""
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in members(bundle):
            tar.addfile(tar_info(name, len(content)), io.BytesIO(content))
        tar.addfile(info, io.BytesIO(data) if data else None)
    return out


def tar_with_header(out: Path, kind: bytes, body: bytes) -> Path:
    """A tar of one extended header of `kind` with `body`, then a small regular member: what a standard
    tar reader would parse (or expand) before any signature could be checked."""
    header = tar_info("h", len(body), kind).tobuf(format=tarfile.USTAR_FORMAT)
    data = header + body + bytes(-len(body) % 512)
    data += tar_info(EVAL_FIGURES, 2).tobuf(format=tarfile.USTAR_FORMAT) + b"{}" + bytes(510) + bytes(1024)
    out.write_bytes(data + bytes(-len(data) % 10240))
    return out


def digits_pax(out: Path, length: int) -> Path:
    """A pax header whose body is `length` ASCII digits (CVE-2024-6232: quadratic in CPython < 3.11.10)."""
    return tar_with_header(out, tarfile.XHDTYPE, b"1" * length)
