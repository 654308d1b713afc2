"""A client of a running agent over its ROS 2 topics: `motion-agent say`, the runtime benchmark and the
node tests all talk to the agent through this one.

It publishes requests (std_msgs/String on the first text topic) and, where asked, observed poses; it
collects what the agent publishes: trajectories, skeletons and markers by header stamp, captions, and
every diagnostic status. The agent answers each request with one diagnostic naming it by its label
(motion_agent.nodes.diagnostics.request_label); an OK one carries the header stamp of the trajectory,
skeleton and markers it published, which is how a client tells its own motion from others on the topics.

    with AgentClient(load_node_config()) as client:
        client.wait_ready(timeout=60.0)  # every topic of this client matched by the agent's side
        reply = client.ask("wave happily for 3 seconds")  # publish, then wait for its answer
        reply.level, reply.client_ms, reply.trajectory

rclpy is initialised here when nobody has (and shut down again on close); the client spins its own
executor, or the one it is given (a node under test spun in the same process). A `tap` sees every message
the client sends or receives, with its resolved topic: `motion-agent say --mcap` records them with it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import rclpy
import rclpy.signals
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.executors import Executor, SingleThreadedExecutor
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from motion_agent.nodes.diagnostics import request_label
from motion_agent.nodes.messages import level_name, pose_array, status_values
from motion_agent.nodes.settings import NodeConfig

SETTLE_S = 0.5  # after discovery, so both sides have matched each other's endpoints
SPIN_S = 0.05  # longest wait of one spin; a message wakes it earlier
ANSWER_TIMEOUT_S = 60.0  # a request with no answer by then is lost
QUEUE_DEPTH = 10  # history of the request publisher and the motion subscriptions (as the node's)
POSE_DEPTH = 100  # observed poses are sent in bursts
DIAGNOSTICS_DEPTH = 100  # diagnostics history, so no answer is overwritten
KEEP = 100  # motion messages kept by stamp; older ones are forgotten
DRAIN_LIMIT = 100  # messages taken at most in one turn after the first
LOST = "LOST"  # a request with no answer at all: neither a trajectory nor a diagnostic

Stamp = tuple[int, int]
T = TypeVar("T")


def stamp_key(stamp) -> Stamp:
    """A builtin_interfaces/Time as a dict key."""
    return (stamp.sec, stamp.nanosec)


class WaitTimeout(TimeoutError):
    """What the client waited for did not come in time."""


@dataclass
class Answer:
    """One diagnostic status, as it arrived here."""

    name: str
    level: str  # OK, WARN or ERROR
    message: str
    values: dict[str, str]
    stamp: Stamp  # of its DiagnosticArray: an OK request's trajectory has the same
    received: float  # time.perf_counter()


@dataclass
class Reply:
    """What became of one request: its level (OK, WARN, ERROR, or LOST), the milliseconds from publishing
    it to its trajectory (OK) or to its diagnostic (refusals), its diagnostic, and the motion messages."""

    level: str
    client_ms: float | None
    values: dict[str, str]
    message: str = ""
    trajectory: JointTrajectory | None = None
    skeleton: MultiDOFJointTrajectory | None = None
    first_point_ms: float | None = None  # publishing it to its first trajectory message (a streamed first chunk)

    @property
    def ok(self) -> bool:
        """OK with its trajectory."""
        return self.level == "OK" and self.trajectory is not None

    def stage_ms(self, stage: str) -> float:
        """The agent's own time for one stage (queue, route, language_model, decode, retarget, total)."""
        return float(self.values[f"latency_ms.{stage}"])


def _whole(trajectory: JointTrajectory | None, values: dict[str, str]) -> bool:
    """Whether `trajectory` is the whole motion its OK diagnostic describes (not an earlier chunk)."""
    if trajectory is None:
        return False
    points = values.get("trajectory_points")
    return points is None or len(trajectory.points) == int(points)


