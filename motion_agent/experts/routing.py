"""Routers: which expert serves an input, with no task label, and "unknown" for inputs no expert knows.

All routers look at the same frozen features of an input (`prompt_features.prompt_features`: the base model's hidden
states after the first half of its layers, mean-pooled over the prompt's own tokens after the shared
instruction, for T2M text prompts and M2T motion-token prompts alike), so that adding an expert never
changes the features the others were trained on.

- AutoencoderRouter (O-LoRA-MoE): small MLP autoencoders per expert, trained on that expert's inputs;
  winner-takes-all on reconstruction loss; expert k accepts an input only while its loss is below
  tau_k = mu_k + k sigma_k of its own held-out losses, and an input every expert rejects is "unknown".
  `soft_weights` gives the softmax(-loss / T) blend the paper compares against. Unlike the paper, an
  expert has one autoencoder per request direction (`ExpertRouter`): T2M texts and M2T motion prompts
  lie far apart in feature space and reconstruct with different losses, so one threshold over both is
  too loose for texts (unknown scenarios pass) and too tight for motions (known ones are refused).
- The research routers of the continual benchmark (EPI's Mahalanobis router, ES-MoE's key gate, the
  oracle) live in `training/continual/routers.py`: a robot runs only the autoencoder router.

An expert's autoencoders live in `<expert>/router/router.safetensors`: per direction the weights, the
feature standardisation and the loss statistics, with the sizes in the safetensors metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motion_agent.experts.expert_set import ROUTER_DIR
from motion_agent.experts.prompt_features import FEATURE_KIND
from motion_agent.model.language_model import (
    DIRECTIONS,
    Direction,
)

ROUTER_FILE = "router.safetensors"
UNKNOWN = "unknown"


class RouterError(ValueError):
    """A router file that cannot be used; the message names it."""


def check_features(meta: Mapping[str, str], path: str | Path) -> None:
    """Refuse a saved file of anything fitted to `prompt_features` (routers, epi statistics) whose metadata
    records other features than these, or none: fitted to other features, it would route silently wrong."""
    kind = meta.get("features")
    if kind != FEATURE_KIND:
        raise RouterError(f"{path} was fitted to {kind or 'unrecorded'} features, not {FEATURE_KIND}")


@dataclass(frozen=True)
class Decision:
    """A router's answer for one input. `expert` is None when no expert accepts it."""

    expert: str | None
    scores: dict[str, float]  # per expert: reconstruction loss, distance or gate probability

    @property
    def label(self) -> str:
        return self.expert if self.expert is not None else UNKNOWN


