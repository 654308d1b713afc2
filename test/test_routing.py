"""Routers: autoencoder (hard and soft), Mahalanobis, key gate, oracle; router files."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from motion_agent.experts.prompt_features import prompt_features
from motion_agent.experts.routing import AutoencoderRouter, Decision, ExpertRouter, RouterError
from motion_agent.model.base_model import load_base_model
from motion_agent.model.language_model import t2m_prompt
from training.continual.router_training import AutoencoderSettings, fit_autoencoder
from training.continual.routers import KeyGate, MahalanobisRouter, OracleRouter

from conftest import family_requests

DIM = 24


def cluster(centre: float, count: int, seed: int) -> np.ndarray:
    """Inputs of one task: a shifted Gaussian with a task-specific low-dimensional structure."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(int(centre * 10) + 100).normal(size=(3, DIM))
    return (centre + rng.normal(size=(count, 3)) @ basis + 0.05 * rng.normal(size=(count, DIM))).astype(np.float32)


SETTINGS = AutoencoderSettings(steps=400, bottleneck=3, folds=3)


@pytest.fixture(scope="module")
def router() -> AutoencoderRouter:
    """Texts of walk and dance lie in two clusters, their motions in two others; dance serves texts only."""
    return AutoencoderRouter(
        {
            "walk": ExpertRouter(
                {
                    "t2m": fit_autoencoder(cluster(0.0, 250, 0), SETTINGS),
                    "m2t": fit_autoencoder(cluster(8.0, 250, 1), SETTINGS),
                }
            ),
            "dance": ExpertRouter({"t2m": fit_autoencoder(cluster(4.0, 250, 2), SETTINGS)}),
        }
    )


def test_held_out_inputs_go_to_their_expert_and_a_third_task_is_unknown(router):
    assert [d.expert for d in router.route(cluster(0.0, 40, 10), "t2m")].count("walk") >= 38
    assert [d.expert for d in router.route(cluster(4.0, 40, 11), "t2m")].count("dance") >= 38
    third = router.route(cluster(-6.0, 40, 12), "t2m")
    assert sum(d.expert is None for d in third) >= 38
    assert third[0].label == "unknown" and set(third[0].scores) == {"walk", "dance"}


def test_each_direction_has_its_own_autoencoders_and_thresholds(router):
    """walk's motions are accepted as motions only; dance, which serves no motion, never sees one."""
    motions = router.route(cluster(8.0, 40, 13), "m2t")
    assert [d.expert for d in motions].count("walk") >= 38 and set(motions[0].scores) == {"walk"}
    assert sum(d.expert is None for d in router.route(cluster(8.0, 40, 13), "t2m")) >= 38
    assert sum(d.expert is None for d in router.route(cluster(0.0, 40, 10), "m2t")) >= 38
    assert np.median(router.novelty(cluster(8.0, 9, 14), "m2t")) < 1 < router.novelty(cluster(8.0, 9, 14), "t2m").min()


def test_thresholds_come_from_held_out_losses_not_training_losses():
    """An autoencoder reconstructs the inputs it was fitted on better than new ones of the same task;
    cross-fitting sets the threshold on losses of inputs each fold's autoencoder never saw."""
    inputs = cluster(0.0, 60, 20)
    memorised = fit_autoencoder(inputs, replace(SETTINGS, steps=600, bottleneck=8, noise=0.0, folds=1))
    crossfit = fit_autoencoder(inputs, replace(SETTINGS, steps=600, bottleneck=8, noise=0.0, folds=3))
    fresh = crossfit.loss(cluster(0.0, 200, 21))
    assert crossfit.loss_mean > memorised.loss_mean
    assert (fresh <= crossfit.threshold).mean() > (fresh <= memorised.threshold).mean()
    with pytest.raises(ValueError, match="groups has 3 entries"):
        fit_autoencoder(inputs, SETTINGS, groups=np.arange(3))


def test_experts_routed_together_score_as_each_alone(router):
    """Routing runs every expert's autoencoder in one batched pass; the losses are each one's own."""
    inputs = cluster(2.0, 6, 30)
    names, losses = router.losses(inputs, "t2m")
    assert names == ["walk", "dance"]
    for column, name in enumerate(names):
        np.testing.assert_allclose(losses[:, column], router.experts[name].autoencoders["t2m"].loss(inputs), rtol=1e-5)


def test_soft_weights_favour_the_owner_and_sum_to_one(router):
    weights = router.soft_weights(cluster(4.0, 5, 13), "t2m", temperature=1.0)
    for row in weights:
        assert sum(row.values()) == pytest.approx(1.0)
        assert row["dance"] > row["walk"]


