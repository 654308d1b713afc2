"""mtl: multi-task learning, the upper bound. One LoRA; at each step it trains on the union of every task
seen so far (clips drawn uniformly from all of them), so after the last task it is one LoRA trained on
all tasks at once, with the same per-task step budget as the continual methods. Its rows above the last
show the joint model of the tasks so far; it keeps every task's data, which a continual method may not."""

from __future__ import annotations

from collections.abc import Sequence

from training.base.train import Example
from training.continual.methods.base import ContinualMethod
from training.continual.tasks import TaskData


class MTL(ContinualMethod):
    name = "mtl"

    def training_examples(self, index: int, tasks: Sequence[TaskData]) -> list[Example]:
        return [example for task in tasks[: index + 1] for example in task.train]
