"""seq-lora: one LoRA fine-tuned on each task in turn, nothing done against forgetting (the lower bound)."""

from __future__ import annotations

from training.continual.methods.base import ContinualMethod


class SeqLoRA(ContinualMethod):
    name = "seq-lora"
