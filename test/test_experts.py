"""Expert set over a frozen base model: named peft adapters, per-sample selection, isolation."""

import numpy as np
import pytest
import torch

from motion_agent.experts.expert_set import ExpertError, ExpertSet, check_name
from motion_agent.model.base_model import load_base_model

from conftest import write_expert

TEXTS = ["a person waves happily", "someone jumps angrily for 2 seconds"]


@pytest.fixture(scope="module")
def expert_dirs(tiny_base_model, tmp_path_factory):
    lm = load_base_model(tiny_base_model)
    root = tmp_path_factory.mktemp("experts")
    return {name: write_expert(lm, root / name, seed) for seed, name in enumerate(["sports", "dance", "music"])}


@pytest.fixture()
def experts(tiny_base_model):
    return ExpertSet(load_base_model(tiny_base_model))


def generate(experts: ExpertSet, names: list[str | None]) -> list[np.ndarray]:
    return experts.lm.generate_motion(TEXTS, seed=3, seconds=2.0, adapter_names=experts.adapter_names(names))


def test_adding_an_expert_never_changes_the_others(experts, expert_dirs):
    experts.add("sports", expert_dirs["sports"])
    before_sports, before_base = generate(experts, ["sports", "sports"]), generate(experts, [None, None])
    experts.add("dance", expert_dirs["dance"])
    experts.add("music", expert_dirs["music"])
    assert all(np.array_equal(a, b) for a, b in zip(before_sports, generate(experts, ["sports", "sports"])))
    assert all(np.array_equal(a, b) for a, b in zip(before_base, generate(experts, [None, None])))
    experts.remove("dance")
    assert all(np.array_equal(a, b) for a, b in zip(before_sports, generate(experts, ["sports", "sports"])))


def test_experts_change_the_output_and_run_per_sample(experts, expert_dirs):
    experts.sync({"sports": expert_dirs["sports"], "dance": expert_dirs["dance"]})
    batch = experts.lm._encode(TEXTS)
    with torch.inference_mode():
        mixed = experts.lm.model(**batch, adapter_names=experts.adapter_names(["sports", "dance"])).logits
        sports = experts.lm.model(**batch, adapter_names=experts.adapter_names(["sports", "sports"])).logits
        dance = experts.lm.model(**batch, adapter_names=experts.adapter_names(["dance", "dance"])).logits
        base = experts.lm.model(**batch, adapter_names=experts.adapter_names([None, None])).logits
    assert (sports - base).abs().max() > 1e-3  # the expert does something
    torch.testing.assert_close(mixed[0], sports[0])
    torch.testing.assert_close(mixed[1], dance[1])


def test_sync_reports_changes_and_an_emptied_set_runs_the_base(experts, expert_dirs):
    baseline = generate(experts, [None, None])
    assert experts.sync({"sports": expert_dirs["sports"]}) == {"added": ["sports"], "replaced": [], "removed": []}
    changes = experts.sync({"sports": expert_dirs["dance"], "music": expert_dirs["music"]})
    assert changes == {"added": ["music"], "replaced": ["sports"], "removed": []}
    assert experts.sync({}) == {"added": [], "replaced": [], "removed": ["sports", "music"]}
    assert experts.names == ()
    assert all(np.array_equal(a, b) for a, b in zip(baseline, generate(experts, [None, None])))


def test_blending_one_expert_at_full_weight_equals_that_expert(experts, expert_dirs):
    experts.sync({"sports": expert_dirs["sports"], "dance": expert_dirs["dance"]})
    batch = experts.lm._encode(TEXTS[:1])
    with torch.inference_mode():
        alone = experts.lm.model(**batch, adapter_names=experts.adapter_names(["sports"])).logits
        with experts.blended({"sports": 1.0, "dance": 0.0}):
            blend = experts.lm.model(**batch).logits
        with experts.blended({"sports": 0.5, "dance": 0.5}):
            half = experts.lm.model(**batch).logits
        again = experts.lm.model(**batch, adapter_names=experts.adapter_names(["sports"])).logits
    torch.testing.assert_close(blend, alone)
    assert (half - alone).abs().max() > 1e-4
    torch.testing.assert_close(again, alone)  # scalings restored


def test_errors_name_the_bad_expert(experts, expert_dirs, tmp_path):
    with pytest.raises(ExpertError, match="Sports!"):
        check_name("Sports!")
    with pytest.raises(ExpertError, match="adapter_config.json"):
        experts.add("empty", tmp_path)
    with pytest.raises(ExpertError, match="no expert named 'dance'"):
        experts.adapter_names(["dance"])
    with pytest.raises(ExpertError, match="no expert named 'ghost'"):
        experts.remove("ghost")


