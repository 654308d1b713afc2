"""`motion-agent view`: the agent seen live in a web browser, on any machine, without a ROS desktop.

The page is served by viser (https://viser.studio, from PyPI, the `view` extra): a three.js scene and a
control panel over one WebSocket, its whole client inside the Python package, so the page needs nothing
from the internet. This process is a client of a running agent (motion_agent.nodes.client.AgentClient,
the one every tool uses): it subscribes the agent's topics and shows

- every generated motion (from this page, `motion-agent say`, speech or any other client), played in a
  loop in 3D: the SMPL skeleton with its left limbs blue and its right limbs orange (the colours of the
  GIF previews, motion_agent.motion.preview), the root's trail on a floor grid, and in the panel the
  request, the expert that made it and its length;
- the poses the captioner is given (`observed_pose`), as a grey figure beside it, with the latest caption;
- refusals and the agent's presence in a status line.

A text box and a Send button publish a request to the agent through the same client.

    motion-agent view --port 8080   # then open http://127.0.0.1:8080
"""

from __future__ import annotations

import queue
import signal
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseArray

from motion_agent.agent import RequestError
from motion_agent.config import ConfigError
from motion_agent.motion.preview import DEFAULT_STYLE, SMPL_BODY, Body, PreviewStyle
from motion_agent.nodes.client import POSE_DEPTH, AgentClient
from motion_agent.nodes.messages import pose_points, skeleton_joints
from motion_agent.nodes.pose_window import pose_frame
from motion_agent.nodes.settings import VIEW_HOST, VIEW_PORT, NodeConfig

PLAY_FPS = 20.0  # frames per second sent to the page
HOLD_S = 1.0  # the last frame stays this long before the motion plays again
SKELETON_WAIT_S = 10.0  # an OK diagnostic whose skeleton has not come by then is reported without it
PRESENCE_EVERY_S = 1.0  # how often the agent's presence is checked
DISCOVERY_S = 3.0  # the agent is only called absent once discovery has had this long
# The camera frames each new motion from in front of the body, to its left and above (the previews' view),
# far enough for every frame of it to be seen, and aims a little to the side so the figure stands left of
# the middle, clear of the control panel on the right.
CAMERA_DIRECTION = np.array([1.0, 0.55, 0.45])  # from the motion's centre towards the camera
CAMERA_FOV = np.radians(75.0)  # the page's vertical field of view (three.js' default, which viser keeps)
CAMERA_MARGIN = 1.15  # distance beyond the one that just fits the motion
PANEL_SHIFT = 0.4  # of the motion's radius, towards the panel
MIN_RADIUS = 1.0  # metres: a motion in place is framed as if it were this big
STANDING = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.8]])  # what a new page frames before any motion came
FLOOR_M, FLOOR_CELL_M = 4.0, 0.5  # the floor grid: at least this wide, 1 m beyond the motion on each side
BONE_M, TRAIL_M = 0.05, 0.025  # thickness of the bones and of the root's trail in the 3D view
OBSERVED_GAP_M = 1.0  # the observed figure stands this far to the right of everything the generated one does
OBSERVED_RGB = (150, 156, 164)
TRAIL_RGB = (141, 153, 166)
INSTALL_HINT = "pip install 'motion_agent[view]'"


@dataclass
class Playing:
    """The motion on show: (T, joints, 3) points in the view's axes (x forward, y left, z up)."""

    request: str
    expert: str
    points: np.ndarray
    fps: float
    started: float  # time.monotonic() when it began

    def frame(self, now: float) -> int:
        """The frame to show at `now`: the motion, then HOLD_S on its last frame, again and again."""
        frames = len(self.points)
        cycle = frames + int(HOLD_S * self.fps)
        return min(int((now - self.started) * self.fps) % cycle, frames - 1)


def _bones(points: np.ndarray, body: Body) -> np.ndarray:
    """(bones, 2, 3) segments of one pose."""
    return np.stack([points[[p for p, _ in body.bones]], points[[c for _, c in body.bones]]], axis=1).astype(np.float32)


