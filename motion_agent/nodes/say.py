"""`motion-agent say "TEXT"`: publish one request to a running agent, wait for its motion, write it.

The agent answers every request with a diagnostic whose `request` value is the request's label
(diagnostics.request_label); an OK one carries the same header stamp as the JointTrajectory and the
skeleton it published, which is how this client (motion_agent.nodes.client) tells its own motion from
others on the topics.

Writes OUT/trajectory.json (the robot's joints), OUT/trajectory.png (joint angles over time),
OUT/motion.bvh (the SMPL skeleton, for Blender or Unity), OUT/motion.gif (an animated 3D preview) and
OUT/keyframes.png (a strip of key frames), both titled with the request and the expert that made it
(motion_agent.motion.preview). With `--mcap FILE` it also records every message it sent and received as
an MCAP file for Foxglove (recording.py), also when the agent refuses the request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from motion_agent.motion.export import plot_trajectory, write_bvh
from motion_agent.motion.preview import write_gif, write_keyframes
from motion_agent.nodes.client import LOST, AgentClient, WaitTimeout
from motion_agent.nodes.messages import seconds_of, skeleton_joints, trajectory_dict
from motion_agent.nodes.recording import McapRecorder
from motion_agent.nodes.settings import NodeConfig

SETTLE_S = 0.3  # after discovery, so the agent's publishers have matched this client's subscriptions too


class SayError(RuntimeError):
    """Timeout, a refused request, or no agent listening: one line for the user."""


def request_motion(
    text: str, config: NodeConfig, timeout: float, recorder: McapRecorder | None = None
) -> tuple[JointTrajectory, MultiDOFJointTrajectory, dict[str, str]]:
    """Publish `text` and return (trajectory, skeleton, values of its OK diagnostic); SayError otherwise.
    A `recorder` gets every message the client sends and receives."""
    name = f"motion_agent_say_{int(time.time() * 1000) % 100000}"
    tap = recorder.write if recorder is not None else None
    with AgentClient(config, name, skeletons=True, tap=tap) as client:
        started = time.monotonic()
        try:
            client.wait_ready(timeout, settle_s=SETTLE_S)
        except WaitTimeout:
            raise SayError(
                f"no agent answers on {config.text_topics[0]} and {config.diagnostics_topic} "
                f"within {timeout:g} s; start one with `motion-agent launch --base-model DIR`"
            ) from None
        reply = client.ask(text, timeout=max(0.0, timeout - (time.monotonic() - started)), skeleton=True)
    if reply.level in ("ERROR", "WARN"):
        raise SayError(f"the agent did not make this motion: {reply.message}")
    if reply.level == LOST or reply.trajectory is None or reply.skeleton is None:
        got = "no answer" if reply.level == LOST else "its diagnostic but not both motion messages"
        raise SayError(f"timed out after {timeout:g} s waiting for the motion ({got})")
    return reply.trajectory, reply.skeleton, reply.values


def say(
    text: str,
    out: str | Path,
    timeout: float,
    config: NodeConfig,
    mcap: str | Path | None = None,
    robot: str | None = None,
) -> Path:
    """Request a motion and write its files (module docstring) into OUT; returns the trajectory JSON path.
    With `robot` (a real robot: g1, unitree_g1, t1, ...) also OUT/robot.png, the robot performing the
    motion, with its trajectory and feasibility report (robot_trajectory.json, feasibility.json)."""
    recorder = McapRecorder(mcap) if mcap else None
    try:
        trajectory, skeleton, values = request_motion(text, config, timeout, recorder)
    finally:
        if recorder is not None:
            print(f"recording: {recorder.close()}")
    data = trajectory_dict(trajectory)
    data.update(request=text, diagnostics=values)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "trajectory.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    png = plot_trajectory(data["times"], data["positions"], data["joint_names"], out / "trajectory.png", text)
    times, joints = skeleton_joints(skeleton, config.pose_axes)
    fps = (len(times) - 1) / times[-1] if len(times) > 1 and times[-1] > 0 else 20.0
    bvh = write_bvh(out / "motion.bvh", joints, fps)
    made_by = f"expert: {values.get('expert', '?')}, {len(joints) / fps:.1f} s"
    gif = write_gif(joints, out / "motion.gif", fps, text, made_by)
    strip = write_keyframes(joints, out / "keyframes.png", fps, title=text, subtitle=made_by)
    duration = data["times"][-1] if data["times"] else 0.0
    print(
        f"{text!r}: {len(data['times'])} points over {duration:.2f} s for {len(data['joint_names'])} joints "
        f"(expert {values.get('expert', '?')}, {values.get('frames', '?')} frames, "
        f"{values.get('latency_ms.total', '?')} ms in the agent, stamp {seconds_of(trajectory.header.stamp):.3f})"
    )
    print(f"trajectory: {path}\nplot: {png}\nskeleton: {bvh}\npreview: {gif}\nkey frames: {strip}")
    if robot:
        _robot_files(robot, joints, fps, out, text, values)
    return path


def _robot_files(robot: str, joints, fps: float, out: Path, text: str, values: dict[str, str]) -> None:
    """The motion's skeleton retargeted here onto `robot` (whole body), drawn, and its feasibility; the
    agent's own report too when it served a real robot."""
    from motion_agent.motion.robots.export import summary, write_robot_files
    from motion_agent.motion.robots.loader import load_retargeter

    retargeter = load_retargeter(robot, "whole_body")
    trajectory = retargeter.retarget(joints, fps)
    files = write_robot_files(retargeter, trajectory, out, text)
    if "feasibility.feasible" in values:
        print(f"the agent's robot: {'feasible' if values['feasibility.feasible'] == 'true' else 'NOT feasible'}")
    print(f"{retargeter.config.name}: {summary(trajectory.feasibility)}")
    print(f"robot: {files['picture']}\nrobot trajectory: {files['trajectory']}\nfeasibility: {files['feasibility']}")
