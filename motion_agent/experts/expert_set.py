"""Scenario experts: named peft LoRA adapters over one frozen base model.

Experts are never merged into the backbone: each stays a separate named adapter, so adding, removing
or swapping one cannot change what the others compute (expert isolation), and one batch can run a
different expert per sample through peft's `adapter_names=` (the row marked BASE runs no adapter).
A request served by one expert alone runs it merged into a private copy of the adapted weights
(motion_agent.experts.merged_serving), which leaves the backbone and the adapters as they are.

An expert folder (what training writes, a bundle carries and the expert store keeps)::

    adapter/adapter_config.json   adapter/adapter_model.safetensors   peft save_pretrained
    router/router.safetensors                                         the expert's router (routing.py)
    eval.json                                                         evaluation figures

Changing the set mutates the model in place, so callers that serve requests from several threads
hold `ExpertSet.lock` around generation (MotionAgent does); loading the files happens before the
lock is taken where possible.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from motion_agent.experts.merged_serving import MergedServing
from motion_agent.model.language_model import MotionLanguageModel

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
ADAPTER_DIR = "adapter"
ROUTER_DIR = "router"
EVAL_FILE = "eval.json"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ExpertError(ValueError):
    """An expert that cannot be added, found or blended; the message names it."""


def check_name(name: str) -> str:
    """Expert names become peft adapter names and module keys: lowercase, digits and underscores."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ExpertError(f"expert name {name!r} must match {_NAME.pattern} (lowercase letters, digits, underscores)")
    return name


def adapter_folder(expert_dir: str | Path) -> Path:
    folder = Path(expert_dir) / ADAPTER_DIR
    if not (folder / "adapter_config.json").is_file():
        raise ExpertError(f"{expert_dir} is not an expert folder: {folder}/adapter_config.json is missing")
    return folder


_TUNER_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tuner_layers(model) -> list:
    """The LoRA layers of `model`, found once per set of loaded adapters: walking every module on each
    request's adapter switch cost milliseconds (about 3 ms per switch on the tiny model)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    key = tuple(getattr(model, "peft_config", None) or ())
    cached = _TUNER_LAYERS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, [m for m in model.modules() if isinstance(m, BaseTunerLayer)])
        _TUNER_LAYERS[model] = cached
    return cached[1]


@contextmanager
def running_adapters(model, names: list[str]) -> Iterator[None]:
    """Inference with exactly the adapters `names` (none: the plain base) in every LoRA layer of `model`,
    restoring each layer's own choice afterwards. peft's `set_adapter` also re-flags requires_grad on
    every loaded adapter of every layer, work that grows with the number of experts and means nothing
    at inference; this sets only the layers' active-adapter lists (what `set_adapter` ends with), so a
    switch costs the same with 64 experts as with one. Same arithmetic as `set_adapter` (tested)."""
    layers = tuner_layers(model)
    saved = [layer._active_adapter for layer in layers]
    for layer in layers:
        layer._active_adapter = list(names)
    try:
        yield
    finally:
        for layer, previous in zip(layers, saved):
            layer._active_adapter = previous


@contextmanager
def weighted_experts(model, names: list[str], weights) -> Iterator[None]:
    """Run `model` with the LoRA updates of `names` summed with weights (N, E) per request, or (1, E)
    for every request: each layer's scaling of expert k becomes a (N, 1, 1) tensor, so the sum is
    exact and, in training, gradients reach the weights. Scalings are restored on exit."""
    from peft.tuners.lora import LoraLayer

    layers = [layer for layer in tuner_layers(model) if isinstance(layer, LoraLayer)]
    saved = [dict(layer.scaling) for layer in layers]
    try:
        for layer, scaling in zip(layers, saved):
            for k, name in enumerate(names):
                if name in scaling:
                    layer.scaling[name] = scaling[name] * weights[:, k].reshape(-1, 1, 1)
        with running_adapters(model, names):
            yield
    finally:
        for layer, scaling in zip(layers, saved):
            layer.scaling.clear()
            layer.scaling.update(scaling)


class NamedExperts:
    """What every expert set shares: experts by name (`folders`), one lock, and bringing the set in line
    with a store's. Subclasses load and drop an expert (`add`, `remove`) their own way."""

    folders: dict[str, Path]
    lock: threading.RLock

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.folders)

    def __contains__(self, name: object) -> bool:
        return name in self.folders

    def __len__(self) -> int:
        return len(self.folders)

    def add(self, name: str, expert_dir: str | Path) -> None:
        raise NotImplementedError

    def remove(self, name: str) -> None:
        raise NotImplementedError

    def sync(self, wanted: Mapping[str, Path]) -> dict[str, list[str]]:
        """Make the set equal to `wanted` ({name: expert folder}); unchanged experts are left alone, so
        requests routed to them compute exactly what they computed before."""
        with self.lock:
            removed = [n for n in self.folders if n not in wanted]
            changed = [n for n, f in wanted.items() if n in self.folders and Path(f) != self.folders[n]]
            added = [n for n in wanted if n not in self.folders]
            for name in removed:
                self.remove(name)
            for name in changed + added:
                self.add(name, wanted[name])
        return {"added": added, "replaced": changed, "removed": removed}

    def _require(self, name: str) -> None:
        if name not in self.folders:
            known = ", ".join(self.folders) or "none"
            raise ExpertError(f"no expert named {name!r} is loaded (loaded: {known})")


