"""Research routers of the continual benchmark, beside the autoencoder router the robot runs
(`motion_agent.experts.routing`); they read the same `prompt_features`.

- MahalanobisRouter (EPI): per-expert feature means with one shared covariance.
- KeyGate (ES-MoE): orthogonal expert keys and a learnable low-rank query projection; softmax, top-k.
- OracleRouter: the task label, for upper bounds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motion_agent.experts.routing import Decision, RouterError, nearest_accepting

GATE_FILE = "gate.safetensors"


@dataclass(frozen=True)
class FeatureStatistics:
    """What EPI keeps of a task instead of its inputs: their mean, scatter (sum of centred outer
    products) and count. Adding a task never needs an earlier task's data."""

    mean: np.ndarray
    scatter: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStatistics:
        features = np.asarray(features, np.float64)
        if len(features) < 2:
            raise ValueError(f"feature statistics need at least 2 inputs, got {len(features)}")
        centred = features - features.mean(axis=0)
        return cls(features.mean(axis=0), centred.T @ centred, len(features))


class MahalanobisRouter:
    """EPI-style: nearest expert mean under one shared (shrunk) covariance pooled from every task's
    statistics; an expert rejects inputs beyond the Gaussian mean + `sigmas` std of its own squared
    distance (E d^2 = tr(P S), Var d^2 = 2 tr((P S)^2) for a task of covariance S under precision P)."""

    def __init__(self, means: Mapping[str, np.ndarray], precision: np.ndarray, thresholds: Mapping[str, float]) -> None:
        self.names = list(means)
        self.means = np.stack([means[n] for n in self.names])
        self.precision, self.thresholds = precision, np.array([thresholds[n] for n in self.names])

    @classmethod
    def fit(cls, features: Mapping[str, np.ndarray], shrinkage: float = 0.1, sigmas: float = 2.0) -> MahalanobisRouter:
        return cls.from_statistics({n: FeatureStatistics.of(f) for n, f in features.items()}, shrinkage, sigmas)

    @classmethod
    def from_statistics(
        cls, stats: Mapping[str, FeatureStatistics], shrinkage: float = 0.1, sigmas: float = 2.0
    ) -> MahalanobisRouter:
        total = sum(s.count for s in stats.values())
        cov = sum(s.scatter for s in stats.values()) / max(total - len(stats), 1)
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
        precision = np.linalg.inv(cov)
        thresholds = {}
        for name, s in stats.items():
            ps = precision @ (s.scatter / max(s.count - 1, 1))
            mean_sq, var_sq = np.trace(ps), 2 * np.trace(ps @ ps)
            thresholds[name] = float(np.sqrt(mean_sq + sigmas * np.sqrt(var_sq)))
        return cls({n: s.mean for n, s in stats.items()}, precision, thresholds)

    def distances(self, features: np.ndarray) -> np.ndarray:
        diff = np.atleast_2d(features)[:, None, :] - self.means[None]
        return np.sqrt(np.einsum("nek,kl,nel->ne", diff, self.precision, diff))

    def route(self, features: np.ndarray) -> list[Decision]:
        return [nearest_accepting(self.names, row, self.thresholds) for row in self.distances(features)]

    def novelty(self, features: np.ndarray) -> np.ndarray:
        """How unknown each input looks: the smallest distance-to-threshold ratio over experts (> 1: rejected)."""
        return (self.distances(features) / self.thresholds).min(axis=1)


class KeyGate(nn.Module):
    """ES-MoE gate: a low-rank query projection of the input scored against orthogonal expert keys.
    Keys of earlier experts are frozen buffers; a new expert gets a key orthogonal to all of them."""

    def __init__(self, features: int, rank: int = 16, key_dim: int = 64, top_k: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.down, self.up = nn.Linear(features, rank, bias=False), nn.Linear(rank, key_dim, bias=False)
        self.top_k, self.names = top_k, []
        self.register_buffer("keys", torch.zeros(0, key_dim))
        self._generator = torch.Generator().manual_seed(seed)

    def add_expert(self, name: str) -> None:
        if len(self.names) >= self.keys.shape[1]:
            raise RouterError(f"a gate with key_dim {self.keys.shape[1]} holds at most that many orthogonal keys")
        key = torch.randn(self.keys.shape[1], generator=self._generator)
        for old in self.keys:  # Gram-Schmidt against every earlier key
            key = key - (key @ old) * old
        self.keys = torch.cat([self.keys, (key / key.norm())[None]])
        self.names.append(name)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """(N, E) probabilities over experts: softmax of the query-key similarities over the `top_k`
        best of the experts `allowed` ((N, E) bool; default all), zero elsewhere."""
        query = self.up(self.down(x))
        logits = query @ self.keys.T / self.keys.shape[1] ** 0.5
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        k = min(self.top_k, logits.shape[-1])
        cut = logits.topk(k, dim=-1).values[..., -1:]
        return torch.softmax(logits.masked_fill(logits < cut, float("-inf")), dim=-1)

    def save(self, folder: str | Path) -> Path:
        """The gate's projection, keys and expert names in one safetensors file (no pickle)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.contiguous() for k, v in self.state_dict().items()}
        metadata = {
            "kind": "key-gate",
            "names": json.dumps(self.names),
            "top_k": str(self.top_k),
            "rank": str(self.down.out_features),
            "features": str(self.down.in_features),
        }
        save_file(tensors, folder / GATE_FILE, metadata=metadata)
        return folder / GATE_FILE

    @classmethod
    def load(cls, folder: str | Path) -> KeyGate:
        from safetensors import safe_open

        path = Path(folder) / GATE_FILE
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("kind") != "key-gate":
                raise RouterError(f"{path} is not a key gate: {meta}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        gate = cls(int(meta["features"]), int(meta["rank"]), tensors["keys"].shape[1], int(meta["top_k"]))
        gate.keys = tensors["keys"]
        gate.load_state_dict(tensors)
        gate.names = json.loads(meta["names"])
        return gate.eval()

    @torch.inference_mode()
    def route(self, features: np.ndarray) -> list[Decision]:
        probs = self(torch.as_tensor(np.atleast_2d(features), dtype=torch.float32)).numpy()
        return [
            Decision(self.names[int(np.argmax(row))], {n: float(p) for n, p in zip(self.names, row)}) for row in probs
        ]


class OracleRouter:
    """The task label decides: the upper bound routers are compared with."""

    def __init__(self, experts: Mapping[str, str]) -> None:
        self.experts = dict(experts)  # task label -> expert name

    def route_labels(self, labels: list[str]) -> list[Decision]:
        return [Decision(self.experts.get(label), {}) for label in labels]
