"""The agent's ROS 2 side. Plain-Python parts first (latest-wins worker, pose window, settings, launch
commands); then the node itself, started by `motion-agent launch` in a child process on a tiny base
model and exercised over real topics from this process (and by `motion-agent say` as a third process):
trajectories, markers and diagnostics for text requests, error diagnostics for bad input while the node
keeps serving, latest-wins preemption, captions of observed poses, and SIGINT forwarding on exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from motion_agent.agent import AgentConfig, CaptionResult, RequestError, check_poses
from motion_agent.config import ConfigError
from motion_agent.motion.demo import demo_motion
from motion_agent.motion.skeleton import SMPL_TO_ROS
from motion_agent.nodes.launcher import launch_parameters, node_command
from motion_agent.nodes.messages import key_frames
from motion_agent.nodes.node_set import NODE_SET
from motion_agent.nodes.pose_window import PoseWindow, pose_frame
from motion_agent.nodes.settings import load_node_config, resolve_settings
from motion_agent.nodes.worker import LatestWinsWorker, on_model_thread

from conftest import start_launch, stop_process

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0  # python + torch + model load in a child process, on a busy 2-core machine
ANSWER_TIMEOUT = 30.0

# --- plain Python -----------------------------------------------------------------------------------


def test_latest_wins_worker_drops_waiting_and_stale_jobs():
    gate, outcomes, done = threading.Event(), [], threading.Event()

    def run(item):
        if item == "first":
            gate.wait(5)
        if item == "bad":
            raise RequestError("bad item")
        return item.upper()

    def report(outcome):
        outcomes.append(outcome)
        if outcome.job.item in ("third", "bad"):
            done.set()

    worker = LatestWinsWorker(run, report)
    try:
        worker.submit("first")
        time.sleep(0.1)  # first is running
        worker.submit("second")
        worker.submit("third")  # replaces second while it waits
        gate.set()
        assert done.wait(5)
        by_item = {o.job.item: o for o in outcomes}
        assert "dropped before it ran" in by_item["second"].superseded and by_item["second"].result is None
        assert by_item["second"].newer.item == "third" and by_item["first"].newer.item == "third"
        assert "not used" in by_item["first"].superseded  # finished after newer requests arrived
        assert by_item["third"].result == "THIRD" and by_item["third"].superseded is None
        done.clear()
        worker.submit("bad")
        assert done.wait(5) and isinstance(outcomes[-1].error, RequestError)
        assert worker.idle or time.sleep(0.1) or worker.idle
    finally:
        worker.close()


def test_model_calls_from_every_thread_run_on_one_model_thread():
    """Loading, generation and captioning of a node process share one thread (OpenMP's thread pools
    slow every operation once several threads start parallel work), and errors reach the caller."""
    ran_on, results = [], []

    def double(x: int) -> int:
        ran_on.append(threading.get_ident())
        return 2 * x

    callers = [threading.Thread(target=lambda i=i: results.append(on_model_thread(double, i))) for i in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    results.append(on_model_thread(double, x=10))
    assert sorted(results) == [0, 2, 4, 6, 20]
    assert len(set(ran_on)) == 1 and ran_on[0] not in {threading.get_ident(), *(c.ident for c in callers)}

    def refuse() -> None:
        raise RequestError("no words")

    with pytest.raises(RequestError, match="no words"):
        on_model_thread(refuse)
    assert on_model_thread(threading.get_ident) == ran_on[0]  # the thread survives a failed call


def test_pose_window_slides_by_stride_and_restarts_after_a_gap():
    window = PoseWindow(size=4, stride=2, max_gap_s=1.0)
    frames = [np.full((22, 3), i, dtype=float) for i in range(10)]
    ready = [window.push(f, now=0.05 * i) for i, f in enumerate(frames[:8])]
    assert [r is not None for r in ready] == [False, False, False, True, False, True, False, True]
    assert ready[5][:, 0, 0].tolist() == [2, 3, 4, 5]
    assert window.push(frames[8], now=5.0) is None and len(window) == 1  # a 4 s gap starts over


def test_pose_frames_are_checked_and_ros_axes_converted():
    joints = demo_motion("walk", seconds=1.0)[0]
    np.testing.assert_allclose(pose_frame(joints @ SMPL_TO_ROS.T, axes="ros"), joints)
    with pytest.raises(RequestError, match="21 joints"):
        pose_frame(joints[:21])
    bad = joints.copy()
    bad[3, 1] = np.nan
    with pytest.raises(RequestError, match=r"NaN.*\[3\]"):
        pose_frame(bad)
    frames = key_frames(demo_motion("walk", seconds=2.0), 5)
    assert [f for f, _ in frames] == [0, 10, 20, 29, 39] and frames[0][1].shape == (21, 2, 3)
    assert frames[0][1][..., 2].max() > 1.0  # REP-103: z is up


def test_settings_take_parameter_overrides_and_check_the_window(tmp_path):
    agent, node = resolve_settings(None, base_model="~/models/base", frame_id="map")
    assert agent.base_model == str(Path("~/models/base").expanduser()) and node.frame_id == "map"
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {min_caption_frames: 24}\nnode: {window_size: 10}\n")
    with pytest.raises(ConfigError, match="window_size 10"):
        resolve_settings(config)
    assert load_node_config().caption


def test_torch_threads_setting_caps_the_node_process_threads(tiny_base_model):
    """On a robot whose cores are busy, node.torch_threads: 1 keeps torch's threads from waiting on
    each other; 0 leaves torch's default; a negative count is refused."""
    import torch

    from motion_agent.agent import AgentConfig
    from motion_agent.nodes.common import load_agent
    from motion_agent.nodes.settings import NodeConfig

    class Logger:
        lines: list[str] = []

        def info(self, line: str) -> None:
            self.lines.append(line)

    class StubNode:
        logger = Logger()

        def get_logger(self) -> Logger:
            return self.logger

    before = torch.get_num_threads()
    try:
        load_agent(StubNode(), AgentConfig(base_model=str(tiny_base_model)), torch_threads=1)
        assert torch.get_num_threads() == 1 and "torch threads: 1" in StubNode.logger.lines[0]
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="torch_threads"):
        NodeConfig(torch_threads=-1)


