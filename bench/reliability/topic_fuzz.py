"""topic_fuzz and pose_flood: the running node set (`motion-agent launch`, speech on, installs on)
bombarded over real topics, and a text request's latency with and without a pose flood.

The topics are not listed here: they are read from the ROS graph (every topic each node of the set
subscribes to, with its type), so a topic added later is fuzzed too. Each message is random and hostile
for its type (empty, huge, NaN and 1e308 coordinates, lying array layouts, hostile paths) or raw random
bytes that are not a valid serialisation at all. A crash is a node process that exited; at the end a good
request must still be answered."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from runtime.processes import log_tail, open_client, start_child, stop_child
from runtime.stats import percentiles

NODE_NAMES = ("motion_agent", "motion_speech")
DISCOVERY_TIMEOUT_S = 60.0
ALIVE_EVERY = 500  # messages between checks that every node process still runs
RAW_SHARE = 0.2  # of messages sent as random bytes instead of a message of the topic's type
FLOOD_POSES = 10_000
FLOOD_HZ = 85.0
FLOOD_REQUESTS = 5
HOSTILE_STRINGS = ["", " \t\n", "\0\0\0", "/dev/zero", "/proc/self/mem", "/", "..", "../../etc/passwd", "\u202e🤖" * 50]


def launch_config(work: Path, store: Path, keyring: Path) -> Path:
    """config/agent.yaml with speech and bundle installs on: every subscribing node and topic runs."""
    from motion_agent.config import config_dir

    data = yaml.safe_load((config_dir() / "agent.yaml").read_text())
    data["agent"].setdefault("routing", {})["experts"] = str(store)
    data["node"].update(keyring=str(keyring), bundle_inbox=str(work / "inbox"), store_poll_s=0.5)
    data["speech"]["enabled"] = True
    path = work / "agent-fuzz.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def launch(config: Path, base: Path, log: Path):
    import sys

    with log.open("w") as out:
        return start_child([sys.executable, "-m", "motion_agent.cli", "launch", "--config", str(config),
                            "--base-model", str(base)], out)  # fmt: skip


def subscribed_topics(client, timeout: float = DISCOVERY_TIMEOUT_S) -> dict[str, str]:
    """topic -> type of every subscription of the node set's nodes, read from the graph."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        names = {name for name, _ in client.node.get_node_names_and_namespaces()}
        if all(n in names for n in NODE_NAMES):
            for name in NODE_NAMES:
                for topic, types in client.node.get_subscriber_names_and_types_by_node(name, "/"):
                    if not topic.startswith("/parameter_events"):
                        found[topic] = types[0]
            if found:
                return found
        client.spin_for(0.2)
    raise RuntimeError(f"the node set's nodes {NODE_NAMES} did not appear in the graph in {timeout:g} s")


def message_class(type_name: str):
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class Hostile:
    """Random hostile messages per type; unknown types get default-constructed messages and raw bytes."""

    def __init__(self, rng: np.random.Generator, work: Path) -> None:
        self.rng = rng
        self.paths = HOSTILE_STRINGS + [str(work / "absent.tar")]
        fifo = work / "fifo.tar"
        os.mkfifo(fifo)
        self.paths.append(str(fifo))

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.002:
            return "x" * 1_000_000
        if roll < 0.3:
            return self.paths[int(self.rng.integers(len(self.paths)))]
        length = int(self.rng.integers(0, 400))
        return "".join(chr(int(c)) for c in self.rng.integers(1, 0x2FFF, length) if not 0xD800 <= c < 0xE000)

    def number(self) -> float:
        return float(self.rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, self.rng.normal() * 1e3]))

    def make(self, cls):
        message = cls()
        name = cls.__name__
        if name == "String":
            message.data = self.text()
        elif name == "PoseArray":
            from geometry_msgs.msg import Pose

            count = int(self.rng.choice([0, 1, 21, 22, 23, 200, FLOOD_POSES if self.rng.random() < 0.01 else 22]))
            poses = []
            for _ in range(count):
                pose = Pose()
                pose.position.x, pose.position.y, pose.position.z = self.number(), self.number(), self.number()
                poses.append(pose)
            message.poses = poses
        elif name == "JointState":
            count = int(self.rng.integers(0, 40))
            message.name = [self.text()[:30] for _ in range(count)]
            message.position = [self.number() for _ in range(int(self.rng.integers(0, 40)))]
        elif name == "Int16MultiArray":
            from std_msgs.msg import MultiArrayDimension

            size = int(self.rng.choice([0, 1, 160, 16000, 48000]))
            message.data = self.rng.integers(-32768, 32767, size, dtype=np.int16).tolist()
            dims = int(self.rng.integers(0, 3))
            lies = self.rng.integers(0, 2**31, size=(dims, 2))
            message.layout.dim = [MultiArrayDimension(label="x", size=int(a), stride=int(b)) for a, b in lies]
            message.layout.data_offset = int(self.rng.integers(0, 2**31))
        return message

    def raw(self) -> bytes:
        return self.rng.integers(0, 256, int(self.rng.integers(0, 2048)), dtype=np.uint8).tobytes()


