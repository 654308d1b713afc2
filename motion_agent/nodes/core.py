"""What the agent nodes do besides copying arrays into messages, in plain Python (no rclpy).

- on_model_thread: runs a call on the one thread that does all model work of a node process.
- LatestWinsWorker: one background thread that runs requests one at a time; a newer request replaces
  a queued older one, and a result that finishes after a newer request arrived is reported as stale.
- PoseWindow: the sliding window of observed poses that is captioned every `stride` frames.
- Checks and conversions of pose frames, diagnostic values, skeleton key frames for markers, and the
  trajectory preview that `motion-agent say` writes.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import numpy as np

from motion_agent.agent import CaptionResult, MotionResult, RequestError
from motion_agent.motion.skeleton import NUM_JOINTS, PARENTS

LOG = logging.getLogger(__name__)
T = TypeVar("T")
LABEL_CHARS = 120  # how much of a request its diagnostics repeat
# Columns are SMPL axes written in REP-103 axes: ros (x forward, y left, z up) = smpl (z, x, y).
SMPL_TO_ROS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))


def request_label(text: object) -> str:
    """A request as its diagnostics name it: whitespace collapsed, at most LABEL_CHARS characters.

    `motion-agent say` finds the diagnostics of its own request by this label."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(str(text).split())[:LABEL_CHARS]


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

    def __init__(self, run: Callable[[T], Any], report: Callable[[Outcome[T]], None], name: str = "worker",
                 discard_stale: bool = True) -> None:
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


# --- observed poses -------------------------------------------------------------------------------


def pose_frame(points: object, axes: str = "smpl") -> np.ndarray:
    """One observed pose -> (22, 3) SMPL-axes joint positions; RequestError when it is unusable."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise RequestError(f"a pose must be a list of 3D joint positions, got shape {array.shape}")
    if len(array) != NUM_JOINTS:
        raise RequestError(f"pose has {len(array)} joints; {NUM_JOINTS} SMPL joints are needed, in SMPL order")
    if not np.isfinite(array).all():
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(array).all(axis=1))[0]})
        raise RequestError(f"pose holds NaN or infinite positions (joints {bad})")
    if axes == "ros":
        array = array @ SMPL_TO_ROS  # row-vector form of SMPL_TO_ROS.T @ p: ros -> smpl
    elif axes != "smpl":
        raise ValueError(f"unknown pose axes {axes!r}")
    return array


class PoseWindow:
    """The newest `size` pose frames; `push` returns a window to caption every `stride` frames once full.

    A gap of more than `max_gap_s` between frames (the person left, the tracker restarted) clears the
    window, so a caption never spans two unrelated motions.
    """

    def __init__(self, size: int, stride: int, max_gap_s: float = 1.0) -> None:
        if size < 2 or stride < 1:
            raise ValueError("need size >= 2 and stride >= 1")
        self.size, self.stride, self.max_gap_s = size, stride, max_gap_s
        self._frames: deque[np.ndarray] = deque(maxlen=size)
        self._since_caption = 0
        self._last_time: float | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self._since_caption = 0

    def push(self, frame: np.ndarray, now: float | None = None) -> np.ndarray | None:
        now = time.monotonic() if now is None else now
        if self._last_time is not None and now - self._last_time > self.max_gap_s:
            self.clear()
        self._last_time = now
        self._frames.append(frame)
        self._since_caption += 1
        if len(self._frames) == self.size and self._since_caption >= self.stride:
            self._since_caption = 0
            return np.stack(self._frames)
        return None


# --- diagnostics and markers ----------------------------------------------------------------------


def _timings(timings_ms: dict[str, float]) -> dict[str, str]:
    values = {f"latency_ms.{stage}": f"{ms:.1f}" for stage, ms in timings_ms.items()}
    values["latency_ms.total"] = f"{sum(timings_ms.values()):.1f}"
    return values


def _router_scores(scores: dict[str, float]) -> dict[str, str]:
    return {f"router_loss.{expert}": f"{loss:.4g}" for expert, loss in scores.items()}


def generation_values(result: MotionResult, wait_ms: float) -> dict[str, str]:
    trajectory = result.trajectory
    duration = float(trajectory.times[-1]) if len(trajectory.times) else 0.0
    return {
        "expert": result.expert,
        "frames": str(len(result.joints)),
        "motion_tokens": str(len(result.codes)),
        "seconds": f"{result.seconds:.2f}",
        "trajectory_points": str(len(trajectory.times)),
        "trajectory_seconds": f"{duration:.3f}",
        "robot_joints": str(len(trajectory.joint_names)),
        "clipped": str(trajectory.clipped),
        "velocity_limited": str(trajectory.velocity_limited),
        "latency_ms.queue": f"{wait_ms:.1f}",
        **_timings(result.timings_ms),
        **_router_scores(result.router_scores),
    }


def caption_values(result: CaptionResult, wait_ms: float) -> dict[str, str]:
    return {"expert": result.expert, "frames": str(result.frames), "caption": result.caption,
            "latency_ms.queue": f"{wait_ms:.1f}", **_timings(result.timings_ms), **_router_scores(result.router_scores)}


def key_frames(joints: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    """`count` evenly spaced frames of a (T, 22, 3) SMPL-axes motion as (frame, (21, 2, 3) bone
    segments in REP-103 axes), ready for a LINE_LIST marker."""
    joints = np.asarray(joints, dtype=np.float64)
    picks = np.unique(np.linspace(0, len(joints) - 1, min(count, len(joints))).round().astype(int))
    parents, children = np.array(BONES).T
    ros = joints @ SMPL_TO_ROS.T
    return [(int(f), np.stack([ros[f, parents], ros[f, children]], axis=1)) for f in picks]


# --- what `motion-agent say` writes ---------------------------------------------------------------


def plot_trajectory(times: np.ndarray, positions: np.ndarray, names: list[str], path: str | Path,
                    title: str = "", lines: int = 12) -> Path:
    """Joint positions over time: the `lines` joints that move most, named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, positions = np.asarray(times), np.asarray(positions).reshape(len(times), -1)
    spread = np.ptp(positions, axis=0) if len(times) else np.zeros(len(names))
    order = np.argsort(-spread)[:lines]
    fig, ax = plt.subplots(figsize=(8, 4))
    for j in order:
        ax.plot(times, positions[:, j], label=names[j], linewidth=1.2)
    ax.set_xlabel("time from start (s)")
    ax.set_ylabel("position (rad)")
    ax.set_title(title[:90] or "joint trajectory", fontsize=9)
    if len(order):
        ax.legend(fontsize=6, ncol=2, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