def _markdown_text(text: str) -> str:
    """Text shown as itself in the panel's Markdown (requests are whatever people typed)."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|<>~" else c for c in text)


class MotionViewer:
    """The page (module docstring). `run` serves until `stop()` or Ctrl-C; `shown` counts the motions
    shown; `say` receives one line per event for the terminal."""

    def __init__(
        self,
        config: NodeConfig,
        host: str = VIEW_HOST,
        port: int = VIEW_PORT,
        style: PreviewStyle = DEFAULT_STYLE,
        say=print,
    ) -> None:
        try:
            import viser
        except ImportError as error:
            raise ConfigError(f"`motion-agent view` needs viser ({INSTALL_HINT}): {error}") from error
        self.config, self.style, self.say, self.body = config, style, say, SMPL_BODY
        self.client = AgentClient(config, f"motion_agent_viewer_{port}", skeletons=True)
        self.client.subscription(PoseArray, config.pose_topic, self._on_pose, POSE_DEPTH)
        self.server = viser.ViserServer(host=host, port=port, label="motion_agent", verbose=False)
        self.url = f"http://{host}:{self.server.get_port()}"
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._pending: dict = {}  # stamp -> (OK answer, deadline) waiting for its skeleton
        self._observed: np.ndarray | None = None
        self._observed_at = np.array([0.0, -OBSERVED_GAP_M - MIN_RADIUS, 0.0])  # where its root stands
        self._running = True
        self._present: bool | None = None
        self.playing: Playing | None = None
        self.shown = 0
        self._build_scene()
        self._build_panel()

    # --- the page ---

    def _build_scene(self) -> None:
        scene = self.server.scene
        scene.set_up_direction("+z")
        self._place(STANDING)
        bones = len(self.body.bones)
        colours = np.array([self.style.rgb(side) for side in self.body.sides], dtype=np.uint8)
        self.skeleton = scene.add_line_segments(
            "/motion/skeleton",
            np.zeros((bones, 2, 3), np.float32),
            np.repeat(colours[:, None], 2, axis=1),
            thickness=BONE_M,
            visible=False,
        )
        self.trail = scene.add_line_segments(
            "/motion/trail", np.zeros((1, 2, 3), np.float32), TRAIL_RGB, thickness=TRAIL_M, visible=False
        )
        self.observed = scene.add_line_segments(
            "/observed/skeleton", np.zeros((bones, 2, 3), np.float32), OBSERVED_RGB, thickness=BONE_M, visible=False
        )
        self.observed_label = scene.add_label("/observed/label", "observed", visible=False, anchor="bottom-center")

    def _build_panel(self) -> None:
        gui = self.server.gui
        gui.configure_theme(show_share_button=False, show_logo=False, control_width="large")
        self.now_playing = gui.add_markdown(
            "**Waiting for a motion.** Type a request below, or send one with `motion-agent say`."
        )
        self.text = gui.add_text("Request", "", hint="what the robot should do, e.g. 'wave happily for 3 seconds'")
        self.send = gui.add_button("Send")
        self.status = gui.add_markdown("")
        self.caption = gui.add_markdown("")
        gui.add_markdown(
            f"{self.style.left_name.capitalize()} limbs: the body's left side; {self.style.right_name}: its right. "
            "Grey, beside it: the observed pose the captioner is given."
        )

        @self.send.on_click
        def _(_event) -> None:  # viser's thread: the request goes out from the serving loop
            self._requests.put(self.text.value)

    # --- what arrives ---

    def _on_pose(self, message: PoseArray) -> None:
        try:
            self._observed = pose_frame(pose_points(message), self.config.pose_axes)
        except RequestError:  # the agent answers a bad pose with its own diagnostic
            return

    def _take_statuses(self, now: float) -> None:
        """Turn the diagnostics collected since the last call into what the page shows."""
        client = self.client
        for answer in client.statuses:
            if "request_id" in answer.values:
                if answer.level == "OK":
                    self._pending[answer.stamp] = (answer, now + SKELETON_WAIT_S)
                else:
                    request = answer.values.get("request", "")
                    self._set_status(
                        f"**{answer.level}** for '{_markdown_text(request)}': {_markdown_text(answer.message)}"
                    )
            elif "caption" in answer.values and answer.level == "OK":
                self.caption.content = f"**Caption** of the observed poses: {_markdown_text(answer.values['caption'])}"
        client.statuses.clear()  # the viewer runs for hours: nothing is kept once shown
        client.answers.clear()
        for stamp, (answer, deadline) in list(self._pending.items()):
            skeleton = client.skeletons.pop(stamp, None)
            if skeleton is not None:
                del self._pending[stamp]
                client.trajectories.pop(stamp, None)
                client.arrivals.pop(stamp, None)
                self._show(answer.values, skeleton, now)
            elif now > deadline:
                del self._pending[stamp]
                self._set_status(f"the motion for '{_markdown_text(answer.values.get('request', ''))}' never came")

    def _show(self, values: dict[str, str], skeleton, now: float) -> None:
        times, joints = skeleton_joints(skeleton, self.config.pose_axes)
        if len(joints) == 0:
            return
        fps = (len(times) - 1) / times[-1] if len(times) > 1 and times[-1] > 0 else PLAY_FPS
        points = self.body.view_points(joints)
        request, expert = values.get("request", ""), values.get("expert", "?")
        self.playing = Playing(request, expert, points, fps, now)
        root = points[:, self.body.root].copy()
        root[:, 2] = 0.005  # just above the floor grid
        segments = np.stack([root[:-1], root[1:]], axis=1) if len(root) > 1 else np.stack([root, root], axis=1)
        self.trail.points = segments.astype(np.float32)
        self.trail.visible = self.skeleton.visible = True
        self._place(points)
        if self.status.content.startswith("Sent"):
            self._set_status("")
        seconds = len(points) / fps
        self.now_playing.content = (
            f"**Now playing:** {_markdown_text(request)}\n\n"
            f"expert: **{_markdown_text(expert)}** · {seconds:.1f} s · {len(points)} frames"
        )
        self.shown += 1
        self.say(f"showing {request!r} (expert {expert}, {seconds:.1f} s)")

    def _place(self, points: np.ndarray) -> None:
        """Lay out the scene for a motion: the observed figure's spot to its right, then the floor and the
        camera around both."""
        points = points.reshape(-1, 3)
        self._observed_at = np.array([points[:, 0].mean(), points[:, 1].min() - OBSERVED_GAP_M, 0.0])
        both = np.concatenate([points, self._observed_at + STANDING])
        self._floor(both)
        self._frame(both)

    def _floor(self, points: np.ndarray) -> None:
        """A floor grid under the whole motion, on whole metres (so it does not seem to slide)."""
        points = points.reshape(-1, 3)
        lows, highs = np.floor(points.min(axis=0)[:2]) - 1.0, np.ceil(points.max(axis=0)[:2]) + 1.0
        size = np.maximum(highs - lows, FLOOR_M)
        centre = (lows + highs) / 2
        self.server.scene.add_grid(  # the same name replaces the last one
            "/floor",
            float(size[0]),
            float(size[1]),
            plane="xy",
            cell_size=FLOOR_CELL_M,
            section_size=1.0,
            position=(float(centre[0]), float(centre[1]), 0.0),
        )

    def _frame(self, points: np.ndarray) -> None:
        """Aim the camera of every open page (and of pages opened later) at a motion (module constants)."""
        points = points.reshape(-1, 3)
        lows, highs = points.min(axis=0), points.max(axis=0)
        radius = max(float(np.linalg.norm(highs - lows)) / 2, MIN_RADIUS)
        direction = CAMERA_DIRECTION / np.linalg.norm(CAMERA_DIRECTION)
        right = np.cross(-direction, [0.0, 0.0, 1.0])
        look_at = (lows + highs) / 2 + right / np.linalg.norm(right) * radius * PANEL_SHIFT
        position = look_at + direction * radius / np.sin(CAMERA_FOV / 2) * CAMERA_MARGIN
        cameras = [self.server.initial_camera] + [c.camera for c in self.server.get_clients().values()]
        for camera in cameras:
            camera.position, camera.look_at = position, look_at

    def _set_status(self, text: str) -> None:
        self.status.content = text

    def _send_requests(self) -> None:
        while not self._requests.empty():
            text = self._requests.get().strip()
            if not text:
                self._set_status("Type a request first.")
                continue
            if self.client.text.get_subscription_count() == 0:
                self._set_status(
                    f"No agent listens on {self.client.text.topic_name}: start one with `motion-agent launch`."
                )
                continue
            self.client.send(text)
            self._set_status(f"Sent '{_markdown_text(text)}', waiting for the agent...")
            self.say(f"sent {text!r}")

    def _check_presence(self) -> None:
        present = self.client.text.get_subscription_count() > 0
        if present != self._present:
            self._present = present
            self.say("the agent is " + ("listening" if present else "not running (start it with motion-agent launch)"))
            if not present:
                self._set_status("No agent is running yet: start one with `motion-agent launch`.")
            elif self.status.content.startswith("No agent"):
                self._set_status("The agent is listening.")

    def _draw(self, now: float) -> None:
        if self.playing is not None:
            self.skeleton.points = _bones(self.playing.points[self.playing.frame(now)], self.body)
        if self._observed is not None:
            pose = self.body.view_points(self._observed[None])[0]
            pose = pose - [pose[self.body.root, 0], pose[self.body.root, 1], 0.0] + self._observed_at
            self.observed.points = _bones(pose, self.body)
            self.observed_label.position = tuple(pose[self.body.root] + [0.0, 0.0, 1.2])
            self.observed.visible = self.observed_label.visible = True
            self._observed = None

    # --- serving ---

    def run(self) -> None:
        """Serve until `stop()` (or KeyboardInterrupt, which is the caller's to catch)."""
        next_frame = time.monotonic()
        next_presence = next_frame + DISCOVERY_S
        while self._running:
            self.client.spin(max(0.0, next_frame - time.monotonic()))
            now = time.monotonic()
            self._send_requests()
            self._take_statuses(now)
            if now >= next_presence:
                self._check_presence()
                next_presence = now + PRESENCE_EVERY_S
            if now >= next_frame:
                self._draw(now)
                next_frame = max(next_frame + 1.0 / PLAY_FPS, now)

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        self.server.stop()
        self.client.close()


def view(config: NodeConfig, host: str = VIEW_HOST, port: int = VIEW_PORT) -> int:
    """`motion-agent view`: serve the page until Ctrl-C; prints its address, each event and a summary."""
    viewer = MotionViewer(config, host, port, say=lambda line: print(line, flush=True))
    print(f"viewer: {viewer.url} (open it in a browser; Ctrl-C stops)", flush=True)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: viewer.stop())  # a service manager's stop ends it as Ctrl-C does
    try:
        viewer.run()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
    print(f"viewer stopped after {time.monotonic() - started:.0f} s, {viewer.shown} motions shown")
    return 0
