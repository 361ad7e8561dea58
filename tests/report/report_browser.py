"""A minimal headless-Chromium driver over the DevTools protocol (``websocket-client``), for the report tests.

Chromium is started with ``--remote-debugging-port=0``; the port it picked is read from the ``DevTools listening
on ws://...`` line of its stderr. One page target is created and attached in flat mode, the Runtime, Log and Page
domains are enabled, and every event is kept so console errors and uncaught exceptions can be checked afterwards.
The browser's process group is terminated (then killed) on exit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
SKIP_REASON = "chromium not installed: apt-get install chromium, or run make test as root which installs it"
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    """The Chromium executable, or ``None``."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Browser:
    """Headless Chromium with one attached page; use as a context manager.

    Args:
        executable: the Chromium binary.
        profile: an empty folder for ``--user-data-dir``.
        width: viewport width in CSS pixels.
        height: viewport height in CSS pixels.
        timeout_s: limit on starting and on each protocol reply.
    """

    def __init__(self, executable: str, profile: Path, width: int = 1280, height: int = 1000, timeout_s: float = 15.0):
        self.executable = executable
        self.profile = profile
        self.size = (width, height)
        self.timeout_s = timeout_s
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._next_id = 0
        self._session = ""
        self._process: subprocess.Popen[str] | None = None
        self._socket: Any = None

    def __enter__(self) -> Browser:
        import websocket

        arguments = [
            self.executable,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            url = self._wait_for_url()
            self._socket = websocket.create_connection(url, timeout=self.timeout_s, suppress_origin=True)
            target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)
            self._session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _wait_for_url(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()
        stream = self._process.stderr

        def drain() -> None:  # keep reading so Chromium never blocks on a full pipe
            for line in stream:
                self.stderr_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            match = LISTENING.search(line)
            if match:
                return match.group(1)
        raise RuntimeError("chromium did not report its DevTools address:\n" + "".join(self.stderr_lines[-20:]))

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send a command (to the page session unless ``session`` is false) and return its result; events
        arriving meanwhile are kept in :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            reply = json.loads(self._socket.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"{method}: no reply within {self.timeout_s} s")

    def wait_for_event(self, method: str, since: int = 0) -> dict[str, Any]:
        """The first event ``method`` kept at or after index ``since``, reading more until it comes."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            for event in self.events[since:]:
                if event.get("method") == method:
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} event within {self.timeout_s} s")
            reply = json.loads(self._socket.recv())
            if "method" in reply:
                self.events.append(reply)

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event (every image decoded)."""
        start = len(self.events)
        result = self.send("Page.navigate", {"url": path.resolve().as_uri()})
        if result.get("errorText"):
            raise RuntimeError(f"navigation to {path} failed: {result['errorText']}")
        self.wait_for_event("Page.loadEventFired", since=start)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page; raises on an exception."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append("console.error: " + " ".join(str(arg.get("value")) for arg in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append("exception: " + str(details.get("exception", {}).get("description", details)))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('text')} ({entry.get('url', '')})")
        return found

    def screenshot(self, path: Path, *, full_page: bool = True, max_height: int = 16000) -> Path:
        """Save a PNG of the page (the whole page, up to ``max_height`` CSS pixels, or the viewport)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": min(float(size["width"]), 4000.0),
                "height": min(float(size["height"]), float(max_height)),
                "scale": 1,
            }
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the connection and end the browser's process group (terminate, then kill)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
        process, self._process = self._process, None
        if process is None:
            return
        for sent in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sent)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # a child that outlived the group leader
            os.killpg(process.pid, signal.SIGKILL)
