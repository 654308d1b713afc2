"""Motion tokenizer: shapes, training, pickle-free checkpoints, ONNX agreement, evaluation and CLI.

Everything runs a tiny config for a few dozen steps; quality targets live in bench/bench_tokenizer.py.
"""

import json
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_agent.config import ConfigError, load_yaml
from motion_agent.model.tokenizer import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    EMAQuantizer,
    MotionTokenizer,
    TokenizerConfig,
    folder_fingerprint,
)
from motion_agent.model.tokenizer_onnx import OnnxTokenDecoder, load_decoder
from motion_agent.motion.demo import DEMO_KINDS, demo_motion
from motion_agent.motion.features import FEATURE_DIM, joints_to_features, mean_std
from training.tokenizer.cli import main as cli_main
from training.tokenizer.evaluate import EVAL_JSON, EVAL_PNG, evaluate_tokenizer, format_summary
from training.tokenizer.export import export_onnx, onnx_max_abs_diff
from training.tokenizer.train import (
    TokenizerTrainingConfig,
    TrainingOptions,
    WindowSampler,
    checkpoint_steps,
    default_config_path,
    load_training_config,
    train_tokenizer,
)

REPO = Path(__file__).resolve().parent.parent
TINY = TokenizerConfig(codebook_size=32, code_dim=16, width=32, depth=1)
WINDOW = 32
BATCH = 8
SEED = 0
STEPS = 200
OPTIONS = TrainingOptions(warmup_steps=5, checkpoint_every=10, log_every=5, val_every=50, val_windows=16)


def _features(seconds: tuple[float, ...]) -> list[np.ndarray]:
    return [joints_to_features(demo_motion(kind, s)) for kind in DEMO_KINDS for s in seconds]


@pytest.fixture(scope="module")
def data():
    return {"train": _features((3.0, 4.5)), "val": _features((3.5,))}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer_run")
    result = train_tokenizer(
        data["train"],
        data["val"],
        TINY,
        out,
        steps=STEPS,
        batch_size=BATCH,
        window=WINDOW,
        lr=3e-3,
        seed=SEED,
        options=OPTIONS,
        progress=False,
    )
    export_onnx(result.tokenizer, result.folder)
    return result


def _untrained(seed: int = SEED) -> MotionTokenizer:
    torch.manual_seed(seed)
    model = MotionTokenizer(TINY)
    model.train()
    model(torch.randn(2, WINDOW, FEATURE_DIM))  # initialises the codebook
    return model.eval()


