"""The continual methods by name. A new method is a module with a `ContinualMethod` subclass and one line
here; the trainer and the benchmark pick it up by its name."""

from __future__ import annotations

import importlib

from training.continual.methods.base import ADAPTER_DIR, ContinualMethod, Direction

METHODS: dict[str, str] = {  # name -> "module:Class", imported only when used
    "mtl": "training.continual.methods.mtl:MTL",
    "seq-lora": "training.continual.methods.seq_lora:SeqLoRA",
    "lwf-lora": "training.continual.methods.lwf_lora:LwFLoRA",
    "o-lora": "training.continual.methods.o_lora:OLoRA",
    "moe-hard": "training.continual.methods.moe_hard:MoEHard",
    "moe-soft": "training.continual.methods.moe_soft:MoESoft",
    "epi": "training.continual.methods.epi:EPI",
    "es-moe": "training.continual.methods.es_moe:ESMoE",
}


def method_class(name: str) -> type[ContinualMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_method(name: str, lm, config) -> ContinualMethod:
    return method_class(name)(lm, config)


__all__ = ["ADAPTER_DIR", "METHODS", "ContinualMethod", "Direction", "make_method", "method_class"]
