"""lwf-lora: seq-lora plus Learning without Forgetting (Li & Hoiem 2017). From the second task on, a
frozen copy of the adapter as it was after the previous task (the "teacher") is run on the new task's
batches, and the trained adapter is pulled towards its softened outputs by a KL term, so old behaviour
is kept without old data."""

from __future__ import annotations

import torch
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from training.continual import adapters
from training.continual.losses import distillation_loss
from training.continual.methods.base import ContinualMethod
from training.continual.tasks import TaskData

TEACHER = "teacher"


class LwFLoRA(ContinualMethod):
    name = "lwf-lora"
    reads = ("lwf",)

    def begin_task(self, index: int, task: str) -> None:
        super().begin_task(index, task)
        if index > 0:
            adapters.add_adapter(self.lm, TEACHER, self.config.lora)
            weights = get_peft_model_state_dict(self.model, adapter_name=self.EXPERT, save_embedding_layers=False)
            set_peft_model_state_dict(self.model, weights, adapter_name=TEACHER)
            adapters.activate(self.model, [self.EXPERT], trainable=self.EXPERT)

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if TEACHER not in self.model.peft_config:  # the first task: nothing to remember yet
            return super().loss(model, batch)
        output = model(**batch)
        settings = self.config.lwf
        kl = distillation_loss(output.logits, self._teacher_logits(batch), batch["labels"], settings.temperature)
        return output.loss + settings.weight * kl, {"task": float(output.loss.detach()), "kl": float(kl.detach())}

    @torch.no_grad()
    def _teacher_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The previous task's adapter on this batch (eval mode: no dropout; per-sample adapter names
        pick the teacher without touching which adapter trains)."""
        self.model.eval()
        try:
            names = [TEACHER] * len(batch["input_ids"])
            return self.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], adapter_names=names
            ).logits
        finally:
            self.model.train()

    def end_task(self, index: int, task: TaskData) -> None:
        if TEACHER in self.model.peft_config:
            self.model.delete_adapter(TEACHER)
        adapters.activate(self.model, [self.EXPERT], trainable=self.EXPERT)
