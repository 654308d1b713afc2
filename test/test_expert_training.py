"""The worked example: a scenario the embedded tiny default has no expert for ("shows"), written out as BVH
files with captions, imported, trained as one expert next to the robot's shipped experts, signed, and
dropped into the inbox of the robot's running node, which then serves its requests with it while the old
scenarios' requests stay where they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from motion_agent.bundles.keys import generate_keypair
from motion_agent.model.base_model import default_base_model, default_experts
from training.cli import main as train_main
from training.data.cli import main as data_main
from training.data.clips import export_scenario_clips
from training.data.synth.corpus import CorpusConfig, write_corpus

SCENARIO = "shows"


def small_config(folder: Path, router_steps: int) -> Path:
    """config/training/continual.yaml with a few LoRA steps: the routing, not the motion quality, is under test."""
    from motion_agent.config import config_dir

    data = yaml.safe_load((config_dir() / "training" / "continual.yaml").read_text())
    data["training"].update(steps=6, log_every=3, warmup_steps=2)
    data["router"]["autoencoder"].update(steps=router_steps)
    path = folder / f"continual-{router_steps}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory) -> Path:
    return small_config(tmp_path_factory.mktemp("config"), router_steps=600)  # the shipped router settings


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small procedural corpus: the new clips come from it, and the deployed scenarios' requests."""
    if default_base_model("tiny") is None or default_experts("tiny") is None:
        pytest.skip("this checkout has no embedded tiny model")
    return write_corpus(tmp_path_factory.mktemp("synth"), CorpusConfig(motions=160, seed=3), progress=False)


def untrained_evaluator(corpus: Path, folder: Path) -> Path:
    """A small evaluator with random weights: exercises the scoring path in seconds."""
    import torch

    from training.data.humanml3d import HumanML3D
    from training.data.synth.emotions import EMOTIONS
    from training.evaluation.evaluator import Evaluator, EvaluatorConfig, EvaluatorModelConfig

    data = HumanML3D(corpus)
    torch.manual_seed(0)
    small = EvaluatorModelConfig(latent_dim=32, motion_hidden=32, text_hidden=32, emotions=tuple(EMOTIONS))
    Evaluator(EvaluatorConfig(model=small), data.mean, data.std).eval().save(folder)
    return folder


def expert_argv(corpus: Path, clips_corpus: Path, scenario: str, robot: Path, config: Path, out: Path) -> list[str]:
    argv = ["expert", "--corpus", str(clips_corpus), "--scenario", scenario, "--base", str(default_base_model("tiny"))]
    return argv + ["--store", str(robot), "--deployed-corpus", str(corpus), "--config", str(config), "--out", str(out)]


@pytest.mark.ros
@pytest.mark.slow
def test_your_clips_become_an_expert_the_robot_serves_beside_its_own(ros, corpus, fast_config, tmp_path):
    base, shipped = default_base_model("tiny"), default_experts("tiny")
    clips = export_scenario_clips(corpus, SCENARIO, tmp_path / "clips")
    argv = ["import", "--clips", str(clips), "--scenario", SCENARIO, "--captions", str(clips / "captions.tsv")]
    assert data_main([*argv, "--out", str(tmp_path / "shows")]) == 0

    robot = tmp_path / "robot-store"
    shutil.copytree(shipped, robot)
    (tmp_path / "keys").mkdir()
    generate_keypair(tmp_path / "keys" / "team.key")
    out = tmp_path / "run"
    argv = expert_argv(corpus, tmp_path / "shows", SCENARIO, robot, fast_config, out)
    argv += ["--key", str(tmp_path / "keys" / "team.key"), "--max-share", "0.5"]
    argv += ["--evaluator", str(untrained_evaluator(tmp_path / "shows", tmp_path / "evaluator"))]
    assert train_main(argv) == 0
    result = json.loads((out / "expert.json").read_text())
    assert result["deployed"] == sorted(json.loads((shipped / "index.json").read_text())["experts"])
    assert set(result["routing"]["before"]) == {SCENARIO, *result["deployed"]}
    assert result["routing"]["before"][SCENARIO] == {"unknown": result["test_requests"]}  # no expert knew shows
    assert result["new"]["routed_to_new"] >= 0.5 and max(result["taken_from_deployed"].values()) <= 0.2
    for when in ("before", "after"):  # an untrained evaluator: the figures exist, their values mean nothing
        assert 0.0 <= result["scores"][when]["t2m_r_precision_top3"] <= 1.0
    assert "t2m_r_precision_top3, before -> after" in (out / "report.md").read_text()
    assert result["tokenizer_reach"]["warning"] is None  # shows is within the shipped tokenizer's reach
    assert "motion tokenizer joint error on the held-out clips" in (out / "report.md").read_text()
    accuracy = result["deployed_routing_accuracy"]
    assert accuracy["after"] >= accuracy["before"] - 0.02
    assert (out / "report.md").read_text().startswith(f"# New expert: {SCENARIO}") and (out / "routing.png").is_file()
    assert (out / "expert" / "adapter" / "adapter_model.safetensors").is_file()

    served = robot_serves_it_from_its_inbox(ros, base, robot, tmp_path, Path(result["bundle"]), corpus)
    assert served["installed"] == SCENARIO
    new_before, new_after = served["new"]
    assert new_before.count(SCENARIO) == 0 and new_after.count(SCENARIO) >= len(new_after) / 2
    old_before, old_after = served["deployed"]
    moved = [(b, a) for b, a in zip(old_before, old_after) if b != a]
    assert all(a == SCENARIO for _, a in moved) and len(moved) <= 0.2 * len(old_before)  # as before, or the new one


