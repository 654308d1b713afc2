"""A picture of a real robot performing a motion: its links at a few key frames, from MuJoCo's kinematics.

Each key frame is drawn in 3D as the segments between every body and its parent (the robot's link frames,
as `robot_state_publisher` would place them), left side blue, right side red, with the floor and the
base's path. It is what `motion-agent say --robot g1` and `motion-agent retarget` write next to the
trajectory, so one can see at a glance what the robot will do before it does it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motion_agent.motion.retarget import Trajectory
from motion_agent.motion.robots.description import RobotModel
from motion_agent.motion.robots.replay import pose

LEFT, RIGHT, MIDDLE = "#3366cc", "#cc3333", "#333333"


def _side(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith("left") or "_left" in lowered or lowered.startswith(("al", "l_")):
        return LEFT
    if lowered.startswith("right") or "_right" in lowered or lowered.startswith(("ar", "r_")):
        return RIGHT
    return MIDDLE


def draw_robot(
    model: RobotModel, configurations: np.ndarray, times: np.ndarray, path: str | Path, title: str, frames: int = 5
) -> Path:
    """Write a PNG of the robot at `frames` evenly spaced points of (N, nq) `configurations`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = model.model
    picks = np.unique(np.linspace(0, len(configurations) - 1, min(frames, len(configurations))).round().astype(int))
    bodies = pose(model, configurations[picks]).body_xpos
    path_xy = configurations[:, :2]
    links = [(b, int(m.body_parentid[b])) for b in range(1, m.nbody) if m.body_parentid[b] > 0]
    colours = [_side(m.body(b).name) for b, _ in links]
    height = float(bodies[..., 2].max())
    reach = 0.45 * height  # half the width of each frame's box
    figure = plt.figure(figsize=(2.8 * len(picks), 4.0))
    for column, (index, points) in enumerate(zip(picks, bodies)):
        axes = figure.add_subplot(1, len(picks), column + 1, projection="3d")
        centre = points[1]
        for (child, parent), colour in zip(links, colours):
            segment = points[[parent, child]]
            if np.linalg.norm(segment[1] - segment[0]) > 1e-6:
                axes.plot(*segment.T, color=colour, linewidth=2.0)
        inside = np.all(np.abs(path_xy - centre[:2]) < reach, axis=1)
        axes.plot(*path_xy[inside].T, np.zeros(int(inside.sum())), color="#999999", linewidth=0.8)
        grid = np.linspace(-reach, reach, 2)
        floor_x, floor_y = np.meshgrid(centre[0] + grid, centre[1] + grid)
        axes.plot_surface(floor_x, floor_y, np.zeros_like(floor_x), color="#dddddd", alpha=0.4)
        axes.set_xlim(centre[0] - reach, centre[0] + reach)
        axes.set_ylim(centre[1] - reach, centre[1] + reach)
        axes.set_zlim(0.0, 1.05 * height)
        axes.set_box_aspect((2 * reach, 2 * reach, 1.05 * height))
        axes.view_init(elev=12, azim=-60)
        axes.set_title(f"{times[index]:.2f} s", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_zticks([])
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def draw_trajectory(retargeter, trajectory: Trajectory, path: str | Path, title: str, frames: int = 5) -> Path:
    """The robot performing a trajectory its retargeter (an IKRetargeter) made: the base from the
    trajectory in the whole-body mode, standing in place in the upper-body mode."""
    from motion_agent.motion.robots.feasibility import replay_configurations

    configurations = replay_configurations(retargeter.robot, trajectory)
    return draw_robot(retargeter.robot, configurations, trajectory.times, path, title, frames)
