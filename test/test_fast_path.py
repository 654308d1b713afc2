"""The onnxruntime language model (agent.language_model.backend: onnx) against the transformers reference:
at float32 it must decode what the reference decodes, with and without experts, and serve an expert
installed while the agent runs."""

import json
from dataclasses import replace

import numpy as np
import pytest

from motion_agent.agent import AgentConfig, MotionAgent, RoutingConfig
from motion_agent.experts.expert_set import ExpertError, ExpertSet
from motion_agent.experts.lora_factors import LoraFactors
from motion_agent.experts.onnx_expert_set import OnnxExpertSet
from motion_agent.model.base_model import load_base_model
from motion_agent.model.onnx_decoder import TARGETS
from motion_agent.model.onnx_language_model import LanguageModelRuntime, OnnxLanguageModel
from training.synthetic_experts import ExpertRecipe, write_expert

TEXTS = ["a person waves happily", "a man jumps angrily for 3 seconds", "someone walks slowly and sadly"]
FLOAT32 = LanguageModelRuntime(weights="float32")
EVERY_PROJECTION = ExpertRecipe(lora={"r": 4, "lora_alpha": 8, "target_modules": list(TARGETS)})


@pytest.fixture(scope="module")
def models(tiny_base_model, tmp_path_factory):
    """(reference lm, its float32 onnx twin, {name: expert folder}) with two random experts on every
    projection (and one on q/v only, as the synthetic experts of other tests)."""
    lm = load_base_model(tiny_base_model)
    fast = OnnxLanguageModel(lm, FLOAT32)
    root = tmp_path_factory.mktemp("fast_experts")
    folders = {
        "alpha": write_expert(lm, root / "alpha", 1, recipe=EVERY_PROJECTION),
        "beta": write_expert(lm, root / "beta", 2, recipe=EVERY_PROJECTION),
        "qv": write_expert(lm, root / "qv", 3),
    }
    return lm, fast, folders


def greedy(lm):
    return replace(lm.config, temperature=0.0)


def test_float32_decodes_the_references_motions_and_captions(models):
    lm, fast, _ = models
    for text in TEXTS:
        for config in (greedy(lm), lm.config):  # greedy, and sampled from the same seed
            expected = lm.generate_motion([text], seed=7, config=config)[0]
            np.testing.assert_array_equal(fast.generate_motion([text], seed=7, config=config)[0], expected)
    codes = lm.generate_motion(TEXTS, config=greedy(lm))
    assert fast.caption(codes) == lm.caption(codes)


def test_a_duration_fixes_the_length_and_the_stream_yields_the_same_codes(models):
    lm, fast, _ = models
    codes = fast.generate_motion(["a person waves for 3 seconds"])[0]
    assert len(codes) == lm.config.tokens_for(3.0)
    np.testing.assert_array_equal(np.fromiter(fast.stream_motion("a person waves for 3 seconds"), np.int64), codes)


def test_experts_served_from_their_factors_decode_as_through_peft(models):
    lm, fast, folders = models
    reference, onnx = ExpertSet(lm), OnnxExpertSet(fast)
    for name, folder in folders.items():
        reference.add(name, folder)
        onnx.add(name, folder)
    try:
        for name in (*folders, None):
            with reference.serving(name) as ref, onnx.serving(name) as served:
                for text in TEXTS:
                    expected = ref.generate_motion([text], config=greedy(lm))[0]
                    np.testing.assert_array_equal(served.generate_motion([text], config=greedy(lm))[0], expected)
        weights = {"alpha": 0.7, "beta": 0.3}
        with reference.blended(weights) as ref, onnx.blended(weights) as served:
            expected = ref.generate_motion(TEXTS[:1], config=greedy(lm))[0]
            np.testing.assert_array_equal(served.generate_motion(TEXTS[:1], config=greedy(lm))[0], expected)
        with onnx.serving("alpha") as alpha, onnx.serving(None) as base:  # an expert changes what comes out
            assert not np.array_equal(*(m.generate_motion(TEXTS[:1], config=greedy(lm))[0] for m in (alpha, base)))
    finally:
        for name in folders:
            reference.remove(name)


