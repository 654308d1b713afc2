"""MCAP recordings of the agent's ROS 2 messages, which Foxglove opens (and `ros2 bag` replays).

Every message is written as it is on the wire: CDR bytes on a channel named by its resolved topic, with
a `ros2msg` schema holding the type's name (`trajectory_msgs/msg/JointTrajectory`) and its message
definition with every type it uses, concatenated as rosbag2 writes them. So nothing but the `mcap`
package is needed to write a recording, and no ROS install to read one (`mcap-ros2-support` decodes it).

Two recorders use `McapRecorder`:
- `motion-agent say --mcap FILE` records what its client sent and received (nodes/say.py);
- the agent node, with `node.record_mcap` set, records every request, trajectory, skeleton, marker
  array, observed pose, caption and diagnostic on the agent's topics (`TopicRecorder`), until it stops.

The message definitions come from the `.msg` files that ROS 2 installs under share/<package>/msg/ (a
system ROS 2 under /opt/ros/<distro>, or the PyPI wheels' virtual environment).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from functools import cache
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.serialization import serialize_message
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from motion_agent.config import ConfigError
from motion_agent.nodes.settings import NodeConfig

PROFILE = "ros2"  # the MCAP profile of ROS 2 recordings: Foxglove decodes them by their schemas
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
DEFINITION_SEPARATOR = "=" * 80  # between the definitions of a type and the types it uses (rosbag2's)
PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)
TIME_FORMAT = "%Y%m%d-%H%M%S"  # what `{time}` in node.record_mcap becomes
INSTALL_HINT = "pip install 'motion_agent[record]'"
RECORD_DEPTH = 100  # subscription history of the node's recorder, so a burst of diagnostics or poses is kept


def require_mcap():
    """The mcap package's writer module, or a ConfigError saying how to install it."""
    try:
        from mcap import writer
    except ImportError as error:
        raise ConfigError(f"MCAP recording needs the `mcap` package ({INSTALL_HINT}): {error}") from error
    return writer


def type_name(message_type: type) -> str:
    """'trajectory_msgs/msg/JointTrajectory' of a generated ROS 2 message class."""
    return f"{message_type.__module__.split('.')[0]}/msg/{message_type.__name__}"


