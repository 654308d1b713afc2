"""Motion-language model on the `tiny` profile: vocabulary, constrained generation, durations, seeds,
the base stage's files and fingerprints, and its command line. Quality targets live in bench/."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from motion_agent.model.backbone import BackboneError, load_backbone, resolve_backbone
from motion_agent.model.base_model import ADAPTER_DIR, SPEC_FILE, BaseModelError, load_base_model
from motion_agent.model.language_model import (
    GenerationConfig,
    MotionLanguageModel,
    add_motion_tokens,
    requested_seconds,
)
from motion_agent.model.tokenizer import TokenizerConfig
from training.base.train import BaseRunConfig, BaseTrainingConfig, train_base
from training.data.humanml3d import HumanML3D
from training.data.synth.corpus import CorpusConfig, write_corpus
from training.tokenizer.cli import load_humanml3d
from training.tokenizer.train import TrainingOptions, train_tokenizer

REPO = Path(__file__).resolve().parent.parent
CODEBOOK = 32


@pytest.fixture(scope="module")
def tiny_lm() -> MotionLanguageModel:
    model, tokenizer = load_backbone("tiny")
    return MotionLanguageModel(model, tokenizer, add_motion_tokens(model, tokenizer, CODEBOOK))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A corpus, a small tokenizer and a briefly trained tiny base model."""
    root = tmp_path_factory.mktemp("base")
    write_corpus(root / "corpus", CorpusConfig(motions=80, seed=0))
    data = load_humanml3d(root / "corpus", 32)
    train_tokenizer(
        data.train,
        data.val,
        TokenizerConfig(codebook_size=CODEBOOK, code_dim=16, width=32, depth=1),
        root / "tok",
        60,
        8,
        32,
        3e-3,
        0,
        resume=False,
        options=TrainingOptions(warmup_steps=5, checkpoint_every=1000, val_every=0),
        mean=data.mean,
        std=data.std,
        progress=False,
    )
    config = BaseTrainingConfig(training=BaseRunConfig(steps=12, batch_size=4, log_every=4, val_batches=1))
    train_base(root / "corpus", root / "tok" / "tokenizer", root / "base", config, progress=False)
    return root


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("wave hello for 3 seconds", 3.0),
        ("jump for two secs, happily", 2.0),
        ("walk for 2.5 s", 2.5),
        ("run in circles", None),
        ("for the team, cheer", None),
    ],
)
def test_requested_seconds(text, seconds):
    assert requested_seconds(text) == seconds


def test_generation_config_refuses_bad_bounds():
    with pytest.raises(ValueError, match="min_motion_tokens"):
        GenerationConfig(min_motion_tokens=20, max_motion_tokens=10)
    assert GenerationConfig().tokens_for(3.0) == 15  # 60 frames at 4 frames per token
    assert GenerationConfig().tokens_for(100.0) == GenerationConfig().max_motion_tokens


def test_motion_tokens_are_contiguous_and_added_once(tiny_lm):
    vocab = tiny_lm.vocabulary
    size = len(tiny_lm.tokenizer)
    again = add_motion_tokens(tiny_lm.model, tiny_lm.tokenizer, CODEBOOK)
    assert again == vocab and len(tiny_lm.tokenizer) == size
    assert tiny_lm.model.get_input_embeddings().num_embeddings >= size
    text = vocab.motion_text(np.array([3, 0, 31]))
    ids = tiny_lm.tokenizer(text, add_special_tokens=False).input_ids
    assert ids == [vocab.start_id, vocab.first_id + 3, vocab.first_id, vocab.first_id + 31, vocab.end_id]
    assert vocab.codes_from_ids(ids[1:]).tolist() == [3, 0, 31]


def test_t2m_emits_only_motion_codes_within_bounds(tiny_lm):
    config = GenerationConfig(min_motion_tokens=4, max_motion_tokens=12)
    for codes in tiny_lm.generate_motion(["a person waves", "someone runs away in fear"], seed=3, config=config):
        assert 4 <= len(codes) <= 12
        assert codes.min() >= 0 and codes.max() < CODEBOOK


def test_duration_in_the_text_sets_the_length(tiny_lm):
    mixed = tiny_lm.generate_motion(["jump for 3 seconds", "walk for 2 seconds", "sit down"], seed=0)
    assert len(mixed[0]) == 15 and len(mixed[1]) == 10
    config = tiny_lm.config
    assert config.min_motion_tokens <= len(mixed[2]) <= config.max_motion_tokens
    assert len(tiny_lm.generate_motion(["sit down"], seed=0, seconds=4.0)[0]) == 20


def test_same_prompt_and_seed_give_the_same_motion(tiny_lm):
    first = tiny_lm.generate_motion(["a happy wave for 3 seconds"], seed=7)[0]
    again = tiny_lm.generate_motion(["a happy wave for 3 seconds"], seed=7)[0]
    other = tiny_lm.generate_motion(["a happy wave for 3 seconds"], seed=8)[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)  # sampling: seeds give diversity


