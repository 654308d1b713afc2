"""Training one expert against what a robot already has.

The deployed experts (the active versions of the robot's expert store) are restored into a moe-hard
method exactly as a finished continual run's are: their LoRAs frozen, their autoencoder routers loaded.
The new expert then trains as moe-hard's next task would: alone, its LoRA's A matrices pushed orthogonal
to every deployed expert's (O-LoRA), and its router fitted on the new clips' prompts. Routing is
measured on requests the training never saw: the new scenario's held-out captions, and, given a corpus
of the deployed scenarios, theirs. A new expert that would take more than `max_share` of a deployed
expert's requests is refused unless forced: it would silently change what the robot does today.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from motion_agent.bundles.store import ExpertStore
from motion_agent.experts.expert_set import BASE, EVAL_FILE
from motion_agent.model.base_model import load_base_model, tokenizer_folder
from motion_agent.model.tokenizer import MotionTokenizer
from training.base.train import encode
from training.continual import adapters
from training.continual.config import ContinualConfig
from training.continual.methods import make_method
from training.continual.scores import score_task
from training.continual.tasks import TaskData
from training.continual.trainer import train_task
from training.data.humanml3d import HumanML3D, MotionClip
from training.evaluation.evaluator import Evaluator
from training.expert.reach import tokenizer_reach

UNKNOWN = "unknown"  # a request no expert accepts: served by the base model
REQUESTS_PER_SCENARIO = 40  # held-out requests routed per scenario
MAX_SHARE = 0.10  # of a deployed expert's requests the new one may take before it is refused
# the held-out losses beside the evaluator's figures: whether the expert fits the team's clips better, even
# where an evaluator trained on other performances scores its motions lower
SCORE_KEYS = ("t2m_r_precision_top3", "t2m_fid", "m2t_r_precision_top3", "m2t_bleu4", "t2m_loss", "m2t_loss")


@dataclass(frozen=True)
class ExpertRun:
    corpus: Path
    scenario: str
    base: Path
    store: Path
    out: Path
    deployed_corpus: Path | None = None
    max_share: float = MAX_SHARE
    force: bool = False
    evaluator: Path | None = None  # scores the new scenario's T2M and M2T before and after


def _requests(clips: list[MotionClip], count: int = REQUESTS_PER_SCENARIO) -> list[str]:
    return [clip.captions[0].text for clip in clips[:count]]


def deployed_clips(corpus: Path | None) -> tuple[list[MotionClip], list[MotionClip]]:
    """(every clip, the test clips) of a corpus whose metadata names the deployed scenarios, read once:
    the deployed experts were trained elsewhere, and the new one never reads this corpus."""
    if corpus is None:
        return [], []
    data = HumanML3D(corpus)
    clips, test = data.clips("all"), set(data.ids("test"))
    return clips, [c for c in clips if c.motion_id in test]


def deployed_requests(clips: list[MotionClip], names: list[str]) -> dict[str, list[str]]:
    """Requests of each deployed scenario, from all of its clips."""
    return {
        name: _requests([c for c in clips if c.scenario == name])
        for name in names
        if any(c.scenario == name for c in clips)
    }


def routing(method, requests: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """{scenario: {routed expert or "unknown": count}} of t2m requests."""
    table = {}
    for scenario, texts in requests.items():
        routed = method.route("t2m", texts) if texts else []
        table[scenario] = dict(Counter(UNKNOWN if r == BASE else r for r in routed or [UNKNOWN] * len(texts)))
    return table


def share(table: dict[str, dict[str, int]], scenario: str, expert: str) -> float:
    counts = table.get(scenario, {})
    return counts.get(expert, 0) / max(sum(counts.values()), 1)


def accuracy(table: dict[str, dict[str, int]], names: dict[str, str]) -> float | None:
    """Share of the deployed scenarios' requests routed to their own expert (names: scenario -> adapter)."""
    total = sum(sum(table[s].values()) for s in names if s in table)
    right = sum(table[s].get(names[s], 0) for s in names if s in table)
    return right / total if total else None


