"""moe-soft: moe-hard's experts and routers, with every accepted request served by a soft blend.

The LoRA-MoE paper compares winner-takes-all routing with blending the experts by softmax(-loss / T)
of their autoencoders' reconstruction losses; this is that blend, exactly as the robot runtime's
`routing.mode: soft` serves it (a request no autoencoder accepts still goes to the plain base). The
experts train exactly as moe-hard's, so in a benchmark that also runs moe-hard they are adopted from
its run rather than trained twice. Blends become adapters of their own (`training.continual.blends`).
"""

from __future__ import annotations

from collections.abc import Sequence

from motion_agent.experts.expert_set import BASE
from motion_agent.experts.prompt_features import prompt_features
from motion_agent.experts.routing import Decision, softmax_weights
from training.continual.blends import Blends
from training.continual.methods.base import Direction
from training.continual.methods.moe_hard import MoEHard


class MoESoft(MoEHard):
    name = "moe-soft"
    reads = ("o_lora", "router.autoencoder", "router.temperature")
    serves_experts_of = "moe-hard"

    def __init__(self, lm, config) -> None:
        super().__init__(lm, config)
        self.blends = Blends()

    def prepare_inference(self) -> None:
        self.blends.drop(self.model)
        super().prepare_inference()

    def route(self, direction: Direction, inputs: Sequence) -> list[str] | None:
        if not self.names:
            return None
        self.blends.new_batch(self.model)
        features = prompt_features(self.lm, self.prompts(direction, inputs))
        return [self.serving_adapter(decision) for decision in self.decisions(direction, features)]

    def expert_of(self, task: str) -> str | None:
        return None  # a blend is no single expert: routing accuracy is moe-hard's (the same routers)

    def serving_adapter(self, decision: Decision) -> str:
        """BASE for an unknown request, else the adapter of its blend."""
        if decision.expert is None:
            return BASE
        return self.blends.adapter(self.model, softmax_weights(decision.scores, self.config.router.temperature))
