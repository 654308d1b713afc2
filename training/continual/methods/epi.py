"""epi: the same orthogonal experts as moe-hard, routed without training (Wang et al. 2023, "Rehearsal-free
Continual Language Learning via Efficient Parameter Isolation").

Each task keeps only statistics of the frozen base's features of its prompts (mean, scatter, count),
one set per request direction (texts and motion prompts lie far apart in feature space; one Gaussian
over both would fit neither, as moe-hard's routers found); a request goes to the nearest task mean of
its direction under one covariance pooled from every task's scatter, or to the plain base when it is
farther from every mean than that task's own inputs are expected to be.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from motion_agent.experts.prompt_features import FEATURE_KIND, prompt_features
from motion_agent.experts.routing import Decision, RouterError, check_features
from motion_agent.model.language_model import DIRECTIONS
from training.continual import adapters
from training.continual.methods.base import Direction
from training.continual.methods.moe_hard import MoEHard
from training.continual.methods.o_lora import OLoRA
from training.continual.router_training import direction_prompts
from training.continual.routers import FeatureStatistics, MahalanobisRouter
from training.continual.tasks import TaskData

STATISTICS_FILE = "router/epi_statistics.safetensors"


class EPI(MoEHard):
    name = "epi"
    reads = ("o_lora", "router.shrinkage", "router.sigmas")

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.statistics: dict[Direction, dict[str, FeatureStatistics]] = {d: {} for d in DIRECTIONS}
        self.mahalanobis: dict[Direction, MahalanobisRouter] = {}

    def end_task(self, index: int, task: TaskData) -> None:
        self.model.eval()
        for direction in DIRECTIONS:
            prompts = direction_prompts(self.lm, task.train, direction)[0]
            self.statistics[direction][self.names[-1]] = FeatureStatistics.of(prompt_features(self.lm, prompts))
        self._refit()

    def _refit(self) -> None:
        settings = self.config.router
        self.mahalanobis = {
            d: MahalanobisRouter.from_statistics(stats, settings.shrinkage, settings.sigmas)
            for d, stats in self.statistics.items()
        }

    def save_expert(self, task: str, folder: Path) -> None:
        OLoRA.save_expert(self, task, folder)  # the adapter; the statistics replace the autoencoder
        name = adapters.adapter_name(task)
        save_statistics(folder / STATISTICS_FILE, {d: stats[name] for d, stats in self.statistics.items()})

    def restore(self, finished: Sequence[str], experts: Path) -> None:
        OLoRA.restore(self, finished, experts)
        for task in finished:
            for direction, stats in load_statistics(experts / task / STATISTICS_FILE).items():
                self.statistics[direction][adapters.adapter_name(task)] = stats
        if self.names:
            self._refit()

    def decisions(self, direction: Direction, features: np.ndarray) -> list[Decision]:
        return self.mahalanobis[direction].route(features)

    def novelty_of(self, direction: Direction, features: np.ndarray) -> np.ndarray:
        return self.mahalanobis[direction].novelty(features)


def save_statistics(path: Path, statistics: dict[Direction, FeatureStatistics]) -> None:
    """One task's statistics per direction, as `load_statistics` reads them."""
    tensors = {}
    for direction, s in statistics.items():
        tensors |= {
            f"{direction}.mean": s.mean,
            f"{direction}.scatter": s.scatter,
            f"{direction}.count": np.array([s.count]),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata={"features": FEATURE_KIND})


def load_statistics(path: Path) -> dict[Direction, FeatureStatistics]:
    """One task's saved statistics per direction. A file without them (made before epi kept one set per
    direction, or cut short), or over features `prompt_features` no longer computes, is named, so that the
    user knows to run epi again rather than read a KeyError or route on statistics of other features."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            check_features(f.metadata() or {}, path)
            saved = {k: f.get_tensor(k) for k in f.keys()}
        return {
            d: FeatureStatistics(saved[f"{d}.mean"], saved[f"{d}.scatter"], int(saved[f"{d}.count"][0]))
            for d in DIRECTIONS
        }
    except (OSError, KeyError, ValueError) as error:
        raise RouterError(
            f"{path} does not hold epi statistics for each direction ({', '.join(DIRECTIONS)}): "
            f"{error!r}; it may come from an older epi run: run epi again"
        ) from error
