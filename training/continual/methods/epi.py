"""epi: the same orthogonal experts as moe-hard, routed without training (Wang et al. 2023, "Rehearsal-free
Continual Language Learning via Efficient Parameter Isolation").

Each task keeps only statistics of the frozen base's features of its prompts (mean, scatter, count);
a request goes to the nearest task mean under one covariance pooled from every task's scatter, or to
the plain base when it is farther from every mean than that task's own inputs are expected to be.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from motion_agent.routing import Decision, FeatureStatistics, MahalanobisRouter, prompt_features
from training.continual import adapters
from training.continual.methods.base import Direction
from training.continual.methods.moe_hard import MoEHard
from training.continual.methods.o_lora import OLoRA
from training.continual.tasks import TaskData
from training.router_training import router_prompts

STATISTICS_FILE = "router/epi_statistics.safetensors"


class EPI(MoEHard):
    name = "epi"
    reads = ("o_lora", "router.shrinkage", "router.sigmas")

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.statistics: dict[str, FeatureStatistics] = {}
        self.mahalanobis: MahalanobisRouter | None = None

    def end_task(self, index: int, task: TaskData) -> None:
        self.model.eval()
        features = prompt_features(self.lm, router_prompts(self.lm, task.train))
        self.statistics[self.names[-1]] = FeatureStatistics.of(features)
        self._refit()

    def _refit(self) -> None:
        settings = self.config.router
        self.mahalanobis = MahalanobisRouter.from_statistics(self.statistics, settings.shrinkage, settings.sigmas)

    def save_expert(self, task: str, folder: Path) -> None:
        OLoRA.save_expert(self, task, folder)  # the adapter; the statistics replace the autoencoder
        s = self.statistics[adapters.adapter_name(task)]
        (folder / STATISTICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        save_file({"mean": s.mean, "scatter": s.scatter, "count": np.array([s.count])}, folder / STATISTICS_FILE)

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        OLoRA.restore(self, finished, experts)
        for task in finished:
            saved = load_file(experts / task / STATISTICS_FILE)
            stats = FeatureStatistics(saved["mean"], saved["scatter"], int(saved["count"][0]))
            self.statistics[adapters.adapter_name(task)] = stats
        if self.statistics:
            self._refit()

    def decisions(self, direction: Direction, features: np.ndarray) -> list[Decision]:
        return self.mahalanobis.route(features)  # one mixture of both directions, as EPI keeps per task

    def novelty_of(self, direction: Direction, features: np.ndarray) -> np.ndarray:
        return (self.mahalanobis.distances(features) / self.mahalanobis.thresholds).min(axis=1)
