"""Scoring every task of a stream with one model state: T2M and M2T through the frozen evaluator
(`training.evaluation.lm_eval`), the held-out loss of each direction, and for routed methods how well the router
tells tasks it was trained on from the ones still to come.

The loss (mean cross-entropy over the target tokens of the scored test clips, first caption each) is
deterministic and reacts to small changes, where R-Precision on a few dozen clips is noisy; it is the
figure to look at when a tiny run must show forgetting. Requests are routed by the method exactly as
generation is, so a routed method is scored on the experts its router picks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from motion_agent.experts.expert_set import BASE
from motion_agent.model.language_model import MotionLanguageModel
from motion_agent.model.tokenizer import MotionTokenizer
from training.base.train import Example, collate, pair
from training.continual.config import ContinualEvalSettings
from training.continual.losses import token_loss_sum
from training.continual.tasks import TaskData
from training.evaluation import metrics
from training.evaluation.evaluator import Evaluator
from training.evaluation.lm_eval import evaluate_m2t, evaluate_t2m

Router = Callable[[str, Sequence], "list[str] | None"]


def no_routing(direction: str, inputs: Sequence) -> None:
    """Every request through the model as it is (the base model before any task)."""
    return None


@torch.no_grad()
def heldout_loss(
    lm: MotionLanguageModel, examples: list[Example], t2m: bool, adapter_names: list[str] | None, batch_size: int
) -> float:
    """Mean target-token cross-entropy of one direction over `examples` (their first caption)."""
    model = lm.model
    model.eval()
    rng = np.random.default_rng(0)  # `pair` draws a caption; with one caption the draw is fixed
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        pairs = [
            pair(Example(e.codes, e.captions[:1], e.emotion), t2m, lm.vocabulary, lm.tokenizer.eos_token, rng)
            for e in chunk
        ]
        batch = {k: v.to(model.device) for k, v in collate(lm.tokenizer, pairs).items()}
        extra = {"adapter_names": adapter_names[start : start + len(chunk)]} if adapter_names is not None else {}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits
        loss, tokens = token_loss_sum(logits, batch["labels"])
        total, count = total + loss, count + tokens
    return total / max(count, 1)


def score_task(
    lm: MotionLanguageModel,
    route: Router,
    tokenizer: MotionTokenizer,
    evaluator: Evaluator,
    task: TaskData,
    settings: ContinualEvalSettings,
    expert: str | None = None,
) -> dict:
    """Every figure of one task, flat: `t2m_*` (R-Precision, FID, ...), `m2t_*` (BLEU, ...), `*_loss`;
    when the method routes and names the task's expert also `routing_accuracy`, `routed_unknown` (the
    share no expert accepted) and `routed_to` ({adapter: share of the requests}, for the confusion matrix)."""
    (_, captions), (_, codes) = test_requests(task)
    t2m_names, m2t_names = route("t2m", captions), route("m2t", codes)
    lm_settings = settings.lm_eval()
    t2m = evaluate_t2m(lm, tokenizer, evaluator, task.test_clips, lm_settings, adapter_names=t2m_names)
    m2t = evaluate_m2t(lm, tokenizer, evaluator, task.test_clips, lm_settings, adapter_names=m2t_names)
    figures = {f"t2m_{k}": float(v) for k, v in t2m.items()}
    figures |= {f"m2t_{k}": float(v) for k, v in m2t.items() if k != "examples"}
    figures["t2m_loss"] = heldout_loss(lm, task.test, True, t2m_names, settings.batch_size)
    figures["m2t_loss"] = heldout_loss(lm, task.test, False, m2t_names, settings.batch_size)
    if expert is not None and t2m_names is not None and m2t_names is not None:
        routed = t2m_names + m2t_names
        figures["routing_accuracy"] = metrics.routing_accuracy([expert] * len(routed), routed)
        figures["routed_unknown"] = routed.count(BASE) / len(routed)
        figures["routed_to"] = {name: routed.count(name) / len(routed) for name in sorted(set(routed))}
    return figures


def score_tasks(
    lm: MotionLanguageModel,
    route: Router,
    tokenizer: MotionTokenizer,
    evaluator: Evaluator,
    tasks: Sequence[TaskData],
    settings: ContinualEvalSettings,
    expert_of: Callable[[str], str | None] = lambda task: None,
) -> dict[str, dict]:
    """{task: figures} for every task, seen or not."""
    return {
        task.name: score_task(lm, route, tokenizer, evaluator, task, settings, expert_of(task.name)) for task in tasks
    }


def test_requests(task: TaskData) -> tuple[tuple[str, list], ...]:
    """A task's test requests per direction: first captions for T2M, motion codes for M2T."""
    return (("t2m", [c.captions[0].text for c in task.test_clips]), ("m2t", [e.codes for e in task.test]))


def unknown_shares(route: Router, tasks: Sequence[TaskData]) -> dict[str, float]:
    """{task: share of its test requests (both directions) routed to no expert}; empty without a router."""
    shares = {}
    for task in tasks:
        routed = [name for direction, inputs in test_requests(task) for name in (route(direction, inputs) or [])]
        if not routed:
            return {}
        shares[task.name] = routed.count(BASE) / len(routed)
    return shares


def unknown_auroc(
    novelty: Callable[[str, Sequence], np.ndarray | None], tasks: Sequence[TaskData], seen: set[str]
) -> float | None:
    """AUROC of telling the test requests (both directions) of tasks not trained yet from those of
    trained tasks by the method's novelty score; None without a router, or without both kinds of task."""
    known, unknown = [], []
    for task in tasks:
        for direction, inputs in test_requests(task):
            scores = novelty(direction, inputs)
            if scores is None:
                return None
            (known if task.name in seen else unknown).extend(np.asarray(scores, float).tolist())
    return metrics.unknown_auroc(known, unknown) if known and unknown else None
