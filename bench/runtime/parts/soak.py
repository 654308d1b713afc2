"""soak: --soak N requests over topics, good (short motions) and bad (empty, whitespace, word-less,
over-long, 1 MB, invalid UTF-8) mixed, each awaited; the node's VmRSS at start and end."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from runtime.context import Bench
from runtime.processes import NodeProcess, log_tail, open_client, write_agent_yaml
from runtime.stats import percentiles
from runtime.workload import (
    ONE_MEGABYTE,
    SEED,
    SOAK_MAX_CONSECUTIVE_LOST,
    SOAK_MIX,
    SOAK_RSS_EVERY,
    SOAK_SECONDS,
    serving_request,
    soak_plan,
    tagged,
)

if TYPE_CHECKING:
    from motion_agent.nodes.client import AgentClient


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
    with NodeProcess(bench.bases["tiny"], config, bench.log("soak")) as node, open_client(config) as client:
        node.wait_ready(client)
        node.warm_up(client, SOAK_SECONDS)
        return run_soak(client, node, bench.counts.soak)


def run_soak(client: AgentClient, node: NodeProcess, count: int) -> dict:
    """The soak loop: stops early only when the node died or stopped answering (a crash)."""
    from motion_agent.nodes.client import LOST

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


def soak_figures(
    sent: int,
    crash: str | None,
    rss_start: float | None,
    rss_end: float | None,
    tally: Counter,
    good_ms: list[float],
    samples: list,
    wall_s: float,
) -> dict:
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
            "stops there). rss_*: VmRSS of the node process after warm-up and at the end."
        ),
    }


# --- results ---------------------------------------------------------------------------------------------
