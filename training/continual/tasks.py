"""The tasks of a stream as a continual run sees them: training examples, and the held-out clips that
score the task after every step.

A stream folder (`training.data.streams.write_stream`) names motion ids per task and split; the clips come
from the corpus folder (HumanML3D layout), so one stream can be replayed on any copy of its corpus.
Test clips are the first `clips_per_task` of the task's test split, so every method and every step is
scored on exactly the same clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion_agent.model.tokenizer import MotionTokenizer
from training.base.train import Example, encode
from training.data.humanml3d import HumanML3D, MotionClip
from training.data.streams import read_stream
from training.evaluation.metrics import R_PRECISION_TOP_K

MIN_TEST_CLIPS = R_PRECISION_TOP_K  # R-Precision top-3 needs pools of at least 3 clips


@dataclass
class TaskData:
    name: str
    train: list[Example]
    test_clips: list[MotionClip]
    test: list[Example]  # the test clips encoded (same order): what M2T captions and the held-out loss reads


def stream_tasks(stream: str | Path) -> list[str]:
    """Task names in the stream's own order."""
    return list(read_stream(stream))


def task_orders(tasks: list[str], count: int, seed: int) -> list[list[str]]:
    """The stream's order first, then seeded permutations, each different from the earlier ones while
    there are orders left to draw (2 tasks have only 2)."""
    orders = [list(tasks)]
    rng = np.random.default_rng([seed, 4])
    distinct = math.factorial(len(tasks))
    while len(orders) < count:
        order = [tasks[i] for i in rng.permutation(len(tasks))]
        if order not in orders or len(orders) >= distinct:
            orders.append(order)
    return orders


def resolve_order(tasks: list[str], order: list[str] | None) -> list[str]:
    """`order` names tasks of the stream (or their 0-based positions); a subset runs only those tasks."""
    if not order:
        return list(tasks)
    resolved = [tasks[int(item)] if item.isdigit() and int(item) < len(tasks) else item for item in order]
    unknown = [name for name in resolved if name not in tasks]
    if unknown:
        raise ValueError(f"task {unknown[0]!r} is not in the stream (tasks: {', '.join(tasks)})")
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"the order names a task twice: {', '.join(resolved)}")
    return resolved


def load_tasks(
    stream: str | Path, corpus: HumanML3D, tokenizer: MotionTokenizer, order: list[str], clips_per_task: int
) -> list[TaskData]:
    """Encode every task of `order`; refuses a task with no training clip or too few test clips."""
    splits = read_stream(stream)
    tasks = []
    for name in order:
        train = encode(tokenizer, corpus.clips(ids=splits[name]["train"]))
        clips = corpus.clips(ids=splits[name]["test"])
        clips = clips[:clips_per_task] if clips_per_task else clips
        if not train:
            raise ValueError(f"task {name!r} has no usable training clip in {corpus.root}")
        if len(clips) < MIN_TEST_CLIPS:
            raise ValueError(
                f"task {name!r} has {len(clips)} usable test clips; scoring needs at least {MIN_TEST_CLIPS}"
            )
        tasks.append(TaskData(name, train, clips, encode(tokenizer, clips)))
    return tasks
