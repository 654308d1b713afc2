"""`motion-agent view` as a person uses it: a real headless Chromium opens the page, types a request into
its text box and clicks Send; the agent (`motion-agent launch` on a tiny model, a child process) answers
over real ROS 2 topics, and the page then names the request and its expert and draws the figure, which
is checked in screenshots of the 3D view: the body's left limbs in blue and its right limbs in orange
after the request, and none before. The page asks for nothing outside the viewer's own address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the viewer talks to the agent over ROS 2: needs rclpy (the ros extra)")
pytest.importorskip("viser", reason="the viewer serves its page with viser: pip install 'motion_agent[view]'")
pytest.importorskip("websockets", reason="the browser is driven over the DevTools protocol with websockets")

from browser import Browser, chromium_or_skip  # noqa: E402

from conftest import start_launch, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
ANSWER_TIMEOUT = 90.0  # the request, the motion and the page's update, on a busy 2-core machine
FIGURE_PIXELS = 150  # of each side's colour in the 3D view once the figure is drawn
STRAY_PIXELS = 20  # of either colour before any motion (anti-aliased grid lines, say)
REQUEST = "a person waves happily for 2 seconds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def side_pixels(image: np.ndarray) -> tuple[int, int]:
    """Pixels of the left side's blue and of the right side's orange (as the page renders them, lighter
    than the previews' colours, so by hue rather than by value)."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    blue = (b - r > 60) & (b > 150)
    orange = (r - b > 80) & (r > 180) & (g > 100)
    return int(blue.sum()), int(orange.sum())


def scene_only(browser: Browser) -> np.ndarray:
    """A screenshot of the 3D view alone: every element that is not the scene's canvas (the control panel,
    notifications) is hidden for the shot, then shown again."""
    hide = (
        "(() => { const canvas = [...document.querySelectorAll('canvas')].sort((a, b) => "
        "b.width * b.height - a.width * a.height)[0]; window.__hidden = []; "
        "for (const e of document.body.querySelectorAll('*')) { if (e === canvas || e.contains(canvas) || "
        "canvas.contains(e)) continue; window.__hidden.push([e, e.style.visibility]); e.style.visibility = 'hidden'; }"
        " return !!canvas; })()"
    )
    assert browser.evaluate(hide), "the page has no canvas"
    try:
        return browser.screenshot()
    finally:
        browser.evaluate("window.__hidden.forEach(([e, v]) => { e.style.visibility = v; }); true")


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def agent(tiny_base_model, tmp_path_factory, chromium):
    process = start_launch(tmp_path_factory.mktemp("viewer_agent") / "launch.log", "--base-model", str(tiny_base_model))
    yield process
    stop_process(process)


@pytest.fixture(scope="module")
def viewer(agent, tmp_path_factory):
    """`motion-agent view` in a child process; yields (process, its page's address)."""
    log = tmp_path_factory.mktemp("viewer") / "view.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "motion_agent.cli", "view", "--port", str(free_port())],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=os.environ.copy(),
        )
    process.log = log
    deadline = time.monotonic() + START_TIMEOUT
    while "viewer: http" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, f"the viewer did not start: {log.read_text()}"
        time.sleep(0.2)
    url = log.read_text().split("viewer: ", 1)[1].split()[0]
    yield process, url
    stop_process(process)


@pytest.mark.ros
@pytest.mark.slow
def test_a_request_typed_into_the_page_is_shown_playing(agent, viewer, chromium, tmp_path):
    process, url = viewer
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open(url)
        browser.wait_for_text("Waiting for a motion", START_TIMEOUT)
        browser.wait_for_text("The agent is listening", START_TIMEOUT)  # the agent's node has started
        before = side_pixels(scene_only(browser))
        assert max(before) < STRAY_PIXELS, f"blue and orange pixels before any motion: {before}"

        browser.type_into("Request", REQUEST)
        browser.click_button("Send")
        text = browser.wait_for_text(f"Now playing: {REQUEST}", ANSWER_TIMEOUT)
        assert "expert: base" in text and "2.0 s" in text  # the tiny model has no experts
        time.sleep(1.0)  # a few frames of the motion
        after = side_pixels(scene_only(browser))
        assert min(after) > FIGURE_PIXELS, f"the figure's left (blue) and right (orange) pixels: {after}"
        elsewhere = [u for u in browser.requested if not u.startswith((url, "data:", "blob:", "about:"))]
        assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"
    log = process.log.read_text()
    assert f"sent {REQUEST!r}" in log and f"showing {REQUEST!r} (expert base" in log


@pytest.mark.ros
@pytest.mark.slow
def test_the_viewer_stops_on_sigterm_with_a_summary(viewer):
    process, _ = viewer
    process.terminate()
    assert process.wait(30) == 0
    log = process.log.read_text()
    assert "viewer stopped after" in log and "1 motions shown" in log and "Traceback" not in log
