"""The benchmark: every method on one stream, in several task orders, under the same settings, then the
comparison report.

    OUT/<method>/order_<k>/    one continual run per method and order (resumable, see trainer.py)
    OUT/baseline.json          the base model's scores, shared by every run
    OUT/report.json, report.md, heatmaps/<method>.png

Running the same command again skips every finished task of every run, so an interrupted benchmark
continues where it stopped.
"""
from __future__ import annotations

from pathlib import Path

from training.continual.config import ContinualConfig
from training.continual.methods import method_class
from training.continual.report import comparison, write_report
from training.continual.tasks import resolve_order, stream_tasks, task_orders
from training.continual.trainer import BASELINE_FILE, run_continual


def benchmark_orders(stream: str | Path, config: ContinualConfig, orders: int | None = None,
                     first: list[str] | None = None) -> list[list[str]]:
    """`orders` task orders (default: the config's count): `first` (default: the stream's), then seeded
    permutations of it."""
    tasks = resolve_order(stream_tasks(stream), first)
    return task_orders(tasks, orders or config.orders.count, config.orders.seed)


def run_benchmark(stream: str | Path, corpus: str | Path, base: str | Path, evaluator: str | Path, out: str | Path,
                  config: ContinualConfig = ContinualConfig(), methods: list[str] | None = None,
                  orders: int | None = None, first: list[str] | None = None, profile: str = "",
                  progress: bool = True) -> dict:
    """Run (or finish) every method x order and write the report; returns the comparison record."""
    out = Path(out)
    methods = list(methods or config.methods)
    for name in methods:
        method_class(name)  # an unknown name fails before hours of work
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    for k, order in enumerate(benchmark_orders(stream, config, orders, first)):
        for name in methods:
            runs[name].append(run_continual(stream, corpus, base, evaluator, name, out / name / f"order_{k}", config,
                                            order, progress, baseline_file=out / BASELINE_FILE))
    record = comparison(runs, profile)
    write_report(record, out)
    return record
