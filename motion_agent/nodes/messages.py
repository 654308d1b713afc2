"""Conversions between the agent's arrays and standard ROS 2 messages (no custom interfaces)."""

from __future__ import annotations

import struct

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseArray, Quaternion, Transform, Twist, Vector3
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, String
from trajectory_msgs.msg import (
    JointTrajectory,
    JointTrajectoryPoint,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)
from visualization_msgs.msg import Marker, MarkerArray

from motion_agent.motion.retarget import Trajectory
from motion_agent.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, SMPL_TO_ROS

BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))
LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR}
LEVEL_NAMES = {int.from_bytes(v, "little") if isinstance(v, bytes) else int(v): k for k, v in LEVELS.items()}


def key_frames(joints: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    """`count` evenly spaced frames of a (T, 22, 3) SMPL-axes motion as (frame, (21, 2, 3) bone
    segments in REP-103 axes), ready for a LINE_LIST marker."""
    joints = np.asarray(joints, dtype=np.float64)
    picks = np.unique(np.linspace(0, len(joints) - 1, min(count, len(joints))).round().astype(int))
    parents, children = np.array(BONES).T
    ros = joints @ SMPL_TO_ROS.T
    return [(int(f), np.stack([ros[f, parents], ros[f, children]], axis=1)) for f in picks]


def duration(seconds: float) -> Duration:
    nanoseconds = int(round(float(seconds) * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def seconds_of(stamp: Duration | Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def string_bytes(raw: bytes) -> bytes:
    """The UTF-8 payload of a serialized std_msgs/String, undecoded.

    rclpy replaces invalid UTF-8 by U+FFFD when it deserializes, which would let undecodable text
    through as a request; reading the CDR string ourselves keeps the bytes so the agent can refuse it."""
    if len(raw) >= 8:
        order = "<" if raw[1] & 1 else ">"  # encapsulation id: odd = little endian (CDR_LE, CDR2_LE)
        (length,) = struct.unpack(order + "I", raw[4:8])
        if 1 <= length <= len(raw) - 8 and raw[8 + length - 1] == 0:
            return raw[8 : 8 + length - 1]
    return deserialize_message(raw, String).data.encode("utf-8")


def trajectory_message(trajectory: Trajectory, stamp: Time, frame_id: str) -> JointTrajectory:
    message = JointTrajectory()
    message.header.stamp, message.header.frame_id = stamp, frame_id
    message.joint_names = list(trajectory.joint_names)
    for t, positions, velocities in zip(trajectory.times, trajectory.positions, trajectory.velocities):
        message.points.append(
            JointTrajectoryPoint(
                positions=positions.astype(float).tolist(),
                velocities=velocities.astype(float).tolist(),
                time_from_start=duration(t),
            )
        )
    return message


def base_trajectory_message(trajectory: Trajectory, stamp: Time, frame_id: str) -> MultiDOFJointTrajectory:
    """A real robot's floating-base pose at every point of its trajectory (whole-body mode), as one
    `floating_base` joint: what a whole-body controller tracks beside the joint trajectory."""
    message = MultiDOFJointTrajectory(joint_names=["floating_base"])
    message.header.stamp, message.header.frame_id = stamp, frame_id
    for t, (x, y, z), (qx, qy, qz, qw) in zip(trajectory.times, trajectory.root_position, trajectory.root_orientation):
        transform = Transform(
            translation=Vector3(x=float(x), y=float(y), z=float(z)),
            rotation=Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
        )
        message.points.append(MultiDOFJointTrajectoryPoint(transforms=[transform], time_from_start=duration(t)))
    return message


def twist_message(vx: float = 0.0, vy: float = 0.0, yaw_rate: float = 0.0) -> Twist:
    """A base velocity for cmd_vel: x forward, y left (m/s), yaw rate (rad/s), in the base's frame."""
    return Twist(linear=Vector3(x=float(vx), y=float(vy)), angular=Vector3(z=float(yaw_rate)))


def joint_state_message(names: list[str], positions, velocities, stamp: Time) -> JointState:
    message = JointState(name=list(names), position=[float(p) for p in positions])
    message.velocity = [float(v) for v in velocities]
    message.header.stamp = stamp
    return message


def joint_state_positions(message: JointState) -> dict[str, float]:
    """name -> position of a sensor_msgs/JointState (joints without a finite position are left out)."""
    return {name: float(position) for name, position in zip(message.name, message.position) if np.isfinite(position)}


def trajectory_dict(message: JointTrajectory) -> dict:
    """A JointTrajectory as JSON-ready data (what `motion-agent say` writes)."""
    return {
        "frame_id": message.header.frame_id,
        "stamp": seconds_of(message.header.stamp),
        "joint_names": list(message.joint_names),
        "times": [seconds_of(p.time_from_start) for p in message.points],
        "positions": [list(p.positions) for p in message.points],
        "velocities": [list(p.velocities) for p in message.points],
    }


def skeleton_message(
    joints: np.ndarray, fps: float, stamp: Time, frame_id: str, axes: str = "smpl"
) -> MultiDOFJointTrajectory:
    """The generated motion as the 22 SMPL joint positions over time (translations; identity rotations):
    what an avatar retargets itself, and what `motion-agent say` turns into BVH and GIF."""
    points = np.asarray(joints, dtype=np.float64)
    if axes == "ros":
        points = points @ SMPL_TO_ROS.T
    identity = Quaternion(w=1.0)
    message = MultiDOFJointTrajectory(joint_names=list(JOINT_NAMES))
    message.header.stamp, message.header.frame_id = stamp, frame_id
    for frame, pose in enumerate(points):
        transforms = [
            Transform(translation=Vector3(x=float(x), y=float(y), z=float(z)), rotation=identity) for x, y, z in pose
        ]
        message.points.append(
            MultiDOFJointTrajectoryPoint(transforms=transforms, time_from_start=duration(frame / fps))
        )
    return message


def skeleton_joints(message: MultiDOFJointTrajectory, axes: str = "smpl") -> tuple[np.ndarray, np.ndarray]:
    """(times (T,), joints (T, 22, 3) in SMPL axes) of a skeleton message."""
    if len(message.joint_names) != NUM_JOINTS:
        raise ValueError(f"a skeleton message has {NUM_JOINTS} SMPL joints, got {len(message.joint_names)}")
    times = np.array([seconds_of(p.time_from_start) for p in message.points])
    joints = np.array(
        [[[t.translation.x, t.translation.y, t.translation.z] for t in p.transforms] for p in message.points],
        dtype=np.float64,
    ).reshape(-1, NUM_JOINTS, 3)
    return times, (joints @ SMPL_TO_ROS if axes == "ros" else joints)


def skeleton_markers(
    joints: np.ndarray, stamp: Time, frame_id: str, frames: int, text: str = "", namespace: str = "motion_agent"
) -> MarkerArray:
    """Key frames of a generated motion as LINE_LIST skeletons (REP-103 axes), replacing older ones."""
    markers = [Marker(action=Marker.DELETEALL, ns=namespace)]
    picks = key_frames(joints, frames)
    for index, (_frame, bones) in enumerate(picks):
        marker = Marker(type=Marker.LINE_LIST, action=Marker.ADD, ns=namespace, id=index)
        marker.header.stamp, marker.header.frame_id = stamp, frame_id
        marker.pose.orientation.w = 1.0
        marker.scale.x = 0.02
        shade = index / max(len(picks) - 1, 1)
        marker.color = ColorRGBA(r=0.2 + 0.8 * shade, g=0.5, b=1.0 - 0.8 * shade, a=1.0)
        marker.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in bones.reshape(-1, 3)]
        markers.append(marker)
    if text and picks:
        label = Marker(type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, ns=namespace, id=len(picks), text=text)
        label.header.stamp, label.header.frame_id = stamp, frame_id
        top = picks[0][1].reshape(-1, 3)
        label.pose.position = Point(
            x=float(top[:, 0].mean()), y=float(top[:, 1].mean()), z=float(top[:, 2].max() + 0.3)
        )
        label.pose.orientation.w = 1.0
        label.scale.z = 0.1
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers.append(label)
    return MarkerArray(markers=markers)


def pose_points(message: PoseArray) -> np.ndarray:
    """(N, 3) joint positions of a PoseArray, in message order."""
    return np.array([[p.position.x, p.position.y, p.position.z] for p in message.poses], dtype=np.float64).reshape(
        -1, 3
    )


def pose_array(points: np.ndarray, stamp: Time | None = None, frame_id: str = "") -> PoseArray:
    """(N, 3) positions -> PoseArray (identity orientations): how tests and tools send observed poses."""
    from geometry_msgs.msg import Pose

    message = PoseArray()
    if stamp is not None:
        message.header.stamp = stamp
    message.header.frame_id = frame_id
    for x, y, z in np.asarray(points, dtype=np.float64).reshape(-1, 3):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
        pose.orientation.w = 1.0
        message.poses.append(pose)
    return message


def diagnostic_status(
    name: str, hardware_id: str, level: str, message: str, values: dict[str, str]
) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=LEVELS[level],
        name=name,
        message=message[:500],
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )


def diagnostic_array(stamp: Time, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    message = DiagnosticArray(status=statuses)
    message.header.stamp = stamp
    return message


def level_name(status: DiagnosticStatus) -> str:
    level = status.level
    return LEVEL_NAMES.get(int.from_bytes(level, "little") if isinstance(level, bytes) else int(level), str(level))


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
