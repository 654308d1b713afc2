"""Routers: which expert serves an input, with no task label, and "unknown" for inputs no expert knows.

All routers look at the same frozen features of an input (`prompt_features`: the base model's hidden
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
- MahalanobisRouter (EPI): per-expert feature means with one shared covariance.
- KeyGate (ES-MoE): orthogonal expert keys and a learnable low-rank query projection; softmax, top-k.
- OracleRouter: the task label, for upper bounds.

An expert's autoencoders live in `<expert>/router/router.safetensors`: per direction the weights, the
feature standardisation and the loss statistics, with the sizes in the safetensors metadata.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motion_agent.experts.expert_set import ROUTER_DIR, running_adapters
from motion_agent.model.language_model import (
    DIRECTIONS,
    M2T_HEAD,
    T2M_HEAD,
    Direction,
    MotionLanguageModel,
    returned_cache,
    with_cache,
)

ROUTER_FILE = "router.safetensors"
GATE_FILE = "gate.safetensors"
UNKNOWN = "unknown"
INSTRUCTION_HEADS = (T2M_HEAD, M2T_HEAD)  # shared by every prompt of a direction, so never pooled
FEATURE_KIND = "prompt-content-mean-half-depth"  # what prompt_features computes; a router trained on another kind is refused


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


@torch.inference_mode()
def prompt_features(lm: MotionLanguageModel, prompts: list[str], batch_size: int = 32) -> np.ndarray:
    """(N, hidden) hidden states of the frozen base model (no expert active) after its first half of
    layers (`router_trunk`), mean-pooled over each prompt's own tokens: the instruction every prompt of a
    direction starts with has the same causal hidden states for every request, so pooling it in only
    dilutes what tells requests apart (on the default model's scenarios, unknown-scenario AUROC 0.77 with
    it, 0.92 without). For the same reason the instruction's keys and values are computed once per model
    and reused: a request only runs its own tokens through the trunk."""
    rows = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        head = shared_instruction(chunk)
        with running_adapters(lm.model, []), torch.no_grad():  # the frozen base alone
            hidden, mask = _content_states(lm, chunk, head) if head else _prompt_states(lm, chunk)
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        rows.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, lm.model.config.hidden_size), np.float32)


def _prompt_states(lm: MotionLanguageModel, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole prompts through the trunk; the mask keeps each prompt's own tokens."""
    batch = lm.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = {k: v.to(lm.model.device) for k, v in batch.items()}
    hidden = router_trunk(lm)(**batch).last_hidden_state
    return hidden, _content_mask(lm, prompts, batch["attention_mask"])