def test_caption_is_text_without_motion_tokens(tiny_lm):
    captions = tiny_lm.caption([np.arange(10) % CODEBOOK, np.zeros(12, dtype=int)])
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert not any("motion_id" in c for c in captions)


def test_unknown_backbone_is_named():
    with pytest.raises(BackboneError, match="no-such-model"):
        resolve_backbone("no-such-model")


def test_base_stage_stores_only_small_parts(base_dir):
    adapter = base_dir / "base" / ADAPTER_DIR
    spec = json.loads((base_dir / "base" / SPEC_FILE).read_text())
    assert spec["backbone"] == "tiny" and spec["codebook_size"] == CODEBOOK
    weights = load_file(adapter / "adapter_model.safetensors")  # safetensors: no pickle
    vocab_rows = max(t.shape[0] for t in weights.values())
    assert vocab_rows < 1000, "the full embedding matrix must not be stored, only the motion-token rows"
    assert any("trainable_tokens" in name for name in weights)
    assert (base_dir / "base" / "tokenizer" / "tokenizer.safetensors").is_file() or any(
        (base_dir / "base" / "tokenizer").glob("*.safetensors")
    )
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    targets = adapter_config["target_modules"]
    assert len(targets) == 7 and targets == sorted(targets)  # peft's set order would differ per build
    # the caption words' rows train too (tied to the output layer): a backbone without language
    # pretraining could not put probability on them otherwise
    rows = set(adapter_config["trainable_token_indices"]["embed_tokens"])
    _, tokenizer = load_backbone("tiny")
    caption = HumanML3D(base_dir / "corpus").clips("train")[0].captions[0].text
    assert set(tokenizer(caption, add_special_tokens=False).input_ids) | {tokenizer.eos_token_id} <= rows


def test_base_model_loads_frozen_with_a_stable_fingerprint(base_dir):
    first = load_base_model(base_dir / "base")
    second = load_base_model(base_dir / "base")
    assert (
        first.fingerprint
        == second.fingerprint
        == json.loads((base_dir / "base" / SPEC_FILE).read_text())["fingerprint"]
    )
    assert not any(p.requires_grad for p in first.model.parameters())
    codes = [first.generate_motion(["a person walks forward for 2 seconds"], seed=1)[0] for _ in range(2)]
    assert np.array_equal(*codes) and len(codes[0]) == 10
    again = second.generate_motion(["a person walks forward for 2 seconds"], seed=1)[0]
    assert np.array_equal(codes[0], again)


