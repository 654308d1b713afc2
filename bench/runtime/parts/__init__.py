"""The six parts of the runtime benchmark, one module each; every part takes the run's Bench and returns
its figures (nested dicts, merged into the result under the keys of BENCHMARKS.md)."""

from __future__ import annotations

from collections.abc import Callable

from runtime.context import Bench
from runtime.parts.caption import part_caption
from runtime.parts.hot_swap import part_hot_swap
from runtime.parts.latency import part_latency
from runtime.parts.ratios import part_ratios
from runtime.parts.scaling import part_experts
from runtime.parts.soak import part_soak

PART_FUNCTIONS: dict[str, Callable[[Bench], dict]] = {
    "latency": part_latency,
    "caption": part_caption,
    "ratios": part_ratios,
    "experts": part_experts,
    "hot_swap": part_hot_swap,
    "soak": part_soak,
}