def router_trunk(lm: MotionLanguageModel) -> nn.Module:
    """The backbone's first half of its decoder layers (rounded up), then its final norm, sharing the
    backbone's modules; made once per loaded model. Routing reads features there rather than after the
    last layer: on the default model's scenarios that routes as well (accuracy 0.961 vs 0.950,
    unknown-scenario AUROC 0.923 vs 0.914, tiny profile) at less than half the cost per request."""
    if "_router_trunk" not in lm.__dict__:
        decoder = lm.network.get_decoder()  # hidden states are wanted, not logits
        trunk = copy.copy(decoder)
        trunk._modules = dict(decoder._modules)  # its own module table, so the backbone keeps all its layers
        trunk.layers = nn.ModuleList(list(decoder.layers)[: (len(decoder.layers) + 1) // 2])
        lm.__dict__["_router_trunk"] = trunk
    return lm.__dict__["_router_trunk"]


def _content_states(lm: MotionLanguageModel, prompts: list[str], head: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Only what follows the shared instruction `head` through the trunk, attending to the
    instruction's cached keys and values (right padding: each row's positions follow the instruction)."""
    from transformers import DynamicCache

    prefix = _instruction_cache(lm, head)
    batch = lm.tokenizer([p[len(head):] for p in prompts], return_tensors="pt", padding=True, padding_side="right",
                         add_special_tokens=False)
    ids, mask = batch["input_ids"].to(lm.model.device), batch["attention_mask"].to(lm.model.device)
    n = len(prompts)
    # the cache appends by concatenation, so views of the stored keys and values are never written to
    cache = DynamicCache([(k.expand(n, *k.shape[1:]), v.expand(n, *v.shape[1:])) for k, v in prefix])
    attention = torch.cat([mask.new_ones(n, cache.get_seq_length()), mask], dim=1)
    trunk = router_trunk(lm)
    out = trunk(input_ids=ids, attention_mask=attention, use_cache=True, **with_cache(trunk, cache))
    return out.last_hidden_state, mask


def _instruction_cache(lm: MotionLanguageModel, head: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per trunk layer the base model's keys and values of one instruction, made once per loaded model:
    the backbone is frozen, so they never change (callers hold `running_adapters(lm.model, [])`)."""
    caches = lm.__dict__.setdefault("_instruction_caches", {})
    if head not in caches:
        trunk = router_trunk(lm)
        ids = lm.tokenizer(head, return_tensors="pt", add_special_tokens=False)["input_ids"].to(lm.model.device)
        cache = returned_cache(trunk(input_ids=ids, use_cache=True))  # sized for every backbone layer
        caches[head] = [(layer.keys, layer.values) for layer in cache.layers[: len(trunk.layers)]]
    return caches[head]


def shared_instruction(prompts: list[str]) -> str | None:
    """The instruction head (up to its colon) every prompt starts with, or None."""
    for head in INSTRUCTION_HEADS:
        if prompts and all(p.startswith(head) and len(p) > len(head) for p in prompts):
            return head
    return None


def _content_mask(lm: MotionLanguageModel, prompts: list[str], attention_mask: torch.Tensor) -> torch.Tensor:
    """The attention mask without each prompt's instruction tokens (left padding: real tokens come last)."""
    mask = attention_mask.clone()
    lengths = attention_mask.sum(1).tolist()
    for row, prompt in enumerate(prompts):
        skip = _instruction_tokens(lm.tokenizer, prompt)
        if skip < lengths[row]:  # never an empty pool
            first = mask.shape[1] - lengths[row]
            mask[row, first : first + skip] = 0
    return mask


def _instruction_tokens(tokenizer, prompt: str) -> int:
    """How many leading tokens of `prompt` are the T2M or M2T instruction (up to its colon)."""
    for head in INSTRUCTION_HEADS:
        if prompt.startswith(head):
            return _token_count(tokenizer, head)
    return 0


@lru_cache(maxsize=16)
def _token_count(tokenizer, text: str) -> int:
    """Tokens of a fixed text, once per tokenizer: every routed request asks."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


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

    def __init__(self, net: Autoencoder, mean: np.ndarray, std: np.ndarray, loss_mean: float, loss_std: float,
                 sigmas: float = 2.0) -> None:
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
        tensors.update(mean=torch.as_tensor(self.mean), std=torch.as_tensor(self.std),
                       loss_stats=torch.tensor([self.loss_mean, self.loss_std, self.sigmas], dtype=torch.float64))
        first, last = self.net.encoder[0], self.net.encoder[2]
        sizes = {"input": first.in_features, "hidden": first.out_features, "bottleneck": last.out_features}
        return ({f"{prefix}.{k}": v for k, v in tensors.items()}, {f"{prefix}.{k}": str(v) for k, v in sizes.items()})

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                     prefix: str) -> "ExpertAutoencoder":
        """The inverse of `tensors`; prefix "" reads a file of the earlier one-autoencoder format."""
        name = (lambda key: f"{prefix}.{key}") if prefix else (lambda key: key)
        net = Autoencoder(*(int(metadata[name(k)]) for k in ("input", "hidden", "bottleneck")))
        head = name("net.")
        net.load_state_dict({k[len(head):]: v for k, v in tensors.items() if k.startswith(head)})
        loss_mean, loss_std, sigmas = tensors[name("loss_stats")].tolist()
        return cls(net, tensors[name("mean")].numpy(), tensors[name("std")].numpy(), loss_mean, loss_std, sigmas)


class ExpertRouter:
    """One expert's router: an autoencoder per request direction it serves (usually both)."""

    def __init__(self, autoencoders: Mapping[Direction, ExpertAutoencoder]) -> None:
        unknown = set(autoencoders) - set(DIRECTIONS)
        if unknown or not autoencoders:
            raise RouterError(f"an expert router needs autoencoders for some of {DIRECTIONS}, got {sorted(autoencoders)}")
        self.autoencoders = dict(autoencoders)

    def save(self, expert_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(expert_dir) / ROUTER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tensors, metadata = {}, {"kind": "autoencoder", "features": FEATURE_KIND,
                                 "directions": ",".join(self.autoencoders)}
        for direction, autoencoder in self.autoencoders.items():
            more, sizes = autoencoder.tensors(direction)
            tensors.update(more)
            metadata.update(sizes)
        save_file(tensors, folder / ROUTER_FILE, metadata=metadata)
        return folder / ROUTER_FILE

    @classmethod
    def load(cls, expert_dir: str | Path) -> "ExpertRouter":
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
    def from_folders(cls, folders: Mapping[str, str | Path]) -> "AutoencoderRouter":
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

    def _stacked(self, direction: Direction, serving: dict[str, ExpertAutoencoder]) -> "_StackedAutoencoders | None":
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

    def soft_weights(self, features: np.ndarray, direction: Direction, temperature: float = 1.0) -> list[dict[str, float]]:
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
        self.steps = [torch.relu if isinstance(m, nn.ReLU) else
                      (torch.stack([ms[i].weight.detach().T for ms in modules]),
                       torch.stack([ms[i].bias.detach()[None] for ms in modules]))
                      for i, m in enumerate(modules[0])]
        self.mean = torch.as_tensor(np.stack([ae.mean for ae in autoencoders]))[:, None]
        self.std = torch.as_tensor(np.stack([ae.std for ae in autoencoders]))[:, None]

    @classmethod
    def of(cls, autoencoders: list[ExpertAutoencoder]) -> "_StackedAutoencoders | None":
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


@dataclass(frozen=True)
class FeatureStatistics:
    """What EPI keeps of a task instead of its inputs: their mean, scatter (sum of centred outer
    products) and count. Adding a task never needs an earlier task's data."""

    mean: np.ndarray
    scatter: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> "FeatureStatistics":
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
    def fit(cls, features: Mapping[str, np.ndarray], shrinkage: float = 0.1, sigmas: float = 2.0) -> "MahalanobisRouter":
        return cls.from_statistics({n: FeatureStatistics.of(f) for n, f in features.items()}, shrinkage, sigmas)

    @classmethod
    def from_statistics(cls, stats: Mapping[str, FeatureStatistics], shrinkage: float = 0.1,
                        sigmas: float = 2.0) -> "MahalanobisRouter":
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
        metadata = {"kind": "key-gate", "names": json.dumps(self.names), "top_k": str(self.top_k),
                    "rank": str(self.down.out_features), "features": str(self.down.in_features)}
        save_file(tensors, folder / GATE_FILE, metadata=metadata)
        return folder / GATE_FILE

    @classmethod
    def load(cls, folder: str | Path) -> "KeyGate":
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
        return [Decision(self.names[int(np.argmax(row))], {n: float(p) for n, p in zip(self.names, row)})
                for row in probs]


class OracleRouter:
    """The task label decides: the upper bound routers are compared with."""

    def __init__(self, experts: Mapping[str, str]) -> None:
        self.experts = dict(experts)  # task label -> expert name

    def route_labels(self, labels: list[str]) -> list[Decision]:
        return [Decision(self.experts.get(label), {}) for label in labels]
