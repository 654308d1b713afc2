"""moe-soft: moe-hard's experts and routers, with every accepted request served by a soft blend.

The LoRA-MoE paper compares winner-takes-all routing with blending the experts by softmax(-loss / T)
of their autoencoders' reconstruction losses; this is that blend, exactly as the robot runtime's
`routing.mode: soft` serves it (a request no autoencoder accepts still goes to the plain base). The
experts train exactly as moe-hard's, so in a benchmark that also runs moe-hard they are adopted from
its run rather than trained twice.

A blend becomes a peft adapter of its own (`add_weighted_adapter`, "cat": the exact weighted sum of
the experts' LoRA updates), so blended requests batch with per-sample `adapter_names=` like experts.
"""
from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence

from motion_agent.experts import BASE
from motion_agent.routing import Decision, prompt_features, softmax_weights
from training.continual.methods.base import Direction
from training.continual.methods.moe_hard import MoEHard

WEIGHT_DECIMALS = 2  # blend weights are rounded so that near-identical blends share one adapter
LIVE_ROUTE_CALLS = 2  # a task is scored on the names of its T2M and M2T route calls: keep their blends


class MoESoft(MoEHard):
    name = "moe-soft"
    serves_experts_of = "moe-hard"

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.blends: deque[set[str]] = deque()  # blend adapters made by each recent route call

    def prepare_inference(self) -> None:
        self._drop_blends(keep=0)
        super().prepare_inference()

    def route(self, direction: Direction, inputs: Sequence) -> list[str] | None:
        if not self.names:
            return None
        self._drop_blends(keep=LIVE_ROUTE_CALLS - 1)
        self.blends.append(set())
        features = prompt_features(self.lm, self.prompts(direction, inputs))
        names = [self.serving_adapter(decision) for decision in self.decisions(features)]
        if self.blends[-1]:
            self.model.eval()  # new blend adapters are built in training mode (dropout on)
        return names

    def expert_of(self, task: str) -> str | None:
        return None  # a blend is no single expert: routing accuracy is moe-hard's (the same routers)

    def serving_adapter(self, decision: Decision) -> str:
        """BASE for an unknown request, else the adapter of its blend (an expert itself when one
        expert holds all the weight after rounding)."""
        if decision.expert is None:
            return BASE
        weights = softmax_weights(decision.scores, self.config.router.temperature)
        weights = {name: round(w, WEIGHT_DECIMALS) for name, w in weights.items() if round(w, WEIGHT_DECIMALS) > 0}
        if len(weights) == 1:
            return next(iter(weights))
        key = ",".join(f"{name}={w}" for name, w in sorted(weights.items()))
        name = "blend_" + hashlib.sha1(key.encode()).hexdigest()[:12]
        if name not in self.model.peft_config:
            self.model.add_weighted_adapter(list(weights), list(weights.values()), name, combination_type="cat")
        if not self.blends:
            self.blends.append(set())
        self.blends[-1].add(name)
        return name

    def _drop_blends(self, keep: int) -> None:
        """Delete the blend adapters of all but the last `keep` route calls (unless those still use them)."""
        while len(self.blends) > keep:
            stale = self.blends.popleft() - set().union(*self.blends)
            for name in stale:
                self.model.delete_adapter(name)