class AgentClient:
    """One node on the agent's topics (module docstring). `requests` publishes text requests, `poses`
    observed poses; `motion` collects trajectories, `skeletons` and `markers` the other motion messages,
    `captions` the captions of observed poses; diagnostics are always collected. More endpoints can be
    added with `publisher` and `subscription`; `wait_ready` waits for all of them. `tap(topic, type,
    message)` is called with every message sent (a request may be serialized bytes) and received."""

    def __init__(
        self,
        config: NodeConfig | None = None,
        name: str | None = None,
        *,
        requests: bool = True,
        motion: bool = True,
        skeletons: bool = False,
        markers: bool = False,
        poses: bool = False,
        captions: bool = False,
        executor: Executor | None = None,
        spin_s: float = SPIN_S,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        keep: int = KEEP,
        tap: Callable[[str, type, object], None] | None = None,
    ) -> None:
        self.config = config or NodeConfig()
        self.tap = tap
        self.spin_s, self.answer_timeout_s, self.keep = spin_s, answer_timeout_s, keep
        self.collects_skeletons = skeletons
        self._owns_rclpy = not rclpy.ok()
        if self._owns_rclpy:  # no rclpy signal handlers: SIGINT and SIGTERM unwind as the caller's own code says
            rclpy.init(args=[], signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name or f"motion_agent_client_{os.getpid()}")
        self._owns_executor = executor is None
        self.executor = executor or SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._publishers: list = []
        self._handled = 0  # messages taken by this client's subscriptions
        self._subscriptions: list = []
        self.trajectories: dict[Stamp, JointTrajectory] = {}
        self.arrivals: dict[Stamp, float] = {}  # when each trajectory arrived (time.perf_counter())
        self.first_arrivals: dict[Stamp, float] = {}  # when its first chunk arrived (streamed motions)
        self.chunk_counts: dict[Stamp, int] = {}  # trajectory messages per stamp (1 unless streamed)
        self.skeletons: dict[Stamp, MultiDOFJointTrajectory] = {}
        self.markers: dict[Stamp, MarkerArray] = {}
        self.captions: list[str] = []
        self.statuses: list[Answer] = []  # every diagnostic status, in order of arrival
        self.answers: dict[str, Answer] = {}  # request label -> the first status about it (taken by `ask`)
        self.installs: list[Answer] = []  # "expert install" statuses naming a bundle
        self._numbers = iter(range(1, 1 << 62))
        config = self.config
        self.text = self.publisher(String, config.text_topics[0], QUEUE_DEPTH) if requests else None
        self.poses = self.publisher(PoseArray, config.pose_topic, POSE_DEPTH) if poses else None
        if motion:
            self.subscription(JointTrajectory, config.trajectory_topic, self._on_trajectory, QUEUE_DEPTH)
        if skeletons:
            self.subscription(
                MultiDOFJointTrajectory,
                config.skeleton_topic,
                lambda m: self._remember(self.skeletons, stamp_key(m.header.stamp), m),
                QUEUE_DEPTH,
            )
        if markers:
            self.subscription(MarkerArray, config.markers_topic, self._on_markers, QUEUE_DEPTH)
        if captions:
            self.subscription(String, config.caption_topic, lambda m: self.captions.append(m.data), QUEUE_DEPTH)
        self.diagnostics = self.subscription(
            DiagnosticArray, config.diagnostics_topic, self._on_diagnostics, DIAGNOSTICS_DEPTH
        )

    # --- endpoints ---

    def publisher(self, message_type, topic: str, depth: int = QUEUE_DEPTH):
        """A publisher that `wait_ready` waits to see matched by a subscription."""
        publisher = self.node.create_publisher(message_type, topic, depth)
        self._publishers.append(publisher)
        return publisher

    def _publish(self, publisher, message_type: type, message) -> None:
        if self.tap is not None:
            self.tap(publisher.topic_name, message_type, message)
        publisher.publish(message)

    def subscription(self, message_type, topic: str, callback: Callable, depth: int = QUEUE_DEPTH):
        """A subscription that `wait_ready` waits to see matched by a publisher."""

        resolved = self.node.resolve_topic_name(topic)

        def counted(message) -> None:
            self._handled += 1
            if self.tap is not None:
                self.tap(resolved, message_type, message)
            callback(message)

        subscription = self.node.create_subscription(message_type, topic, counted, depth)
        self._subscriptions.append(subscription)
        return subscription

    def _remember(self, store: dict, key: Stamp, value) -> None:
        store[key] = value
        while len(store) > self.keep:
            store.pop(next(iter(store)))

    def _on_trajectory(self, message: JointTrajectory) -> None:
        """A streamed motion comes as several messages of one stamp, each the whole motion so far: the
        latest is kept, and when the first came."""
        key = stamp_key(message.header.stamp)
        now = time.perf_counter()
        if key not in self.first_arrivals:
            self._remember(self.first_arrivals, key, now)
        self._remember(self.chunk_counts, key, self.chunk_counts.get(key, 0) + 1)
        self._remember(self.arrivals, key, now)
        self._remember(self.trajectories, key, message)

    def _on_markers(self, message: MarkerArray) -> None:
        for key in dict.fromkeys(stamp_key(marker.header.stamp) for marker in message.markers):
            self._remember(self.markers, key, message)  # by its markers' stamps (a DELETEALL one has none)

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        now = time.perf_counter()
        stamp = stamp_key(message.header.stamp)
        for status in message.status:
            values = status_values(status)
            answer = Answer(status.name, level_name(status), status.message, values, stamp, now)
            self.statuses.append(answer)
            if status.name.endswith("expert install") and "bundle" in values:
                self.installs.append(answer)
            elif "request_id" in values:
                self.answers.setdefault(values.get("request", ""), answer)

    # --- spinning ---

    def spin(self, timeout: float | None = None) -> None:
        """One turn of the executor: waits at most `timeout` (spin_s) for something to arrive and, when a
        message of this client's came, takes every other one already there too, so that messages published
        together (a transcript and its diagnostic, say) are all in before the caller looks."""
        handled = self._handled
        self.executor.spin_once(timeout_sec=self.spin_s if timeout is None else timeout)
        for _ in range(DRAIN_LIMIT):
            if self._handled == handled:
                break
            handled = self._handled
            self.executor.spin_once(timeout_sec=0.0)

    def spin_until(self, predicate: Callable[[], T], timeout: float | None = None, what: str = "an answer") -> T:
        """Spin until `predicate()` is truthy and return it; WaitTimeout after `timeout` seconds
        (answer_timeout_s)."""
        timeout = self.answer_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
            self.spin()

    def spin_for(self, seconds: float) -> None:
        """Spin for `seconds`, whatever arrives."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.spin(min(self.spin_s, max(0.0, end - time.monotonic())))

    def matched(self) -> bool:
        """Whether every publisher of this client has a subscription and every subscription a publisher."""
        return all(p.get_subscription_count() > 0 for p in self._publishers) and all(
            s.get_publisher_count() > 0 for s in self._subscriptions
        )

    def wait_ready(
        self,
        timeout: float,
        check: Callable[[], object] | None = None,
        settle_s: float = SETTLE_S,
        what: str = "the agent's topics",
    ) -> None:
        """Until discovery has matched every endpoint of this client (`matched`), then `settle_s` more so the
        other side has matched ours too. `check` is called on every turn and may raise (the agent's process
        has died, say); WaitTimeout after `timeout` seconds."""

        def ready() -> bool:
            if check is not None:
                check()
            return self.matched()

        self.spin_until(ready, timeout, what)
        self.spin_for(settle_s)

    # --- requests ---

    def next_number(self) -> int:
        """1, 2, 3, ...: for callers that make their requests unique."""
        return next(self._numbers)

    def send(self, message: str | bytes | String) -> None:
        """Publish one request (text, or an already serialized std_msgs/String) without waiting."""
        if self.text is None:
            raise RuntimeError("this client was made with requests=False")
        if isinstance(message, str):
            message = String(data=message)
        self._publish(self.text, String, message)

    def publish_pose(self, points: np.ndarray, stamp=None, frame_id: str = "") -> None:
        """Publish one observed pose: (N, 3) joint positions as a PoseArray."""
        if self.poses is None:
            raise RuntimeError("this client was made with poses=False")
        self._publish(self.poses, PoseArray, pose_array(points, stamp, frame_id))

    def ask(
        self, message: str | bytes, label: str | None = None, timeout: float | None = None, skeleton: bool = False
    ) -> Reply:
        """Publish one request and wait for its answer: the first status naming its label (default
        request_label(message)) after it was published, and for an OK one its trajectory (and its skeleton,
        given `skeleton`). A request with neither in `timeout` seconds (answer_timeout_s) is LOST; an OK one
        whose motion did not come is OK without a trajectory. Requests asked one at a time are never mistaken for each
        other; only the late answer of one already counted as lost could be taken for an identical later one's."""
        if skeleton and not self.collects_skeletons:
            raise RuntimeError("this client was made with skeletons=False")
        label = request_label(message) if label is None else label
        self.answers.pop(label, None)
        start = time.perf_counter()
        self.send(message)
        deadline = time.monotonic() + (self.answer_timeout_s if timeout is None else timeout)
        while time.monotonic() < deadline:
            answer = self.answers.get(label)
            if answer is not None and answer.level != "OK":
                del self.answers[label]
                return Reply(answer.level, (answer.received - start) * 1000.0, answer.values, answer.message)
            if (
                answer is not None
                and _whole(self.trajectories.get(answer.stamp), answer.values)
                and (not skeleton or answer.stamp in self.skeletons)
            ):
                del self.answers[label]
                arrived = self.arrivals.pop(answer.stamp)
                first = self.first_arrivals.pop(answer.stamp, arrived)
                return Reply(
                    "OK",
                    (arrived - start) * 1000.0,
                    answer.values,
                    answer.message,
                    self.trajectories.pop(answer.stamp),
                    self.skeletons.pop(answer.stamp, None),
                    (first - start) * 1000.0,
                )
            self.spin()
        answer = self.answers.pop(label, None)
        if answer is not None:  # the OK diagnostic came, its motion did not
            return Reply("OK", None, answer.values, answer.message)
        return Reply(LOST, None, {})

    # --- what came back ---

    def chunks_seen(self, stamp: Stamp) -> int:
        """How many trajectory messages of this stamp arrived: a streamed motion's chunks."""
        return self.chunk_counts.get(stamp, 0)

    def find(
        self,
        level: str | None = None,
        *,
        name: str | None = None,
        message: str | None = None,
        after: int = 0,
        **values: str,
    ) -> Answer | None:
        """The first status collected (from index `after` of `statuses` on) at `level`, whose name and
        message contain `name` and `message`, and whose values include `values`."""
        for answer in self.statuses[after:]:
            if (
                (level is None or answer.level == level)
                and (name is None or name in answer.name)
                and (message is None or message in answer.message)
                and all(answer.values.get(k) == v for k, v in values.items())
            ):
                return answer
        return None

    def status_for(self, request: str | bytes, level: str | None = None) -> Answer | None:
        """The first status about `request` (by its label), at `level` if given."""
        return self.find(level, request=request_label(request))

    # --- lifetime ---

    def close(self) -> None:
        if self._owns_executor:
            self.executor.shutdown()
        else:
            self.executor.remove_node(self.node)
        self.node.destroy_node()
        if self._owns_rclpy:
            rclpy.try_shutdown()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
