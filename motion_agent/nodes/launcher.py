"""`motion-agent launch`: NODE_SET as child processes, for machines without the ROS 2 launch tool.

The nodes started are `enabled_nodes(config)`: optional ones (speech) only when the agent YAML turns them on.

Plain Python (no rclpy): every node runs as `python -m <module> --ros-args -r __node:=<name> -p ...`,
each child in its own session so that a terminal's Ctrl-C reaches only the launcher, which forwards
SIGINT/SIGTERM to every child once. The launcher exits when its children have exited; when one fails,
the others are stopped too, so a half-working agent never lingers. Exit status: 0 when every child
ended cleanly (or was stopped by a forwarded signal), otherwise the first failing child's status.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from motion_agent.nodes.node_set import NodeSpec, enabled_nodes

STOP_GRACE_S = 10.0  # after a forwarded signal, how long children get before they are killed


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM when the launcher dies, even by SIGKILL, so no node is orphaned."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except Exception:  # not Linux, or no prctl: the launcher's own handlers still stop its children
        pass


def stop_node(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Stop one node process as a user would (SIGINT, as Ctrl-C), killing it only if it hangs; for
    tools and tests that start nodes themselves."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ros_string(value: str) -> str:
    """A parameter value the ROS 2 argument parser reads as a string (it parses values as YAML)."""
    return "'" + value.replace("'", "''") + "'"


def node_command(spec: NodeSpec, parameters: dict[str, str], python: str = sys.executable) -> list[str]:
    command = [python, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    for name, value in parameters.items():
        if value:
            command += ["-p", f"{name}:={_ros_string(value)}"]
    return command


def launch_parameters(config: str | None, base_model: str | None, frame_id: str | None = None) -> dict[str, str]:
    parameters = {}
    if config:
        parameters["config"] = str(Path(config).expanduser().resolve())
    if base_model:
        parameters["base_model"] = str(Path(base_model).expanduser().resolve())
    if frame_id:
        parameters["frame_id"] = frame_id
    return parameters


def launch(
    parameters: dict[str, str],
    nodes: tuple[NodeSpec, ...] | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = 0.2,
) -> int:
    if nodes is None:
        nodes = enabled_nodes(parameters.get("config"))
    if not nodes:
        say("motion_agent: no nodes in this build; nothing to start")
        return 0
    children: list[tuple[NodeSpec, subprocess.Popen]] = []
    stopping: list[int] = []

    def forward(signum: int, _frame=None) -> None:
        if stopping:  # a second signal: stop waiting politely
            for _, child in children:
                if child.poll() is None:
                    child.kill()
            return
        stopping.append(signum)
        say(f"launch: forwarding {signal.Signals(signum).name} to {len(children)} node(s)")
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        for spec in nodes:
            command = node_command(spec, parameters)
            child = subprocess.Popen(
                command,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            children.append((spec, child))
            say(f"launch: started {spec.name} (pid {child.pid}): {' '.join(command)}")
        deadline = None
        while any(child.poll() is None for _, child in children):
            failed = [(spec, child) for spec, child in children if child.poll() not in (None, 0)]
            if failed and not stopping:
                spec, child = failed[0]
                say(f"launch: {spec.name} exited with status {child.returncode}; stopping the others")
                forward(signal.SIGTERM)
            if stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                for spec, child in children:
                    if child.poll() is None:
                        say(f"launch: {spec.name} did not stop within {STOP_GRACE_S:.0f} s; killing it")
                        child.kill()
            time.sleep(poll_s)
        for spec, child in children:
            code = child.returncode
            stopped = stopping and code in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL)
            say(f"launch: {spec.name} exited with status {code}")
            if code != 0 and not stopped and status == 0:
                status = code if code > 0 else 128 - code
    finally:
        for _spec, child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
