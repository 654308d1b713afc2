"""Weighted sums of LoRA experts as peft adapters of their own, for methods that serve a request by a
blend (moe-soft, es-moe): a blend named once can batch with experts through per-sample `adapter_names=`.

`add_weighted_adapter(..., combination_type="cat")` stacks the experts' A and B matrices, so the blend's
update is exactly sum_k w_k * B_k A_k * scaling_k, the same arithmetic as blending at run time.
"""

from __future__ import annotations

import hashlib
from collections import deque

WEIGHT_DECIMALS = 2  # weights are rounded so that near-identical blends share one adapter


class Blends:
    """Blend adapters made on demand, kept for the last `live` batches of requests (a task is scored on
    the names of its T2M and M2T requests together) and deleted after."""

    def __init__(self, live: int = 2) -> None:
        self.live = live
        self.batches: deque[set[str]] = deque()  # blend names each recent batch used

    def new_batch(self, model) -> None:
        """Start naming the adapters of a new batch of requests; drops blends no live batch uses."""
        self.drop(model, keep=self.live - 1)
        self.batches.append(set())

    def adapter(self, model, weights: dict[str, float]) -> str:
        """The adapter serving `weights` ({expert: weight}): the expert itself when one holds all the
        weight after rounding, else a blend adapter (made the first time)."""
        rounded = {name: round(w, WEIGHT_DECIMALS) for name, w in weights.items() if round(w, WEIGHT_DECIMALS) > 0}
        if len(rounded) == 1:
            return next(iter(rounded))
        key = ",".join(f"{name}={w}" for name, w in sorted(rounded.items()))
        name = "blend_" + hashlib.sha1(key.encode()).hexdigest()[:12]
        if name not in model.peft_config:
            model.add_weighted_adapter(list(rounded), list(rounded.values()), name, combination_type="cat")
            model.eval()  # a new adapter's modules start in training mode (dropout on)
        if not self.batches:
            self.batches.append(set())
        self.batches[-1].add(name)
        return name

    def drop(self, model, keep: int = 0) -> None:
        """Delete the blends of all but the last `keep` batches (unless a kept batch uses them)."""
        while len(self.batches) > keep:
            stale = self.batches.popleft() - set().union(*self.batches)
            for name in stale:
                model.delete_adapter(name)
