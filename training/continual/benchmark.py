"""The benchmark: every method on one stream, in several task orders, under the same settings, then the
comparison report.

    OUT/<method>/order_<k>/    one continual run per method and order (resumable, see trainer.py)
    OUT/baseline.json          the base model's scores, shared by every run

A method that only serves another's experts differently (moe-soft: moe-hard's) adopts them from that
method's run of the same order when the benchmark runs both. With `orders.tasks` set, the stream's
other tasks are never trained: they are the scenarios held out of training on which each router's
unknown detection is scored.
    OUT/report.json, report.md, heatmaps/<method>.png

Running the same command again skips every finished task of every run, so an interrupted benchmark
continues where it stopped. With `records` (a folder laid out like OUT, holding run.json files only)
it also continues on another machine: each finished run's run.json is copied there, and a run that
OUT lacks starts from its record when that is a finished run with the same tasks, base model and
settings (records of other settings are left alone).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from motion_agent.model.base_model import BaseModelSpec
from training.continual.config import ContinualConfig
from training.continual.methods import method_class
from training.continual.report import comparison, write_report
from training.continual.tasks import resolve_order, stream_tasks, task_orders
from training.continual.trainer import BASELINE_FILE, RUN_FILE, RunMismatchError, is_complete, open_run, run_continual


def benchmark_orders(
    stream: str | Path, config: ContinualConfig, orders: int | None = None, first: list[str] | None = None
) -> tuple[list[list[str]], list[str]]:
    """`orders` task orders (default: the config's count): `first` (default: the stream's, cut to the
    config's `orders.tasks`), then seeded permutations of it; and the stream's tasks held out of them."""
    everything = stream_tasks(stream)
    tasks = resolve_order(everything, first)
    if not first and config.orders.tasks:
        tasks = tasks[: config.orders.tasks]
    held_out = [task for task in everything if task not in tasks]
    return task_orders(tasks, orders or config.orders.count, config.orders.seed), held_out


def run_benchmark(
    stream: str | Path,
    corpus: str | Path,
    base: str | Path,
    evaluator: str | Path,
    out: str | Path,
    config: ContinualConfig = ContinualConfig(),
    methods: list[str] | None = None,
    orders: int | None = None,
    first: list[str] | None = None,
    profile: str = "",
    progress: bool = True,
    records: str | Path | None = None,
) -> dict:
    """Run (or finish) every method x order and write the report; returns the comparison record.
    `records`: where finished runs' run.json files are kept and continued from (see above)."""
    out = Path(out)
    methods = list(methods or config.methods)
    for name in methods:
        method_class(name)  # an unknown name fails before hours of work
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    task_lists, held_out = benchmark_orders(stream, config, orders, first)
    for k, order in enumerate(task_lists):
        for name in methods:
            donor = method_class(name).serves_experts_of
            experts_from = out / donor / f"order_{k}" if donor in methods else None
            run = out / name / f"order_{k}"
            kept = Path(records) / name / f"order_{k}" if records else None
            if kept is not None:
                start_from_record(kept, run, name, order, config, base, held_out)
            state = run_continual(
                stream,
                corpus,
                base,
                evaluator,
                name,
                run,
                config,
                order,
                progress,
                baseline_file=out / BASELINE_FILE,
                held_out=held_out,
                experts_from=experts_from,
            )
            if kept is not None and is_complete(state):
                kept.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run / RUN_FILE, kept / RUN_FILE)
            runs[name].append(state)
    record = comparison(runs, profile)
    write_report(record, out)
    return record


def start_from_record(
    record: Path,
    run: Path,
    method: str,
    order: list[str],
    config: ContinualConfig,
    base: str | Path,
    held_out: list[str],
) -> bool:
    """Give `run` the run.json of `record` when it has none yet and the record is a finished run of the
    same method, tasks, base model and settings; returns whether it did."""
    if (run / RUN_FILE).is_file() or not (record / RUN_FILE).is_file():
        return False
    try:
        state = open_run(
            record,
            method,
            order,
            config,
            BaseModelSpec.read(Path(base)).fingerprint,
            held_out,
            method_class(method).reads,
        )
    except RunMismatchError:  # a record of other settings: this run starts afresh
        return False
    if not is_complete(state):
        return False
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(record / RUN_FILE, run / RUN_FILE)
    return True
