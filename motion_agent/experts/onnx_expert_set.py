"""Scenario experts served by the ONNX decoder: each expert is its LoRA factors, nothing else.

The same interface as `ExpertSet` (add, remove, sync, serving, blended, lock), without peft: adding an
expert reads its adapter file into arrays (`LoraFactors`), so the cost of installing one does not grow
with the number installed, and serving one binds its factors as inputs of the shared graph. Experts stay
isolated exactly: no weight any expert reads is ever written.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from motion_agent.experts.expert_set import NamedExperts, check_name
from motion_agent.experts.lora_factors import LoraFactors
from motion_agent.model.onnx_language_model import OnnxLanguageModel

BOUND_VIEWS = 4  # experts whose graph inputs stay laid out (about 15 MB each on SmolLM2-135M)


class OnnxExpertSet(NamedExperts):
    """The experts an OnnxLanguageModel can serve, one (or one blend) per request."""

    def __init__(self, lm: OnnxLanguageModel) -> None:
        self.lm = lm
        self.folders: dict[str, Path] = {}
        self.factors: dict[str, LoraFactors] = {}
        self.lock = threading.RLock()
        self._views: OrderedDict[str, OnnxLanguageModel] = OrderedDict()  # most recently served last

    def add(self, name: str, expert_dir: str | Path) -> None:
        """Load an expert's factors under `name`; an existing expert of that name is replaced."""
        check_name(name)
        factors = LoraFactors.load(expert_dir, self.lm.shape)  # outside the lock: requests keep flowing
        with self.lock:
            self.factors[name] = factors
            self.folders[name] = Path(expert_dir)
            self._views.pop(name, None)

    def remove(self, name: str) -> None:
        with self.lock:
            self._require(name)
            del self.folders[name], self.factors[name]
            self._views.pop(name, None)

    @contextmanager
    def serving(self, expert: str | None) -> Iterator[OnnxLanguageModel]:
        """The model that runs one request on `expert` alone (None or "base": the plain base)."""
        with self.lock:
            if expert in (None, "base"):
                yield self.lm
                return
            self._require(expert)
            view = self._views.pop(expert, None) or self.lm.with_factors(self.factors[expert])
            self._views[expert] = view
            while len(self._views) > BOUND_VIEWS:
                self._views.popitem(last=False)
            yield view

    @contextmanager
    def blended(self, weights: Mapping[str, float]) -> Iterator[OnnxLanguageModel]:
        """The model that runs the weighted sum of several experts' LoRA updates (soft routing)."""
        with self.lock:
            for name in weights:
                self._require(name)
            members = [self.factors[name] for name in weights]
            yield self.lm.with_factors(LoraFactors.blend(members, list(weights.values())))
