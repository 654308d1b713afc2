"""Continual training: the loss terms, the settings file, the report's arithmetic, and end to end on a
2-task stream (acrobatics, then instrument playing: two scenarios of the procedural corpus with clearly
different motions) that seq-lora forgets the first task while mtl keeps it, that o-lora and lwf-lora run
through the same trainer, and that an interrupted run resumes to the same figures.

The forgetting score is the held-out text-to-motion loss of task 1 (mean cross-entropy of its test
clips' motion tokens): deterministic and sensitive, where R-Precision on a few test clips of a tiny,
briefly trained model is noise. Test clips come from the corpus's test split and the base model never
saw either task, so what is forgotten is what the LoRA learned, not what the base already knew.
Everything runs on the `tiny` backbone in a few minutes on 2 cores.
"""

import json
import math
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_agent.config import ConfigError
from training.base.train import BaseRunConfig
from training.continual.config import ContinualConfig, ContinualEvalSettings, load_continual_config
from training.continual.losses import distillation_loss, orthogonality_loss
from training.continual.report import comparison, markdown_table, method_summary, run_figures, write_report
from training.continual.tasks import resolve_order, stream_tasks, task_orders
from training.evaluation import metrics

FIRST, SECOND = "acrobatics", "instrument_play"
RESULT_KEYS = (
    "FR",
    "AR",
    "AF",
    "AD",
    "AMM",
    "AWF",
    "BWT",
    "FWT",
    "matrix_t2m_r_precision_top1",
    "matrix_m2t_bleu4",
    "train_seconds",
)
CODEBOOK = 32
EXTRA_TEST_MOTIONS = 160  # test split only: about 33 test clips per task, for a steady forgetting score
TOKENIZER_STEPS = 100  # enough for the two scenarios' motions to take different tokens
# Per task: 20 steps of 4 examples at a high learning rate, enough for a LoRA to move the tiny model.
TEST_CONFIG = ContinualConfig(
    training=BaseRunConfig(steps=20, batch_size=4, lr=5e-3, warmup_steps=2, log_every=10),
    evaluation=ContinualEvalSettings(clips_per_task=3, batch_size=4, mm_captions=1, mm_repeats=2, r_precision_seeds=1),
)
# Forgetting is measured on every test clip of a task (none seen by any model) after 120 steps
# per task: on unseen clips, shorter runs leave too little of task 1 learned to see it forgotten.
FORGETTING_CONFIG = replace(
    TEST_CONFIG,
    training=replace(TEST_CONFIG.training, steps=120),
    evaluation=replace(TEST_CONFIG.evaluation, clips_per_task=0),
)


# ----------------------------------------------------------------------------- loss terms


def test_orthogonality_loss_is_zero_for_orthogonal_subspaces_and_sums_overlaps():
    eye = torch.eye(4)
    old = [[eye[:2]], [eye[2:3]]]  # two earlier adapters, one layer each, rank 2 and 1
    new = eye[3:4].clone().requires_grad_(True)
    assert orthogonality_loss([new], old).item() == 0.0
    overlapping = torch.tensor([[1.0, -2.0, 0.5, 0.0]], requires_grad=True)
    loss = orthogonality_loss([overlapping], old)
    assert loss.item() == pytest.approx(1.0 + 2.0 + 0.5)  # |A_old A_new^T| summed over both old adapters
    loss.backward()
    assert torch.allclose(overlapping.grad, torch.tensor([[1.0, -1.0, 1.0, 0.0]]))  # sign of each overlap
    with pytest.raises(ValueError, match="LoRA layers"):
        orthogonality_loss([overlapping, overlapping], old)