def test_router_file_round_trips_exactly_and_refuses_other_files(router, tmp_path):
    router.experts["walk"].save(tmp_path / "walk")
    loaded = ExpertRouter.load(tmp_path / "walk")
    assert list(loaded.autoencoders) == ["t2m", "m2t"]
    for direction, original in router.experts["walk"].autoencoders.items():
        inputs = cluster(0.0, 8, 14)
        np.testing.assert_array_equal(loaded.autoencoders[direction].loss(inputs), original.loss(inputs))
        assert loaded.autoencoders[direction].threshold == original.threshold
    with pytest.raises(RouterError, match="has no router"):
        ExpertRouter.load(tmp_path / "missing")
    from safetensors.torch import save_file

    (tmp_path / "odd" / "router").mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, tmp_path / "odd" / "router" / "router.safetensors", metadata={"kind": "gate"})
    with pytest.raises(RouterError, match="not an autoencoder router"):
        ExpertRouter.load(tmp_path / "odd")
    from motion_agent.experts.prompt_features import FEATURE_KIND

    save_file(
        {"x": torch.zeros(1)},
        tmp_path / "odd" / "router" / "router.safetensors",
        metadata={"kind": "autoencoder", "features": FEATURE_KIND, "directions": "t2m"},
    )
    with pytest.raises(RouterError, match="incomplete"):
        ExpertRouter.load(tmp_path / "odd")


def test_a_router_of_the_earlier_one_autoencoder_format_serves_both_directions(router, tmp_path):
    """Experts installed before routers had one autoencoder per direction keep working."""
    from safetensors.torch import save_file

    from motion_agent.experts.prompt_features import FEATURE_KIND

    walk = router.experts["walk"].autoencoders["t2m"]
    tensors, sizes = walk.tensors("t2m")
    (tmp_path / "old" / "router").mkdir(parents=True)
    save_file(
        {k[4:]: v for k, v in tensors.items()},
        tmp_path / "old" / "router" / "router.safetensors",
        metadata={"kind": "autoencoder", "features": FEATURE_KIND, **{k[4:]: v for k, v in sizes.items()}},
    )
    loaded = ExpertRouter.load(tmp_path / "old")
    inputs = cluster(0.0, 8, 14)
    for direction in ("t2m", "m2t"):
        np.testing.assert_array_equal(loaded.autoencoders[direction].loss(inputs), walk.loss(inputs))
        assert loaded.autoencoders[direction].threshold == walk.threshold


def test_mahalanobis_router_routes_and_rejects():
    maha = MahalanobisRouter.fit({"walk": cluster(0.0, 200, 0), "dance": cluster(4.0, 200, 2)})
    assert [d.expert for d in maha.route(cluster(4.0, 20, 5))].count("dance") >= 19
    assert sum(d.expert is None for d in maha.route(cluster(-6.0, 20, 6))) >= 19


def test_key_gate_keys_are_orthonormal_and_scores_are_probabilities():
    gate = KeyGate(DIM, rank=4, key_dim=8)
    for name in ("a", "b", "c"):
        gate.add_expert(name)
    torch.testing.assert_close(gate.keys @ gate.keys.T, torch.eye(3), atol=1e-5, rtol=0)
    decisions = gate.route(cluster(0.0, 3, 0))
    assert all(sum(d.scores.values()) == pytest.approx(1.0) for d in decisions)
    assert all(d.expert in ("a", "b", "c") for d in decisions)


def test_key_gate_keeps_the_top_k_of_the_allowed_experts_and_saves_without_pickle(tmp_path):
    torch.manual_seed(0)
    gate = KeyGate(DIM, rank=4, key_dim=8, top_k=2)
    for name in ("a", "b", "c", "d"):
        gate.add_expert(name)
    x = torch.as_tensor(cluster(1.0, 6, 1))
    probs = gate(x)
    assert torch.allclose(probs.sum(1), torch.ones(6)) and ((probs > 0).sum(1) == 2).all()
    allowed = torch.tensor([[False, True, True, False]] * 6)  # e.g. earlier experts masked in training
    masked = gate(x, allowed)
    assert (masked[:, [0, 3]] == 0).all() and torch.allclose(masked.sum(1), torch.ones(6))
    gate.save(tmp_path)
    again = KeyGate.load(tmp_path)
    assert again.names == gate.names and again.top_k == 2
    with torch.no_grad():
        assert torch.equal(again(x), probs.detach())


def test_oracle_router_follows_the_label():
    oracle = OracleRouter({"task_a": "sports"})
    assert oracle.route_labels(["task_a", "task_z"]) == [Decision("sports", {}), Decision(None, {})]


def test_copies_of_one_recording_never_vouch_for_it_when_the_threshold_is_cross_fitted(tiny_base_model):
    """A small imported set: 20 recordings, each with augmented copies that carry its captions. With the
    copies in other folds the held-out losses are those of inputs already seen, the threshold collapses
    and the scenario's own new requests are refused; grouped by recording, they are accepted."""
    from training.base.train import Example
    from training.continual.router_training import direction_prompts

    lm = load_base_model(tiny_base_model)
    texts = family_requests("juggling", 26, 0)
    copies = [
        Example(np.zeros(4, np.int64), [t], source=f"clip_{i}.bvh") for i, t in enumerate(texts[:20]) for _ in range(6)
    ]
    prompts, groups = direction_prompts(lm, copies, "t2m")
    assert len(set(groups)) == 20 and all(len(set(groups[i * 6 : i * 6 + 6])) == 1 for i in range(20))
    features = prompt_features(lm, prompts)
    settings = AutoencoderSettings(steps=400, folds=5)
    leaky = fit_autoencoder(features, settings, groups=np.arange(len(prompts)))
    grouped = fit_autoencoder(features, settings, groups=groups)
    fresh = prompt_features(lm, [t2m_prompt(text) for text in texts[20:]])
    assert grouped.threshold > leaky.threshold
    assert (grouped.loss(fresh) <= grouped.threshold).sum() > (leaky.loss(fresh) <= leaky.threshold).sum()


