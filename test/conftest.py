"""Test-wide settings: every test process talks ROS 2 on its own domain, on loopback only, so that
parallel runs on one machine (or a developer's own ROS 2 graph) never hear each other."""
import os

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from motion_agent.nodes.launcher import stop_node  # noqa: E402

TINY_CODEBOOK = 32


def build_tiny_base_model(root: Path) -> Path:
    """A corpus, a small tokenizer and a briefly trained `tiny` base model under `root`; returns the
    base-model folder (what `motion-agent-train base` writes). The recipe of test_language_model's
    `base_dir`, cut further (40 motions, 20 tokenizer steps, 4 base steps): tests of the agent and its
    nodes need the files and the plumbing, not a model that has learned anything. About 15 s on 2 cores."""
    from motion_agent.model.tokenizer import TokenizerConfig
    from training.base.train import BaseRunConfig, BaseTrainingConfig, train_base
    from training.data.synth.corpus import CorpusConfig, write_corpus
    from training.tokenizer.cli import load_humanml3d
    from training.tokenizer.train import TrainingOptions, train_tokenizer

    write_corpus(root / "corpus", CorpusConfig(motions=40, seed=0))
    data = load_humanml3d(root / "corpus", 32)
    train_tokenizer(
        data.train, data.val, TokenizerConfig(codebook_size=TINY_CODEBOOK, code_dim=16, width=32, depth=1),
        root / "tok", 20, 8, 32, 3e-3, 0, resume=False,
        options=TrainingOptions(warmup_steps=5, checkpoint_every=1000, val_every=0),
        mean=data.mean, std=data.std, progress=False,
    )
    config = BaseTrainingConfig(training=BaseRunConfig(steps=4, batch_size=4, log_every=4, val_batches=1))
    train_base(root / "corpus", root / "tok" / "tokenizer", root / "base", config, progress=False)
    return root / "base"


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """The folder of a tiny base model, built once per test session (see build_tiny_base_model)."""
    return build_tiny_base_model(tmp_path_factory.mktemp("tiny_base"))


FAMILIES = {  # clearly different request families, for experts and routers that must tell them apart
    "juggling": (["a juggler", "the performer", "a clown"], ["juggles three balls", "tosses clubs in the air", "juggles rings"]),
    "piano": (["a pianist", "the musician", "an artist"], ["plays the piano", "presses piano keys", "performs a sonata on a piano"]),
    "swimming": (["a swimmer", "the athlete", "a diver"], ["swims breaststroke", "dives into the pool", "floats on water"]),
}
MOODS = ["happily", "sadly", "angrily", "calmly", "nervously", "proudly"]


def family_requests(family: str, count: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    subjects, verbs = FAMILIES[family]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(MOODS)}" for _ in range(count)]


def write_expert(lm, folder: Path, seed: int, family: str | None = None) -> Path:
    """An expert folder as training writes it: a random (non-zero) LoRA adapter, eval.json and, given a
    request family, an autoencoder router fitted on that family's T2M prompts (it serves no M2T request)."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from motion_agent.model.language_model import t2m_prompt
    from motion_agent.experts.prompt_features import prompt_features
    from motion_agent.experts.routing import ExpertRouter
    from training.continual.router_training import AutoencoderSettings, fit_autoencoder

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(lm.model, config)
    model.save_pretrained(folder / "adapter", save_embedding_layers=False)
    model.unload()  # takes the LoRA layers out of the shared base model again
    (folder / "eval.json").write_text(json.dumps({"family": family}))
    if family:
        features = prompt_features(lm, [t2m_prompt(t) for t in family_requests(family, 160, seed)])
        ExpertRouter({"t2m": fit_autoencoder(features, AutoencoderSettings(steps=400, folds=3))}).save(folder)
    return folder


@pytest.fixture(scope="session")
def expert_bundles(tiny_base_model, tmp_path_factory):
    """(keyring folder, {family: signed bundle}) for three experts of the tiny base model (juggling,
    piano, swimming), each with an autoencoder router fitted on its request family."""
    import shutil

    from motion_agent.model.base_model import BaseModelSpec, load_base_model
    from motion_agent.bundles.archive import pack_bundle
    from motion_agent.bundles.keys import generate_keypair, load_private_key

    root = tmp_path_factory.mktemp("expert_bundles")
    lm = load_base_model(tiny_base_model)
    spec = BaseModelSpec.read(tiny_base_model)
    generate_keypair(root / "release.key")
    (root / "keyring").mkdir()
    shutil.copy(root / "release.key.pub", root / "keyring" / "release.pub")
    bundles = {}
    for seed, family in enumerate(FAMILIES):
        folder = write_expert(lm, root / family, seed, family)
        bundles[family] = root / f"{family}.tar"
        pack_bundle(folder, bundles[family], load_private_key(root / "release.key"), name=family, scenario=family,
                    version="1.0.0", backbone_fingerprint=spec.fingerprint, tokenizer_fingerprint=spec.tokenizer_fingerprint)
    return root / "keyring", bundles


stop_process = partial(stop_node, grace_s=30.0)  # a node or launcher child, stopped as a user would


@pytest.fixture(scope="module")
def ros():
    """rclpy, initialised for the test module that talks to nodes over real topics."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()