def test_distillation_is_zero_for_the_teacher_itself_and_only_reads_target_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, -100, -100]])
    assert distillation_loss(logits, logits, labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[:, -1, 0] += 5.0  # the last position predicts nothing: no target follows it
    other[0, 0, 0] += 5.0  # position 0 of row 0 predicts an IGNORE label
    assert distillation_loss(logits, other, labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other[0, 2, 0] += 5.0  # predicts the target at position 3
    assert distillation_loss(logits, other, labels, 2.0).item() > 0.01


def test_epi_refuses_statistics_from_older_runs_and_reads_back_its_own(tmp_path):
    from safetensors.numpy import save_file

    from motion_agent.experts.routing import RouterError
    from training.continual.methods.epi import load_statistics, save_statistics
    from training.continual.routers import FeatureStatistics

    stats = FeatureStatistics.of(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    tensors = {"mean": stats.mean, "scatter": stats.scatter, "count": np.array([stats.count])}
    save_file(tensors, tmp_path / "old.safetensors")  # one Gaussian over both prompt kinds, as epi once saved
    with pytest.raises(RouterError, match=r"old\.safetensors .*run epi again"):
        load_statistics(tmp_path / "old.safetensors")
    per_direction = {f"{d}.{k}": v for d in ("t2m", "m2t") for k, v in tensors.items()}
    save_file(per_direction, tmp_path / "deeper.safetensors")  # before features came from half the layers
    with pytest.raises(RouterError, match=r"deeper\.safetensors .*unrecorded features.*run epi again"):
        load_statistics(tmp_path / "deeper.safetensors")
    save_statistics(tmp_path / "new.safetensors", {"t2m": stats, "m2t": stats})
    loaded = load_statistics(tmp_path / "new.safetensors")
    assert set(loaded) == {"t2m", "m2t"} and np.array_equal(loaded["m2t"].scatter, stats.scatter)


# ----------------------------------------------------------------------------- settings and orders


def test_shipped_config_is_the_dataclass_defaults():
    assert load_continual_config() == ContinualConfig()


@pytest.mark.parametrize(
    "text, key",
    [
        ("training:\n  stepz: 10\n", "training.stepz"),
        ("o_lora:\n  lambda3: 1.0\n", "o_lora.lambda3"),
        ("method: seq-lora\n", "method"),
        ("lwf:\n  temperature: 0\n", "lwf"),
        ("evaluation:\n  mm_repeats: 1\n", "evaluation"),
        ("training:\n  steps: ten\n", "training.steps"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "continual.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_continual_config(path)


def test_task_orders_start_with_the_stream_and_differ():
    tasks = ["a", "b", "c", "d"]
    orders = task_orders(tasks, 3, seed=0)
    assert orders[0] == tasks and len({tuple(o) for o in orders}) == 3
    assert all(sorted(o) == tasks for o in orders)
    assert task_orders(tasks, 3, seed=0) == orders
    assert len(task_orders(["a", "b"], 3, seed=0)) == 3  # only 2 distinct: a repeat rather than a hang


def _stream(folder: Path, tasks: list[str]) -> Path:
    folder.mkdir()
    (folder / "tasks.json").write_text(json.dumps({"kind": "unseen", "tasks": tasks}))
    for task in tasks:
        (folder / task).mkdir()
        for split in ("train", "val", "test"):
            (folder / task / f"{split}.txt").write_text(f"{task}_{split}\n")
    return folder


def test_a_benchmark_trains_the_first_tasks_and_holds_the_rest_out(tmp_path):
    from training.continual.benchmark import benchmark_orders

    stream = _stream(tmp_path / "stream", ["a", "b", "c", "d", "e"])
    config = replace(ContinualConfig(), orders=replace(ContinualConfig().orders, count=2, tasks=3))
    orders, held_out = benchmark_orders(stream, config)
    assert orders[0] == ["a", "b", "c"] and sorted(orders[1]) == ["a", "b", "c"] and held_out == ["d", "e"]
    assert benchmark_orders(stream, config, first=["e", "a"]) == ([["e", "a"], ["a", "e"]], ["b", "c", "d"])
    everything = replace(config, orders=replace(config.orders, tasks=0))
    assert benchmark_orders(stream, everything, orders=1) == ([["a", "b", "c", "d", "e"]], [])
    with pytest.raises(ValueError, match="tasks"):
        replace(config.orders, tasks=1)


def test_a_run_made_before_a_setting_existed_continues_while_the_setting_holds_its_default():
    from training.continual.trainer import same_setting

    default = {"router": {"sigmas": 2.0, "temperature": 0.1}, "lwf": {"weight": 1.0}}
    old_run = {"router": {"sigmas": 2.0}, "lwf": {"weight": 1.0}}
    assert same_setting(old_run, default, default)
    assert not same_setting(old_run, {**default, "router": {"sigmas": 2.0, "temperature": 0.5}}, default)
    assert not same_setting(old_run, {**default, "lwf": {"weight": 2.0}}, default)
    assert same_setting({**old_run, "gone": 1}, default, default)  # a setting the method no longer reads


def test_a_run_is_identified_by_the_settings_its_method_reads():
    """Changing moe-hard's router settings must not void finished mtl runs, but does void moe-hard's."""
    from training.continual.methods import method_class
    from training.continual.trainer import run_settings, same_setting

    config = ContinualConfig()
    changed = replace(config, router=replace(config.router, autoencoder=replace(config.router.autoencoder, sigmas=3.0)))
    for name, voided in (("mtl", False), ("lwf-lora", False), ("moe-hard", True), ("moe-soft", True)):
        reads = method_class(name).reads
        stored = run_settings(config, reads)
        assert same_setting(stored, run_settings(changed, reads), run_settings(config, reads)) is not voided, name
    assert set(run_settings(config)) == {"lora", "training", "evaluation"}
    assert run_settings(config, method_class("moe-soft").reads)["router"] == {
        "autoencoder": asdict(config.router.autoencoder),
        "temperature": config.router.temperature,
    }


def test_orders_name_tasks_or_positions():
    tasks = ["daily_life", "sports", "dance"]
    assert resolve_order(tasks, None) == tasks
    assert resolve_order(tasks, ["2", "daily_life"]) == ["dance", "daily_life"]
    with pytest.raises(ValueError, match="'juggling' is not in the stream"):
        resolve_order(tasks, ["juggling"])
    with pytest.raises(ValueError, match="twice"):
        resolve_order(tasks, ["sports", "1"])


# ----------------------------------------------------------------------------- report arithmetic


def _state(method: str, tasks: list[str], r1: np.ndarray, loss: np.ndarray, base_r1: list[float]) -> dict:
    """A finished run state with the given R-Precision top-1 and T2M-loss matrices."""

    def scores(i: int, j: int) -> dict:
        return {
            "t2m_r_precision_top1": r1[i, j],
            "t2m_fid": 1.0 + i,
            "t2m_diversity": 2.0,
            "t2m_multimodality": 0.5,
            "t2m_emotion_f1": 0.4,
            "m2t_bleu4": 0.1 * (j + 1),
            "m2t_r_precision_top3": 0.3,
            "t2m_loss": loss[i, j],
            "m2t_loss": 3.0,
        }

    steps = [
        {"task": t, "train": {"seconds": 10.0}, "scores": {u: scores(i, j) for j, u in enumerate(tasks)}}
        for i, t in enumerate(tasks)
    ]
    baseline = {t: {"t2m_r_precision_top1": b} for t, b in zip(tasks, base_r1)}
    return {"method": method, "tasks": tasks, "steps": steps, "baseline": baseline}


def test_report_figures_follow_the_metrics_module_in_points():
    r1 = np.array([[0.50, 0.10, 0.05], [0.30, 0.60, 0.20], [0.20, 0.40, 0.70]])
    loss = np.array([[2.0, 4.0, 4.0], [2.5, 1.5, 4.0], [3.0, 2.0, 1.0]])
    state = _state("seq-lora", ["a", "b", "c"], r1, loss, [0.05, 0.05, 0.10])
    figures = run_figures(state)
    assert figures["AR"] == pytest.approx(100 * metrics.average_after_last(r1))
    assert figures["FR"] == pytest.approx(100 * metrics.forgetting_rate(r1)) and figures["FR"] > 0
    assert figures["BWT"] == pytest.approx(100 * metrics.backward_transfer(r1)) and figures["BWT"] < 0
    assert figures["FWT"] == pytest.approx(100 * metrics.forward_transfer(r1, [0.05, 0.05, 0.10]))
    assert figures["FR_T2M_LOSS"] == pytest.approx(((3.0 - 2.0) + (2.0 - 1.5)) / 2)  # best loss minus final
    assert figures["AF"] == pytest.approx(3.0) and figures["train_seconds"] == 30.0
    assert figures["matrix_t2m_r_precision_top1"] == r1.tolist()


def test_orders_are_averaged_and_the_table_has_one_row_per_method(tmp_path):
    tasks = ["a", "b"]
    forgets = _state("seq-lora", tasks, np.array([[0.6, 0.1], [0.2, 0.7]]), np.ones((2, 2)), [0.1, 0.1])
    forgets_less = _state("seq-lora", tasks[::-1], np.array([[0.6, 0.1], [0.4, 0.7]]), np.ones((2, 2)), [0.1, 0.1])
    keeps = _state("mtl", tasks, np.array([[0.6, 0.1], [0.6, 0.7]]), np.ones((2, 2)), [0.1, 0.1])
    record = comparison({"seq-lora": [forgets, forgets_less], "mtl": [keeps]}, profile="tiny")
    assert record["methods"]["seq-lora"]["FR"] == pytest.approx((40 + 20) / 2)
    assert record["methods"]["mtl"]["FR"] == pytest.approx(0.0)
    assert [o["tasks"] for o in record["methods"]["seq-lora"]["per_order"]] == [tasks, tasks[::-1]]
    table = markdown_table(record).splitlines()
    assert table[0].startswith("| Approach | AF ↓ | AR ↑ | AD ↑ | AMM ↑ | AWF ↑ | FR ↓")
    assert [line.split("|")[1].strip() for line in table[2:4]] == ["seq-lora", "mtl"]
    paths = write_report(record, tmp_path)
    assert json.loads(paths["json"].read_text())["methods"]["mtl"]["FR"] == 0.0
    said = paths["markdown"].read_text()
    assert "- Forgetting: seq-lora FR 30.00 R-Precision points, mtl FR 0.00" in said
    assert paths["heatmap seq-lora"].read_bytes()[:4] == b"\x89PNG"
    unfinished = {**forgets, "steps": forgets["steps"][:1]}
    with pytest.raises(ValueError, match="unfinished"):
        method_summary([unfinished])


def test_the_report_says_whether_hard_routing_beats_soft_blending():
    from training.continual.report import findings

    tasks = ["a", "b"]
    hard = _state("moe-hard", tasks, np.array([[0.6, 0.1], [0.6, 0.7]]), np.ones((2, 2)), [0.1, 0.1])
    soft = _state("moe-soft", tasks, np.array([[0.6, 0.1], [0.5, 0.6]]), np.ones((2, 2)), [0.1, 0.1])
    said = findings(comparison({"moe-hard": [hard], "moe-soft": [soft]}))
    assert said == [
        "Hard routing beats soft blending here: AR 65.00 vs 55.00, FR 0.00 vs 10.00, AF 2.000 vs "
        "2.000 (the same experts and routers)."
    ]
    said = findings(comparison({"moe-hard": [soft], "moe-soft": [hard]}))
    assert said[0].startswith("Hard routing does not beat soft blending here: AR 55.00 vs 65.00")


def test_single_task_figures_are_undefined_not_invented():
    state = _state("mtl", ["a"], np.array([[0.5]]), np.array([[1.0]]), [0.1])
    figures = run_figures(state)
    assert math.isnan(figures["FR"]) and math.isnan(figures["BWT"]) and math.isnan(figures["FWT"])
    assert figures["AR"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "stage, words",
    [("continual", ["--method", "interrupted", "o-lora"]), ("benchmark", ["--methods", "orders", "report.md"])],
)
def test_stages_explain_themselves(stage, words):
    result = subprocess.run([sys.executable, "-m", "training.cli", stage, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert all(word in result.stdout for word in words), result.stdout


def test_missing_input_is_one_clear_line(tmp_path, capsys):
    from training.continual.cli import main

    code = main(
        [
            "--method",
            "seq-lora",
            "--stream",
            str(tmp_path / "nope"),
            "--corpus",
            str(tmp_path),
            "--base",
            str(tmp_path),
            "--evaluator",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --stream") and "Traceback" not in err


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A 240-motion procedural corpus split 65 / 5 / 30 plus 160 test-only motions (so that each task of
    its "unseen" stream, one scenario per task, has test clips), the stream, a small tokenizer, a tiny base model
    trained 20 steps
    without the two trained tasks' motions (as the benchmark's), and an untrained small evaluator (the
    figures it gives are plumbing, not quality)."""
    from motion_agent.model.tokenizer import TokenizerConfig
    from training.base.train import BaseTrainingConfig, train_base
    from training.data.humanml3d import HumanML3D
    from training.data.streams import StreamConfig, read_stream, write_stream
    from training.data.synth.corpus import CorpusConfig, write_corpus
    from training.data.synth.emotions import EMOTIONS
    from training.evaluation.evaluator import Evaluator, EvaluatorConfig, EvaluatorModelConfig
    from training.tokenizer.cli import load_humanml3d
    from training.tokenizer.train import TrainingOptions, train_tokenizer

    root = tmp_path_factory.mktemp("continual")
    write_corpus(
        root / "corpus",
        CorpusConfig(motions=240, seed=0, split=(0.65, 0.05, 0.3), extra_test_motions=EXTRA_TEST_MOTIONS),
        progress=False,
    )
    data = load_humanml3d(root / "corpus", 32)
    train_tokenizer(
        data.train,
        data.val,
        # resets every code used less than once per batch: a 100-step run then spreads more of its codes
        # (about 45 % vs 30-38 % at the default 0.25), which the first task needs to be learnt clearly
        TokenizerConfig(codebook_size=CODEBOOK, code_dim=16, width=32, depth=1, dead_code_threshold=1.0),
        root / "tok",
        TOKENIZER_STEPS,
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
    base = BaseTrainingConfig(
        training=BaseRunConfig(steps=20, batch_size=8, lr=5e-3, warmup_steps=5, log_every=10, val_batches=1)
    )
    write_stream(root / "corpus", root / "stream", StreamConfig(kind="unseen"))
    trained = {i for task in (FIRST, SECOND) for ids in read_stream(root / "stream")[task].values() for i in ids}
    train_base(root / "corpus", root / "tok" / "tokenizer", root / "base", base, progress=False, exclude=trained)
    corpus = HumanML3D(root / "corpus")
    torch.manual_seed(0)
    small = EvaluatorModelConfig(latent_dim=32, motion_hidden=32, text_hidden=32, emotions=tuple(EMOTIONS))
    Evaluator(EvaluatorConfig(model=small), corpus.mean, corpus.std).eval().save(root / "evaluator")
    return {name: root / name for name in ("stream", "corpus", "base", "evaluator")}


@pytest.fixture(scope="module")
def benchmark(inputs, tmp_path_factory) -> tuple[dict, Path]:
    """Every method on (acrobatics, instrument_play), one order, under TEST_CONFIG."""
    from training.continual.benchmark import run_benchmark

    out = tmp_path_factory.mktemp("benchmark")
    record = run_benchmark(
        **inputs, out=out, config=TEST_CONFIG, orders=1, first=[FIRST, SECOND], profile="tiny", progress=False
    )
    return record, out


@pytest.fixture(scope="module")
def forgetting(inputs, tmp_path_factory) -> tuple[dict, Path]:
    """seq-lora and mtl on (acrobatics, instrument_play), one order, under FORGETTING_CONFIG."""
    from training.continual.benchmark import run_benchmark

    out = tmp_path_factory.mktemp("forgetting")
    record = run_benchmark(
        **inputs,
        out=out,
        config=FORGETTING_CONFIG,
        methods=["seq-lora", "mtl"],
        orders=1,
        first=[FIRST, SECOND],
        profile="tiny",
        progress=False,
    )
    return record, out


def _forgetting(loss: list[list[float]]) -> float:
    """Rise of task 1's held-out T2M loss from right after task 1 to after task 2 (nats)."""
    return loss[1][0] - loss[0][0]


@pytest.mark.slow
def test_seq_lora_forgets_the_first_task_and_mtl_keeps_it(forgetting):
    record, out = forgetting
    seq, mtl = record["methods"]["seq-lora"], record["methods"]["mtl"]
    baseline = json.loads((out / "baseline.json").read_text())["scores"]
    learned = baseline[FIRST]["t2m_loss"] - seq["matrix_t2m_loss"][0][0]
    assert learned > 0.2, f"task 1 was not learned (held-out loss fell only {learned:.3f} nats)"
    forgot, kept = _forgetting(seq["matrix_t2m_loss"]), _forgetting(mtl["matrix_t2m_loss"])
    print(f"task-1 held-out T2M loss rise after task 2: seq-lora {forgot:+.3f}, mtl {kept:+.3f} nats")
    assert forgot > 0.3, f"seq-lora did not forget task 1 (loss rose {forgot:+.3f})"
    # mtl trains the same LoRA 120 more steps, half of them on task 1: its held-out loss may drift a little
    assert kept < forgot / 5, f"mtl forgot task 1 (loss rose {kept:+.3f}, seq-lora's {forgot:+.3f})"
    assert seq["FR_T2M_LOSS"] == pytest.approx(forgot) and mtl["FR_T2M_LOSS"] == pytest.approx(kept)
    # both start from the same adapter after task 1: the same seeds, data and budget
    assert seq["matrix_t2m_loss"][0] == mtl["matrix_t2m_loss"][0]


@pytest.mark.slow
def test_every_method_writes_experts_scores_and_report(benchmark):
    record, out = benchmark
    assert set(record["methods"]) == {"mtl", "seq-lora", "lwf-lora", "o-lora", "moe-hard", "moe-soft", "epi", "es-moe"}
    assert record["tasks"] == [FIRST, SECOND] and record["orders"] == 1 and record["profile"] == "tiny"
    for name, figures in record["methods"].items():
        assert set(figures) >= set(RESULT_KEYS)  # what bench/results/continual_*.json must hold per method
        for key in ("FR", "AR", "AF", "AD", "AMM", "AWF", "BWT", "FWT", "train_seconds"):
            assert math.isfinite(figures[key]), (name, key)
        assert 0.0 <= figures["AR"] <= 100.0
        for key in ("matrix_t2m_r_precision_top1", "matrix_m2t_bleu4", "matrix_t2m_fid", "matrix_m2t_r_precision_top3"):
            assert np.shape(figures[key]) == (2, 2), (name, key)
        for task in (FIRST, SECOND):
            weights = out / name / "order_0" / "experts" / task / "adapter" / "adapter_model.safetensors"
            assert 0 < weights.stat().st_size < 1_000_000  # the LoRA alone, no copy of the 49k-row embedding
            targets = json.loads((weights.parent / "adapter_config.json").read_text())["target_modules"]
            assert len(targets) == 7 and targets == sorted(targets)  # a rebuild writes the same bytes
    assert (out / "report.md").read_text().count("\n| ") == 8
    assert all((out / "heatmaps" / f"{name}.png").is_file() for name in record["methods"])
    lwf = json.loads((out / "lwf-lora" / "order_0" / "run.json").read_text())
    assert "kl" not in lwf["steps"][0]["train"]["history"][-1] and lwf["steps"][1]["train"]["history"][-1]["kl"] >= 0
    olora = json.loads((out / "o-lora" / "order_0" / "run.json").read_text())
    assert olora["steps"][1]["train"]["history"][-1]["orthogonality"] > 0


@pytest.mark.slow
def test_a_finished_moe_hard_run_ships_as_the_default_model_with_its_experts_unchanged(inputs, benchmark, tmp_path):
    """`make default-model` from a benchmark's run: the package serves the very experts and routers that
    were scored (byte for byte, signed and installed as a robot receives them); runs that are not a
    finished moe-hard run on that base are refused, naming why."""
    from motion_agent.agent import AgentConfig, MotionAgent, RoutingConfig
    from training.default_model import main as default_model

    _, out = benchmark
    run, model = out / "moe-hard" / "order_0", tmp_path / "model"
    args = [
        "--from-run",
        str(run),
        "--base",
        str(inputs["base"]),
        "--out",
        str(model),
        "--scratch",
        str(tmp_path / "scratch"),
    ]
    assert default_model(args) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["experts"] == [FIRST, SECOND] and manifest["from_run"]["tasks"] == [FIRST, SECOND]
    for task in (FIRST, SECOND):
        for part in ("adapter/adapter_model.safetensors", "router/router.safetensors"):
            shipped = model / "experts" / "versions" / task / "1.0.0" / part
            assert shipped.read_bytes() == (run / "experts" / task / part).read_bytes()
    agent = MotionAgent.from_config(
        AgentConfig(base_model=str(model / "base"), routing=RoutingConfig(experts=str(model / "experts")))
    )
    assert sorted(agent.router.experts) == [FIRST, SECOND]
    with pytest.raises(SystemExit, match="a finished moe-hard run is needed, this is seq-lora"):
        default_model(["--from-run", str(out / "seq-lora" / "order_0"), *args[2:]])
    with pytest.raises(SystemExit, match="--scenarios dance: not tasks of"):
        default_model([*args, "--scenarios", "dance"])


@pytest.mark.slow
def test_o_lora_keeps_one_frozen_adapter_per_task_and_serves_their_sum(inputs, benchmark):
    from motion_agent.model.base_model import load_base_model
    from training.continual.adapters import lora_pairs
    from training.continual.methods import make_method

    _, out = benchmark
    method = make_method("o-lora", load_base_model(inputs["base"]), TEST_CONFIG)
    method.restore([FIRST, SECOND], out / "o-lora" / "order_0" / "experts")
    method.prepare_inference()
    assert sorted(method.model.active_adapters) == sorted([FIRST, SECOND])
    method.begin_task(2, "third")
    trainable = {name for name, p in method.model.named_parameters() if p.requires_grad}
    assert trainable and all(".third." in name for name in trainable)
    assert not any(a.requires_grad for a, _ in lora_pairs(method.model, FIRST))


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_retraining_to_the_same_figures(inputs, benchmark, tmp_path):
    from training.continual.trainer import RUN_FILE, RunMismatchError, run_continual

    record, bench_out = benchmark
    args = dict(
        **inputs,
        method="seq-lora",
        out=tmp_path,
        config=TEST_CONFIG,
        order=[FIRST, SECOND],
        progress=False,
        baseline_file=bench_out / "baseline.json",
    )
    first = run_continual(**args, max_tasks=1)
    assert [s["task"] for s in first["steps"]] == [FIRST]
    expert = tmp_path / "experts" / FIRST / "adapter" / "adapter_model.safetensors"
    stamp = expert.stat().st_mtime_ns
    resumed = run_continual(**args)
    assert expert.stat().st_mtime_ns == stamp  # task 1 was not trained again
    assert resumed["steps"][0] == first["steps"][0]
    uninterrupted = json.loads((bench_out / "seq-lora" / "order_0" / RUN_FILE).read_text())
    for mine, theirs in zip(resumed["steps"], uninterrupted["steps"]):
        assert mine["scores"] == theirs["scores"] and mine["train"]["final_loss"] == theirs["train"]["final_loss"]
    again = run_continual(**args)
    assert again["steps"] == resumed["steps"] and expert.stat().st_mtime_ns == stamp
    with pytest.raises(RunMismatchError, match="method"):
        run_continual(**{**args, "method": "o-lora"})
    with pytest.raises(RunMismatchError, match="config"):
        run_continual(**{**args, "config": replace(TEST_CONFIG, training=replace(TEST_CONFIG.training, lr=1e-4))})
    other_method = replace(TEST_CONFIG, lwf=replace(TEST_CONFIG.lwf, weight=2.0))  # seq-lora never reads lwf
    assert run_continual(**{**args, "config": other_method})["steps"] == resumed["steps"]


@pytest.mark.slow
def test_a_benchmark_continues_elsewhere_from_the_records_of_its_finished_runs(inputs, benchmark, tmp_path):
    """A finished run's run.json alone carries it to a fresh work folder (another machine, a fresh checkout):
    nothing is trained or scored again; a record made under other settings is not taken."""
    from training.continual.benchmark import run_benchmark, start_from_record
    from training.continual.report import json_ready
    from training.continual.trainer import RUN_FILE

    record, out = benchmark
    records, here, fresh = tmp_path / "records", tmp_path / "here", tmp_path / "fresh"
    kept = dict(
        config=TEST_CONFIG,
        methods=["seq-lora", "moe-hard"],
        orders=1,
        first=[FIRST, SECOND],
        profile="tiny",
        progress=False,
        records=records,
    )
    for name in kept["methods"]:  # the finished runs, in a work folder of their own (the report is rewritten)
        shutil.copytree(out / name / "order_0", here / name / "order_0")
    run_benchmark(**inputs, out=here, **kept)  # every run finished: records them, loads nothing
    for name in kept["methods"]:
        assert (records / name / "order_0" / RUN_FILE).read_bytes() == (out / name / "order_0" / RUN_FILE).read_bytes()
    again = run_benchmark(**inputs, out=fresh, **kept)
    assert not list(fresh.glob("*/order_0/experts"))  # nothing trained
    for name in kept["methods"]:
        assert json_ready(again["methods"][name]) == json_ready(record["methods"][name])
    other = replace(TEST_CONFIG, training=replace(TEST_CONFIG.training, lr=1e-4))
    elsewhere = tmp_path / "elsewhere" / "seq-lora" / "order_0"
    assert not start_from_record(
        records / "seq-lora" / "order_0",
        elsewhere,
        "seq-lora",
        [FIRST, SECOND],
        other,
        inputs["base"],
        record["held_out"],
    )
    assert not (elsewhere / RUN_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["moe-hard", "epi"])
def test_routed_methods_report_routing_and_unknown_detection(inputs, benchmark, name):
    record, out = benchmark
    figures = record["methods"][name]
    assert 0.0 <= figures["routing_accuracy"] <= 1.0 and 0.0 <= figures["unknown_auroc"] <= 1.0
    assert 0.0 <= figures["unknown_rate"] <= 1.0
    confusion = np.array(figures["routing_confusion"])  # rows: tasks; columns: experts, then unknown
    assert figures["routing_confusion_columns"] == [FIRST, SECOND, "unknown"]
    assert confusion.shape == (2, 3) and np.allclose(confusion.sum(axis=1), 1.0)
    assert np.mean(np.diag(confusion)) == pytest.approx(figures["routing_accuracy"])
    run = json.loads((out / name / "order_0" / "run.json").read_text())
    # the stream's other scenarios are held out of training: after every task, their requests are unknown
    held_out = [task for task in stream_tasks(inputs["stream"]) if task not in (FIRST, SECOND)]
    assert run["held_out"] == held_out and len(held_out) >= 1
    for step in run["steps"]:
        assert "unknown_auroc" in step and set(step["held_out_unknown"]) == set(held_out)
        assert all(0.0 <= share <= 1.0 for share in step["held_out_unknown"].values())
    # before its expert exists, a task's requests can only go to the first expert or be called unknown
    assert set(run["steps"][0]["scores"][SECOND]["routed_to"]) <= {FIRST, "__base__"}
    assert "| " + name + " |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_moe_hard_experts_are_what_the_robot_runtime_loads_and_routes_alike(inputs, benchmark):
    """The continual trainer's moe-hard experts (adapter + autoencoder router) load into the runtime's
    ExpertSet and AutoencoderRouter, and the runtime routes requests exactly as the trainer scored them."""
    from motion_agent.experts.expert_set import BASE, ExpertSet
    from motion_agent.experts.prompt_features import prompt_features
    from motion_agent.experts.routing import AutoencoderRouter
    from motion_agent.model.base_model import load_base_model
    from training.continual.methods import make_method

    _, out = benchmark
    experts = out / "moe-hard" / "order_0" / "experts"
    texts = ["a person does a backflip happily", "someone plays the piano sadly", "a person waves"]
    method = make_method("moe-hard", load_base_model(inputs["base"]), TEST_CONFIG)
    method.restore([FIRST, SECOND], experts)
    method.prepare_inference()
    trained = method.route("t2m", texts)
    lm = load_base_model(inputs["base"])
    runtime = ExpertSet(lm)
    runtime.sync({FIRST: experts / FIRST, SECOND: experts / SECOND})
    router = AutoencoderRouter.from_folders({FIRST: experts / FIRST, SECOND: experts / SECOND})
    served = [d.expert or BASE for d in router.route(prompt_features(lm, method.prompts("t2m", texts)), "t2m")]
    assert served == trained


@pytest.mark.slow
def test_epi_keeps_its_statistics_per_direction(inputs, benchmark):
    """Texts and motion prompts get a Gaussian each, saved with the expert; restoring them is
    deterministic, so a resumed run routes as a fresh restore does."""
    from safetensors.numpy import load_file

    from motion_agent.experts.prompt_features import prompt_features
    from motion_agent.model.base_model import load_base_model
    from training.continual.methods import make_method
    from training.continual.methods.epi import STATISTICS_FILE

    _, out = benchmark
    experts = out / "epi" / "order_0" / "experts"
    assert {key.split(".")[0] for key in load_file(experts / FIRST / STATISTICS_FILE)} == {"t2m", "m2t"}
    first, again = (make_method("epi", load_base_model(inputs["base"]), TEST_CONFIG) for _ in range(2))
    first.restore([FIRST, SECOND], experts)
    again.restore([FIRST, SECOND], experts)
    texts = ["a person does a backflip happily", "someone plays the piano sadly"]
    features = prompt_features(first.lm, first.prompts("t2m", texts))
    assert first.mahalanobis["t2m"].thresholds.tolist() != first.mahalanobis["m2t"].thresholds.tolist()
    assert [d.expert for d in first.decisions("t2m", features)] == [d.expert for d in again.decisions("t2m", features)]
    assert np.array_equal(first.novelty_of("t2m", features), again.novelty_of("t2m", features))


@pytest.mark.slow
def test_moe_soft_serves_moe_hards_experts_blended_as_the_runtime_blends_them(inputs, benchmark):
    """In a benchmark with both, moe-soft adopts moe-hard's experts instead of training them again, and a
    blended request runs exactly the runtime's soft blend (`ExpertSet.blended`) of those experts."""
    from motion_agent.experts.expert_set import ExpertSet
    from motion_agent.experts.routing import Decision, softmax_weights
    from motion_agent.model.base_model import load_base_model
    from training.continual.methods import make_method

    _, out = benchmark
    soft_run = json.loads((out / "moe-soft" / "order_0" / "run.json").read_text())
    assert [step["train"]["adopted_from"] for step in soft_run["steps"]] == ["moe-hard", "moe-hard"]
    hard, soft = (out / name / "order_0" / "experts" for name in ("moe-hard", "moe-soft"))
    for task in (FIRST, SECOND):
        file = Path(task) / "adapter" / "adapter_model.safetensors"
        assert (soft / file).read_bytes() == (hard / file).read_bytes()

    method = make_method("moe-soft", load_base_model(inputs["base"]), TEST_CONFIG)
    method.restore([FIRST, SECOND], soft)
    method.prepare_inference()
    decision = Decision(FIRST, {FIRST: 0.30, SECOND: 0.38})
    blend = method.serving_adapter(decision)
    assert blend not in (FIRST, SECOND)
    method.model.eval()
    prompt = method.lm.tokenizer(["Describe this motion: a person waves"], return_tensors="pt")
    with torch.no_grad():
        trained = method.model(**prompt, adapter_names=[blend]).logits
        lm = load_base_model(inputs["base"])
        runtime = ExpertSet(lm)
        runtime.sync({FIRST: soft / FIRST, SECOND: soft / SECOND})
        weights = {n: round(w, 2) for n, w in softmax_weights(decision.scores, TEST_CONFIG.router.temperature).items()}
        with runtime.blended(weights):
            served = lm.model(**prompt).logits
        alone = method.model(**prompt, adapter_names=[FIRST]).logits
    assert torch.allclose(trained, served, atol=1e-5)
    assert not torch.allclose(trained, alone, atol=1e-3)  # the blend is not just its top expert


@pytest.mark.slow
def test_es_moe_learns_with_an_emotion_loss_and_serves_the_gates_blend(inputs, benchmark):
    """es-moe trains with the emotion loss on the corpus's labels, saves its gate and decoupling block
    with each expert, and a served request runs exactly the gate-weighted sum its training forward used."""
    from motion_agent.experts.expert_set import weighted_experts
    from motion_agent.model.base_model import load_base_model
    from training.continual.methods import make_method

    _, out = benchmark
    run = json.loads((out / "es-moe" / "order_0" / "run.json").read_text())
    assert all(step["train"]["history"][-1]["emotion"] > 0 for step in run["steps"])
    experts = out / "es-moe" / "order_0" / "experts"
    assert (experts / SECOND / "gate" / "gate.safetensors").is_file()
    assert (experts / SECOND / "emotion" / "emotion_decoupling.safetensors").is_file()

    method = make_method("es-moe", load_base_model(inputs["base"]), TEST_CONFIG)
    method.restore([FIRST, SECOND], experts)
    method.prepare_inference()
    texts = ["a person does a backflip happily", "someone plays the piano sadly"]
    weights = method.weights("t2m", texts)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and ((weights > 0).sum(1) <= 2).all()
    served = method.route("t2m", texts)
    prompt = method.lm.tokenizer([texts[0]], return_tensors="pt")
    rounded = torch.tensor([[round(w, 2) for w in weights[0].tolist()]])
    with torch.no_grad():
        as_served = method.model(**prompt, adapter_names=served[:1]).logits
        with weighted_experts(method.model, method.names, rounded):
            as_trained = method.model(**prompt).logits
    assert torch.allclose(as_served, as_trained, atol=1e-5)


@pytest.mark.slow
def test_lwf_teacher_is_a_frozen_copy_of_the_previous_adapter(inputs, benchmark):
    from motion_agent.model.base_model import load_base_model
    from training.continual.adapters import lora_pairs
    from training.continual.methods import make_method
    from training.continual.methods.lwf_lora import TEACHER

    _, out = benchmark
    method = make_method("lwf-lora", load_base_model(inputs["base"]), TEST_CONFIG)
    method.restore([FIRST], out / "lwf-lora" / "order_0" / "experts")
    method.begin_task(1, SECOND)
    expert, teacher = lora_pairs(method.model, method.EXPERT), lora_pairs(method.model, TEACHER)
    assert len(expert) == len(teacher) > 0
    assert all(torch.equal(e, t) for pe, pt in zip(expert, teacher) for e, t in zip(pe, pt))
    assert all(e.requires_grad and not t.requires_grad for pe, pt in zip(expert, teacher) for e, t in zip(pe, pt))
    method.end_task(1, None)
    assert TEACHER not in method.model.peft_config