class Autoencoder(nn.Module):
    """in -> hidden -> bottleneck -> hidden -> in, ReLU between."""

    def __init__(self, features: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, hidden), nn.ReLU(), nn.Linear(hidden, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ExpertAutoencoder:
    """One autoencoder with its standardisation and acceptance threshold."""

    def __init__(
        self,
        net: Autoencoder,
        mean: np.ndarray,
        std: np.ndarray,
        loss_mean: float,
        loss_std: float,
        sigmas: float = 2.0,
    ) -> None:
        self.net = net.eval()
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.loss_mean, self.loss_std, self.sigmas = float(loss_mean), float(loss_std), float(sigmas)

    @property
    def threshold(self) -> float:
        return self.loss_mean + self.sigmas * self.loss_std

    @torch.inference_mode()
    def loss(self, features: np.ndarray) -> np.ndarray:
        """Per-input mean squared reconstruction error of the standardised features."""
        x = torch.as_tensor((np.asarray(features, np.float32) - self.mean) / self.std)
        return ((self.net(x) - x) ** 2).mean(dim=1).numpy()

    def tensors(self, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors, metadata) to save, every name under `prefix`."""
        tensors = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
        tensors.update(
            mean=torch.as_tensor(self.mean),
            std=torch.as_tensor(self.std),
            loss_stats=torch.tensor([self.loss_mean, self.loss_std, self.sigmas], dtype=torch.float64),
        )
        first, last = self.net.encoder[0], self.net.encoder[2]
        sizes = {"input": first.in_features, "hidden": first.out_features, "bottleneck": last.out_features}
        return ({f"{prefix}.{k}": v for k, v in tensors.items()}, {f"{prefix}.{k}": str(v) for k, v in sizes.items()})

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], prefix: str
    ) -> ExpertAutoencoder:
        """The inverse of `tensors`; prefix "" reads a file of the earlier one-autoencoder format."""
        name = (lambda key: f"{prefix}.{key}") if prefix else (lambda key: key)
        net = Autoencoder(*(int(metadata[name(k)]) for k in ("input", "hidden", "bottleneck")))
        head = name("net.")
        net.load_state_dict({k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)})
        loss_mean, loss_std, sigmas = tensors[name("loss_stats")].tolist()
        return cls(net, tensors[name("mean")].numpy(), tensors[name("std")].numpy(), loss_mean, loss_std, sigmas)


class ExpertRouter:
    """One expert's router: an autoencoder per request direction it serves (usually both)."""

    def __init__(self, autoencoders: Mapping[Direction, ExpertAutoencoder]) -> None:
        unknown = set(autoencoders) - set(DIRECTIONS)
        if unknown or not autoencoders:
            raise RouterError(
                f"an expert router needs autoencoders for some of {DIRECTIONS}, got {sorted(autoencoders)}"
            )
        self.autoencoders = dict(autoencoders)

    def save(self, expert_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(expert_dir) / ROUTER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tensors, metadata = (
            {},
            {"kind": "autoencoder", "features": FEATURE_KIND, "directions": ",".join(self.autoencoders)},
        )
        for direction, autoencoder in self.autoencoders.items():
            more, sizes = autoencoder.tensors(direction)
            tensors.update(more)
            metadata.update(sizes)
        save_file(tensors, folder / ROUTER_FILE, metadata=metadata)
        return folder / ROUTER_FILE

    @classmethod
    def load(cls, expert_dir: str | Path) -> ExpertRouter:
        from safetensors import safe_open

        path = Path(expert_dir) / ROUTER_DIR / ROUTER_FILE
        if not path.is_file():
            raise RouterError(f"{expert_dir} has no router ({path} is missing)")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("kind") != "autoencoder":
                raise RouterError(f"{path} is not an autoencoder router: {meta}")
            check_features(meta, path)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        try:
            if "directions" not in meta:  # the earlier format: one autoencoder serves both directions
                shared = ExpertAutoencoder.from_tensors(tensors, meta, "")
                return cls({d: shared for d in DIRECTIONS})
            return cls({d: ExpertAutoencoder.from_tensors(tensors, meta, d) for d in meta["directions"].split(",")})
        except (KeyError, ValueError, RuntimeError) as error:
            raise RouterError(f"{path} is incomplete or inconsistent: {error}") from error


class AutoencoderRouter:
    """Hard winner-takes-all over per-expert reconstruction losses, with per-expert rejection, among the
    experts that serve the request's direction."""

    def __init__(self, experts: Mapping[str, ExpertRouter] | None = None) -> None:
        self.experts: dict[str, ExpertRouter] = dict(experts or {})
        self._stacks: dict[Direction, tuple[tuple, _StackedAutoencoders | None]] = {}  # rebuilt when experts change

    @classmethod
    def from_folders(cls, folders: Mapping[str, str | Path]) -> AutoencoderRouter:
        return cls({name: ExpertRouter.load(folder) for name, folder in folders.items()})

    def serving(self, direction: Direction) -> dict[str, ExpertAutoencoder]:
        """{expert: its autoencoder} of the experts that serve `direction`, in insertion order."""
        return {n: r.autoencoders[direction] for n, r in self.experts.items() if direction in r.autoencoders}

    def losses(self, features: np.ndarray, direction: Direction) -> tuple[list[str], np.ndarray]:
        """(experts, (N, E) reconstruction losses) over the experts that serve `direction`."""
        serving = self.serving(direction)
        return list(serving), self._losses(features, direction, serving)

    def _losses(self, features: np.ndarray, direction: Direction, serving: dict[str, ExpertAutoencoder]) -> np.ndarray:
        features = np.atleast_2d(features).astype(np.float32)
        if not serving:
            return np.zeros((len(features), 0), np.float32)
        stacked = self._stacked(direction, serving)
        if stacked is None:  # autoencoders of different sizes: one at a time
            return np.stack([ae.loss(features) for ae in serving.values()], axis=1)
        return stacked(features)

    def _stacked(self, direction: Direction, serving: dict[str, ExpertAutoencoder]) -> _StackedAutoencoders | None:
        """Every expert's autoencoder run as one batched network, so that routing costs the same with 64
        experts as with one."""
        key = tuple((name, id(ae)) for name, ae in serving.items())
        if self._stacks.get(direction, ((), None))[0] != key:
            self._stacks[direction] = (key, _StackedAutoencoders.of(list(serving.values())))
        return self._stacks[direction][1]

    def route(self, features: np.ndarray, direction: Direction) -> list[Decision]:
        serving = self.serving(direction)
        thresholds = np.array([ae.threshold for ae in serving.values()])
        return [nearest_accepting(list(serving), row, thresholds) for row in self._losses(features, direction, serving)]

    def soft_weights(
        self, features: np.ndarray, direction: Direction, temperature: float = 1.0
    ) -> list[dict[str, float]]:
        """softmax(-loss / T) over every expert of the direction (no rejection): the soft blend."""
        return [softmax_weights(d.scores, temperature) for d in self.route(features, direction)]

    def novelty(self, features: np.ndarray, direction: Direction) -> np.ndarray:
        """How unknown each input looks: the smallest loss-to-threshold ratio over experts (> 1: rejected)."""
        serving = self.serving(direction)
        losses = self._losses(features, direction, serving)
        if not serving:
            return np.full(len(losses), np.inf)
        return (losses / np.array([ae.threshold for ae in serving.values()])).min(axis=1)


class _StackedAutoencoders:
    """Autoencoders of one size with their weights stacked along a leading expert axis and run as
    batched matrix products: one call per layer whatever the number of experts (torch.func.vmap does
    the same but its dispatch costs more than these small layers)."""

    def __init__(self, autoencoders: list[ExpertAutoencoder]) -> None:
        modules = [[*ae.net.encoder, *ae.net.decoder] for ae in autoencoders]
        # per module of the first: ReLU as it is, Linear as (E, in, out) weights and (E, 1, out) biases
        self.steps = [
            torch.relu
            if isinstance(m, nn.ReLU)
            else (
                torch.stack([ms[i].weight.detach().T for ms in modules]),
                torch.stack([ms[i].bias.detach()[None] for ms in modules]),
            )
            for i, m in enumerate(modules[0])
        ]
        self.mean = torch.as_tensor(np.stack([ae.mean for ae in autoencoders]))[:, None]
        self.std = torch.as_tensor(np.stack([ae.std for ae in autoencoders]))[:, None]

    @classmethod
    def of(cls, autoencoders: list[ExpertAutoencoder]) -> _StackedAutoencoders | None:
        shapes = {tuple(p.shape for p in ae.net.parameters()) for ae in autoencoders}
        return cls(autoencoders) if len(shapes) == 1 else None

    @torch.inference_mode()
    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = (torch.as_tensor(features)[None] - self.mean) / self.std  # (E, N, D): each expert's standardisation
        y = x
        for step in self.steps:
            y = step(y) if callable(step) else torch.baddbmm(step[1], y, step[0])
        return ((y - x) ** 2).mean(dim=2).T.numpy()


def nearest_accepting(names: list[str], scores: np.ndarray, thresholds: np.ndarray) -> Decision:
    """Winner-takes-all among the experts whose score (lower is closer) is within their threshold;
    no expert when none is."""
    accepted = scores <= thresholds
    expert = names[int(np.argmin(np.where(accepted, scores, np.inf)))] if accepted.any() else None
    return Decision(expert, {n: float(v) for n, v in zip(names, scores)})


def softmax_weights(losses: Mapping[str, float], temperature: float = 1.0) -> dict[str, float]:
    """Blend weights softmax(-loss / T) from one input's per-expert losses."""
    names = list(losses)
    logits = -np.array([losses[n] for n in names], dtype=np.float64) / temperature
    weights = np.exp(logits - logits.max())
    return {n: float(w) for n, w in zip(names, weights / weights.sum())}
