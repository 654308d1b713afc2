"""hot_swap: the node with `node.keyring` and `node.bundle_inbox` set; a steady stream of sequential
requests, first alone, then while signed bundles are dropped into the inbox every HOT_SWAP_INTERVAL_S,
then alone again. lost = requests with no answer at all."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from runtime.context import Bench
from runtime.processes import NodeProcess, open_client, write_agent_yaml
from runtime.stats import median, percentiles, ratio
from runtime.workload import (
    ANSWER_TIMEOUT_S,
    HEADLINE_S,
    HOT_SWAP_INTERVAL_S,
    HOT_SWAP_POLL_S,
    HOT_SWAP_TAIL_S,
    REPLACEMENT_VERSION,
    SEED,
    SERVING_EXPERTS,
    serving_request,
)

if TYPE_CHECKING:
    from motion_agent.nodes.client import AgentClient, Answer, Reply


def part_hot_swap(bench: Bench) -> dict:
    """A steady stream of requests while bundles arrive in the node's inbox."""
    factory = bench.factory("tiny")
    counts = bench.counts
    inbox = bench.work / "inbox"
    config = write_agent_yaml(
        bench.work / "agent-hot-swap.yaml", bench.serving_store("tiny"), bench.signer.keyring, inbox, HOT_SWAP_POLL_S
    )
    bundles = [factory.bundle(0, REPLACEMENT_VERSION)]  # one replacement of a serving expert, then new ones
    bundles += [factory.bundle(SERVING_EXPERTS + i) for i in range(counts.hot_swap_bundles - 1)]
    rng = np.random.default_rng(SEED)
    numbers = iter(range(1 << 62))

    def next_text() -> str:
        return serving_request(next(numbers), rng, HEADLINE_S)

    with NodeProcess(bench.bases["tiny"], config, bench.log("hot-swap")) as node, open_client(config) as client:
        node.wait_ready(client)
        node.warm_up(client)
        before = [
            client.ask(next_text()) for _ in tqdm(range(counts.hot_swap_requests), desc="before swap", unit="request")
        ]
        swap, drops = swap_phase(client, inbox, bundles, next_text)
        after = [
            client.ask(next_text())
            for _ in tqdm(range(max(1, counts.hot_swap_requests // 2)), desc="after swap", unit="request")
        ]
        installs = list(client.installs)
    return hot_swap_figures(before, swap, after, drops, installs)


def drop_bundle(bundle: Path, inbox: Path) -> None:
    """Deliver a bundle as a file sync should: copy under a temporary name, rename into place."""
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".{bundle.name}.partial"
    shutil.copy(bundle, partial)
    os.replace(partial, inbox / bundle.name)


def swap_phase(
    client: AgentClient, inbox: Path, bundles: list[Path], next_text: Callable[[], str]
) -> tuple[list[Reply], dict[str, float]]:
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
            replies.append(client.ask(next_text()))
            settled = len(client.installs) - installs_before
            bar.update(settled - bar.n)
            if not pending and settled >= len(bundles):
                break
            if not pending and time.monotonic() - last_drop > HOT_SWAP_TAIL_S:
                break
    return replies, drops


def hot_swap_figures(
    before: list[Reply], swap: list[Reply], after: list[Reply], drops: dict[str, float], installs: list[Answer]
) -> dict:
    """Per phase: requests, lost, p50/p99, other outcomes; per bundle: its install outcome and delay."""
    phases = {"before": before, "swap": swap, "after": after}

    def ok_ms(replies: list[Reply]) -> list[float]:
        return [r.client_ms for r in replies if r.ok]

    from motion_agent.nodes.client import LOST

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
            "not_ok_by_phase": {
                name: dict(Counter(r.level for r in replies if not r.ok)) for name, replies in phases.items()
            },
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
            "p50 before."
        ),
    }


# --- soak ----------------------------------------------------------------------------------------
