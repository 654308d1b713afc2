"""Previews of a motion that a person can read at a glance: an animated GIF and PNG key-frame strips,
drawn in 3D perspective with matplotlib.

A side view (what the previews were before) turns most motions into a vertical line: a wave, a turn
or a step to the side all look alike, and left cannot be told from right. Here every view has:

- a perspective camera from the front and a little to the body's left and above, fixed for the whole
  motion and framing every frame of it, so travel is seen as travel and nothing leaves the picture;
- a floor grid (0.5 m squares) at the lowest point the motion reaches, and the root's trail on it;
- the body's left limbs in blue and its right limbs in orange (a pair that colour-blind readers tell
  apart too), the spine and head in dark grey, with a legend;
- the request as the title and the expert (or emotion) that made it as the subtitle.

The same drawing serves the GIF (`write_gif`), one motion's key-frame strip (`write_keyframes`, which
also shows what the captioner was given: a pose window with its caption as the title), and the rows of
motions that the demo and the training reports draw (`plot_stick_figures`).

What is drawn is a `Body`: joints, the bones between them, which side each bone is on, and the axes
its joints are given in. `SMPL_BODY` is the 22-joint SMPL skeleton of every motion here. A robot's body
(its links posed by forward kinematics from a JointTrajectory) is meant to be another `Body`, passed as
`body=` to the same functions; nothing in the drawing names SMPL joints.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motion_agent.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, SMPL_TO_ROS

LEFT, RIGHT, CENTRE = "left", "right", "centre"
SIDES = (LEFT, RIGHT, CENTRE)


@dataclass(frozen=True, eq=False)
class Body:
    """What a preview draws. `bones` are (parent, child) joint indices, `sides` says for each bone
    whether it belongs to the body's left, right or centre, and `to_view` (3 x 3) turns the body's
    joint coordinates into the view's axes: x forward, y left, z up (ROS REP 103)."""

    name: str
    joints: int
    bones: tuple[tuple[int, int], ...]
    sides: tuple[str, ...]
    to_view: np.ndarray = field(default_factory=lambda: np.eye(3))
    root: int = 0

    def __post_init__(self) -> None:
        if len(self.sides) != len(self.bones):
            raise ValueError(f"body {self.name}: {len(self.bones)} bones but {len(self.sides)} sides")
        bad = sorted({s for s in self.sides if s not in SIDES})
        if bad:
            raise ValueError(f"body {self.name}: sides must be {', '.join(SIDES)}, got {', '.join(bad)}")
        if any(not 0 <= j < self.joints for bone in self.bones for j in bone):
            raise ValueError(f"body {self.name}: a bone names a joint outside 0..{self.joints - 1}")

    def view_points(self, joints: np.ndarray) -> np.ndarray:
        """(T, joints, 3) positions in the body's axes -> the same in the view's axes; refuses a wrong shape."""
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[1:] != (self.joints, 3) or len(joints) == 0:
            raise ValueError(f"{self.name} motions have shape (frames, {self.joints}, 3), got {joints.shape}")
        if not np.isfinite(joints).all():
            raise ValueError(f"a {self.name} motion to preview has NaN or infinite positions")
        return joints @ self.to_view.T


def smpl_body() -> Body:
    """The SMPL 22-joint skeleton (motion_agent.motion.skeleton), in its own axes (+Y up, +Z forward,
    +X left); a bone is on the side of the joint it ends at (left_knee, right_wrist, ...)."""
    bones = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))
    sides = tuple(
        LEFT if JOINT_NAMES[c].startswith("left_") else RIGHT if JOINT_NAMES[c].startswith("right_") else CENTRE
        for _, c in bones
    )
    return Body("SMPL", NUM_JOINTS, bones, sides, SMPL_TO_ROS)


SMPL_BODY = smpl_body()


@dataclass(frozen=True)
class PreviewStyle:
    """Colours, camera and sizes of every preview. Left and right are blue and orange, which readers
    with the common colour-vision deficiencies still tell apart."""

    left_colour: str = "#1f5fd6"
    right_colour: str = "#ee6c0c"
    left_name: str = "blue"  # how the viewer's legend names the two colours
    right_name: str = "orange"
    centre_colour: str = "#39424c"
    trail_colour: str = "#8d99a6"  # the root's whole path on the floor
    travelled_colour: str = "#39424c"  # the part of it already walked
    floor_colour: str = "#d3d9e0"
    background: str = "#ffffff"
    elevation: float = 16.0  # degrees the camera looks down
    azimuth: float = 38.0  # degrees from straight in front of the body towards its left side
    grid_step: float = 0.5  # metres between floor lines
    margin: float = 0.2  # metres of floor around the motion
    min_floor: float = 1.2  # metres: the floor shown is never smaller, so a figure standing still keeps its size
    fill: float = 0.86  # the motion's share of the view's width or height, whichever it reaches first
    line_width: float = 3.2  # of the bones, in points
    gif_size: tuple[float, float] = (4.0, 4.4)  # inches of the GIF
    panel_size: tuple[float, float] = (2.2, 2.8)  # inches of one key frame
    dpi: int = 80
    max_fps: float = 10.0  # GIF frames are thinned to this rate so a preview stays small
    title_chars: int = 48  # wrap width of the title

    def colour(self, side: str) -> str:
        return {LEFT: self.left_colour, RIGHT: self.right_colour, CENTRE: self.centre_colour}[side]

    def rgb(self, side: str) -> tuple[int, int, int]:
        """A side's colour as 0-255 RGB (the browser viewer draws with the previews' colours)."""
        value = self.colour(side).lstrip("#")
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


