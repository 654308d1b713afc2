"""The continual trainer: one loop for every method, task by task, scoring every task after each one.

    OUT/run.json                 method, task order, settings, and one entry per finished task: its
                                 training figures and the scores of EVERY task (seen and unseen) after it
    OUT/experts/<task>/adapter/  the expert that task left (peft save_pretrained, safetensors); routed
                                 methods add router/, and eval.json holds the task's own scores right after
                                 it, so the folder packs into a bundle (motion-agent-bundle pack) as it is
    OUT/baseline.json            every task scored by the base model before any training (FWT's reference)

Scenarios held out of training (`held_out`) are never trained or scored for quality; after each task a
routed method records how many of their requests it flags "unknown", the robot's view of a new scenario.

Every method gets the same data, per-task step budget, batches, schedule and evaluation; a method only
supplies the hooks of `training.continual.methods.base.ContinualMethod`. A finished task (its expert
saved and its row of scores written) is never retrained: running the same command again continues after
the last finished task, restoring the method's state from the saved experts, and a finished run is
returned as its run.json records it, without loading anything (so its record alone continues a
benchmark elsewhere). Per-task seeds make a resumed run give the same figures as an uninterrupted one. Multi-GPU:
`accelerate launch -m training.cli
continual ...` (training is data-parallel; scoring runs on the main process).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from motion_agent.experts.expert_set import EVAL_FILE
from motion_agent.model.base_model import BaseModelSpec, load_base_model, tokenizer_folder
from motion_agent.model.tokenizer import MotionTokenizer
from training.base.train import Example, forward_precision, learning_rate, sample_batch
from training.continual.config import ContinualConfig
from training.continual.methods import ContinualMethod, make_method, method_class
from training.continual.report import json_ready
from training.continual.scores import no_routing, score_tasks, unknown_auroc, unknown_shares
from training.continual.tasks import TaskData, load_tasks, resolve_order, stream_tasks
from training.data.humanml3d import HumanML3D
from training.evaluation.evaluator import Evaluator

RUN_FILE = "run.json"
BASELINE_FILE = "baseline.json"
EXPERTS_DIR = "experts"
TASK_SEED_STRIDE = 1000  # task i trains with seed + 1000 * (i + 1): the same whether resumed or not


class RunMismatchError(ValueError):
    """OUT holds a run with another method, order, base model or settings: it cannot be continued."""


def _write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so an interrupted write never corrupts a run file."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(data, indent=1) + "\n")
    scratch.replace(path)


COMMON_SETTINGS = ("lora", "training", "evaluation")  # what every method's figures depend on


def run_settings(config: ContinualConfig, reads: tuple[str, ...] = ()) -> dict:
    """The settings that shape one run's figures: the common sections and those its method `reads`
    (sections or "section.key"), as a run file holds them. Not which methods or orders a benchmark
    runs, and not another method's settings: changing those never voids this run."""
    full = json.loads(json.dumps(asdict(config)))
    chosen: dict = {}
    for path in (*COMMON_SETTINGS, *reads):
        section, _, key = path.partition(".")
        if key:
            chosen.setdefault(section, {})[key] = full[section][key]
        else:
            chosen[section] = full[section]
    return chosen


def same_setting(stored, current, default) -> bool:
    """Whether a stored run's setting is `current`. A key the stored run lacks is a setting added to the
    project after that run was made: it matches when `current` holds the setting's default. A key only
    the stored run has is one the method no longer reads."""
    if isinstance(stored, dict) and isinstance(current, dict):
        default = default if isinstance(default, dict) else {}
        return all(
            same_setting(stored[key], value, default.get(key)) if key in stored else value == default.get(key)
            for key, value in current.items()
        )
    return stored == current


def open_run(
    out: Path,
    method: str,
    tasks: list[str],
    config: ContinualConfig,
    fingerprint: str,
    held_out: list[str] | None = None,
    reads: tuple[str, ...] = (),
) -> dict:
    """The run state in OUT: a new one, or the one there when it is the same run (else an error)."""
    identity = {
        "method": method,
        "tasks": tasks,
        "base_fingerprint": fingerprint,
        "config": run_settings(config, reads),
    }
    if held_out:
        identity["held_out"] = held_out
    path = out / RUN_FILE
    if not path.is_file():
        return {**json.loads(json.dumps(identity)), "steps": []}
    state = json.loads(path.read_text())
    for key, value in json.loads(json.dumps(identity)).items():  # tuples as lists, like the file
        if not same_setting(state.get(key), value, run_settings(ContinualConfig(), reads) if key == "config" else None):
            raise RunMismatchError(
                f"{path} is a run with another {key} ({state.get(key)!r:.120}); use another --out or delete it"
            )
    return state


def baseline_scores(
    lm, tokenizer, evaluator, tasks: list[TaskData], config: ContinualConfig, path: Path, key: str
) -> dict[str, dict[str, float]]:
    """Every task scored by the base model alone, cached in `path` (shared by the runs of a benchmark)
    under `key`; only tasks missing from the cache are scored."""
    cache = json.loads(path.read_text()) if path.is_file() else {}
    known = cache.get("scores", {}) if cache.get("key") == key else {}
    missing = [task for task in tasks if task.name not in known]
    if missing:
        known |= score_tasks(lm, no_routing, tokenizer, evaluator, missing, config.evaluation)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, {"key": key, "scores": known})
    return {task.name: known[task.name] for task in tasks}


def _cache_key(fingerprint: str, evaluator_dir: Path, stream: Path, config: ContinualConfig) -> str:
    parts = [fingerprint, str(evaluator_dir.resolve()), str(stream.resolve()), json.dumps(asdict(config.evaluation))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def donor_steps(folder: Path, agent: ContinualMethod, state: dict, config: ContinualConfig) -> dict[str, dict]:
    """{task: its step} of the finished tasks of the run in `folder` whose experts `agent` may adopt: a
    run of the method it `serves_experts_of`, on the same tasks, base model and settings, with the
    task's expert on disk (a run continued from its record alone has none); else {}."""
    path = folder / RUN_FILE
    if agent.serves_experts_of is None or not path.is_file():
        return {}
    donor = json.loads(path.read_text())
    reads = method_class(agent.serves_experts_of).reads
    same = all(donor.get(key) == state.get(key) for key in ("tasks", "base_fingerprint", "held_out"))
    same = same and same_setting(
        donor.get("config"), run_settings(config, reads), run_settings(ContinualConfig(), reads)
    )
    if donor.get("method") != agent.serves_experts_of or not same:
        return {}
    return {step["task"]: step for step in donor["steps"] if (folder / EXPERTS_DIR / step["task"]).is_dir()}


def train_task(
    method: ContinualMethod,
    examples: list[Example],
    config: ContinualConfig,
    index: int,
    accelerator,
    desc: str,
    progress: bool,
) -> dict:
    """The per-task budget of steps on `examples` with the method's loss; returns the task's figures."""
    run, lm = config.training, method.lm
    optimizer = torch.optim.AdamW(method.trainable_parameters(), lr=run.lr, weight_decay=run.weight_decay)
    model, optimizer = accelerator.prepare(method.model, optimizer)
    rng = np.random.default_rng([run.seed, index, accelerator.process_index])
    model.train()
    history, running, began = [], {}, time.perf_counter()
    bar = tqdm(range(run.steps), desc=desc, disable=not (progress and accelerator.is_main_process))
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, run)
        batch = sample_batch(
            examples, run.batch_size, run.t2m_fraction, lm.vocabulary, lm.tokenizer, rng, method.emotion_classes
        )
        with forward_precision(run, accelerator.device):
            loss, parts = method.loss(model, {k: v.to(accelerator.device) for k, v in batch.items()})
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if run.grad_clip > 0:
            accelerator.clip_grad_norm_(method.trainable_parameters(), run.grad_clip)
        optimizer.step()
        for name, value in {"loss": float(loss.detach()), **parts}.items():
            running[name] = running.get(name, 0.0) + value
        if (step + 1) % run.log_every == 0 or step + 1 == run.steps:
            count = step % run.log_every + 1
            history.append({"step": step + 1, **{k: v / count for k, v in running.items()}})
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
            running = {}
    seconds = time.perf_counter() - began
    accelerator.free_memory()  # the next task prepares its own optimiser (and maybe new parameters)
    method.lm.model = accelerator.unwrap_model(model)
    return {
        "seconds": round(seconds, 2),
        "steps": run.steps,
        "examples": len(examples),
        "final_loss": history[-1]["loss"],
        "history": history,
    }


def run_continual(
    stream: str | Path,
    corpus: str | Path,
    base: str | Path,
    evaluator: str | Path,
    method: str,
    out: str | Path,
    config: ContinualConfig = ContinualConfig(),
    order: list[str] | None = None,
    progress: bool = True,
    baseline_file: str | Path | None = None,
    max_tasks: int | None = None,
    held_out: list[str] | None = None,
    experts_from: str | Path | None = None,
) -> dict:
    """Train `method` on the stream's tasks in `order` (default: the stream's; a subset runs only those)
    and score every task after each; returns the run state (what OUT/run.json holds). `max_tasks` stops
    after that many tasks have been trained in this call (the next call resumes). `held_out` names
    stream tasks never trained: after each task a routed method's share of their requests flagged
    "unknown" is recorded, and they count as unknown in the AUROC. `experts_from` is a run folder of the
    method this one `serves_experts_of`: its finished tasks' experts are adopted, not trained again."""
    from accelerate import Accelerator

    stream, out = Path(stream), Path(out)
    names = resolve_order(stream_tasks(stream), order)
    fingerprint = BaseModelSpec.read(Path(base)).fingerprint  # what load_base_model checks the files against
    state = open_run(out, method, names, config, fingerprint, held_out, method_class(method).reads)
    if is_complete(state):  # a finished run is its record (run.json): nothing to load, train or score
        return state
    accelerator = Accelerator()
    lm = load_base_model(base)
    lm.model.to(accelerator.device)
    tokenizer = MotionTokenizer.load(tokenizer_folder(base)).eval()
    scorer = Evaluator.load(evaluator)
    data = HumanML3D(corpus)
    tasks = load_tasks(stream, data, tokenizer, names, config.evaluation.clips_per_task)
    unseen = load_tasks(stream, data, tokenizer, held_out, config.evaluation.clips_per_task) if held_out else []
    agent = make_method(method, lm, config)
    donor = donor_steps(Path(experts_from), agent, state, config) if experts_from else {}
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        key = _cache_key(lm.fingerprint, Path(evaluator), stream, config)
        state["baseline"] = baseline_scores(
            lm, tokenizer, scorer, tasks, config, Path(baseline_file or out / BASELINE_FILE), key
        )
    finished = [step["task"] for step in state["steps"]]
    agent.restore(finished, out / EXPERTS_DIR)
    trained = 0
    for index, task in enumerate(tasks):
        if index < len(finished):
            continue
        if max_tasks is not None and trained >= max_tasks:
            break
        torch.manual_seed(config.training.seed + TASK_SEED_STRIDE * (index + 1))
        if task.name in donor:
            agent.restore([task.name], Path(experts_from) / EXPERTS_DIR)
            figures = {**donor[task.name]["train"], "adopted_from": agent.serves_experts_of}
        else:
            agent.begin_task(index, task.name)
            desc = f"{method} {index + 1}/{len(tasks)} {task.name}"
            figures = train_task(
                agent, agent.training_examples(index, tasks), config, index, accelerator, desc, progress
            )
            agent.end_task(index, task)
        trained += 1
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            agent.save_expert(task.name, out / EXPERTS_DIR / task.name)
            agent.prepare_inference()
            scores = score_tasks(lm, agent.route, tokenizer, scorer, tasks, config.evaluation, agent.expert_of)
            step = {"task": task.name, "train": figures, "scores": scores}
            _write_json(
                out / EXPERTS_DIR / task.name / EVAL_FILE,
                json_ready(
                    {"method": method, "task": task.name, "base_fingerprint": lm.fingerprint, **scores[task.name]}
                ),
            )
            auroc = unknown_auroc(agent.novelty, [*tasks, *unseen], {t.name for t in tasks[: index + 1]})
            if auroc is not None:
                step["unknown_auroc"] = auroc
            rejected = unknown_shares(agent.route, unseen)
            if rejected:
                step["held_out_unknown"] = rejected
            state["steps"].append(step)
            _write_json(out / RUN_FILE, state)
    if accelerator.is_main_process and not (out / RUN_FILE).is_file():
        _write_json(out / RUN_FILE, state)
    return state


def is_complete(state: dict) -> bool:
    return len(state["steps"]) == len(state["tasks"])