def _scores(method, tokenizer, scorer, task: TaskData, config: ContinualConfig) -> dict[str, float]:
    """The new scenario's held-out T2M and M2T figures as the robot would serve them (routed)."""
    figures = score_task(method.lm, method.route, tokenizer, scorer, task, config.evaluation)
    return {key: round(float(figures[key]), 4) for key in SCORE_KEYS if key in figures}


def train_expert(run: ExpertRun, config: ContinualConfig, progress: bool = True) -> dict:
    """Train, measure, save the expert folder under run.out/expert, and return the figures; `refused` (and
    `refusal`, whose requests) when it would take over a deployed expert: the caller then writes no bundle,
    but the folder and the figures exist, so the report can show why."""
    from accelerate import Accelerator

    lm = load_base_model(run.base)
    tokenizer = MotionTokenizer.load(tokenizer_folder(run.base)).eval()
    data = HumanML3D(run.corpus)
    train_clips, test_clips = data.clips("train"), data.clips("test") + data.clips("val")
    if not train_clips or not test_clips:
        raise ValueError(f"{run.corpus} needs clips in its train split and in its test or val split")
    known, known_test = deployed_clips(run.deployed_corpus)
    reach = tokenizer_reach(tokenizer, test_clips, known_test)
    deployed = ExpertStore(run.store).active_experts()
    name = adapters.adapter_name(run.scenario)
    if name in {adapters.adapter_name(d) for d in deployed}:
        raise ValueError(f"the robot already has an expert named {run.scenario!r}: pick another scenario name")
    method = make_method("moe-hard", lm, config)
    with tempfile.TemporaryDirectory(prefix="deployed-") as folder:
        for expert, path in deployed.items():  # the store's version folders, as a run's experts folder
            (Path(folder) / expert).symlink_to(path.resolve())
        method.restore(list(deployed), Path(folder))
        requests = {run.scenario: _requests(test_clips), **deployed_requests(known, list(deployed))}
        method.prepare_inference()
        before = routing(method, requests) if deployed else {s: {UNKNOWN: len(t)} for s, t in requests.items()}
        torch.manual_seed(config.training.seed)
        task = TaskData(run.scenario, encode(tokenizer, train_clips), test_clips, encode(tokenizer, test_clips))
        scorer = Evaluator.load(run.evaluator) if run.evaluator else None
        scores = {"before": _scores(method, tokenizer, scorer, task, config)} if scorer else {}
        index = len(deployed)
        method.begin_task(index, run.scenario)
        figures = train_task(method, task.train, config, index, Accelerator(), f"expert {run.scenario}", progress)
        method.end_task(index, task)
        method.save_expert(run.scenario, run.out / "expert")
        method.prepare_inference()
        after = routing(method, requests)
        if scorer:
            scores["after"] = _scores(method, tokenizer, scorer, task, config)
    own = {d: adapters.adapter_name(d) for d in deployed}
    taken = {d: round(share(after, d, name), 3) for d in deployed if d in after}
    result = {
        "scenario": run.scenario,
        "adapter": name,
        "deployed": sorted(deployed),
        "train_clips": len(train_clips),
        "test_requests": len(requests[run.scenario]),
        "training": {k: v for k, v in figures.items() if k != "history"},
        "routing": {"before": before, "after": after},
        "new": {"routed_to_new": round(share(after, run.scenario, name), 3)},
        "deployed_routing_accuracy": {"before": accuracy(before, own), "after": accuracy(after, own)},
        "taken_from_deployed": taken,
        "max_share": run.max_share,
        "scores": scores,
        "tokenizer_reach": reach,
    }
    kept = ("train_clips", "new", "deployed_routing_accuracy", "taken_from_deployed")
    figures_file = {"method": "moe-hard", "task": run.scenario, "base_fingerprint": lm.fingerprint}
    figures_file.update({key: result[key] for key in kept})
    (run.out / "expert" / EVAL_FILE).write_text(json.dumps(figures_file, indent=2) + "\n")
    over = {d: s for d, s in taken.items() if s > run.max_share}
    result["refused"] = bool(over) and not run.force
    if result["refused"]:
        result["refusal"] = (
            f"the new expert {run.scenario!r} takes "
            + ", ".join(f"{s:.0%} of {d}'s requests" for d, s in over.items())
            + f" (more than {run.max_share:.0%}); rename or re-caption the clips, or force it"
        )
    return result