def peft_logits(model, batch, expert: str | None) -> torch.Tensor:
    """What peft itself computes for `expert` (None: no adapter), restoring its active adapters."""
    active = list(model.base_model.active_adapters)
    try:
        if expert is None:
            with model.disable_adapter():
                return model(**batch).logits
        model.base_model.set_adapter(expert)
        return model(**batch).logits
    finally:
        model.base_model.set_adapter(active)


def test_serving_through_peft_layers_computes_exactly_what_set_adapter_computes(tiny_base_model, expert_dirs):
    """Unmerged `serving` switches adapters without peft's `set_adapter` (whose cost grows with the
    number of loaded experts); the logits must be exactly peft's, for an expert and for the base."""
    experts = ExpertSet(load_base_model(tiny_base_model), merged=False)
    experts.sync({"sports": expert_dirs["sports"], "dance": expert_dirs["dance"]})
    model, batch = experts.lm.model, experts.lm._encode(TEXTS)
    active = list(model.base_model.active_adapters)
    with torch.inference_mode():
        with experts.serving("dance") as lm:
            served = lm.model(**batch).logits
        with experts.serving(None) as lm:
            served_base = lm.model(**batch).logits
        assert torch.equal(served, peft_logits(model, batch, "dance"))
        assert torch.equal(served_base, peft_logits(model, batch, None))
    assert not torch.equal(served, served_base)
    with experts.serving("sports"):
        pass
    assert list(model.base_model.active_adapters) == active  # the set's own state is untouched
    with pytest.raises(ExpertError, match="no expert named 'swim'"):
        with experts.serving("swim"):
            pass


def test_merged_serving_matches_peft_and_never_writes_the_shared_weights(experts, expert_dirs):
    """Merged serving (the default) runs an expert as W + its LoRA delta in private buffers: the same
    function as peft up to float rounding, the base bit for bit, and the backbone untouched however
    often experts are switched, so every other expert still computes exactly what it did."""
    experts.sync({"sports": expert_dirs["sports"], "dance": expert_dirs["dance"]})
    model, batch = experts.lm.model, experts.lm._encode(TEXTS)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.inference_mode():
        before = {name: peft_logits(model, batch, name) for name in ("sports", "dance", None)}
        served = {}
        for name in ("dance", None, "sports", "dance", None, "dance"):
            with experts.serving(name) as lm:
                assert lm.model is not model  # a wrapper-free view, not the peft model
                served[name] = lm.model(**batch).logits
        after = {name: peft_logits(model, batch, name) for name in ("sports", "dance", None)}
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert torch.equal(served[None], before[None])
    for name in ("sports", "dance"):
        torch.testing.assert_close(served[name], before[name], rtol=1e-4, atol=1e-4)
        assert (served[name] - before[None]).abs().max() > 1e-3


def test_merged_serving_follows_a_replaced_expert(experts, expert_dirs):
    experts.sync({"sports": expert_dirs["sports"]})
    batch = experts.lm._encode(TEXTS[:1])
    with torch.inference_mode():
        with experts.serving("sports") as lm:
            first = lm.model(**batch).logits
        experts.sync({"sports": expert_dirs["dance"]})  # same name, the dance adapter's weights
        with experts.serving("sports") as lm:
            replaced = lm.model(**batch).logits
        reference = peft_logits(experts.lm.model, batch, "sports")
    assert (first - replaced).abs().max() > 1e-3
    torch.testing.assert_close(replaced, reference, rtol=1e-4, atol=1e-4)


def test_an_expert_that_is_not_plain_lora_is_served_through_peft(experts, expert_dirs, tmp_path):
    """A DoRA expert changes more than W + B A: merging it would serve a different function, so it runs
    through peft's own layers, exactly as peft computes it."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(7)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, use_dora=True)
    model = get_peft_model(experts.lm.model, config)
    model.save_pretrained(tmp_path / "dora" / "adapter", save_embedding_layers=False)
    model.unload()
    experts.sync({"sports": expert_dirs["sports"], "dora": tmp_path / "dora"})
    batch = experts.lm._encode(TEXTS[:1])
    with torch.inference_mode():
        with experts.serving("dora") as lm:
            assert lm is experts.lm
            served = lm.model(**batch).logits
        assert torch.equal(served, peft_logits(experts.lm.model, batch, "dora"))
        with experts.serving("sports") as lm:
            assert lm is not experts.lm  # the plain LoRA expert beside it is still merged
