"""An expert's LoRA update as plain arrays, the inputs of the ONNX decoder's LoRA graph.

Read straight from the adapter's safetensors file: no peft model is touched, so loading the 256th expert
costs what loading the first did. The file is memory-mapped, not read: an installed expert costs its
header until it serves, and then its factors' pages (for a rank-8 expert on all seven projections of
SmolLM2-135M 9.8 MB, the file's size), which the kernel may drop again while it is idle.

Per layer and fused group (motion_agent.model.onnx_decoder.GROUPS) the graph adds x @ A @ B. For a group
of several projections (q, k, v) A is their A factors side by side and B is block diagonal, each block
that projection's B times its scaling, so one pair of small products serves the group.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motion_agent.experts.expert_set import ExpertError, adapter_folder
from motion_agent.model.onnx_decoder import GROUPS, TARGETS, DecoderShape

_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")
_UNSUPPORTED = {  # adapter_config.json keys whose non-default values change what LoRA computes
    "use_dora": False,
    "fan_in_fan_out": False,
    "lora_bias": False,
    "modules_to_save": None,
    "trainable_token_indices": None,
    "layers_to_transform": None,
    "rank_pattern": {},
    "alpha_pattern": {},
}


# (projection's index in its group, A (in, r), B (r, out), B's scaling: alpha / r times a blend's weight)
Piece = tuple[int, np.ndarray, np.ndarray, float]
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


@dataclass
class LoraFactors:
    """One expert's (or one blend's) LoRA update, kept as compact as its file: per layer and fused group,
    the pieces (projection, A, B, scaling) that adapt it. `arrays()` lays them out as the graph's inputs
    (A side by side, B block diagonal), which a server builds only for the expert it is serving."""

    shape: DecoderShape
    parts: dict[tuple[int, str], list[Piece]]
    prefix_cache: dict = field(default_factory=dict, repr=False)  # cached KV of shared prompt heads

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes + b.nbytes for pieces in self.parts.values() for _, a, b, _ in pieces)

    @classmethod
    def load(cls, expert_dir: str | Path, shape: DecoderShape) -> LoraFactors:
        """The factors of an expert folder's adapter; refused, naming the setting, unless the adapter is
        plain LoRA on the decoder's projections (what x @ A @ B computes)."""
        folder = adapter_folder(expert_dir)
        config = json.loads((folder / "adapter_config.json").read_text())
        _check_config(config, folder)
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
        scaling = alpha / (rank**0.5 if config.get("use_rslora") else rank)
        weights = {}
        for key, array in _tensors(folder / "adapter_model.safetensors").items():
            match = _KEY.search(key)
            if match is None:
                raise ExpertError(f"{folder}: tensor {key} is not a LoRA factor of a decoder projection")
            layer, target, side = int(match[1]), match[2], match[3]
            if target not in TARGETS or layer >= shape.layers:
                raise ExpertError(f"{folder}: {key} adapts {target} of layer {layer}, which this backbone lacks")
            weights[(layer, target, side)] = array
        parts: dict[tuple[int, str], list[Piece]] = {}
        for (layer, target, side), lora_a in weights.items():
            if side == "A":
                group = next(g for g, targets in GROUPS.items() if target in targets)
                piece = (GROUPS[group].index(target), lora_a.T, weights[(layer, target, "B")].T, scaling)
                parts.setdefault((layer, group), []).append(piece)
        return cls(shape, parts)

    @classmethod
    def blend(cls, members: list[LoraFactors], weights: list[float]) -> LoraFactors:
        """sum_k w_k B_k A_k: every member's pieces, their B weighted (soft routing)."""
        parts: dict[tuple[int, str], list[Piece]] = {}
        for member, weight in zip(members, weights):
            for key, pieces in member.parts.items():
                parts.setdefault(key, []).extend((index, a, b, weight * scale) for index, a, b, scale in pieces)
        return cls(members[0].shape, parts)

    def arrays(self) -> dict[str, np.ndarray]:
        """The graph's LoRA inputs: lora_a_<group>_<layer> (in, R) and lora_b_<group>_<layer> (R, out),
        rank 1 of zeros where a group is not adapted."""
        s, arrays = self.shape, {}
        for layer in range(s.layers):
            for group, targets in GROUPS.items():
                fan_in, fan_out = s.group_sizes(group)
                pieces = self.parts.get((layer, group), [])
                offsets = np.cumsum([0] + [s.sizes(t)[1] for t in targets])
                rank = sum(a.shape[1] for _, a, _, _ in pieces) or 1
                a_all, b_all = np.zeros((fan_in, rank), np.float32), np.zeros((rank, fan_out), np.float32)
                row = 0
                for index, a, b, scale in pieces:
                    a_all[:, row : row + a.shape[1]] = a
                    b_all[row : row + a.shape[1], offsets[index] : offsets[index + 1]] = b * scale
                    row += a.shape[1]
                arrays[f"lora_a_{group}_{layer}"], arrays[f"lora_b_{group}_{layer}"] = a_all, b_all
        return arrays


def _check_config(config: dict, folder: Path) -> None:
    if config.get("peft_type") != "LORA":
        raise ExpertError(f"{folder}: peft_type {config.get('peft_type')!r} is not LORA")
    for key, default in _UNSUPPORTED.items():
        if config.get(key, default) not in (default, None, {}, False):
            raise ExpertError(f"{folder}: {key} = {config[key]!r} is not served by the ONNX decoder (plain LoRA only)")
    if config.get("bias", "none") != "none":
        raise ExpertError(f"{folder}: bias = {config['bias']!r} is not served by the ONNX decoder (plain LoRA only)")
    targets = config.get("target_modules") or []
    unknown = sorted(set(targets) - set(TARGETS)) if isinstance(targets, list) else [targets]
    if unknown:
        raise ExpertError(f"{folder}: target modules {unknown} are not decoder projections ({', '.join(TARGETS)})")


def _tensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as views into one read-only memory map of it (one mapping per
    file: a map per tensor would exhaust the kernel's map count at a few hundred experts); other dtypes
    than float16/32/64 are read and converted instead."""
    with path.open("rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
    header.pop("__metadata__", None)
    if any(info["dtype"] not in _DTYPES for info in header.values()):
        from safetensors.torch import load_file

        return {key: tensor.float().numpy() for key, tensor in load_file(path).items()}
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    start = 8 + size
    tensors = {}
    for key, info in header.items():
        begin, end = info["data_offsets"]
        raw = mapped[start + begin : start + end]
        tensors[key] = raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors
