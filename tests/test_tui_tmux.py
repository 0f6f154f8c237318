"""End to end: `vfleet demo` in a real terminal (tmux, 120x40): filter as you type, mark, an action with
confirmation, the job detail, the column chooser;
and a fleet whose domain names carry escape sequences, which must not reach the terminal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tmuxterm import TmuxPane

from conftest import need_backend

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _tmux_installed() -> None:
    need_backend("tmux", shutil.which("tmux") is not None)


class Tmux(TmuxPane):
    """The demo (or any vfleet command) in a 120x40 pane."""


def start(no_color: bool = False, args: str = "demo") -> Tmux:
    term = Tmux()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    # A running tmux server gives new panes its own environment, not ours: set it in the command.
    colour = "NO_COLOR=1" if no_color else "-u NO_COLOR"
    command = f"cd {ROOT} && exec env {colour} PYTHONPATH={ROOT} {sys.executable} -m vfleet {args}"
    subprocess.run(
        # remain-on-exit: once vfleet quits its pane stays readable (a traceback would show there),
        # instead of the session vanishing between two captures
        ["tmux", "new-session", "-d", "-s", term.session, "-x", "120", "-y", "40", command,
         ";", "set-option", "-w", "-t", term.session, "remain-on-exit", "on"],
        check=True,
        env=env,
        timeout=10,
    )
    return term


@pytest.fixture
def tmux() -> object:
    term = start()
    yield term
    term.kill()


@pytest.fixture
def tmux_no_color() -> object:
    term = start(no_color=True)
    yield term
    term.kill()


def test_no_color_renders_in_greys_only(tmux: Tmux, tmux_no_color: Tmux) -> None:
    """Textual reads NO_COLOR as "monochrome": every colour it sends is a grey."""
    import re

    def hues(screen: str) -> set[int]:  # xterm-256 codes that are not on the grey ramp
        codes = {int(c) for c in re.findall(r"\[(?:[0-9;]*;)?[34]8;5;(\d+)m", screen)}
        return {c for c in codes if not 232 <= c <= 255 and c not in (0, 7, 8, 15, 16, 59, 102, 145, 188, 231)}

    tmux.wait_for(lambda s: "72 domains" in s, "the coloured demo")  # any rows: which are in view varies
    tmux_no_color.wait_for(lambda s: "72 domains" in s, "the NO_COLOR demo")
    coloured = tmux.screen(escapes=True)
    plain = tmux_no_color.screen(escapes=True)
    assert hues(coloured), "the check must see colours when there are some"
    assert hues(plain) == set(), hues(plain)
    assert not re.search(r"[34]8;2;", plain)  # no true-colour either


def test_demo_in_a_terminal_filter_mark_confirm_an_action_and_choose_columns(tmux: Tmux) -> None:
    # Every host, not a given row: the cursor keeps its domain as rows arrive, so which
    # rows are in view depends on which host answered first.
    tmux.wait_for(lambda s: "DEMO" in s and "7 hosts" in s and "72 domains" in s, "the demo")

    # `/` and the terms in one write, as a fast typist's keys arrive: none may be lost; and
    # the table follows the box as it is typed, with no Enter.
    tmux.text("/host:KVM-AMS-2 state:running|paused")
    screen = tmux.wait_for(lambda s: "filter 'host:KVM-AMS-2 state:running|paused'" in s, "the filter, as typed")
    rows = [line for line in screen.splitlines() if "kvm-ams-2-" in line]
    assert rows and all("running" in line or "paused" in line for line in rows)
    assert not any("kvm-ams-1-" in line for line in screen.splitlines())
    tmux.text(" !state:paused")
    screen = tmux.wait_for(lambda s: "state:running|paused !state:paused'" in s, "the refined filter")
    rows = [line for line in screen.splitlines() if "kvm-ams-2-" in line]
    assert rows and all("running" in line for line in rows)
    tmux.keys("Enter")  # keeps the filter and goes back to the table
    tmux.wait_for(lambda s: s.count("!state:paused") == 1, "the box closed, the filter kept in the summary")

    tmux.keys("*")  # mark every row the filter shows
    marked = len(rows)
    tmux.wait_for(lambda s: f"{marked} marked" in s, "the marks")

    tmux.keys("a")
    tmux.wait_for(lambda s: f"Action on {marked} domains" in s, "the action menu")
    tmux.wait_for(lambda s: "shutdown" in s, "the verbs that apply to running domains")
    tmux.keys("Enter")  # shutdown: the first verb offered
    tmux.wait_for(lambda s: "number of domains" in s, "the typed confirmation")
    tmux.text(str(marked))
    tmux.keys("Enter")
    tmux.wait_for(lambda s: f"done, {marked} ok, 0 failed" in s, "the job's results")
    tmux.wait_for(lambda s: "!state:paused': 0 shown" in s, "the domains, now off, gone from the filter")
    tmux.keys("J")  # the job in full: every target and where it ended
    tmux.wait_for(lambda s: s.count("-> shutting-down") + s.count("-> off") == marked, "the job detail")
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "escape closes" not in s, "the job detail closed")

    # `/db01` and Enter in one write: a filter on db01, never db01's detail screen
    tmux.keys("Escape")  # clears the filter
    tmux.wait_for(lambda s: "filter '" not in s, "the filter cleared")
    tmux.text("/db01\r")
    screen = tmux.wait_for(lambda s: "filter 'db01': 7 shown" in s, "the typed-ahead filter (a db01 per host)")
    assert "cpu % of its vCPUs" not in screen  # not the detail screen

    # the column chooser: untick HOST; the table drops the column
    header = next(line for line in tmux.screen().splitlines() if "NAME" in line and "STATE" in line)
    assert "HOST" in header
    tmux.keys("c")
    tmux.wait_for(lambda s: "space or enter toggles" in s, "the column chooser")
    tmux.keys("Space")  # the first choice: HOST
    tmux.keys("Escape")

    def host_column_gone(screen: str) -> bool:
        header = next((line for line in screen.splitlines() if "NAME" in line and "STATE" in line), "")
        return "space or enter toggles" not in screen and "NAME" in header and "HOST" not in header

    screen = tmux.wait_for(host_column_gone, "the table without its HOST column")
    assert any("kvm-ams-2-" in line and not line.lstrip("● ").startswith("kvm-ams-2 ") for line in screen.splitlines())

    tmux.keys("q")
    tmux.wait_for(lambda s: "kvm-ams-2" not in s and "db01" not in s, "vfleet to quit", timeout=10)
    assert "Traceback" not in tmux.screen()


def pane_title(term: Tmux) -> str:
    return term.run("display-message", "-p", "-t", term.session, "#{pane_title}").strip()


def test_escape_sequences_in_names_neither_retitle_the_terminal_nor_show_raw(tmp_path: Path) -> None:
    inventory = tmp_path / "hostile.yaml"
    inventory.write_text("hosts:\n  - {name: evil, driver: sim, options: {hostile: true, domains: 12}}\n")
    term = start(args=f"-i {inventory}")
    try:
        # a name holds `ESC ] 0 ; PWNED-TITLE BEL`: raw, it sets the pane's title
        term.wait_for(lambda s: "evil-ci01" in s and "evil-ldap01" in s, "the hostile fleet")
        assert "PWNED" not in pane_title(term)
        # escaped (a long name may be cut in its middle, never its escapes shown raw)
        screen = term.wait_for(lambda s: "ev\\x1b]0;PWNED-T" in s, "the name shown escaped")
        assert "invoice\\u202egnp.exe" in screen and "数据库" in screen
        term.keys("h")  # the host screen: its hostname fact carries an OSC title too
        term.wait_for(lambda s: "hostname evil\\x1b]0;PWNED-HOST\\x07.demo" in s, "the escaped facts")
        assert "PWNED" not in pane_title(term)
    finally:
        term.kill()
