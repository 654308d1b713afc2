"""One model thread per node process, and a worker that runs one request at a time (latest wins).

- on_model_thread: runs a call on the one thread that does all model work of a node process.
- LatestWinsWorker: one background thread that runs requests one at a time; a newer request replaces
  a queued older one, and a result that finishes after a newer request arrived is reported as stale.
Plain Python (no rclpy), so it is tested without ROS.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# --- one thread for the model --------------------------------------------------------------------

_MODEL_THREAD: ThreadPoolExecutor | None = None
_MODEL_THREAD_LOCK = threading.Lock()


def on_model_thread(call: Callable[..., T], *args, **kwargs) -> T:
    """`call(*args, **kwargs)` run on the process's one model thread; returns its result or raises.

    torch's CPU kernels run on OpenMP (libgomp), which keeps a pool of helper threads for each thread
    that starts parallel work and stops spin-waiting between operations once those pools together
    outnumber the cores; every operation then waits for its helpers to wake up. A node that loaded its
    model on the main thread and generated on a worker thread paid that on every operation (2 cores, in
    process: the tiny model's 4 s request took 118 ms of language model instead of 47, smollm2-135m's
    1325 ms instead of 851). So every model call of a node process (loading, generation, captioning)
    runs on this one thread, and requests are serialised there as well."""
    global _MODEL_THREAD
    with _MODEL_THREAD_LOCK:
        if _MODEL_THREAD is None:
            _MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    return _MODEL_THREAD.submit(call, *args, **kwargs).result()


# --- one request at a time, latest wins ---------------------------------------------------------


@dataclass
class Job(Generic[T]):
    id: int
    item: T
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None


@dataclass
class Outcome(Generic[T]):
    """What became of a job: a result, an error, or superseded (then `result` may still be set)."""

    job: Job[T]
    result: Any = None
    error: Exception | None = None
    superseded: str | None = None  # why it is not to be used: a newer request came first
    newer: Job[T] | None = None  # the job that superseded it

    @property
    def wait_ms(self) -> float:
        return ((self.job.started or self.job.submitted) - self.job.submitted) * 1000.0


class LatestWinsWorker(Generic[T]):
    """Runs `run(item)` in one background thread and hands every Outcome to `report`.

    At most one job waits: submitting replaces a waiting job (reported as superseded, never run). A
    job still running when a newer one is submitted runs to its end (a model call cannot be cut), but
    its result is reported as superseded instead of being used, so the newest request always wins
    (with `discard_stale=False` it is used anyway: a caption of the last window is still worth having).
    `report` is called from the worker thread, or from `submit` for a replaced job.
    """

    def __init__(
        self,
        run: Callable[[T], Any],
        report: Callable[[Outcome[T]], None],
        name: str = "worker",
        discard_stale: bool = True,
    ) -> None:
        self._run, self._report, self._discard_stale = run, report, discard_stale
        self._ids = itertools.count(1)
        self._condition = threading.Condition()
        self._waiting: Job[T] | None = None
        self._latest: Job[T] | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Job[T]:
        with self._condition:
            if self._closed:
                raise RuntimeError("worker is closed")
            job = Job(next(self._ids), item)
            replaced, self._waiting, self._latest = self._waiting, job, job
            self._condition.notify()
        if replaced is not None:
            self._safe_report(Outcome(replaced, superseded="dropped before it ran: a newer request came", newer=job))
        return job

    @property
    def idle(self) -> bool:
        with self._condition:
            return self._waiting is None and not self._busy

    def close(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._closed = True
            self._waiting = None
            self._condition.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._waiting is None and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                job, self._waiting, self._busy = self._waiting, None, True
            job.started = time.monotonic()
            outcome = Outcome(job)
            try:
                outcome.result = self._run(job.item)
            except Exception as error:  # a failed request is reported; the worker keeps serving
                outcome.error = error
            with self._condition:
                newer = self._latest
                self._busy = False
            if self._discard_stale and newer is not job and outcome.error is None:
                outcome.superseded = "finished after a newer request arrived; its result is not used"
                outcome.newer = newer
            self._safe_report(outcome)

    def _safe_report(self, outcome: Outcome[T]) -> None:
        try:
            self._report(outcome)
        except Exception:  # reporting must never stop the worker
            LOG.exception("reporting job %s failed", outcome.job.id)