def run_topic_fuzz(client, processes: list, count: int, work: Path, seed: int = 0) -> dict:
    """`count` hostile messages spread over every subscribed topic; crashes = node processes that exited."""
    from motion_agent.nodes.client import LOST

    topics = subscribed_topics(client)
    publishers = {topic: client.publisher(message_class(kind), topic) for topic, kind in topics.items()}
    client.spin_for(1.0)  # let discovery match the new publishers
    rng = np.random.default_rng(seed)
    hostile = Hostile(rng, work)
    sent: Counter = Counter()
    crashed = None
    names = sorted(publishers)
    for number in tqdm(range(count), desc="topic fuzz", unit="message"):
        topic = names[number % len(names)]
        publisher = publishers[topic]
        if rng.random() < RAW_SHARE:
            publisher.publish(hostile.raw())
        else:
            publisher.publish(hostile.make(message_class(topics[topic])))
        sent[topic] += 1
        if number % 50 == 0:
            client.spin(0)
        if number % ALIVE_EVERY == 0 and any(p.poll() is not None for p in processes):
            crashed = f"a node process exited after {number} messages"
            break
    client.spin_for(2.0)
    reply = client.ask(f"[{client.next_number()}] a person waves hello", timeout=120.0)
    running = {name for name, _ in client.node.get_node_names_and_namespaces()}
    alive = all(p.poll() is None for p in processes) and all(n in running for n in NODE_NAMES)
    return {
        "messages": sum(sent.values()),
        "by_topic": {t: {"type": topics[t], "messages": n} for t, n in sorted(sent.items())},
        "crashes": int(crashed is not None or not alive),
        "crash": crashed,
        "answered_after": reply.ok,
        "answer_after_ms": round(reply.client_ms, 1) if reply.level != LOST else None,
        "raw_share": RAW_SHARE,
    }


def run_pose_flood(client, pose_topic: str) -> dict:
    """Text latency alone, then while 10,000-pose PoseArrays arrive at 85 Hz (the issue's flood)."""
    from geometry_msgs.msg import Pose, PoseArray

    flood = PoseArray(poses=[Pose() for _ in range(FLOOD_POSES)])
    publisher = client.publisher(PoseArray, pose_topic)
    stop = threading.Event()

    def flooding() -> None:
        while not stop.is_set():
            publisher.publish(flood)
            time.sleep(1.0 / FLOOD_HZ)

    def timed() -> list[float]:
        replies = [client.ask(f"[{client.next_number()}] a person waves hello") for _ in range(FLOOD_REQUESTS)]
        return [r.client_ms for r in replies if r.ok]

    quiet = timed()
    thread = threading.Thread(target=flooding, daemon=True)
    thread.start()
    try:
        flooded = timed()
    finally:
        stop.set()
        thread.join()
    ratio = (np.median(flooded) / np.median(quiet)) if quiet and flooded else None
    return {
        "poses_per_message": FLOOD_POSES,
        "rate_hz": FLOOD_HZ,
        "text_latency_ms": {"quiet": percentiles(quiet), "flooded": percentiles(flooded)},
        "answered": {"quiet": len(quiet), "flooded": len(flooded), "asked_each": FLOOD_REQUESTS},
        "flooded_over_quiet_p50": None if ratio is None else round(float(ratio), 2),
    }


def part_topics(tiny_base: Path, store: Path, keyring: Path, work: Path, count: int) -> dict:
    """The node set under the topic fuzzer, then the pose flood; the launcher's log on failure."""
    config = launch_config(work, store, keyring)
    log = work / "launch-fuzz.log"
    process = launch(config, tiny_base, log)
    try:
        with open_client(config) as client:
            client.wait_ready(120.0, lambda: None, 0.5)
            warm = client.ask(f"[{client.next_number()}] a person waves hello", timeout=120.0)
            if not warm.ok:
                raise RuntimeError(f"the node set did not answer a first request:\n{log_tail(log)}")
            flood = run_pose_flood(client, client.config.pose_topic)
            fuzz = run_topic_fuzz(client, [process], count, work)
    finally:
        stop_child(process)
    if fuzz["crashes"]:
        print(log_tail(log, 60))
    return {"topic_fuzz": fuzz, "pose_flood": flood, "launch_log": str(log.relative_to(work))}
