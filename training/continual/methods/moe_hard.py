"""moe-hard: O-LoRA-MoE (orthogonal LoRA experts + autoencoder router, no task label).

Each task trains its own named LoRA alone (it will serve alone), pushed orthogonal to every earlier
expert's A matrices as in o-lora. When the task ends, a small autoencoder per direction is fitted to
the frozen base's features of the task's prompts; its rejection threshold comes from cross-fitted
losses (training.continual.router_training). At inference every request goes to the expert whose autoencoder
reconstructs it best among those that accept it, or to the plain base when none does ("unknown"). The expert folder
holds what the robot runtime reads: `adapter/` and `router/` (`motion_agent.experts.expert_set`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motion_agent.experts.expert_set import BASE
from motion_agent.experts.prompt_features import prompt_features
from motion_agent.experts.routing import AutoencoderRouter, Decision, ExpertRouter
from motion_agent.model.language_model import request_prompts
from training.continual import adapters
from training.continual.methods.base import Direction
from training.continual.methods.o_lora import OLoRA
from training.continual.router_training import train_router
from training.continual.tasks import TaskData


class MoEHard(OLoRA):
    name = "moe-hard"
    reads = ("o_lora", "router.autoencoder")

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.router = AutoencoderRouter()  # adapter name -> its autoencoder, in training order

    def begin_task(self, index: int, task: str) -> None:
        name = adapters.adapter_name(task)
        adapters.add_adapter(self.lm, name, self.config.lora)
        self.names.append(name)
        adapters.activate(self.model, [name], trainable=name)

    def end_task(self, index: int, task: TaskData) -> None:
        self.model.eval()  # features without dropout; peft's per-sample adapter_names also demand it
        self.router.experts[self.names[-1]] = train_router(self.lm, task.train, self.config.router.autoencoder)

    def save_expert(self, task: str, folder: Path) -> None:
        super().save_expert(task, folder)
        self.router.experts[adapters.adapter_name(task)].save(folder)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        super().restore(finished, experts)
        for task in finished:
            self.router.experts[adapters.adapter_name(task)] = ExpertRouter.load(experts / task)

    # ---- serving ------------------------------------------------------------------------------------

    def prepare_inference(self) -> None:
        super().prepare_inference()
        self.model.eval()  # per-sample adapter_names run in eval mode only

    def prompts(self, direction: Direction, inputs: Sequence) -> list[str]:
        return request_prompts(self.lm.vocabulary, direction, inputs)

    def decisions(self, direction: Direction, features: np.ndarray) -> list[Decision]:
        return self.router.route(features, direction)

    def route(self, direction: Direction, inputs: Sequence) -> list[str] | None:
        if not self.names:
            return None
        features = prompt_features(self.lm, self.prompts(direction, inputs))
        return [d.expert or BASE for d in self.decisions(direction, features)]

    def novelty(self, direction: Direction, inputs: Sequence) -> np.ndarray | None:
        """How unknown each input looks to the router (higher: more likely no expert's)."""
        if not self.names:
            return None
        return self.novelty_of(direction, prompt_features(self.lm, self.prompts(direction, inputs)))

    def novelty_of(self, direction: Direction, features: np.ndarray) -> np.ndarray:
        return self.router.novelty(features, direction)

    def expert_of(self, task: str) -> str | None:
        name = adapters.adapter_name(task)
        return name if name in self.names else BASE