class ExpertSet(NamedExperts):
    """The experts a MotionLanguageModel can run, each selectable per sample."""

    def __init__(self, lm: MotionLanguageModel, merged: bool = True) -> None:
        self.lm = lm
        self.base = lm.model  # the frozen base; kept so a set that empties again runs it directly
        self.folders: dict[str, Path] = {}
        self.lock = threading.RLock()
        self.merged = merged  # serve single experts merged (see `serving`)
        self._merged: MergedServing | None = None  # made on the first request that uses it

    def add(self, name: str, expert_dir: str | Path) -> None:
        """Load an expert's adapter under `name`; an existing expert of that name is replaced."""
        from peft import PeftModel

        check_name(name)
        folder = adapter_folder(expert_dir)
        if not Path(folder).is_dir():  # peft would take a missing local folder for a hub repo id
            raise ExpertError(f"expert {name}: its adapter folder {folder} does not exist")
        with self.lock:
            if name in self.folders:
                self.remove(name)
            if isinstance(self.lm.model, PeftModel):
                self.lm.model.load_adapter(folder, adapter_name=name, is_trainable=False)
            else:
                self.lm.model = PeftModel.from_pretrained(self.base, folder, adapter_name=name, is_trainable=False)
            self.lm.model.eval()
            self.folders[name] = Path(expert_dir)
            self._forget(name)

    def remove(self, name: str) -> None:
        with self.lock:
            self._require(name)
            if len(self.folders) == 1:  # peft cannot run without an adapter: back to the plain base
                self.lm.model.unload()
                self.lm.model = self.base
            else:
                self.lm.model.delete_adapter(name)
            del self.folders[name]
            self._forget(name)

    def adapter_names(self, experts: list[str | None]) -> list[str] | None:
        """peft's per-sample adapter names: None (or "base") means no expert for that sample."""
        for name in experts:
            if name is not None and name != "base":
                self._require(name)
        if not self.folders:
            return None
        return [BASE if name in (None, "base") else name for name in experts]

    @contextmanager
    def blended(self, weights: Mapping[str, float]) -> Iterator[MotionLanguageModel]:
        """The model that runs the weighted sum of several experts' LoRA updates (soft routing)."""
        import torch

        with self.lock:
            for name in weights:
                self._require(name)
            with weighted_experts(self.lm.model, list(weights), torch.tensor([list(weights.values())])):
                yield self.lm

    @contextmanager
    def serving(self, expert: str | None) -> Iterator[MotionLanguageModel]:
        """The model that runs one request on `expert` alone (None or "base": on the plain base).

        One request needs no per-sample routing, so it skips peft's mixed-batch path (which re-checks
        every loaded adapter at every decoding step). With `merged` (the default) the expert runs
        merged into a private copy of its layers' weights and the base without LoRA wrappers
        (motion_agent.experts.merged_serving: about 40 % less decoding time on the tiny backbone; the base's
        arithmetic is unchanged, a merged expert's equals peft's up to float rounding); otherwise the
        expert is made the only active adapter, at the same cost with 64 experts loaded as with one."""
        with self.lock:
            if expert not in (None, "base"):
                self._require(expert)
            name = None if expert in (None, "base") else expert
            if not self.folders:
                yield self.lm
                return
            if self.merged:
                if self._merged is None:
                    self._merged = MergedServing(self.lm)
                served = self._merged.serve(self.lm.model, name)
                if served is not None:
                    yield served
                    return
            with running_adapters(self.lm.model, [] if name is None else [name]):
                yield self.lm

    def _forget(self, name: str) -> None:
        if self._merged is not None:
            self._merged.forget(name)
