"""MCAP recordings, read back as Foxglove would read them: every message is decoded by mcap-ros2-support
from the schema written into the file (not by rclpy), so a wrong schema name or definition fails here.

The recorder alone first (every message type the agent uses, round trip); then the agent node with
`node.record_mcap` set, started by `motion-agent launch` on a tiny model and driven over real topics by
this process and by `motion-agent say --mcap` as a third process: each recording holds, topic by topic
and type by type, what was sent and what came back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="recordings are of ROS 2 messages: needs rclpy (the ros extra)")
pytest.importorskip("mcap_ros2", reason="needs mcap and mcap-ros2-support: pip install 'motion_agent[record]'")

from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402

from motion_agent.config import ConfigError  # noqa: E402
from motion_agent.motion.demo import demo_motion  # noqa: E402
from motion_agent.nodes.settings import NodeConfig, load_node_config  # noqa: E402

from conftest import start_launch, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
ANSWER_TIMEOUT = 60.0


def read_recording(path: Path) -> list[tuple[str, str, object]]:
    """(topic, schema name, decoded message) of every message in an MCAP file, in log-time order;
    fails unless the file was finished (its summary written)."""
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_summary() is not None, f"{path} was not finished"
        return [(c.topic, s.name, m) for s, c, _, m in reader.iter_decoded_messages(log_time_order=True)]


def by_topic(messages) -> Counter:
    return Counter((topic, schema) for topic, schema, _ in messages)


# --- the recorder alone -----------------------------------------------------------------------------


def test_schemas_carry_the_full_ros2_definition_of_each_type():
    from motion_agent.nodes.recording import message_definition

    definition = message_definition("trajectory_msgs/msg/JointTrajectory")
    sections = [line for line in definition.splitlines() if line.startswith("MSG: ")]
    assert sections == [
        "MSG: std_msgs/Header",
        "MSG: builtin_interfaces/Time",
        "MSG: trajectory_msgs/JointTrajectoryPoint",
        "MSG: builtin_interfaces/Duration",
    ]
    assert definition.startswith("# The header") and "JointTrajectoryPoint[] points" in definition


def test_every_message_type_of_the_agent_round_trips(tmp_path):
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
    from visualization_msgs.msg import MarkerArray

    from motion_agent.motion.retarget import Retargeter, load_robot
    from motion_agent.nodes.messages import (
        diagnostic_array,
        diagnostic_status,
        pose_array,
        skeleton_markers,
        skeleton_message,
        trajectory_message,
    )
    from motion_agent.nodes.recording import McapRecorder

    joints, stamp = demo_motion("walk", 1.0), Time(sec=12, nanosec=345)
    robot_trajectory = Retargeter(load_robot("smpl_avatar")).retarget(joints, 20.0)
    sent = [
        ("/text_command", String, String(data="wave hello")),
        ("/text_command", String, serialize_message(String(data="raw bytes too"))),
        ("/motion/joint_trajectory", JointTrajectory, trajectory_message(robot_trajectory, stamp, "base_link")),
        ("/motion/skeleton", MultiDOFJointTrajectory, skeleton_message(joints, 20.0, stamp, "base_link")),
        ("/motion/markers", MarkerArray, skeleton_markers(joints, stamp, "base_link", 3, "walk")),
        ("/observed_pose", PoseArray, pose_array(joints[0])),
        (
            "/diagnostics",
            DiagnosticArray,
            diagnostic_array(stamp, [diagnostic_status("n", "h", "OK", "m", {"k": "v"})]),
        ),
    ]
    with McapRecorder(tmp_path / "r.mcap") as recorder:
        for topic, message_type, message in sent:
            recorder.write(topic, message_type, message)
    assert "7 messages on 6 topics" in recorder.summary()
    got = read_recording(tmp_path / "r.mcap")
    assert [(t, s) for t, s, _ in got] == [(t, f"{m.__module__.split('.')[0]}/msg/{m.__name__}") for t, m, _ in sent]
    assert [m.data for _, s, m in got if s == "std_msgs/msg/String"] == ["wave hello", "raw bytes too"]
    decoded = got[2][2]
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (12, 345)
    np.testing.assert_allclose([p.positions for p in decoded.points], robot_trajectory.positions)
    skeleton = got[3][2]
    np.testing.assert_allclose(
        [[[t.translation.x, t.translation.y, t.translation.z] for t in p.transforms] for p in skeleton.points], joints
    )
    assert got[6][2].status[0].values[0].key == "k" and got[6][2].status[0].level == 0


def test_record_mcap_setting_is_checked_and_never_overwrites(tmp_path):
    from motion_agent.nodes.recording import recording_path

    with pytest.raises(ValueError, match="must name an .mcap file"):
        NodeConfig(record_mcap="recording.bag")
    with pytest.raises(ValueError, match=r"only \{time\}"):
        NodeConfig(record_mcap="agent-{date}.mcap")
    path = recording_path(str(tmp_path / "agent-{time}.mcap"), datetime(2026, 5, 4, 3, 2, 1))
    assert path.name == "agent-20260504-030201.mcap"
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match="exists"):
        recording_path(str(path))
    assert load_node_config().record_mcap == ""  # off by default


# --- the agent node's recorder and `say --mcap` over real topics -------------------------------------


@pytest.fixture(scope="module")
def recording_agent(tiny_base_model, tmp_path_factory):
    """`motion-agent launch` with node.record_mcap set; yields (process, recordings folder)."""
    root = tmp_path_factory.mktemp("recording_agent")
    config = root / "agent.yaml"
    config.write_text(f"agent: {{}}\nnode:\n  record_mcap: {root / 'recordings' / 'agent-{time}.mcap'}\n")
    process = start_launch(root / "launch.log", "--config", str(config), "--base-model", str(tiny_base_model))
    yield process, root / "recordings"
    stop_process(process)


@pytest.mark.ros
@pytest.mark.slow
def test_node_and_say_record_every_message_as_sent(ros, recording_agent, tmp_path):
    from motion_agent.nodes.client import AgentClient

    process, recordings = recording_agent
    seen: list[tuple[str, str, object]] = []  # what this client sent and received, in order

    def tap(topic: str, message_type: type, message) -> None:
        seen.append((topic, f"{message_type.__module__.split('.')[0]}/msg/{message_type.__name__}", message))

    def running():
        assert process.poll() is None, f"the agent exited: {process.log.read_text()[-2000:]}"

    config = load_node_config()
    with AgentClient(
        config, "recording_test_client", skeletons=True, markers=True, poses=True, captions=True, tap=tap
    ) as client:
        client.wait_ready(START_TIMEOUT, running, what="the recording agent's topics")
        good = client.ask("a person waves happily for 2 seconds", timeout=ANSWER_TIMEOUT, skeleton=True)
        assert good.ok, good
        refused = client.ask("   ", timeout=ANSWER_TIMEOUT)
        assert refused.level == "ERROR"
        for frame in demo_motion("walk", seconds=3.0):  # one caption window: 60 frames at the 20 Hz pose rate
            client.publish_pose(frame)
            client.spin_for(0.05)
        client.spin_until(lambda: client.captions, ANSWER_TIMEOUT, "a caption")
        client.spin_until(lambda: client.find("OK", name="caption"), ANSWER_TIMEOUT, "the caption's diagnostic")

        say_mcap = tmp_path / "say.mcap"
        said = subprocess.run(
            [sys.executable, "-m", "motion_agent.cli", "say", "a person jumps for 2 seconds"]
            + ["--out", str(tmp_path / "say"), "--mcap", str(say_mcap), "--timeout", str(ANSWER_TIMEOUT)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=ANSWER_TIMEOUT + 60,
        )
        assert said.returncode == 0, said.stdout + said.stderr
        client.spin_until(lambda: len(client.trajectories) >= 1, ANSWER_TIMEOUT, "the say request's trajectory")
        client.spin_until(lambda: client.find("OK", request="a person jumps for 2 seconds"), ANSWER_TIMEOUT)
        client.spin_for(1.0)  # anything still on its way
    stop_process(process)  # the node finishes its recording as it stops

    # `say --mcap`: its request, its motion and the diagnostics it saw, as its own summary line says
    said_messages = read_recording(say_mcap)
    counts = by_topic(said_messages)
    assert counts[("/text_command", "std_msgs/msg/String")] == 1
    assert counts[("/motion/joint_trajectory", "trajectory_msgs/msg/JointTrajectory")] >= 2  # streamed in chunks
    assert counts[("/motion/skeleton", "trajectory_msgs/msg/MultiDOFJointTrajectory")] == 1
    assert counts[("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")] >= 1
    assert f"{sum(counts.values())} messages on {len(counts)} topics to {say_mcap}" in said.stdout
    written = json.loads((tmp_path / "say" / "trajectory.json").read_text())
    *chunks, trajectory = [m for _, s, m in said_messages if s.endswith("/JointTrajectory")]  # the whole is last
    assert all(len(c.points) < len(trajectory.points) for c in chunks)
    np.testing.assert_allclose([p.positions for p in trajectory.points], written["positions"])
    request = next(m for t, _, m in said_messages if t == "/text_command")
    assert request.data == "a person jumps for 2 seconds"

    # the node's recording: everything this client sent and received, type by type and topic by topic,
    # and the say process's request and its answers on top
    (recording,) = sorted(recordings.glob("agent-*.mcap"))
    recorded = read_recording(recording)
    expected = by_topic(seen)
    expected[("/text_command", "std_msgs/msg/String")] += 1  # say's request (its answers reached this client too)
    assert by_topic(recorded) == expected
    sent_texts = [m.data for t, _, m in seen if t == "/text_command"] + ["a person jumps for 2 seconds"]
    assert [m.data for t, _, m in recorded if t == "/text_command"] == sent_texts
    recorded_captions = [m.data for t, _, m in recorded if t == "/caption"]
    assert recorded_captions == client.captions and recorded_captions
    stamps = sorted(
        (m.header.stamp.sec, m.header.stamp.nanosec) for _, s, m in recorded if s.endswith("/JointTrajectory")
    )
    assert stamps == sorted(
        (m.header.stamp.sec, m.header.stamp.nanosec) for _, s, m in seen if s.endswith("/JointTrajectory")
    )
    assert f"recorded {len(recorded)} messages" in process.log.read_text()