def test_factors_take_the_memory_of_the_adapter_file(models):
    _, fast, folders = models
    for folder in folders.values():
        size = (folder / "adapter" / "adapter_model.safetensors").stat().st_size
        assert LoraFactors.load(folder, fast.shape).nbytes <= size


def test_adapters_that_are_more_than_plain_lora_are_refused_by_name(models, tmp_path):
    import shutil

    _, fast, folders = models
    shutil.copytree(folders["qv"], tmp_path / "dora")
    config_path = tmp_path / "dora" / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"use_dora": True}))
    with pytest.raises(ExpertError, match="use_dora = True is not served by the ONNX decoder"):
        OnnxExpertSet(fast).add("dora", tmp_path / "dora")
    with pytest.raises(ExpertError, match="no expert named 'missing'"):
        with OnnxExpertSet(fast).serving("missing"):
            pass


def test_an_expert_installed_while_serving_is_served_by_the_fast_path(tiny_base_model, expert_bundles, tmp_path):
    keyring, bundles = expert_bundles
    config = AgentConfig(
        base_model=str(tiny_base_model), routing=RoutingConfig(experts=str(tmp_path / "store")), language_model=FLOAT32
    )
    agent = MotionAgent.from_config(config)
    assert isinstance(agent.experts, OnnxExpertSet)
    request = "a juggler juggles three balls happily"
    before = agent.generate(request, seed=3)
    agent.install_bundle(bundles["juggling"], keyring)
    after = agent.generate(request, seed=3)
    assert before.expert == "base" and after.expert == "juggling"
    folder = agent.store.active_experts()["juggling"]
    bound = agent.experts.lm.with_factors(LoraFactors.load(folder, agent.experts.lm.shape))
    np.testing.assert_array_equal(after.codes, bound.generate_motion([request], seed=3)[0])
    assert not np.array_equal(after.codes, before.codes)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("backend", "tensorrt", "backend must be one of onnx, torch"),
        ("weights", "int2", "weights must be one of"),
        ("block_size", 48, "power of two"),
        ("threads", -1, "threads must be >= 0"),
    ],
)
def test_runtime_settings_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelRuntime(**{field: value})


# --- streaming (motion_agent.streaming) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_agent(tiny_base_model):
    return MotionAgent.from_config(AgentConfig(base_model=str(tiny_base_model), language_model=FLOAT32))


def largest_step(joints: np.ndarray) -> float:
    """The largest distance any joint moves from one frame to the next, metres."""
    return float(np.linalg.norm(np.diff(joints, axis=0), axis=-1).max())


def test_a_streamed_motion_grows_by_chunks_that_never_change_what_was_sent(fast_agent):
    chunks = []
    result = fast_agent.generate("a person waves happily for 8 seconds", on_chunk=chunks.append)
    assert len(chunks) >= 3 and [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    for earlier, later in zip(chunks, chunks[1:]):
        assert len(later.joints) > len(earlier.joints)
        np.testing.assert_array_equal(later.joints[: len(earlier.joints)], earlier.joints)
        sent = len(earlier.trajectory.times)  # the robot's trajectory, resampled to its own rate
        np.testing.assert_array_equal(later.trajectory.times[:sent], earlier.trajectory.times)
        np.testing.assert_allclose(later.trajectory.positions[:sent], earlier.trajectory.positions, atol=1e-9)
    np.testing.assert_array_equal(chunks[-1].joints, result.joints)
    assert len(result.joints) == 4 * len(result.codes) == 160
    assert 0 < result.first_chunk_ms < sum(result.timings_ms.values()) and "decode" in result.timings_ms
    # the seams join: no frame step larger than the motion decoded whole has (each prefix decode alone
    # stands off the committed frames by tens of centimetres)
    assert largest_step(result.joints) <= 1.25 * largest_step(fast_agent.decode(result.codes)) + 0.01


def test_without_streaming_one_final_chunk_is_the_whole_decode(tiny_base_model):
    from motion_agent.streaming import StreamConfig

    config = AgentConfig(base_model=str(tiny_base_model), language_model=FLOAT32, stream=StreamConfig(enabled=False))
    agent = MotionAgent.from_config(config)
    chunks = []
    result = agent.generate("a person waves happily for 2 seconds", on_chunk=chunks.append)
    assert len(chunks) == 1 and chunks[0].final
    np.testing.assert_array_equal(result.joints, agent.decode(result.codes))