def test_base_model_refuses_another_backbone(base_dir, tmp_path):
    import shutil

    copy = tmp_path / "base"
    shutil.copytree(base_dir / "base", copy)
    spec = json.loads((copy / SPEC_FILE).read_text())
    spec["backbone_fingerprint"] = "0" * 64
    (copy / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(BaseModelError, match="does not match"):
        load_base_model(copy)
    (copy / SPEC_FILE).unlink()
    with pytest.raises(BaseModelError, match="base.json"):
        load_base_model(copy)


def test_train_cli_lists_stages_and_names_a_missing_folder(tmp_path):
    listing = subprocess.run([sys.executable, "-m", "training.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert listing.returncode == 0 and "base" in listing.stdout and "tokenizer" in listing.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "base",
            "--data",
            str(tmp_path / "nope"),
            "--tokenizer",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_restricted_head_gives_the_same_logits_for_its_rows_and_restores_the_head(tiny_lm):
    """Motion decoding and routing features swap the output layer for a few of its rows; the logits of
    those rows must be exactly the full model's, and the full layer must be back afterwards."""
    vocab = tiny_lm.vocabulary
    rows = [vocab.code_ids[0], vocab.code_ids[-1], vocab.end_id]
    batch = tiny_lm.tokenizer(["a person waves"], return_tensors="pt", add_special_tokens=False)
    head = tiny_lm.model.get_output_embeddings()
    with torch.inference_mode():
        full = tiny_lm.model(**batch).logits[..., rows]
        with tiny_lm.restricted_head(rows):
            restricted = tiny_lm.model(**batch).logits
    torch.testing.assert_close(restricted, full, rtol=0, atol=1e-5)
    assert tiny_lm.model.get_output_embeddings() is head


@pytest.mark.parametrize(
    "text, what",
    [
        ("a person dances happily for 3 seconds", "a person dances happily"),
        ("for two secs, a person waves", "a person waves"),
        ("jump for 2.5 s.", "jump."),
        ("for 3 seconds", "for 3 seconds"),  # nothing but a duration: kept, never empty
        ("a person walks forward", "a person walks forward"),
    ],
)
def test_routing_reads_the_request_without_its_duration(text, what):
    from motion_agent.model.language_model import without_duration

    assert without_duration(text) == what


def test_base_stage_keeps_excluded_motions_out(base_dir, tmp_path):
    """A continual benchmark's tasks must be new to its base model: excluded ids never reach training."""
    train_ids = (base_dir / "corpus" / "train.txt").read_text().split()
    config = BaseTrainingConfig(training=BaseRunConfig(steps=1, batch_size=2, log_every=1, val_batches=1))
    tokenizer = base_dir / "tok" / "tokenizer"
    kept = train_base(base_dir / "corpus", tokenizer, tmp_path / "half", config, progress=False, exclude=train_ids[::2])
    every = len(HumanML3D(base_dir / "corpus").clips("train"))
    assert 0 < kept["train_clips"] < every and kept["excluded_motions"] == len(train_ids[::2])
    with pytest.raises(ValueError, match="outside the excluded ids"):
        train_base(base_dir / "corpus", tokenizer, tmp_path / "none", config, progress=False, exclude=train_ids)


def test_interrupted_base_training_resumes_to_the_same_model(base_dir, tmp_path, monkeypatch):
    """A base run that dies after a checkpoint continues from it, with the batches, dropout and optimizer
    state the uninterrupted run had: the saved adapter is bit for bit the same. Hours-long CPU runs
    depend on it. The checkpoint falls after the warm-up, where the cosine schedule sets the rate."""
    import training.base.train as base_training

    config = BaseTrainingConfig(
        training=BaseRunConfig(steps=6, batch_size=2, log_every=2, val_batches=1, warmup_steps=2, checkpoint_every=3)
    )
    corpus, tokenizer = base_dir / "corpus", base_dir / "tok" / "tokenizer"
    train_base(corpus, tokenizer, tmp_path / "whole", config, progress=False)

    draws, sample = [], base_training.sample_batch

    def dies_at_step_five(*args, **kwargs):  # draws 1-2: the validation batches of both directions
        draws.append(1)
        if len(draws) == 2 + 5:
            raise KeyboardInterrupt
        return sample(*args, **kwargs)

    monkeypatch.setattr(base_training, "sample_batch", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        train_base(corpus, tokenizer, tmp_path / "resumed", config, progress=False)
    assert (tmp_path / "resumed" / "checkpoint").is_dir() and not (tmp_path / "resumed" / SPEC_FILE).exists()
    saved = load_file(tmp_path / "resumed" / "checkpoint" / "model.safetensors")
    assert any("lora_A" in k for k in saved) and not any("base_layer" in k for k in saved)  # no frozen backbone
    monkeypatch.setattr(base_training, "sample_batch", sample)
    figures = train_base(corpus, tokenizer, tmp_path / "resumed", config, progress=False)

    assert figures["resumed_from_step"] == 3 and not (tmp_path / "resumed" / "checkpoint").exists()
    whole, resumed = (load_file(tmp_path / d / ADAPTER_DIR / "adapter_model.safetensors") for d in ("whole", "resumed"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert json.loads((tmp_path / "whole" / "history.json").read_text()) == json.loads(
        (tmp_path / "resumed" / "history.json").read_text()
    )


def test_base_training_refuses_a_checkpoint_of_another_configuration(base_dir, tmp_path, monkeypatch):
    import training.base.train as base_training

    config = BaseTrainingConfig(
        training=BaseRunConfig(steps=4, batch_size=2, log_every=2, val_batches=1, checkpoint_every=2)
    )
    corpus, tokenizer = base_dir / "corpus", base_dir / "tok" / "tokenizer"
    monkeypatch.setattr(base_training, "save_base", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_base(corpus, tokenizer, tmp_path / "base", config, progress=False)
    monkeypatch.undo()
    other = replace(config, training=replace(config.training, lr=1e-3))
    with pytest.raises(ValueError, match=r"another configuration \(differs in: training\.lr\)"):
        train_base(corpus, tokenizer, tmp_path / "base", other, progress=False)


def test_base_training_in_bf16_saves_a_loadable_model(base_dir, tmp_path):
    """bf16 autocast works in a process that trained before (accelerate's state is fixed by then), and
    what it saves loads and generates like any base model."""
    config = BaseTrainingConfig(
        training=BaseRunConfig(steps=2, batch_size=2, log_every=1, val_batches=1, mixed_precision="bf16")
    )
    figures = train_base(base_dir / "corpus", base_dir / "tok" / "tokenizer", tmp_path / "bf16", config, progress=False)
    assert np.isfinite(figures["val_t2m_loss"]) and figures["config"]["training"]["mixed_precision"] == "bf16"
    lm = load_base_model(tmp_path / "bf16")
    assert len(lm.generate_motion(["a person waves"], seconds=2.0)[0]) == GenerationConfig().tokens_for(2.0)
    with pytest.raises(ValueError, match="mixed_precision must be one of no, bf16"):
        BaseRunConfig(mixed_precision="fp8")
