"""How long a robot takes to verify and install an expert bundle.

Two bundles: the default expert size (a rank-16 LoRA on q/k/v/o of a SmolLM2-135M-shaped backbone,
random weights in the real shapes), and a 50 MB one (the same adapter padded with one large random
tensor). Each is installed into a fresh store several times; an install runs every check of a
verification (signature, digests, layout, contents) and then the durable commit (fsync, rename,
index replace), so its median time is the figure reported. A separate verification (no install)
is timed too, to show how the time splits.

Run: python bench/bench_bundle.py [--repeats N] [--workdir DIR]
Writes bench/results/bundle.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmark the source tree

from motion_agent.bundles.archive import pack_bundle  # noqa: E402
from motion_agent.bundles.keys import generate_keypair, load_keyring, load_private_key
from motion_agent.bundles.store import ExpertStore  # noqa: E402
from motion_agent.bundles.verify import verify_bundle

from common import write_result  # noqa: E402


@dataclass(frozen=True)
class BackboneShape:
    """SmolLM2-135M attention shapes: what a default expert's LoRA is trained on."""

    layers: int = 30
    hidden: int = 576
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    lora_rank: int = 16
    lora_alpha: int = 32
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def out_features(self, target: str) -> int:
        return self.kv_heads * self.head_dim if target in ("k_proj", "v_proj") else self.heads * self.head_dim


LARGE_BUNDLE_BYTES = 50_000_000
FINGERPRINT = "0" * 64
SEED = 0


def make_expert(folder: Path, shape: BackboneShape, pad_to_bytes: int | None = None) -> None:
    """An expert folder with random LoRA weights in the real shapes and a real peft adapter config."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(SEED)
    tensors = {}
    for layer in range(shape.layers):
        for target in shape.targets:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{target}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(shape.lora_rank, shape.hidden, generator=generator)
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(
                shape.out_features(target), shape.lora_rank, generator=generator
            )
    if pad_to_bytes is not None:
        have = sum(t.numel() * t.element_size() for t in tensors.values())
        tensors["padding"] = torch.randn(max(0, pad_to_bytes - have) // 4, generator=generator)
    (folder / "adapter").mkdir(parents=True)
    save_file(tensors, folder / "adapter" / "adapter_model.safetensors")
    LoraConfig(
        r=shape.lora_rank,
        lora_alpha=shape.lora_alpha,
        target_modules=list(shape.targets),
        base_model_name_or_path="HuggingFaceTB/SmolLM2-135M",
        task_type="CAUSAL_LM",
    ).save_pretrained(folder / "adapter")
    (folder / "router").mkdir()
    save_file(
        {
            "centroid": torch.randn(shape.hidden, generator=generator),
            "projection": torch.randn(64, shape.hidden, generator=generator),
            "threshold_mu": torch.tensor([0.42]),
            "threshold_sigma": torch.tensor([0.07]),
        },
        folder / "router" / "router.safetensors",
    )
    (folder / "eval.json").write_text(json.dumps({"success_rate": 0.9, "episodes": 500}))


def measure(bundle: Path, keyring: Path, work: Path, repeats: int, label: str) -> dict[str, float]:
    keys = load_keyring(keyring)
    verify_ms, install_ms = [], []
    for repeat in range(repeats):
        start = time.perf_counter()
        verify_bundle(bundle, keys, backbone_fingerprint=FINGERPRINT, tokenizer_fingerprint=FINGERPRINT)
        verify_ms.append((time.perf_counter() - start) * 1000)
        store = ExpertStore(work / f"store-{label}-{repeat}")
        start = time.perf_counter()
        store.install(bundle, keys, backbone_fingerprint=FINGERPRINT, tokenizer_fingerprint=FINGERPRINT)
        install_ms.append((time.perf_counter() - start) * 1000)
        shutil.rmtree(store.root)
        print(
            f"  [{label}] run {repeat + 1}/{repeats}: verify {verify_ms[-1]:.1f} ms, "
            f"verify+install {install_ms[-1]:.1f} ms",
            flush=True,
        )
    return {"verify_ms": statistics.median(verify_ms), "verify_install_ms": statistics.median(install_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="installs per bundle (median reported)")
    parser.add_argument("--workdir", type=Path, help="where stores are written (default: a temporary folder)")
    args = parser.parse_args()

    shape = BackboneShape()
    figures: dict[str, object] = {"repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="bench-bundle-", dir=args.workdir) as temp:
        work = Path(temp)
        generate_keypair(work / "bench.key")
        (work / "keyring").mkdir()
        shutil.copy(work / "bench.key.pub", work / "keyring" / "bench.pub")
        key = load_private_key(work / "bench.key")
        for label, pad in (("default", None), ("50mb", LARGE_BUNDLE_BYTES)):
            print(f"{label}: writing the expert folder", flush=True)
            expert = work / f"expert-{label}"
            make_expert(expert, shape, pad)
            bundle = work / f"{label}.tar"
            start = time.perf_counter()
            pack_bundle(
                expert,
                bundle,
                key,
                name=f"bench_{label}",
                scenario="benchmark",
                version="1.0.0",
                backbone_fingerprint=FINGERPRINT,
                tokenizer_fingerprint=FINGERPRINT,
            )
            figures[f"pack_ms_{label}"] = (time.perf_counter() - start) * 1000
            figures[f"{label}_bundle_bytes"] = bundle.stat().st_size
            print(
                f"{label}: bundle of {bundle.stat().st_size / 1e6:.2f} MB packed in "
                f"{figures[f'pack_ms_{label}']:.1f} ms; installing {args.repeats}x",
                flush=True,
            )
            for name, value in measure(bundle, work / "keyring", work, args.repeats, label).items():
                figures[f"{name}_{label}"] = value

    path = write_result("bundle", figures)
    print(f"\nExpert bundle verify + install (median of {args.repeats})")
    print(f"{'bundle':<10}{'size MB':>10}{'pack ms':>10}{'verify ms':>12}{'verify+install ms':>20}")
    for label in ("default", "50mb"):
        print(
            f"{label:<10}{figures[f'{label}_bundle_bytes'] / 1e6:>10.2f}{figures[f'pack_ms_{label}']:>10.1f}"
            f"{figures[f'verify_ms_{label}']:>12.1f}{figures[f'verify_install_ms_{label}']:>20.1f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
