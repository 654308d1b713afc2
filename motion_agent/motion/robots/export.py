"""A real robot's motion as files: the trajectory (JSON), its feasibility report (JSON) and a picture of
the robot performing it (PNG). `motion-agent retarget` writes them for a built-in or saved motion,
`motion-agent say --robot g1` for the motion a running agent made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from motion_agent.motion.retarget import Trajectory
from motion_agent.motion.robots.picture import draw_trajectory


def trajectory_data(trajectory: Trajectory, robot: str, mode: str) -> dict:
    """JSON-ready: joint names, times, positions, velocities, the base (pose or twist) and the figures."""

    def listed(values: np.ndarray | None):
        return None if values is None else np.round(values, 6).tolist()

    return {
        "robot": robot,
        "mode": mode,
        "joint_names": list(trajectory.joint_names),
        "times": listed(trajectory.times),
        "positions": listed(trajectory.positions),
        "velocities": listed(trajectory.velocities),
        "root_position": listed(trajectory.root_position),
        "root_orientation_xyzw": listed(trajectory.root_orientation),
        "base_twist": listed(trajectory.base_twist),
        "stats": trajectory.stats,
    }


def summary(feasibility: dict) -> str:
    """One line a person reads: feasible or not, and the figures behind it."""
    verdict = "feasible" if feasibility["feasible"] else "NOT feasible"
    bodies = f" ({feasibility['colliding_bodies']})" if feasibility["colliding_bodies"] else ""
    return (
        f"{verdict}: {feasibility['joint_limit_violations']} limit violations "
        f"({feasibility['joint_limit_hits']} points at a limit), {feasibility['self_collision_frames']} "
        f"self-collision frames{bodies}, "
        f"foot slide {feasibility['foot_slide_m_s']:.3f} m/s, floor penetration "
        f"{feasibility['floor_penetration_mm']:.1f} mm, fastest joint {feasibility['max_joint_speed_joint']} at "
        f"{100 * feasibility['max_joint_speed_ratio']:.0f} % of its limit"
    )


def write_robot_files(retargeter, trajectory: Trajectory, out: str | Path, title: str) -> dict[str, Path]:
    """OUT/robot_trajectory.json, OUT/feasibility.json and OUT/robot.png of a trajectory its (IK)
    retargeter made; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = retargeter.config.name
    paths = {
        "trajectory": out / "robot_trajectory.json",
        "feasibility": out / "feasibility.json",
        "picture": out / "robot.png",
    }
    paths["trajectory"].write_text(json.dumps(trajectory_data(trajectory, name, retargeter.mode)) + "\n")
    report = {"robot": name, "mode": retargeter.mode, **(trajectory.feasibility or {}), **trajectory.stats}
    paths["feasibility"].write_text(json.dumps(report, indent=1) + "\n")
    draw_trajectory(retargeter, trajectory, paths["picture"], f"{name} ({retargeter.mode.replace('_', ' ')}): {title}")
    return paths