def test_launch_commands_run_every_node_module_with_string_parameters():
    assert NODE_SET and all(spec.module.startswith("motion_agent.nodes.") for spec in NODE_SET)
    parameters = launch_parameters(None, "/models/it's here", "map")
    command = node_command(NODE_SET[0], parameters, python="python")
    assert command[:3] == ["python", "-m", NODE_SET[0].module] and f"__node:={NODE_SET[0].name}" in command
    assert "base_model:='/models/it''s here'" in command and "frame_id:='map'" in command
    assert not any(arg.startswith("config:=") for arg in command)


@pytest.mark.parametrize("spec", NODE_SET, ids=lambda spec: spec.name)
def test_every_node_explains_itself_with_help_and_starts_nothing(spec):
    pytest.importorskip("rclpy")
    repo = Path(__file__).resolve().parent.parent
    process = subprocess.run(
        [sys.executable, "-m", spec.module, "--help"], capture_output=True, text=True, timeout=120, cwd=repo
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith(f"`{spec.name}`") and f"python -m {spec.module} --ros-args" in process.stdout


def test_launch_refuses_a_missing_base_model_in_one_line(tmp_path, capsys):
    from motion_agent.cli import main

    assert main(["launch", "--base-model", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err


# --- the node over real topics ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_process(tiny_base_model, tmp_path_factory):
    """`motion-agent launch --base-model DIR` in a child process (which starts the node set)."""
    log = tmp_path_factory.mktemp("launch") / "launch.log"
    process = start_launch(log, "--base-model", str(tiny_base_model), "--frame-id", "test_frame")
    yield process
    stop_process(process)


@pytest.fixture(scope="module")
def client(ros, agent_process):
    """The agent's client (motion_agent.nodes.client, as `motion-agent say` uses it) with publishers for
    requests and poses, collecting everything the agent publishes."""
    from motion_agent.nodes.client import AgentClient

    def running():
        assert agent_process.poll() is None, "motion-agent launch exited before the node was ready"

    with AgentClient(
        load_node_config(),
        "agent_test_client",
        markers=True,
        poses=True,
        captions=True,
        answer_timeout_s=ANSWER_TIMEOUT,
    ) as client:
        client.wait_ready(START_TIMEOUT, running, what="the agent node's topics")
        yield client


class CaptionStub:
    """Stands in for MotionAgent (not for ROS) where only the node's wiring is under test."""

    config = AgentConfig()

    def caption(self, window):
        window = check_poses(window, self.config)
        return CaptionResult(f"{len(window)} frames seen", len(window), "stub", {"encode": 1.0, "language_model": 2.0})


@pytest.mark.ros
def test_motion_captioner_node_in_process(ros, tmp_path):
    """The standalone captioner, spun by a MultiThreadedExecutor in this process, on its own topics."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from motion_agent.nodes.caption_node import CaptionNode
    from motion_agent.nodes.client import AgentClient
    from motion_agent.nodes.settings import NodeConfig

    config = tmp_path / "agent.yaml"
    config.write_text(
        "agent: {}\nnode: {pose_topic: test_pose, caption_topic: test_caption, "
        "diagnostics_topic: test_diagnostics, window_size: 30, window_stride: 10}\n"
    )
    captioner = CaptionNode(agent=CaptionStub(), parameter_overrides=[Parameter("config", value=str(config))])
    executor = MultiThreadedExecutor(num_threads=2)
    topics = NodeConfig(pose_topic="test_pose", caption_topic="test_caption", diagnostics_topic="test_diagnostics")
    try:
        executor.add_node(captioner)
        with AgentClient(
            topics,
            "captioner_test_client",
            requests=False,
            motion=False,
            poses=True,
            captions=True,
            executor=executor,
            spin_s=0.01,
            answer_timeout_s=ANSWER_TIMEOUT,
        ) as client:
            client.wait_ready(ANSWER_TIMEOUT, what="the captioner's topics")  # a caption sent before that is lost
            # 40 frames at the motion rate (20 Hz), as a tracker sends them: captions after 30 and 40. Sent
            # at once, a window could arrive while the previous one still waits and supersede it (latest wins).
            for frame in demo_motion("walk", seconds=2.0):
                client.publish_pose(frame)
                client.spin_for(0.05)
            client.spin_until(lambda: len(client.captions) >= 2, what="two captions")
            assert client.captions == ["30 frames seen", "30 frames seen"]
        assert captioner.get_name() == "motion_captioner"
    finally:
        captioner.close()
        executor.shutdown()
        captioner.destroy_node()


@pytest.mark.ros
@pytest.mark.slow
def test_text_command_gives_trajectory_markers_and_diagnostics(client):
    from motion_agent.motion.retarget import load_robot
    from motion_agent.nodes.messages import seconds_of

    text = "a person walks forward for 2 seconds"
    reply = client.ask(text)  # the whole motion, after the chunks streamed while it was decoded
    trajectory, values = reply.trajectory, reply.values
    answer = client.status_for(text, "OK")
    assert reply.ok and answer.stamp == (trajectory.header.stamp.sec, trajectory.header.stamp.nanosec)
    assert client.chunks_seen(answer.stamp) >= 2 and 0 < reply.first_point_ms < reply.client_ms
    robot = load_robot("smpl_avatar")
    assert list(trajectory.joint_names) == [j.name for j in robot.joints]
    assert trajectory.header.frame_id == "test_frame"
    times = [seconds_of(p.time_from_start) for p in trajectory.points]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:])) and times[-1] == pytest.approx(1.95, abs=0.05)
    assert all(len(p.positions) == len(p.velocities) == len(robot.joints) for p in trajectory.points)
    assert values["expert"] == "base" and values["frames"] == "40" and values["topic"] == "text_command"
    assert float(values["latency_ms.language_model"]) > 0 and "latency_ms.total" in values
    markers = client.spin_until(lambda: client.markers.get(answer.stamp), what="the markers")
    lines = [m for m in markers.markers if m.type == m.LINE_LIST]
    assert len(lines) == 5 and all(len(m.points) == 42 and m.header.frame_id == "test_frame" for m in lines)


@pytest.mark.ros
@pytest.mark.slow
def test_bad_requests_get_error_diagnostics_and_the_node_keeps_serving(client):
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    not_utf8 = serialize_message(String(data="wave AB")).replace(b"AB", b"\xff\xfe")
    bad = {"": "empty", "wave " * 100: "limit is 400", "1234 5678": "no words", not_utf8: "UTF-8"}
    for request in bad:
        client.send(request)
    for request, reason in bad.items():
        label = "wave \ufffd\ufffd" if request is not_utf8 else request
        answer = client.spin_until(lambda: client.status_for(label), what=f"refusal of {reason!r}")  # noqa: B023
        assert answer.level == "ERROR" and reason in answer.values["reason"], answer.values
    text = "a person jumps for 2 seconds"
    client.send(text)
    client.spin_until(lambda: client.status_for(text, "OK"), what="a good request after bad ones")


@pytest.mark.ros
@pytest.mark.slow
def test_the_latest_request_wins(client):
    texts = ["someone waves for 2 seconds", "someone bows for 2 seconds", "someone turns around for 3 seconds"]
    for text in texts:
        client.send(text)
    newest = client.spin_until(lambda: client.status_for(texts[-1], "OK"), what="the newest request")
    assert newest.values["frames"] == "60"  # 3 s
    dropped = client.spin_until(lambda: client.status_for(texts[1]), what="the dropped request")
    assert dropped.level == "WARN" and "superseded" in dropped.message
    first = client.spin_until(lambda: client.status_for(texts[0]))
    assert first.stamp in client.trajectories or first.level == "WARN"


@pytest.mark.ros
@pytest.mark.slow
def test_observed_poses_are_captioned_and_bad_poses_refused(client):
    before = len(client.statuses)
    client.publish_pose(np.zeros((21, 3)))
    nan_pose = demo_motion("walk", seconds=1.0)[0]
    nan_pose[5] = np.nan
    client.publish_pose(nan_pose)

    def pose_errors():
        found = [s for s in client.statuses[before:] if "observed_pose" in s.name]
        return found if len(found) >= 2 else None

    errors = client.spin_until(pose_errors, what="two pose errors")
    assert all(s.level == "ERROR" for s in errors)
    assert "21 joints" in errors[0].message and "NaN" in errors[1].message
    for frame in demo_motion("walk", seconds=3.0):  # 60 frames at the motion rate: one full window
        client.publish_pose(frame)
        client.spin_for(0.05)
    caption = client.spin_until(lambda: client.captions[-1] if client.captions else None, what="a caption")
    assert isinstance(caption, str)
    status = client.spin_until(lambda: client.find("OK", name="caption", after=before), what="the caption's OK")
    assert status.values["frames"] == "60"


FLOOD_MESSAGES = 120


@pytest.mark.ros
@pytest.mark.slow
def test_a_pose_flood_is_dropped_unread_and_requests_are_still_answered(client):
    """A tracker gone wrong (or an attacker) sends PoseArrays of 10,000 poses as fast as it can, and poses
    at 1e308 m: they are dropped with a few diagnostics, and a text request sent meanwhile is answered."""
    before = len(client.statuses)
    huge = np.zeros((10_000, 3))
    text = "a person waves during a pose flood"
    for i in range(FLOOD_MESSAGES):
        client.publish_pose(huge)
        if i == 20:
            client.send(text)
        client.spin(0.002)
    answer = client.spin_until(lambda: client.status_for(text), what="the request sent during the flood")
    assert answer.level == "OK" and answer.stamp in client.trajectories
    client.spin_for(1.1)  # past DROP_REPORT_S, so the next kind of drop is reported at once
    client.publish_pose(np.full((22, 3), 1e308))

    def drops():
        found = [s for s in client.statuses[before:] if "observed_pose" in s.name]
        far = [s for s in found if "farther than" in s.message]
        return (found, far) if far else None

    found, far = client.spin_until(drops, what="the refusal of poses at 1e308 m")
    assert any("no 22-joint pose" in s.message for s in found)
    # reported at most once a second per kind, counting every drop, not once per message
    assert int(far[-1].values["dropped"]) >= FLOOD_MESSAGES and len(found) < FLOOD_MESSAGES / 3
    assert all(len(s.message) < 200 for s in found)


@pytest.mark.ros
@pytest.mark.slow
def test_say_writes_the_trajectory_a_bvh_and_an_animated_preview(client, tmp_path):
    out = tmp_path / "say"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "motion_agent.cli",
            "say",
            "a person jumps happily for 2 seconds",
            "--out",
            str(out),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((out / "trajectory.json").read_text())
    assert len(data["joint_names"]) == 63 and len(data["times"]) == len(data["positions"]) > 10
    assert data["diagnostics"]["expert"] == "base" and data["frame_id"] == "test_frame"
    assert (out / "trajectory.png").stat().st_size > 1000 and "trajectory.json" in result.stdout
    from PIL import Image

    bvh = (out / "motion.bvh").read_text()
    frames = int(bvh.split("Frames:")[1].split()[0])
    assert bvh.startswith("HIERARCHY") and abs(frames - data["times"][-1] * 20) <= 2  # the same motion, 20 fps
    with Image.open(out / "motion.gif") as gif:
        assert gif.n_frames >= frames // 2 - 1  # animated: one GIF frame per 2 motion frames
    with Image.open(out / "keyframes.png") as strip:
        assert strip.width > 2 * strip.height  # key frames side by side (test_preview checks what they show)
    refused = subprocess.run(
        [sys.executable, "-m", "motion_agent.cli", "say", "   ", "--out", str(out / "no"), "--timeout", "30"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=90,
    )
    assert refused.returncode == 1 and "empty" in refused.stderr and not (out / "no").exists()


@pytest.mark.ros
@pytest.mark.slow
def test_launch_forwards_sigint_and_exits_with_its_nodes(agent_process, client):
    agent_process.send_signal(signal.SIGINT)
    assert agent_process.wait(30) == 0
    log = agent_process.log.read_text()
    assert f"started {NODE_SET[0].name}" in log and "forwarding SIGINT" in log
    assert f"{NODE_SET[0].name} exited with status 0" in log and "Traceback" not in log


@pytest.mark.ros
@pytest.mark.slow
def test_launch_without_a_model_serves_the_embedded_default_model_and_its_experts(tmp_path):
    """What `make run` does: `motion-agent launch` with no model anywhere starts the node set on the
    embedded default model, and `motion-agent say` gets a motion from one of its experts back."""
    from motion_agent.model.base_model import MANIFEST_FILE, embedded_model

    env = {**os.environ, "ROS_DOMAIN_ID": str(101 + os.getpid() % 100)}  # apart from the module's agent
    log = tmp_path / "launch.log"
    process = start_launch(log, env=env)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "motion_agent.cli",
                "say",
                "a person dances happily for 2 seconds",
                "--out",
                str(tmp_path / "say"),
                "--timeout",
                "90",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=150,
        )
    finally:
        stop_process(process)
    assert result.returncode == 0, result.stdout + result.stderr + log.read_text()
    experts = json.loads((embedded_model() / MANIFEST_FILE).read_text())["experts"]
    served = json.loads((tmp_path / "say" / "trajectory.json").read_text())["diagnostics"]["expert"]
    assert served in experts + ["unknown"]