def test_a_router_on_prompt_features_tells_clearly_different_tasks_apart(tiny_base_model):
    """Real features of the frozen base model: two request families route correctly, a third is unknown."""
    lm = load_base_model(tiny_base_model)

    def features(family: str, count: int, seed: int) -> np.ndarray:
        return prompt_features(lm, [t2m_prompt(text) for text in family_requests(family, count, seed)])

    settings = AutoencoderSettings(steps=400, folds=3)
    router = AutoencoderRouter(
        {
            family: ExpertRouter({"t2m": fit_autoencoder(features(family, 160, 0), settings)})
            for family in ("juggling", "piano")
        }
    )
    for family in ("juggling", "piano"):
        routed = [d.expert for d in router.route(features(family, 30, 2), "t2m")]
        assert routed.count(family) >= 26, routed  # mu + k sigma rejects a few by design
    unknown = [d.expert for d in router.route(features("swimming", 30, 2), "t2m")]
    assert unknown.count(None) >= 24, unknown


def test_features_with_the_instruction_cached_equal_those_of_whole_prompts(tiny_base_model):
    """Routing runs only a request's own tokens, attending to the instruction's cached keys and values;
    the features must be those of the whole prompt (routers trained on either path stay valid)."""
    from motion_agent.experts import prompt_features as routing
    from motion_agent.model.language_model import m2t_prompt

    lm = load_base_model(tiny_base_model)
    texts = ["wave", "a person dances happily for a long while, turning and jumping", "someone sits down"]
    motions = [m2t_prompt(lm.vocabulary, np.arange(4 + 9 * i) % 32) for i in range(3)]

    def whole(prompts: list[str]) -> np.ndarray:
        with routing.running_adapters(lm.model, []), torch.no_grad():
            hidden, mask = routing._prompt_states(lm, prompts)
        mask = mask.unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    for prompts in ([t2m_prompt(t) for t in texts], motions):
        cached = prompt_features(lm, prompts)
        assert np.allclose(cached, whole(prompts), atol=1e-5)
        assert np.allclose(prompt_features(lm, prompts[:1]), cached[:1], atol=1e-5)  # alone or in a batch
    mixed = [t2m_prompt(texts[0]), motions[0]]  # no shared instruction: the whole prompts
    assert np.allclose(prompt_features(lm, mixed), whole(mixed), atol=1e-5)


def test_features_come_from_the_first_half_of_the_layers_and_leave_the_backbone_whole(tiny_base_model):
    """Routing stops halfway through the backbone to be cheap; the layers it skips must stay in the
    backbone that generates."""
    lm = load_base_model(tiny_base_model)
    decoder = lm.network.get_decoder()
    layers = lm.model.config.num_hidden_layers
    batch = lm.tokenizer("a person waves", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = lm.model(**batch, output_hidden_states=True)
    features = prompt_features(lm, ["a person waves"])  # no instruction: every token is pooled
    with torch.no_grad():
        after = lm.model(**batch).logits
    assert len(decoder.layers) == layers and torch.equal(before.logits, after)
    with torch.no_grad():
        expected = decoder.norm(before.hidden_states[(layers + 1) // 2]).mean(1).numpy()
    assert np.allclose(features, expected, atol=1e-5)


def test_onnx_trunk_gives_the_features_routers_were_trained_on(tiny_base_model):
    """The agent routes on features from the trunk exported to onnxruntime; routers are trained on
    transformers' features, so the two must agree, for texts and motion prompts, alone or batched."""
    from motion_agent.experts.onnx_trunk import OnnxPromptFeatures
    from motion_agent.model.language_model import m2t_prompt

    lm = load_base_model(tiny_base_model)
    prompts = [t2m_prompt(t) for t in ("wave", "a person dances happily for a long while, turning and jumping")]
    prompts += [m2t_prompt(lm.vocabulary, np.arange(4 + 9 * i) % 32) for i in range(2)] + ["no instruction here", "x"]
    onnx = OnnxPromptFeatures(lm)
    batched = onnx(prompts)
    assert batched.shape == (len(prompts), lm.model.config.hidden_size) and batched.dtype == np.float32
    assert np.allclose(batched, prompt_features(lm, prompts), atol=1e-5)
    assert np.allclose(np.concatenate([onnx([p]) for p in prompts]), batched, atol=1e-5)  # batch-independent
    assert onnx([]).shape == (0, lm.model.config.hidden_size)