DEFAULT_STYLE = PreviewStyle()
STRIP_HEADER_IN, STRIP_LABEL_IN, STRIP_LEGEND_IN = 0.55, 0.2, 0.3  # inches: title, time under a key frame, legend
FIT_ROUNDS = 3  # zoom refinements of a view (each changes the perspective a little less)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class MotionView:
    """One 3D axes showing one motion: floor, trail and the body at a chosen frame (`show`). The camera
    and the limits frame every frame of the motion, so all frames of a GIF or a strip share one view."""

    def __init__(self, ax, points: np.ndarray, body: Body, style: PreviewStyle) -> None:
        self.ax, self.points, self.body, self.style = ax, points, body, style
        lows, highs = points.reshape(-1, 3).min(axis=0), points.reshape(-1, 3).max(axis=0)
        centre = (lows + highs) / 2
        half = np.maximum((highs - lows) / 2 + style.margin, style.min_floor / 2)
        self.floor = float(lows[2])
        x = (centre[0] - half[0], centre[0] + half[0])
        y = (centre[1] - half[1], centre[1] + half[1])
        z = (self.floor, max(highs[2], self.floor + style.min_floor) + style.margin / 2)
        ax.set_xlim(*x)
        ax.set_ylim(*y)
        ax.set_zlim(*z)
        self.box = (x[1] - x[0], y[1] - y[0], z[1] - z[0])
        ax.set_box_aspect(self.box)  # metres alike on every axis
        ax.view_init(elev=style.elevation, azim=style.azimuth)
        ax.set_axis_off()
        ax.set_facecolor(style.background)
        self._floor_grid(x, y)
        root = points[:, body.root]
        ax.plot(root[:, 0], root[:, 1], np.full(len(root), self.floor), color=style.trail_colour, lw=1.2, ls="--")
        (self.travelled,) = ax.plot([], [], [], color=style.travelled_colour, lw=1.8)
        (self.shadow,) = ax.plot([], [], [], "o", color=style.trail_colour, markersize=4)
        self.lines = [
            ax.plot([], [], [], color=style.colour(side), lw=style.line_width, solid_capstyle="round")[0]
            for side in body.sides
        ]
        self._fit()

    def _fit(self) -> None:
        """Zoom and move the axes so that every frame of the motion (and its trail) fills `style.fill` of
        the view: matplotlib centres the whole 3D box instead, leaving a tall or long motion small. Zooming
        changes the perspective a little, so the fit is refined a few times."""
        from matplotlib.transforms import Bbox, TransformedBbox

        ax, slot = self.ax, self.ax.get_position()
        trail = self.points[:, self.body.root].copy()
        trail[:, 2] = self.floor
        every = np.concatenate([self.points.reshape(-1, 3), trail])
        zoom = 1.0
        for _ in range(FIT_ROUNDS):
            low, high = self._seen(every)
            zoom *= self.style.fill / max(float((high - low).max()), 1e-6)
            ax.set_box_aspect(self.box, zoom=zoom)
        low, high = self._seen(every)
        offset = 0.5 - (low + high) / 2  # the last round's centre, in the view's fractions, to the middle
        ax.set_position((slot.x0 + offset[0] * slot.width, slot.y0 + offset[1] * slot.height, slot.width, slot.height))
        clip = TransformedBbox(Bbox.from_bounds(slot.x0, slot.y0, slot.width, slot.height), ax.figure.transFigure)
        for artist in ax.lines:  # a moved view stays inside its own slot of a strip
            artist.set_clip_box(clip)

    def _seen(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 2D bounds of (N, 3) view points on the axes, as fractions of its width and height."""
        from mpl_toolkits.mplot3d import proj3d

        xs, ys, _ = proj3d.proj_transform(points[:, 0], points[:, 1], points[:, 2], self.ax.get_proj())
        seen = self.ax.transAxes.inverted().transform(self.ax.transData.transform(np.column_stack([xs, ys])))
        return seen.min(axis=0), seen.max(axis=0)

    def _floor_grid(self, x: tuple[float, float], y: tuple[float, float]) -> None:
        step, floor, colour = self.style.grid_step, self.floor, self.style.floor_colour
        for gx in np.arange(np.ceil(x[0] / step) * step, x[1] + 1e-9, step):
            self.ax.plot([gx, gx], y, [floor, floor], color=colour, lw=0.8)
        for gy in np.arange(np.ceil(y[0] / step) * step, y[1] + 1e-9, step):
            self.ax.plot(x, [gy, gy], [floor, floor], color=colour, lw=0.8)

    def show(self, frame: int) -> list:
        pose = self.points[frame]
        for line, (parent, child) in zip(self.lines, self.body.bones):
            line.set_data_3d(*pose[[parent, child]].T)
        root = self.points[: frame + 1, self.body.root]
        self.travelled.set_data_3d(root[:, 0], root[:, 1], np.full(len(root), self.floor))
        self.shadow.set_data_3d([root[-1, 0]], [root[-1, 1]], [self.floor])
        return [*self.lines, self.travelled, self.shadow]


def _legend(fig, style: PreviewStyle, body: Body) -> None:
    from matplotlib.lines import Line2D

    sides = [s for s in (LEFT, RIGHT) if s in body.sides]
    handles = [Line2D([], [], color=style.colour(s), lw=style.line_width) for s in sides]
    fig.legend(handles, [f"{s} side" for s in sides], loc="lower center", ncol=len(sides), fontsize=7, frameon=False)


def _titles(fig, style: PreviewStyle, title: str, subtitle: str) -> None:
    text = "\n".join(textwrap.wrap(title, style.title_chars)[:2])
    if subtitle:
        text = f"{text}\n{subtitle}" if text else subtitle
    if text:
        fig.suptitle(text, fontsize=8)


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor=fig.get_facecolor())
    return path


def write_gif(
    joints: np.ndarray,
    path: str | Path,
    fps: float = 20.0,
    title: str = "",
    subtitle: str = "",
    body: Body = SMPL_BODY,
    style: PreviewStyle = DEFAULT_STYLE,
) -> Path:
    """An animated 3D preview of a (T, joints, 3) motion (module docstring), frames thinned to at most
    `style.max_fps`; returns the path written."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    points = body.view_points(joints)
    step = max(1, int(round(fps / style.max_fps)))
    picks = np.arange(0, len(points), step)
    plt = _pyplot()
    fig = plt.figure(figsize=style.gif_size, facecolor=style.background)
    ax = fig.add_axes((0.0, 0.06, 1.0, 0.84), projection="3d")
    view = MotionView(ax, points, body, style)
    clock = fig.text(0.98, 0.08, "", ha="right", fontsize=7, color=style.centre_colour)
    _titles(fig, style, title, subtitle)
    _legend(fig, style, body)

    def draw(index: int) -> list:
        clock.set_text(f"{picks[index] / fps:.1f} s")
        return [*view.show(int(picks[index])), clock]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=len(picks), blit=False).save(
        path, writer=PillowWriter(fps=fps / step), dpi=style.dpi, savefig_kwargs={"facecolor": style.background}
    )
    plt.close(fig)
    return path


