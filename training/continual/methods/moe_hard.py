"""moe-hard: O-LoRA-MoE (orthogonal LoRA experts + autoencoder router, no task label).

Each task trains its own named LoRA alone (it will serve alone), pushed orthogonal to every earlier
expert's A matrices as in o-lora. When the task ends, a small autoencoder is fitted to the frozen
base's features of the task's prompts (both directions); its rejection threshold comes from training
clips it did not fit. At inference every request goes to the expert whose autoencoder reconstructs it
best among those that accept it, or to the plain base when none does ("unknown"). The expert folder
holds what the robot runtime reads: `adapter/` and `router/` (`motion_agent.experts`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motion_agent.experts import BASE
from motion_agent.routing import AutoencoderRouter, Decision, ExpertAutoencoder, prompt_features
from training.base_training import Example
from training.continual import adapters
from training.continual.methods.base import Direction, request_prompts
from training.continual.methods.o_lora import OLoRA
from training.continual.tasks import TaskData
from training.router_training import train_router


def calibration_split(examples: list[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """(fit, calibration): every k-th clip held out to set the threshold, at least two of each."""
    step = max(2, round(1 / fraction))
    held = [e for i, e in enumerate(examples) if i % step == step - 1]
    if len(held) < 2 or len(examples) - len(held) < 2:
        return examples, []
    return [e for i, e in enumerate(examples) if i % step != step - 1], held


class MoEHard(OLoRA):
    name = "moe-hard"

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
        fit, calibration = calibration_split(task.train, self.config.router.calibration_fraction)
        self.router.experts[self.names[-1]] = train_router(self.lm, fit, calibration, self.config.router.autoencoder)

    def save_expert(self, task: str, folder: Path) -> None:
        super().save_expert(task, folder)
        self.router.experts[adapters.adapter_name(task)].save(folder)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        super().restore(finished, experts)
        for task in finished:
            self.router.experts[adapters.adapter_name(task)] = ExpertAutoencoder.load(experts / task)

    # ---- serving ------------------------------------------------------------------------------------

    def prepare_inference(self) -> None:
        super().prepare_inference()
        self.model.eval()  # per-sample adapter_names run in eval mode only

    def prompts(self, direction: Direction, inputs: Sequence) -> list[str]:
        return request_prompts(self.lm, direction, inputs)

    def decisions(self, features: np.ndarray) -> list[Decision]:
        return self.router.route(features)

    def route(self, direction: Direction, inputs: Sequence) -> list[str] | None:
        if not self.names:
            return None
        features = prompt_features(self.lm, self.prompts(direction, inputs))
        return [d.expert or BASE for d in self.decisions(features)]

    def novelty(self, direction: Direction, inputs: Sequence) -> np.ndarray | None:
        """How unknown each input looks to the router (higher: more likely no expert's)."""
        if not self.names:
            return None
        return self.novelty_of(prompt_features(self.lm, self.prompts(direction, inputs)))

    def novelty_of(self, features: np.ndarray) -> np.ndarray:
        return self.router.novelty(features)

    def expert_of(self, task: str) -> str | None:
        name = adapters.adapter_name(task)
        return name if name in self.names else BASE