@pytest.mark.parametrize("frames", [4, 31, 63, 64, 101])
def test_encode_then_decode_keeps_the_frame_count_rounded_to_whole_tokens(frames):
    model = _untrained()
    tokens = model.encode(torch.randn(2, frames, FEATURE_DIM))
    assert tokens.dtype == torch.long and tokens.shape == (2, frames // 4)
    decoded = model.decode(tokens)
    assert decoded.shape == (2, frames // 4 * 4, FEATURE_DIM)


def test_a_motion_round_trips_through_tokens(trained, data):
    tokenizer = trained.tokenizer
    features = tokenizer.normalize(data["val"][0])
    tokens = tokenizer.encode(features[None])
    assert tokens.shape == (1, len(features) // 4)
    assert tokenizer.decode(tokens).shape == (1, len(features) // 4 * 4, FEATURE_DIM)


def test_bad_inputs_are_refused():
    model = _untrained()
    with pytest.raises(ValueError, match="at least 4 frames"):
        model.encode(torch.randn(1, 3, FEATURE_DIM))
    with pytest.raises(ValueError, match="shape"):
        model.encode(torch.randn(3, FEATURE_DIM))
    with pytest.raises(ValueError, match="lie in"):
        model.decode(torch.tensor([[0, TINY.codebook_size]]))
    with pytest.raises(ValueError, match="integers"):
        model.decode(torch.zeros(1, 3))


def test_short_training_lowers_the_validation_reconstruction_loss(trained):
    first, last = trained.history[0], trained.history[-1]
    assert first["step"] == 0 and last["step"] == STEPS
    assert last["val_reconstruction"] < 0.7 * first["val_reconstruction"]
    assert last["val_loss"] < 0.3 * first["val_loss"]
    assert trained.tokenizer.quantizer.initialized.item() == 1.0


def test_unused_codes_are_reset_to_encoder_outputs_within_a_few_dozen_steps():
    torch.manual_seed(SEED)
    quantizer = EMAQuantizer(TINY)
    quantizer.train()
    quantizer(torch.randn(1, TINY.code_dim, 64))
    # every vector now lands on one code; the others start just alive (or a few uses above), so they are
    # reset within a few dozen steps: a short run spreads its codebook too (from a count of 1 at the
    # threshold of 0.25 it took about 140)
    far = torch.full((1, TINY.code_dim, 64), 100.0) + torch.randn(1, TINY.code_dim, 64)
    for _ in range(30):
        quantizer(far)
    among_far = (quantizer.codebook > 90).all(dim=1)
    assert among_far.sum() > TINY.codebook_size // 2, "unused codes should sit among the recent vectors"


def test_checkpoints_and_tokenizers_load_without_pickle(trained, data, tmp_path, monkeypatch):
    expected = trained.tokenizer.decode(torch.arange(8).reshape(1, 8))
    fingerprint = trained.tokenizer.fingerprint()

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must not be used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = MotionTokenizer.load(trained.folder)
    assert torch.equal(loaded.decode(torch.arange(8).reshape(1, 8)), expected)
    assert loaded.fingerprint() == fingerprint == folder_fingerprint(trained.folder)
    # resuming reads a checkpoint (weights, optimiser, random states) the same way
    out = trained.folder.parent
    result = train_tokenizer(
        data["train"],
        data["val"],
        TINY,
        out,
        steps=STEPS,
        batch_size=BATCH,
        window=WINDOW,
        lr=3e-3,
        seed=SEED,
        options=OPTIONS,
        progress=False,
    )
    assert result.start_step == STEPS


def test_an_interrupted_run_resumes_to_the_same_model_as_an_uninterrupted_one(data, tmp_path, monkeypatch):
    def run(out):
        return train_tokenizer(
            data["train"],
            [],
            TINY,
            out,
            steps=12,
            batch_size=BATCH,
            window=WINDOW,
            lr=3e-3,
            seed=SEED,
            options=replace(OPTIONS, checkpoint_every=6),
            progress=False,
        )

    straight = run(tmp_path / "straight")
    sample = WindowSampler.sample
    calls = []

    def crash_after_eight_steps(self, batch_size):
        calls.append(batch_size)
        if len(calls) > 8:
            raise KeyboardInterrupt
        return sample(self, batch_size)

    monkeypatch.setattr(WindowSampler, "sample", crash_after_eight_steps)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "interrupted")
    assert checkpoint_steps(tmp_path / "interrupted") == [6]
    monkeypatch.setattr(WindowSampler, "sample", sample)
    resumed = run(tmp_path / "interrupted")
    assert resumed.start_step == 6
    assert checkpoint_steps(tmp_path / "interrupted") == [6, 12]
    for name, tensor in straight.tokenizer.state_dict().items():
        torch.testing.assert_close(resumed.tokenizer.state_dict()[name], tensor, msg=name, rtol=0, atol=0)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]


def test_fingerprint_is_a_sha256_that_follows_weights_and_normalisation(trained, tmp_path):
    tokenizer = trained.tokenizer
    fingerprint = tokenizer.fingerprint()
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    other = MotionTokenizer(tokenizer.config, tokenizer.mean, tokenizer.std * 2)
    other.load_state_dict(tokenizer.state_dict())
    assert other.fingerprint() != fingerprint
    other = MotionTokenizer(tokenizer.config, tokenizer.mean, tokenizer.std)
    other.load_state_dict(tokenizer.state_dict())
    assert other.fingerprint() == fingerprint
    with torch.no_grad():
        other.decoder.net[0].bias[0] += 1e-3
    assert other.fingerprint() != fingerprint


def test_torch_and_onnxruntime_decoders_agree_on_random_tokens(trained):
    decoder = OnnxTokenDecoder(trained.folder)
    generator = np.random.default_rng(SEED)
    for length in (1, 7, 50):
        tokens = generator.integers(0, TINY.codebook_size, size=(3, length))
        reference = trained.tokenizer.decode(torch.as_tensor(tokens)).numpy()
        decoded = decoder.decode(tokens)
        assert isinstance(decoded, np.ndarray) and decoded.shape == reference.shape == (3, 4 * length, FEATURE_DIM)
        assert np.abs(decoded - reference).max() < 1e-4
    as_torch = decoder.decode(torch.as_tensor(tokens))
    assert isinstance(as_torch, torch.Tensor)
    assert onnx_max_abs_diff(trained.tokenizer, trained.folder) < 1e-4
    assert decoder.fingerprint() == trained.tokenizer.fingerprint()


def test_load_decoder_selects_the_backend(trained):
    assert isinstance(load_decoder(trained.folder, "torch"), MotionTokenizer)
    assert isinstance(load_decoder(trained.folder, "onnx"), OnnxTokenDecoder)
    assert isinstance(load_decoder(trained.folder, "auto"), OnnxTokenDecoder)  # the folder holds a current export
    with pytest.raises(ValueError, match="tensorrt"):
        load_decoder(trained.folder, "tensorrt")


def test_auto_decodes_with_torch_where_the_export_is_missing_or_stale(trained, tmp_path):
    trained.tokenizer.save(tmp_path / "plain")
    assert isinstance(load_decoder(tmp_path / "plain", "auto"), MotionTokenizer)
    export_onnx(trained.tokenizer, tmp_path / "stale")
    changed = MotionTokenizer(TINY, trained.tokenizer.mean, trained.tokenizer.std)
    changed.load_state_dict(trained.tokenizer.state_dict())
    with torch.no_grad():
        changed.decoder.net[0].bias.add_(0.1)
    changed.save(tmp_path / "stale")
    assert isinstance(load_decoder(tmp_path / "stale", "auto"), MotionTokenizer)


def test_a_stale_onnx_export_is_refused(trained, tmp_path):
    export_onnx(trained.tokenizer, tmp_path)
    changed = MotionTokenizer(TINY, trained.tokenizer.mean, trained.tokenizer.std)
    changed.load_state_dict(trained.tokenizer.state_dict())
    with torch.no_grad():
        changed.decoder.net[0].bias.add_(0.1)
    changed.save(tmp_path)
    with pytest.raises(ValueError, match="export it again"):
        OnnxTokenDecoder(tmp_path)


def test_the_onnx_runtime_path_needs_neither_onnx_nor_training(trained):
    script = (
        "import sys; sys.modules['onnx'] = None\n"
        "import numpy as np\n"
        "from motion_agent.model.tokenizer_onnx import load_decoder\n"
        f"out = load_decoder({str(trained.folder)!r}, 'onnx').decode(np.zeros((1, 5), dtype=np.int64))\n"
        "assert out.shape == (1, 20, 263), out.shape\n"
        "assert not [m for m in sys.modules if m == 'training' or m.startswith('training.')]\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)


def test_evaluation_writes_figures_and_a_comparison_image(trained, data, tmp_path, capsys):
    figures = evaluate_tokenizer(trained.tokenizer, data["val"], tmp_path, plot_count=2)
    assert 0 < figures["codebook_usage"] <= 1
    assert figures["codes_used"] == round(figures["codebook_usage"] * TINY.codebook_size)
    assert 1 <= figures["perplexity"] <= figures["codes_used"] + 1e-6
    assert figures["mpjpe_mm"] > 0 and figures["mpjpe_global_mm"] >= 0
    assert figures["tokens"] == sum(len(f) // 4 for f in data["val"])
    assert json.loads((tmp_path / EVAL_JSON).read_text()) == figures
    assert (tmp_path / EVAL_PNG).read_bytes().startswith(b"\x89PNG")
    assert "MPJPE" in format_summary(figures) and "codebook usage" in format_summary(figures)


def test_evaluation_of_a_perfect_reconstruction_is_zero(data, monkeypatch):
    model = _untrained()
    monkeypatch.setattr(
        "training.tokenizer.evaluate.reconstruct",
        lambda tokenizer, f: (f[: len(f) // 4 * 4], f[: len(f) // 4 * 4], np.zeros(len(f) // 4, dtype=np.int64)),
    )
    figures = evaluate_tokenizer(model, data["val"])
    assert figures["mpjpe_mm"] < 1e-9 and figures["mpjpe_global_mm"] < 1e-9
    assert figures["codes_used"] == 1 and figures["perplexity"] == pytest.approx(1.0)


def test_default_config_loads_and_bad_keys_are_named(tmp_path):
    config = load_training_config(default_config_path())
    assert config == TokenizerTrainingConfig(), "the YAML and the dataclass defaults must not drift apart"
    assert config.model.downsampling == 4 and config.training.window % 4 == 0
    assert 256 <= config.model.codebook_size <= 512
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  codebok_size: 12\n")
    with pytest.raises(ConfigError, match="codebok_size"):
        load_training_config(bad)
    bad.write_text("model:\n  ema_decay: 1.5\n")
    with pytest.raises(ConfigError, match="ema_decay"):
        load_training_config(bad)


def test_saved_config_is_the_project_yaml(trained):
    assert load_yaml(TokenizerConfig, trained.folder / CONFIG_FILE) == TINY
    assert (trained.folder / WEIGHTS_FILE).read_bytes() == trained.tokenizer.weights_bytes()


def _humanml3d_folder(root: Path, data) -> Path:
    (root / "new_joint_vecs").mkdir(parents=True)
    splits = {"train": data["train"], "val": data["val"], "test": data["val"]}
    for split, motions in splits.items():
        ids = [f"{split}{i:03d}" for i in range(len(motions))]
        for motion_id, features in zip(ids, motions):
            np.save(root / "new_joint_vecs" / f"{motion_id}.npy", features)
        (root / f"{split}.txt").write_text("\n".join(ids + ["missing_id"]) + "\n")
    mean, std = mean_std(data["train"])
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    return root


def test_cli_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for expected in ("--data", "--out", "--config", "--steps", "new_joint_vecs", "Mean.npy", "train.txt", "ONNX"):
        assert expected in text


def test_cli_trains_evaluates_and_exports(data, tmp_path, capsys):
    folder = _humanml3d_folder(tmp_path / "data", data)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model: {codebook_size: 32, code_dim: 16, width: 32, depth: 1}\n"
        "training: {batch_size: 8, window: 32}\n"
        "options: {warmup_steps: 2, checkpoint_every: 5, log_every: 5, val_every: 0}\n"
    )
    out = tmp_path / "out"
    assert cli_main(["--data", str(folder), "--out", str(out), "--config", str(config), "--steps", "6", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "MPJPE" in text and "missing" in text
    figures = json.loads((out / "eval" / EVAL_JSON).read_text())
    assert figures["onnx_max_abs_diff"] < 1e-4
    assert (out / "tokenizer" / "decoder.onnx").is_file() and (out / "tokenizer" / "encoder.onnx").is_file()
    assert checkpoint_steps(out) == [5, 6]
    assert np.array_equal(np.load(out / "tokenizer" / "mean.npy"), np.load(folder / "Mean.npy"))


def test_cli_reports_a_folder_that_is_not_humanml3d(tmp_path, capsys):
    assert cli_main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "HumanML3D layout" in capsys.readouterr().err


def test_motion_codes_normalise_raw_features_and_keep_whole_tokens(trained, data):
    tokenizer = trained.tokenizer
    raw = data["val"][0][:-3]  # not a multiple of the downsampling
    codes = tokenizer.motion_codes(raw)
    usable = len(raw) // tokenizer.downsampling * tokenizer.downsampling
    expected = tokenizer.encode(tokenizer.normalize(raw[:usable])[None])[0].numpy()
    assert codes.shape == (len(raw) // tokenizer.downsampling,)
    assert np.array_equal(codes, expected)
