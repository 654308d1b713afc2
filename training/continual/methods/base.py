"""What a continual method is, to the trainer: a few hooks around one shared training loop.

The trainer owns the data, the optimiser, the step budget, checkpoints and evaluation; a method only
says which adapters exist and learn (`begin_task`), what it trains on (`training_examples`), what it
minimises (`loss`), what it keeps after a task (`end_task`, `save_expert`, `restore`) and which
adapters serve a request (`prepare_inference`, `route`). New methods subclass `ContinualMethod`, set
`name`, override what differs and register themselves in `training.continual.methods.METHODS`; the
trainer does not change.

Serving: before every evaluation the trainer calls `prepare_inference()` (e.g. activate every adapter
so their outputs add up), then `route(direction, inputs)` per task: a list with one adapter name per
request goes to peft's per-sample `adapter_names=` (routed methods; `motion_agent.experts.expert_set.BASE` = no
adapter);
None runs every request through the active adapters. Routed methods also say how unknown a request looks
(`novelty`), which scores how well they flag inputs of tasks not trained yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from motion_agent.model.language_model import Direction, MotionLanguageModel
from training.base.train import Example
from training.continual import adapters

if TYPE_CHECKING:
    from training.continual.config import ContinualConfig
    from training.continual.tasks import TaskData

ADAPTER_DIR = "adapter"  # <experts>/<task>/adapter/: the task's expert as peft saves it


class ContinualMethod:
    """One adapter ("expert") trained on each task in turn: the seq-lora behaviour, which the other
    methods extend. `lm.model` becomes a peft model at the first task."""

    name: ClassVar[str] = ""
    EXPERT: ClassVar[str] = "expert"
    # A method that differs from another only in serving names it here: given that method's finished
    # run of the same tasks, the trainer adopts its experts (`restore`) instead of training them again.
    serves_experts_of: ClassVar[str | None] = None
    # Settings the method reads beyond lora, training and evaluation (config sections or "section.key"):
    # a run's identity holds only these, so that changing one method's settings never voids another's runs.
    reads: ClassVar[tuple[str, ...]] = ()
    # Emotion class names when `loss` reads the batch's `emotion_labels` (an emotion loss); None: not given.
    emotion_classes: tuple[str, ...] | None = None

    def __init__(self, lm: MotionLanguageModel, config: ContinualConfig) -> None:
        self.lm, self.config = lm, config

    @property
    def model(self):
        return self.lm.model

    # ---- training -----------------------------------------------------------------------------------

    def begin_task(self, index: int, task: str) -> None:
        """Create or select the adapters of task `index`; afterwards exactly the trainable ones require grad."""
        if not adapters.is_peft(self.model):
            adapters.add_adapter(self.lm, self.EXPERT, self.config.lora)
        adapters.activate(self.model, [self.EXPERT], trainable=self.EXPERT)

    def training_examples(self, index: int, tasks: Sequence[TaskData]) -> list[Example]:
        """What task `index` trains on: its own training clips (tasks after `index` are never read)."""
        return tasks[index].train

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise on one batch, and its named parts for the log. `model` is the one the
        accelerator prepared (it may wrap `self.model`); the forward pass goes through it."""
        loss = model(**batch).loss
        return loss, {"task": float(loss.detach())}

    def end_task(self, index: int, task: TaskData) -> None:
        """After the last step of task `index` (e.g. freeze, drop helpers, fit a router on `task`)."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return adapters.trainable_parameters(self.model)

    # ---- persistence --------------------------------------------------------------------------------

    def save_expert(self, task: str, folder: Path) -> None:
        """Write what task `task` leaves behind into `folder` (its adapter in `folder/adapter`)."""
        adapters.save_adapter(self.model, self.EXPERT, folder / ADAPTER_DIR)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        """Rebuild the state after the tasks in `finished` from their saved experts (a resumed run)."""
        if finished:
            adapters.add_adapter(self.lm, self.EXPERT, self.config.lora, experts / finished[-1] / ADAPTER_DIR)

    # ---- serving ------------------------------------------------------------------------------------

    def prepare_inference(self) -> None:
        if adapters.is_peft(self.model):
            adapters.activate(self.model, [self.EXPERT])

    def route(self, direction: Direction, inputs: Sequence[str] | Sequence[np.ndarray]) -> list[str] | None:
        """The adapter serving each request, or None for the active adapters."""
        return None

    def novelty(self, direction: Direction, inputs: Sequence[str] | Sequence[np.ndarray]) -> np.ndarray | None:
        """How unknown each request looks to the method's router (higher: more likely no expert's), for
        the unknown-detection AUROC; None for methods without a router."""
        return None

    def expert_of(self, task: str) -> str | None:
        """The adapter that should serve `task` when a router is right, for routing accuracy; None for
        methods without a router."""
        return None
