"""node_kill: an install killed with SIGKILL at each step of the install protocol, then the agent node
restarted on the store: it must serve the experts of the index the kill left (the old set before the
commit point, the new one after it), and that index must name complete, intact versions only.

Two installs cover every step: adding a new expert (verified .. committed), and replacing a version in a
store that keeps one previous version, so the install also prunes (pruning, deleting). The restarted
node is `python -m motion_agent.nodes.motion_node` as `motion-agent launch` starts it; the experts it
serves are read from the diagnostic of one request (it names every served expert's router loss)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from motion_agent.bundles.durable import PAUSE_ENV, STEPS
from motion_agent.bundles.store import ExpertStore, StoreConfig

from runtime.processes import REPO, NodeProcess, open_client, write_agent_yaml

PRUNING_STEPS = ("pruning", "deleting")
COMMITTED_FROM = "index-replaced"
PAUSE_TIMEOUT_S = 120.0


def install_command(bundle: Path, store: Path, keyring: Path, base: Path, keep: int) -> list[str]:
    return [sys.executable, "-m", "motion_agent.bundles.cli", "install", str(bundle), "--store", str(store),
            "--keyring", str(keyring), "--model-manifest", str(base / "base.json"), "--keep", str(keep)]  # fmt: skip


def kill_at(step: str, command: list[str]) -> bool:
    """Run the install until it pauses at `step`, then SIGKILL it; False when it never got there."""
    env = os.environ | {"PYTHONPATH": str(REPO), PAUSE_ENV: step}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        paused = process.stderr.readline() == f"paused at {step}\n"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    return paused


def served_experts(base: Path, store: Path, keyring: Path, log: Path) -> list[str]:
    """Restart the agent node on `store` and read which experts it serves."""
    config = write_agent_yaml(log.with_suffix(".yaml"), store, keyring, log.parent / "inbox", 0.5)
    with NodeProcess(base, config, log) as node, open_client(config) as client:
        node.wait_ready(client)
        reply = client.ask(f"[{client.next_number()}] a person juggles", timeout=120.0)
    if not reply.ok:
        raise RuntimeError(f"the restarted node did not answer ({reply.level}); see {log}")
    return sorted(key.split(".", 1)[1] for key in reply.values if key.startswith("router_loss."))


def run_node_kill(base: Path, bundles: dict[str, Path], keyring: Path, work: Path, trials: int) -> dict:
    """`trials` kills, cycling through the install steps."""
    templates = {
        "add": (work / "template-add", ["juggling-1.0.0"], "swimming-1.0.0", 2),
        "replace": (work / "template-replace", ["juggling-1.0.0", "juggling-1.1.0"], "juggling-1.2.0", 1),
    }
    for folder, installed, _, keep in templates.values():
        if not folder.exists():
            for name in installed:
                assert subprocess.run(install_command(bundles[name], folder, keyring, base, keep), env=os.environ | {
                    "PYTHONPATH": str(REPO)}, capture_output=True).returncode == 0  # fmt: skip
    results = []
    for number in tqdm(range(trials), desc="node kill", unit="trial"):
        step = STEPS[number % len(STEPS)]
        folder, _, bundle, keep = templates["replace" if step in PRUNING_STEPS else "add"]
        store_dir = work / f"kill-{number}"
        shutil.copytree(folder, store_dir)
        before = ExpertStore(store_dir).read_index()
        paused = kill_at(step, install_command(bundles[bundle], store_dir, keyring, base, keep))
        store = ExpertStore(store_dir, StoreConfig(keep_previous=keep))
        after = store.read_index()
        committed = STEPS.index(step) >= STEPS.index(COMMITTED_FROM)
        name, version = bundle.rsplit("-", 1)
        expected_active = version if committed else (before[name].active if name in before else None)
        actual_active = after[name].active if name in after else None
        served = served_experts(base, store_dir, keyring, work / f"kill-{number}.log")
        consistent = (
            paused
            and actual_active == expected_active
            and store.check() == []
            and served == sorted(store.active_experts())
        )
        results.append(
            {
                "step": step,
                "paused": paused,
                "committed": committed,
                "active": actual_active,
                "served": served,
                "problems": store.check(),
                "consistent": consistent,
            }  # fmt: skip
        )
        shutil.rmtree(store_dir, ignore_errors=True)
    return {
        "trials": len(results),
        "consistent": sum(r["consistent"] for r in results),
        "by_trial": results,
    }