def plot_stick_figures(
    motions: dict[str, np.ndarray],
    path: str | Path,
    frames_per_motion: int = 5,
    title: str | None = None,
    fps: float = 20.0,
    subtitle: str = "",
    body: Body = SMPL_BODY,
    style: PreviewStyle = DEFAULT_STYLE,
) -> Path:
    """One row per named (T, joints, 3) motion: `frames_per_motion` evenly spaced key frames side by
    side, each in the motion's own 3D view (module docstring), its time below it."""
    if not motions:
        raise ValueError("no motions to draw")
    if frames_per_motion < 1:
        raise ValueError(f"frames_per_motion must be at least 1, got {frames_per_motion}")
    plt = _pyplot()
    width, height = style.panel_size
    header = STRIP_HEADER_IN if (title or subtitle) else STRIP_LABEL_IN
    total = (height + STRIP_LABEL_IN) * len(motions) + header + STRIP_LEGEND_IN
    fig = plt.figure(figsize=(width * frames_per_motion, total), facecolor=style.background)
    for row, (name, joints) in enumerate(motions.items()):
        points = body.view_points(joints)
        picks = np.linspace(0, len(points) - 1, frames_per_motion).round().astype(int)
        label_y = (STRIP_LEGEND_IN + (height + STRIP_LABEL_IN) * (len(motions) - 1 - row)) / total
        bottom = label_y + STRIP_LABEL_IN / total
        for col, frame in enumerate(picks):
            left = col / frames_per_motion
            ax = fig.add_axes((left, bottom, 1 / frames_per_motion, height / total), projection="3d")
            MotionView(ax, points, body, style).show(int(frame))
            fig.text(left + 0.5 / frames_per_motion, label_y, f"{frame / fps:.1f} s", ha="center", fontsize=7)
        if name:
            fig.text(0.005, bottom + height / total, name, fontsize=7, va="top")
    _titles(fig, style, title or "", subtitle)
    _legend(fig, style, body)
    path = _save(fig, path, style.dpi + 20)
    plt.close(fig)
    return path


def write_keyframes(
    joints: np.ndarray,
    path: str | Path,
    fps: float = 20.0,
    frames: int = 6,
    title: str = "",
    subtitle: str = "",
    body: Body = SMPL_BODY,
    style: PreviewStyle = DEFAULT_STYLE,
) -> Path:
    """One motion as a PNG strip of `frames` key frames (a generated motion with its request as the
    title, or a captioner's pose window with its caption)."""
    return plot_stick_figures({"": joints}, path, frames, title, fps, subtitle, body, style)