def _share_folders(package: str) -> list[Path]:
    """Where ROS 2 puts a package's interface files: under each prefix of AMENT_PREFIX_PATH, and next to
    the Python package (share/ beside lib/pythonX.Y/site-packages, as both installs lay it out)."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    module = importlib.import_module(f"{package}.msg")
    prefixes += list(Path(module.__file__).resolve().parents) + [Path(sys.prefix)]
    return [prefix / "share" / package for prefix in prefixes]


@cache
def _msg_text(package: str, name: str) -> str:
    for folder in _share_folders(package):
        path = folder / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise ConfigError(f"no message definition {package}/msg/{name}.msg under share/{package} of any ROS 2 prefix")


def _used_types(package: str, text: str) -> list[tuple[str, str]]:
    """(package, name) of every non-primitive field type in a .msg text, in order of appearance."""
    used = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or "=" in words[1] or (len(words) > 2 and words[2].startswith("=")):
            continue  # blank, comment, or a constant (`byte OK=0`)
        field_type = words[0].split("[", 1)[0].split("<=", 1)[0]
        if field_type in PRIMITIVES:
            continue
        owner, _, name = field_type.rpartition("/")
        used.append((owner.split("/")[0] if owner else package, name))
    return used


@cache
def message_definition(name: str) -> str:
    """The full definition of a type named 'pkg/msg/Name': its own .msg text, then each type it uses
    (depth first, once) after a separator line and `MSG: pkg/Name`, as rosbag2 stores it in MCAP."""
    package, _, short = name.split("/")
    parts, seen, stack = (
        [_msg_text(package, short)],
        set(),
        list(reversed(_used_types(package, _msg_text(package, short)))),
    )
    while stack:
        used = stack.pop()
        if used in seen:
            continue
        seen.add(used)
        text = _msg_text(*used)
        parts.append(f"{DEFINITION_SEPARATOR}\nMSG: {used[0]}/{used[1]}\n{text}")
        stack.extend(reversed(_used_types(used[0], text)))
    return "\n".join(parts)


def recording_path(template: str, now: datetime | None = None) -> Path:
    """node.record_mcap as a file to create: `~` expanded, `{time}` replaced by the start time (so a
    restarted node starts a new file); an existing file is refused rather than overwritten."""
    path = Path(template.format(time=(now or datetime.now()).strftime(TIME_FORMAT))).expanduser()
    if path.exists():
        raise ConfigError(f"node.record_mcap: {path} exists; remove it, or put {{time}} in the name")
    return path


class McapRecorder:
    """An MCAP file of ROS 2 messages (module docstring). `write` takes a message object or its serialized
    bytes and is safe from any thread; `close` finishes the file (its index and summary) and is needed
    for Foxglove to open the recording at once."""

    def __init__(self, path: str | Path) -> None:
        writer = require_mcap()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = self.path.open("wb")
        self._writer = writer.Writer(self._stream)
        self._writer.start(profile=PROFILE, library="motion_agent")
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str], int] = {}
        self._sequence = 0
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()  # (topic, type name) -> messages written
        self.closed = False

    def write(self, topic: str, message_type: type, message, log_time_ns: int | None = None) -> None:
        """Record one message on `topic` (its resolved name, e.g. /text_command); ignored once closed."""
        data = message if isinstance(message, bytes) else serialize_message(message)
        name = type_name(message_type)
        log_time_ns = time.time_ns() if log_time_ns is None else log_time_ns
        with self._lock:
            if self.closed:
                return
            channel = self._channels.get((topic, name))
            if channel is None:
                if name not in self._schemas:
                    definition = message_definition(name).encode()
                    self._schemas[name] = self._writer.register_schema(name, SCHEMA_ENCODING, definition)
                channel = self._writer.register_channel(topic, MESSAGE_ENCODING, self._schemas[name])
                self._channels[(topic, name)] = channel
            self._sequence += 1
            self._writer.add_message(channel, log_time_ns, data, log_time_ns, self._sequence)
            self.counts[(topic, name)] += 1

    def summary(self) -> str:
        """'12 messages on 5 topics to PATH (/diagnostics 4, ...)'."""
        by_topic = Counter()
        for (topic, _), count in self.counts.items():
            by_topic[topic] += count
        listed = ", ".join(f"{topic} {count}" for topic, count in sorted(by_topic.items()))
        return f"{sum(by_topic.values())} messages on {len(by_topic)} topics to {self.path}" + (
            f" ({listed})" if listed else ""
        )

    def close(self) -> str:
        """Finish the file; returns `summary()`."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._writer.finish()
                self._stream.close()
        return self.summary()

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def agent_topics(config: NodeConfig) -> dict[str, type]:
    """Every topic the agent's nodes read or write (NodeConfig names them), with its message type."""
    topics: dict[str, type] = dict.fromkeys(config.text_topics, String)
    topics.update(
        {
            config.trajectory_topic: JointTrajectory,
            config.skeleton_topic: MultiDOFJointTrajectory,
            config.markers_topic: MarkerArray,
            config.pose_topic: PoseArray,
            config.caption_topic: String,
            config.diagnostics_topic: DiagnosticArray,
        }
    )
    return topics


class TopicRecorder:
    """The agent node's recorder (`node.record_mcap`): one raw subscription per agent topic, each message
    written as its bytes arrive, so it records what went over the wire, from every node of the agent."""

    def __init__(self, node: Node, config: NodeConfig) -> None:
        self.node = node
        self.recorder = McapRecorder(recording_path(config.record_mcap))
        depth = max(config.queue_depth, RECORD_DEPTH)
        self.subscriptions = [
            node.create_subscription(message_type, topic, self._writer(topic, message_type), depth, raw=True)
            for topic, message_type in agent_topics(config).items()
        ]
        node.get_logger().info(f"recording {len(self.subscriptions)} topics to {self.recorder.path}")

    def _writer(self, topic: str, message_type: type):
        name = self.node.resolve_topic_name(topic)
        return lambda raw: self.recorder.write(name, message_type, raw)

    def close(self) -> None:
        self.node.get_logger().info(f"recorded {self.recorder.close()}")
