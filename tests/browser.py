"""Open a page in headless Chromium and report what a reader's browser would: console errors,
uncaught exceptions, error log entries, every URL requested, and a JavaScript expression's value.

Chromium is driven over the DevTools protocol in pipe mode (`--remote-debugging-pipe`: it reads
NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4), so no websocket
library, port or driver binary is needed. `CHROMIUM` is None where no Chromium is installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclasses.dataclass
class PageLoad:
    """What loading a page produced."""

    console_errors: list[str]
    exceptions: list[str]
    log_errors: list[str]
    requests: list[str]
    value: Any


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params=None, session=None, timeout: float = 30.0) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            msg = self._read(deadline)
            self.events.append(msg)
            if msg.get("method") == method:
                return

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds` (late console messages)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            return


def _high(fd: int) -> int:
    """`fd` moved to a number >= 10, so it cannot collide with fds 3 and 4 in the child."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def load(url: str, expression: str, timeout: float = 60.0, width: int = 1280) -> PageLoad:
    """Load `url` in a fresh headless Chromium, its window `width` CSS pixels wide; evaluate
    `expression` once it has loaded."""
    if CHROMIUM is None:
        raise RuntimeError("no chromium on PATH")
    to_r, to_w = map(_high, os.pipe())  # we write, Chromium reads on fd 3
    from_r, from_w = map(_high, os.pipe())  # Chromium writes on fd 4, we read
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-dev-shm-usage",
        f"--window-size={width},900",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        script = f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}'
        proc = subprocess.Popen(
            ["bash", "-c", script, CHROMIUM, *flags, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_r, from_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        pipe = _Pipe(to_w, from_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            attached = pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            session = attached["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout)
            pipe.drain(0.5)
            result = pipe.call(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=session,
            )
            with contextlib.suppress(RuntimeError, TimeoutError):
                pipe.call("Browser.close", timeout=5)
        finally:
            os.close(to_w)
            os.close(from_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    events = [(e.get("method"), e.get("params", {})) for e in pipe.events]
    return PageLoad(
        console_errors=[
            " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            for m, p in events
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert")
        ],
        exceptions=[
            p["exceptionDetails"].get("text", "")
            for m, p in events
            if m == "Runtime.exceptionThrown"
        ],
        log_errors=[
            p["entry"].get("text", "")
            for m, p in events
            if m == "Log.entryAdded" and p["entry"].get("level") == "error"
        ],
        requests=[p["request"]["url"] for m, p in events if m == "Network.requestWillBeSent"],
        value=result.get("result", {}).get("value"),
    )
