"""The worked example: a scenario the embedded tiny default does not know ("shows"), written out as BVH
files with captions, imported, trained as one expert next to the robot's shipped experts, signed, and
installed into the robot's store, where its requests now reach it and the old scenarios' stay put."""

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


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory) -> Path:
    """config/training/continual.yaml with small step counts: the flow, not the quality, is under test."""
    from motion_agent.config import config_dir

    data = yaml.safe_load((config_dir() / "training" / "continual.yaml").read_text())
    data["training"].update(steps=6, log_every=3, warmup_steps=2)
    data["router"]["autoencoder"].update(steps=60, folds=2)
    path = tmp_path_factory.mktemp("config") / "continual.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_your_clips_become_an_expert_the_robot_serves_beside_its_own(fast_config, tmp_path):
    base, shipped = default_base_model("tiny"), default_experts("tiny")
    if base is None or shipped is None:
        pytest.skip("this checkout has no embedded tiny model")
    corpus = write_corpus(tmp_path / "synth", CorpusConfig(motions=160, seed=3), progress=False)
    clips = export_scenario_clips(corpus, SCENARIO, tmp_path / "clips")
    argv = ["import", "--clips", str(clips), "--scenario", SCENARIO, "--captions", str(clips / "captions.tsv")]
    assert data_main([*argv, "--out", str(tmp_path / "shows")]) == 0

    robot = tmp_path / "robot-store"
    shutil.copytree(shipped, robot)
    (tmp_path / "keys").mkdir()
    generate_keypair(tmp_path / "keys" / "team.key")
    out = tmp_path / "run"
    argv = ["expert", "--corpus", str(tmp_path / "shows"), "--scenario", SCENARIO, "--base", str(base)]
    argv += ["--store", str(robot), "--deployed-corpus", str(corpus), "--config", str(fast_config)]
    argv += ["--out", str(out), "--key", str(tmp_path / "keys" / "team.key"), "--max-share", "0.5"]
    assert train_main(argv) == 0
    result = json.loads((out / "expert.json").read_text())
    assert result["deployed"] == sorted(json.loads((shipped / "index.json").read_text())["experts"])
    assert set(result["routing"]["before"]) == {SCENARIO, *result["deployed"]}
    assert (out / "report.md").read_text().startswith(f"# New expert: {SCENARIO}") and (out / "routing.png").is_file()
    assert (out / "expert" / "adapter" / "adapter_model.safetensors").is_file()

    from motion_agent.agent import AgentConfig, MotionAgent, RoutingConfig  # the robot, after the install
    from motion_agent.bundles.store import ExpertStore
    from motion_agent.model.base_model import BaseModelSpec

    keyring = tmp_path / "keyring"
    keyring.mkdir()
    shutil.copy(tmp_path / "keys" / "team.key.pub", keyring / "team.pub")
    spec = BaseModelSpec.read(base)
    installed = ExpertStore(robot).install(
        result["bundle"],
        keyring,
        backbone_fingerprint=spec.fingerprint,
        tokenizer_fingerprint=spec.tokenizer_fingerprint,
    )
    assert installed.name == SCENARIO
    agent = MotionAgent.from_config(AgentConfig(base_model=str(base), routing=RoutingConfig(experts=str(robot))))
    assert SCENARIO in agent.experts.names and set(result["deployed"]) <= set(agent.experts.names)
