"""End to end: `vfleet demo` in a real terminal (tmux, 120x40): filter, mark, an action with confirmation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self) -> None:
        self.session = f"vfleet-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def text(self, text: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        """Poll the pane until check(screen) holds; fail with the screen after the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(0.1)  # the pane is another process's output: there is nothing to await


@pytest.fixture
def tmux() -> object:
    term = Tmux()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    command = f"cd {ROOT} && exec {sys.executable} -m vfleet demo"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", term.session, "-x", "120", "-y", "40", command],
        check=True,
        env=env,
        timeout=10,
    )
    yield term
    subprocess.run(["tmux", "kill-session", "-t", term.session], check=False, capture_output=True, timeout=10)


def test_demo_in_a_terminal_filter_mark_and_confirm_an_action(tmux: Tmux) -> None:
    screen = tmux.wait_for(lambda s: "esx-fra-1-api01" in s and "DEMO" in s, "the demo table")
    assert "6 hosts" in screen

    tmux.keys("/")
    tmux.text("host:kvm-ams-2 state:running")
    tmux.keys("Enter")
    screen = tmux.wait_for(lambda s: "filter 'host:kvm-ams-2 state:running'" in s, "the filter")
    rows = [line for line in screen.splitlines() if "kvm-ams-2-" in line]
    assert rows and all("running" in line for line in rows)
    assert not any("kvm-ams-1-" in line for line in screen.splitlines())

    tmux.keys("*")  # mark every row the filter shows
    marked = len(rows)
    tmux.wait_for(lambda s: f"{marked} marked" in s, "the marks")

    tmux.keys("a")
    tmux.wait_for(lambda s: f"Action on {marked} domains" in s, "the action menu")
    tmux.keys("Down", "Enter")  # start, shutdown: the second verb
    tmux.wait_for(lambda s: "number of domains" in s, "the typed confirmation")
    tmux.text(str(marked))
    tmux.keys("Enter")
    tmux.wait_for(lambda s: f"done, {marked} ok, 0 failed" in s, "the job's results")
    tmux.wait_for(lambda s: "shutting-down" in s or "off" in s, "the new states")

    tmux.keys("q")
    tmux.wait_for(lambda s: "kvm-ams-2" not in s, "vfleet to quit", timeout=10)
    assert "Traceback" not in tmux.screen()
