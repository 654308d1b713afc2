"""The processes of a run: the agent node in a child process (NodeProcess, started as `motion-agent
launch` starts it, with the agent YAML written here), this process's client of it over topics
(motion_agent.nodes.client.AgentClient), and every child stopped in order however the run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from runtime.stats import rss_mb
from runtime.workload import (
    ANSWER_TIMEOUT_S,
    HEADLINE_S,
    SEED,
    SETTLE_S,
    SPIN_S,
    START_TIMEOUT_S,
    STOP_GRACE_S,
    WARMUP_REQUESTS,
    serving_request,
)

REPO = Path(__file__).resolve().parent.parent.parent
MOTION_NODE_MODULE = "motion_agent.nodes.motion_node"

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
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=os.environ.copy(),
        start_new_session=True,
        preexec_fn=_death_signal() if sys.platform.startswith("linux") else None,
    )
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


# --- the agent node and its configuration --------------------------------------------------------------


def agent_config(base_dir: Path | str, store: Path | str):
    """config/agent.yaml's agent section, on this base model and expert store: what the node runs too."""
    from motion_agent.agent import load_agent_config
    from motion_agent.config import config_dir

    config = load_agent_config(config_dir() / "agent.yaml")
    return replace(config, base_model=str(base_dir), routing=replace(config.routing, experts=str(store)))


def write_agent_yaml(
    path: Path, store: Path, keyring: Path | None = None, inbox: Path | None = None, poll_s: float | None = None
) -> Path:
    """A copy of config/agent.yaml serving `store` (and installing from `inbox` when a keyring is given)."""
    from motion_agent.config import config_dir

    data = yaml.safe_load((config_dir() / "agent.yaml").read_text())
    data["agent"].setdefault("routing", {})["experts"] = str(store)
    if keyring is not None:
        data["node"].update(keyring=str(keyring), bundle_inbox=str(inbox), store_poll_s=poll_s)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the agent node over topics ------------------------------------------------------------------------


def node_config_of(config_yaml: Path):
    """The topics the node reads from the same YAML, so the client always matches it."""
    from motion_agent.nodes.settings import load_node_config

    return load_node_config(config_yaml)


def open_client(config_yaml: Path):
    """This process's client of the node that `config_yaml` configures, on the same topics."""
    from motion_agent.nodes.client import AgentClient

    return AgentClient(
        node_config_of(config_yaml), f"runtime_bench_{os.getpid()}", spin_s=SPIN_S, answer_timeout_s=ANSWER_TIMEOUT_S
    )


class NodeProcess:
    """The agent node in a child process, started as `motion-agent launch` starts it; stopped on exit."""

    def __init__(self, base_dir: Path, config_yaml: Path, log_path: Path) -> None:
        from motion_agent.nodes.launcher import launch_parameters, node_command
        from motion_agent.nodes.node_set import NODE_SET

        spec = next(s for s in NODE_SET if s.module == MOTION_NODE_MODULE)
        self.command = node_command(spec, launch_parameters(str(config_yaml), str(base_dir)))
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.spawned = 0.0

    def __enter__(self) -> NodeProcess:
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

    def wait_ready(self, client) -> None:
        """Until discovery has matched the client's topics with the node's (and SETTLE_S more)."""
        from motion_agent.nodes.client import WaitTimeout

        def check() -> None:
            if not self.alive:
                raise RuntimeError(f"the agent node exited before it was ready:\n{log_tail(self.log_path)}")

        try:
            client.wait_ready(START_TIMEOUT_S, check, SETTLE_S)
        except WaitTimeout:
            raise RuntimeError(
                f"the agent node was not ready after {START_TIMEOUT_S:g} s:\n{log_tail(self.log_path)}"
            ) from None

    def warm_up(self, client, seconds: int = HEADLINE_S) -> float:
        """WARMUP_REQUESTS untimed requests; returns seconds from spawning the node to its first answer."""
        rng = np.random.default_rng(SEED)
        cold_start_s = None
        for number in range(WARMUP_REQUESTS):
            reply = client.ask(serving_request(number, rng, seconds))
            if not reply.ok:
                raise RuntimeError(f"warm-up request got {reply.level} {reply.values}:\n{log_tail(self.log_path)}")
            if cold_start_s is None:
                cold_start_s = time.perf_counter() - self.spawned
        return round(cold_start_s, 3)
