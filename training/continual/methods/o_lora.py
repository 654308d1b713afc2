"""o-lora: orthogonal subspace learning (Wang et al. 2023, "Orthogonal Subspace Learning for Language
Model Continual Learning"). Each task gets its own named LoRA; the earlier ones stay frozen and active,
so the model trains and serves with the sum of all of them. The new LoRA's A matrices are pushed
orthogonal to every earlier A (lambda1 * sum |A_old A_new^T|, plus lambda2 * its L2 norm), so what it
learns lives in directions the earlier tasks' adapters do not read. No router: every adapter serves
every request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from training.continual import adapters
from training.continual.losses import l2_loss, orthogonality_loss
from training.continual.methods.base import ADAPTER_DIR, ContinualMethod


class OLoRA(ContinualMethod):
    name = "o-lora"
    reads = ("o_lora",)

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.names: list[str] = []  # one adapter per task so far, in training order

    def begin_task(self, index: int, task: str) -> None:
        name = adapters.adapter_name(task)
        adapters.add_adapter(self.lm, name, self.config.lora)
        self.names.append(name)
        adapters.activate(self.model, self.names, trainable=name)

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        task_loss, parts = super().loss(model, batch)
        new, old = self.names[-1], self.names[:-1]
        settings = self.config.o_lora
        ortho = orthogonality_loss(self._a_matrices(new), [self._a_matrices(n) for n in old]) if old else None
        total = task_loss
        if ortho is not None:
            total = total + settings.lambda1 * ortho
            parts["orthogonality"] = float(ortho.detach())
        if settings.lambda2 > 0:
            norm = l2_loss([w for pair in adapters.lora_pairs(self.model, new) for w in pair])
            total = total + settings.lambda2 * norm
            parts["l2"] = float(norm.detach())
        return total, parts

    def _a_matrices(self, name: str) -> list[torch.Tensor]:
        return [a for a, _ in adapters.lora_pairs(self.model, name)]

    def save_expert(self, task: str, folder: Path) -> None:
        adapters.save_adapter(self.model, adapters.adapter_name(task), folder / ADAPTER_DIR)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        for task in finished:
            name = adapters.adapter_name(task)
            adapters.add_adapter(self.lm, name, self.config.lora, experts / task / ADAPTER_DIR)
            self.names.append(name)
        if self.names:
            adapters.activate(self.model, self.names)

    def prepare_inference(self) -> None:
        if self.names:
            adapters.activate(self.model, self.names)