def robot_serves_it_from_its_inbox(ros, base: Path, store: Path, tmp_path: Path, bundle: Path, corpus: Path) -> dict:
    """The robot with installs on (node.keyring, node.bundle_inbox), in process over real topics: held-out
    requests of the new and the deployed scenarios, then the bundle dropped into its inbox while it
    serves, then the same requests again. Returns who served each, before and after."""
    from std_msgs.msg import String

    from motion_agent.bundles.store import ExpertStore
    from training.data.humanml3d import HumanML3D

    from conftest import Harness

    keyring, inbox = tmp_path / "keyring", tmp_path / "inbox"
    keyring.mkdir()
    shutil.copy(tmp_path / "keys" / "team.key.pub", keyring / "team.pub")
    config = tmp_path / "robot.yaml"
    config.write_text(
        f"agent: {{base_model: {base}, routing: {{experts: {store}}}}}\n"
        f"node: {{text_topics: [test_text], diagnostics_topic: test_diagnostics, caption: false, "
        f"keyring: {keyring}, bundle_inbox: {inbox}, deploy_topic: test_deploy, store_poll_s: 0.2}}\n"
    )
    deployed = sorted(ExpertStore(store).active_experts())
    held_out = HumanML3D(tmp_path / SCENARIO).clips("test") + HumanML3D(tmp_path / SCENARIO).clips("val")
    new_requests = [clip.captions[0].text for clip in held_out]
    old_clips = [c for c in HumanML3D(corpus).clips("test") if c.scenario in deployed]
    old_requests = [c.captions[0].text for name in deployed for c in [o for o in old_clips if o.scenario == name][:2]]
    harness = Harness(ros, config)

    def serve(texts: list[str]) -> list[str]:
        experts = []
        for text in texts:  # one at a time, each answer awaited: the statuses seen are this request's
            harness.statuses.clear()
            harness.text.publish(String(data=text))
            experts.append(harness.spin_until(lambda t=text: harness.status("request", "OK", request=t))["expert"])
        return experts

    try:
        before = serve(new_requests), serve(old_requests)
        shutil.copy(bundle, inbox / ".partial")  # delivered as a file sync would: copied, then renamed
        (inbox / ".partial").rename(inbox / bundle.name)
        installed = harness.spin_until(lambda: harness.status("expert install", "OK", expert=SCENARIO))
        after = serve(new_requests), serve(old_requests)
    finally:
        harness.close()
    return {"installed": installed["expert"], "new": (before[0], after[0]), "deployed": (before[1], after[1])}


@pytest.mark.slow
def test_an_expert_that_would_take_a_deployed_scenarios_requests_is_refused(corpus, fast_config, tmp_path, capsys):
    """Dance clips under a new name: the new expert (its router fully trained) would take dance's requests,
    so no bundle is written."""
    clips = export_scenario_clips(corpus, "dance", tmp_path / "clips")
    argv = ["import", "--clips", str(clips), "--scenario", "party", "--captions", str(clips / "captions.tsv")]
    assert data_main([*argv, "--out", str(tmp_path / "party")]) == 0
    (tmp_path / "keys").mkdir()
    generate_keypair(tmp_path / "keys" / "team.key")
    out = tmp_path / "run"
    argv = expert_argv(corpus, tmp_path / "party", "party", default_experts("tiny"), fast_config, out)
    assert train_main([*argv, "--key", str(tmp_path / "keys" / "team.key")]) == 1
    result = json.loads((out / "expert.json").read_text())
    assert result["refused"] and result["taken_from_deployed"]["dance"] > 0.10
    assert "takes" in capsys.readouterr().err and "dance's requests" in result["refusal"]
    assert not (out / "party.tar").exists() and "**Refused:**" in (out / "report.md").read_text()


def test_clips_the_motion_tokenizer_cannot_write_are_flagged_before_anyone_waits_for_a_gain(tmp_path):
    """Fitness (jumping jacks, squats, lunges...) is beyond the shipped tokenizer; the corpus's own
    scenarios are not: the reach check warns for the first and stays silent for the second."""
    from motion_agent.model.base_model import tokenizer_folder
    from motion_agent.model.tokenizer import MotionTokenizer
    from training.data.humanml3d import HumanML3D
    from training.expert.reach import REACH_WARNING_RATIO, tokenizer_reach

    if default_base_model("tiny") is None:
        pytest.skip("this checkout has no embedded tiny model")
    tokenizer = MotionTokenizer.load(tokenizer_folder(default_base_model("tiny"))).eval()
    fitness = write_corpus(
        tmp_path / "fitness", CorpusConfig(motions=20, seed=5, scenarios=("fitness",)), progress=False
    )
    known = write_corpus(tmp_path / "known", CorpusConfig(motions=48, seed=5), progress=False)
    new_clips, known_clips = HumanML3D(fitness).clips("all"), HumanML3D(known).clips("all")
    beyond = tokenizer_reach(tokenizer, new_clips, known_clips)
    assert beyond["ratio"] > REACH_WARNING_RATIO and "cannot write" in beyond["warning"]
    within = tokenizer_reach(tokenizer, known_clips[0::2], known_clips[1::2])  # other motions of the same actions
    assert within["ratio"] < REACH_WARNING_RATIO and within["warning"] is None
