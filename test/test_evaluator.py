"""Frozen text-motion evaluator: pickle-free round trip, batching invariance, learning above chance,
config and CLI.

A small procedural corpus and a tiny config keep the whole file fast; the acceptance figures on a
1200-motion corpus (R-Precision top-1 > 0.5, emotion F1 > 0.7) are measured with the CLI.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from motion_agent.config import ConfigError
from training.data.humanml3d import HumanML3D
from training.data.synth.corpus import CorpusConfig, write_corpus
from training.evaluation.cli import EVAL_JSON, EVAL_PNG
from training.evaluation.cli import main as cli_main
from training.evaluation.evaluator import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Evaluator,
    EvaluatorConfig,
    EvaluatorModelConfig,
    EvaluatorTrainingConfig,
    default_config_path,
    load_config,
)
from training.evaluation.evaluator_training import evaluate_ground_truth, train_evaluator

MOTIONS = 200
TINY = EvaluatorConfig(
    model=EvaluatorModelConfig(latent_dim=64, text_hidden=128, motion_hidden=64, emotion_hidden=32),
    training=EvaluatorTrainingConfig(epochs=25, batch_size=32, lr=2e-3, val_repeats=1, seed=0),
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: a second intra-op thread only spins, and on a busy two-core machine
    that spinning makes the file several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("evaluator-corpus"), CorpusConfig(motions=MOTIONS, seed=0))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluator")
    figures = train_evaluator(corpus, folder, TINY, progress=False)
    return Evaluator.load(folder), folder, figures


@pytest.fixture(scope="module")
def train_clips(corpus):
    return HumanML3D(corpus).clips("train")


def test_default_config_matches_the_dataclass_defaults():
    assert load_config(default_config_path()) == EvaluatorConfig()


def test_config_refuses_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  latent_dims: 8\n")
    with pytest.raises(ConfigError, match="latent_dims"):
        load_config(path)
    path.write_text("training:\n  temperature: 0\n")
    with pytest.raises(ConfigError, match="temperature"):
        load_config(path)


def test_training_figures(trained):
    _, folder, figures = trained
    assert figures["emotions"] == ["angry", "fearful", "happy", "neutral", "sad", "surprised"]
    assert 1 <= figures["best_epoch"] <= TINY.training.epochs
    assert len(figures["history"]) == TINY.training.epochs
    assert figures["selected_by"] == "val_r_precision_top1"
    assert figures["history"][-1]["loss"] < figures["history"][0]["loss"]
    json.dumps(figures)  # JSON-ready
    assert (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def test_save_load_round_trip_without_pickle(trained, train_clips, tmp_path):
    evaluator, folder, _ = trained
    raw = (folder / WEIGHTS_FILE).read_bytes()
    assert not raw.startswith(b"\x80") and b"PK" != raw[:2]  # neither a pickle nor a torch zip archive
    state = load_file(str(folder / WEIGHTS_FILE))  # safetensors, readable without pickle
    assert {"mean", "std"} <= set(state)  # the normalisation travels inside the weights
    assert set(state) == set(evaluator.state_dict())

    copy = Evaluator.load(evaluator.save(tmp_path / "copy"))
    assert copy.config == evaluator.config
    assert copy.emotions == evaluator.emotions
    features = [clip.features for clip in train_clips[:12]]
    texts = [clip.captions[0].text for clip in train_clips[:12]]
    np.testing.assert_array_equal(copy.encode_motion(features), evaluator.encode_motion(features))
    np.testing.assert_array_equal(copy.encode_text(texts), evaluator.encode_text(texts))
    assert copy.classify_emotion(features) == evaluator.classify_emotion(features)


def test_encode_motion_is_independent_of_batching_and_order(trained, train_clips):
    evaluator, _, _ = trained
    rng = np.random.default_rng(1)
    features = [clip.features[: int(rng.integers(8, len(clip.features) + 1))] for clip in train_clips[:20]]
    features.append(train_clips[0].features[:3])  # shorter than one step of the encoder: 4 frames needed
    with pytest.raises(ValueError, match="at least 4"):
        evaluator.encode_motion(features)
    features = features[:-1]
    assert len({len(f) for f in features}) > 10  # really variable lengths
    alone = np.concatenate([evaluator.encode_motion([f]) for f in features])
    together = evaluator.encode_motion(features)
    order = rng.permutation(len(features))
    shuffled = evaluator.encode_motion([features[i] for i in order], batch_size=7)
    assert together.shape == (len(features), evaluator.config.model.latent_dim)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(shuffled, together[order], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_learns_above_chance_on_its_training_clips(trained, train_clips):
    evaluator, _, _ = trained
    figures = evaluate_ground_truth(evaluator, train_clips, repeats=3)
    assert figures["pool"] == 32
    assert figures["r_precision_top1"] > 4 / 32  # chance: 1 / 32
    assert figures["r_precision_top1"] <= figures["r_precision_top2"] <= figures["r_precision_top3"]
    assert figures["emotion_f1"] > 0.4  # chance: about 1 / 6
    assert np.asarray(figures["emotion_confusion"]).sum() == len(train_clips)


def test_untrained_evaluator_is_near_chance(train_clips, corpus):
    torch.manual_seed(0)
    data = HumanML3D(corpus)
    emotions = ("angry", "fearful", "happy", "neutral", "sad", "surprised")
    config = replace(TINY, model=replace(TINY.model, emotions=emotions))
    figures = evaluate_ground_truth(Evaluator(config, data.mean, data.std), train_clips[:96], repeats=3)
    assert figures["r_precision_top1"] < 6 / 32


def test_cli_refuses_a_missing_data_folder(tmp_path, capsys):
    missing = tmp_path / "no-such-corpus"
    assert cli_main(["--data", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_bad_config(tmp_path, corpus, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  epochz: 3\n")
    assert cli_main(["--data", str(corpus), "--out", str(tmp_path / "out"), "--config", str(config)]) == 2
    assert "epochz" in capsys.readouterr().err


def test_cli_trains_evaluates_and_writes_its_files(tmp_path, corpus, capsys):
    from dataclasses import asdict

    import yaml

    config = tmp_path / "tiny.yaml"
    as_dict = asdict(TINY)
    as_dict["model"]["emotions"] = []
    config.write_text(yaml.safe_dump(as_dict))
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--config",
                str(config),
                "--epochs",
                "2",
                "--seed",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "R-Precision top-1/2/3" in printed and "emotion weighted F1" in printed
    for name in (WEIGHTS_FILE, CONFIG_FILE, EVAL_JSON, EVAL_PNG):
        assert (out / name).is_file(), name
    result = json.loads((out / EVAL_JSON).read_text())
    assert result["training"]["epochs"] == 2
    assert result["test"]["clips"] == len(HumanML3D(corpus).clips("test"))
    for key in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "emotion_f1"):
        assert key in result["test"]
    assert Evaluator.load(out).config.training.seed == 3


def test_trains_without_emotion_labels(corpus, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(corpus, plain, ignore=shutil.ignore_patterns("new_joints", "metadata.json", "*.png"))
    config = replace(TINY, training=replace(TINY.training, epochs=1))
    figures = train_evaluator(plain, tmp_path / "out", config, progress=False)
    assert figures["emotions"] == []
    evaluator = Evaluator.load(tmp_path / "out")
    clips = HumanML3D(plain).clips("train")[:40]
    assert evaluate_ground_truth(evaluator, clips, repeats=1)["emotion_f1"] is None
    with pytest.raises(ValueError, match="without emotion labels"):
        evaluator.classify_emotion([clips[0].features])
