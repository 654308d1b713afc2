"""A headless Chromium that tests drive as a person would use a page: load it, type into it, click, read
what it shows (its text) and look at it (screenshots). Debian's `chromium` package, driven over the
DevTools protocol with the `websockets` client (a dependency of viser, which the viewer needs anyway).

`make test` installs chromium with apt when it runs as root and the browser is missing (see the Makefile);
elsewhere `chromium_or_skip()` skips the test saying why.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",  # WebGL then runs on Chromium's software renderer
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
)
START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 30.0


def chromium_or_skip() -> str:
    """The Chromium binary ($CHROMIUM, or chromium on PATH), or skip the test saying how to get it."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium: `apt-get install chromium` (`make test` does it when run as root)")
    return path


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol; records every URL the page
    asked for (`requested`), so a test can show that nothing was fetched from elsewhere."""

    def __init__(self, binary: str, profile: Path, width: int = 1280, height: int = 800) -> None:
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.log = (profile.parent / f"{profile.name}.log").open("w")
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"Chromium did not start its DevTools server (log: {self.log.name})")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        self._ids = itertools.count(1)
        self.requested: list[str] = []
        self.socket = connect(f"ws://127.0.0.1:{port}{port_file.read_text().split()[1]}", max_size=None)
        target = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in target if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Network.enable", session=True)
        self.call("Page.enable", session=True)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """One DevTools command; events that arrive meanwhile are looked at for requested URLs."""
        message = {"id": next(self._ids), "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            reply = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("method") == "Network.requestWillBeSent":
                self.requested.append(reply["params"]["request"]["url"])
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        """What the page shows as text."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, wanted: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while wanted not in (text := self.text()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page did not show {wanted!r} in {timeout:g} s; it shows: {text[:500]!r}")
            time.sleep(0.25)
        return text

    def type_into(self, label: str, text: str) -> None:
        """Focus the input labelled `label` (the first input next to that text) and type into it as keystrokes
        would, so the page's own input handlers see it."""
        focused = self.evaluate(
            "(() => { const leaf = [...document.querySelectorAll('body *')].find(e => e.children.length === 0 && "
            f"e.textContent.trim() === {json.dumps(label)}); let n = leaf; "
            "while (n && !n.querySelector('input')) n = n.parentElement; const input = n && n.querySelector('input'); "
            "if (!input) return false; input.focus(); return document.activeElement === input; })()"
        )
        if not focused:
            raise RuntimeError(f"no input labelled {label!r} on the page")
        self.call("Input.insertText", session=True, text=text)

    def click_button(self, label: str) -> None:
        found = self.evaluate(
            "(() => { const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === "
            f"{json.dumps(label)}); if (b) b.click(); return !!b; }})()"
        )
        if not found:
            raise RuntimeError(f"no button {label!r} on the page")

    def screenshot(self) -> np.ndarray:
        """(height, width, 3) RGB of what the page shows now."""
        from PIL import Image

        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
