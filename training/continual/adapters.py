"""Named peft LoRA adapters on the frozen base model: create, load, activate, save.

Every method keeps its experts as named adapters of ONE peft model, so serving several at once (summed,
as O-LoRA does) or one per sample (peft's `adapter_names=`, as routed methods do) needs no hand-written
LoRA. The first adapter wraps the plain model (`get_peft_model`); later ones are added beside it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import torch

from motion_agent.model.language_model import MotionLanguageModel
from training.base.train import LoraSettings, sort_saved_target_modules


def adapter_name(task: str) -> str:
    """A task name as a peft adapter name (a module key: no dots)."""
    return re.sub(r"\W", "_", task)


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def add_adapter(lm: MotionLanguageModel, name: str, settings: LoraSettings, source: Path | None = None) -> None:
    """A new adapter `name` on `lm.model`: freshly initialised, or loaded from a saved adapter folder.
    The first one turns `lm.model` into a peft model in place."""
    from peft import PeftModel, get_peft_model

    if source is None and not is_peft(lm.model):
        lm.model = get_peft_model(lm.model, settings.peft_config(), adapter_name=name)
    elif source is None:
        lm.model.add_adapter(name, settings.peft_config())
    elif not is_peft(lm.model):
        lm.model = PeftModel.from_pretrained(lm.model, source, adapter_name=name, is_trainable=True)
    else:
        lm.model.load_adapter(source, adapter_name=name, is_trainable=True)


def activate(model, names: list[str], trainable: str | None = None) -> None:
    """Make `names` the active adapters (their outputs add up) and let only `trainable` learn."""
    model.base_model.set_adapter(list(names))
    marker = f".{trainable}." if trainable else None
    for key, parameter in model.named_parameters():
        parameter.requires_grad_(marker is not None and "lora_" in key and marker in key)


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def lora_pairs(model, name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(A, B) weight matrices of adapter `name` in every adapted layer, in module order."""
    from peft.tuners.lora import LoraLayer

    return [
        (m.lora_A[name].weight, m.lora_B[name].weight)
        for m in model.modules()
        if isinstance(m, LoraLayer) and name in m.lora_A
    ]


def save_adapter(model, name: str, folder: Path) -> Path:
    """peft `save_pretrained` of one adapter (safetensors) into exactly `folder`, replacing it whole:
    written beside it first, so an interrupted save never leaves a half-written expert."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".adapter-", dir=folder.parent))
    try:
        model.save_pretrained(
            scratch, selected_adapters=[name], safe_serialization=True, save_embedding_layers=False
        )  # the base model's rows, not the expert's
        written = scratch if name == "default" else scratch / name  # peft puts named adapters in a subfolder
        sort_saved_target_modules(written)
        if folder.exists():
            shutil.rmtree(folder)
        written.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
