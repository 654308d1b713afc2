"""Serving one expert at a time with its LoRA merged into a private copy of the adapted weights.

A hard-routed request runs exactly one expert. Through peft's LoRA layers every adapted linear layer
then costs three module calls instead of one; with a small backbone that overhead, not arithmetic,
is most of the decoding time (tiny profile, one in-process measurement of a 4 s motion: 80 ms with an
expert through peft, 47 ms merged, 54 ms for the plain base through idle LoRA wrappers). Merging, the
usual way LoRA is deployed, removes it, but peft's `merge_adapter` writes into the shared backbone and
`unmerge_adapter` subtracts again, which does not restore the weights bit for bit; over thousands of
switches the base and every other expert would drift.

So the merge goes elsewhere: `MergedServing` keeps a copy of the base network without LoRA wrappers
that shares every base weight (no memory), and one private buffer per adapted weight, which holds
W + scaling * B A (the update peft's merge adds) for the expert being served. The backbone and the
peft model are never written to, so expert isolation holds exactly; the base (no expert) runs the
shared weights themselves, bit for bit what peft computes with no adapter active. The price is one
copy of the adapted layers' weights (about 3 MB for tiny, 420 MB for smollm2-135m in float32), and a
merged expert's logits equal peft's only up to float rounding (the sum is formed in a different order).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from motion_agent.model.language_model import MotionLanguageModel


class MergedServing:
    """A wrapper-free view of a peft model's base network with at most one expert merged in."""

    def __init__(self, lm: MotionLanguageModel) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        network = lm.network
        shared = {id(t): t for t in itertools.chain(network.parameters(), network.buffers())}
        self.network = copy.deepcopy(network, memo=shared)  # new modules, the very same tensors
        for path, module in list(self.network.named_modules()):
            if isinstance(module, BaseTunerLayer):
                parent, _, child = path.rpartition(".")
                setattr(self.network.get_submodule(parent), child, module.get_base_layer())
        self.network.eval()
        self.lm = MotionLanguageModel(self.network, lm.tokenizer, lm.vocabulary, lm.config, lm.fingerprint)
        self._original: dict[str, nn.Parameter] = {}  # path -> the shared base weight
        self._buffers: dict[str, nn.Parameter] = {}  # path -> private merged weight
        self._layers: dict[str, dict[str, nn.Module]] = {}  # expert -> {path: its peft LoRA layer}
        self._targets: dict[str, nn.Linear] = {}  # path -> this view's linear layer there
        self._in_buffers: str | None = None  # whose merge the buffers hold
        self._serving: str | None = None

    def serve(self, peft_model, expert: str | None) -> MotionLanguageModel | None:
        """The model to run `expert` (None: the base) on, valid until the next call; None when the
        expert is more than plain LoRA, so that merging would change what it computes."""
        if expert == self._serving:
            return self.lm
        layers = {} if expert is None else self._lora_layers(peft_model, expert)
        if layers is None:
            return None
        self._restore()
        if expert is not None:
            if self._in_buffers != expert:
                self._merge(layers, expert)
            for path in layers:
                self._linear(path)._parameters["weight"] = self._buffers[path]
        self._serving = expert
        return self.lm

    def forget(self, expert: str) -> None:
        """`expert` was removed or replaced: its merge must not be served again."""
        if self._serving == expert:
            self._restore()
        if self._in_buffers == expert:
            self._in_buffers = None
        self._layers.pop(expert, None)

    def _restore(self) -> None:
        for path, weight in self._original.items():
            self._linear(path)._parameters["weight"] = weight
        self._serving = None

    def _merge(self, layers: dict, expert: str) -> None:
        """W + scaling * B A per layer (what peft's merge adds), one fused addmm into the layer's buffer:
        peft's `get_delta_weight` plus an add took 7 ms per expert switch on tiny, this about 1 ms."""
        self._in_buffers = None  # a merge cut short by an error leaves no half-written expert behind
        # plain tensors even when called in inference mode, so the buffers serve outside it too
        with torch.inference_mode(False), torch.no_grad():
            for path, layer in layers.items():
                base = layer.get_base_layer().weight
                self._original.setdefault(path, base)
                if path not in self._buffers:
                    self._buffers[path] = nn.Parameter(torch.empty_like(base), requires_grad=False)
                torch.addmm(
                    base,
                    layer.lora_B[expert].weight,
                    layer.lora_A[expert].weight,
                    alpha=layer.scaling[expert],
                    out=self._buffers[path].data,
                )
        self._in_buffers = expert

    def _lora_layers(self, peft_model, expert: str) -> dict[str, nn.Module] | None:
        """{path in the network: LoRA layer holding `expert`}, found once per expert; None unless the
        expert is plain LoRA on nn.Linear layers (no DoRA, bias, transposed weights, saved modules or
        trainable tokens), i.e. unless W + scaling * B A is all it changes."""
        if expert not in self._layers:
            self._layers[expert] = _plain_lora_layers(peft_model, expert)
        return self._layers[expert]

    def _linear(self, path: str) -> nn.Linear:
        if path not in self._targets:
            self._targets[path] = self.network.get_submodule(path)
        return self._targets[path]


def _plain_lora_layers(peft_model, expert: str) -> dict[str, nn.Module] | None:
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    config = peft_model.peft_config[expert]
    if getattr(config, "modules_to_save", None) or getattr(config, "trainable_token_indices", None):
        return None
    prefix = "base_model.model."  # PeftModel -> LoraModel -> the network
    layers = {
        name.removeprefix(prefix): module
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer) and (expert in module.lora_A or expert in module.lora_embedding_A)
    }
    plain = all(
        isinstance(m, LoraLinear)
        and isinstance(m.get_base_layer(), nn.Linear)
        and not m.fan_in_fan_out
        and not m.use_dora.get(expert, False)
        and not m.lora_bias.get(expert, False)
        and expert in m.lora_A
        for m in layers.values()
    )
    return layers if layers and plain else None
