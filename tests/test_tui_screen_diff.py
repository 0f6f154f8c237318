"""The terminal stream: ticks that change nothing write nothing, a changed value writes its cells,
and the diffed stream (vfleet.widgets.screen_diff) draws exactly what Textual's full stream draws,
checked on a real terminal emulator (tmux): the same frames replayed raw in one pane and diffed in
another must leave the same characters and attributes on screen."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import textual.drivers.headless_driver as headless
from textual.drivers.linux_driver import LinuxDriver
from textual.pilot import Pilot

from conftest import need_backend
from vfleet.app import VFleetApp
from vfleet.core.engine import Fleet, HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import (
    Domain,
    DomainRates,
    HostConfig,
    HostFacts,
    HostHealth,
    HostStatus,
    MemorySource,
    PowerState,
)
from vfleet.widgets.screen_diff import ScreenDiff, sgr_transition

SIZE = (160, 40)
CUP = re.compile(r"\x1b\[(\d+);(\d+)H")
PLACE_ONLY = re.compile(r"\x1b\[(\d+;\d+H|\?)")


class Capture(headless.HeadlessDriver):
    """Renders like a terminal driver (is_headless False) and keeps what Textual writes."""

    chunks: list[str] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        Capture.chunks.append(data)

    def flush(self) -> None:
        pass


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    Capture.chunks = []
    monkeypatch.setattr(headless, "HeadlessDriver", Capture)  # run_test imports it from there
    yield Capture.chunks


def views(cpu: dict[str, float] | None = None, taken_at: float = 1.0) -> list[HostView]:
    """Three hosts of ten domains, fixed values; `cpu` overrides some domains' CPU %."""
    cpu = cpu or {}
    out = []
    for h in range(3):
        host = f"kvm{h}"
        rows = []
        for i in range(10):
            name = f"{host}-vm{i:02d}"
            domain = Domain(
                name=name, state=PowerState.RUNNING, raw_state="running", uuid=name, vcpus=2,
                memory_max_bytes=4 << 30, memory_current_bytes=4 << 30, memory_used_bytes=(1 + i % 3) << 30,
                memory_used_source=MemorySource.GUEST, uptime_s=86_400.0 + i,
            )
            rates = DomainRates(cpu_percent=cpu.get(name, 10.0 + i), cpu_host_percent=1.0, disk_read_bps=1e4 * i,
                                disk_write_bps=0.0, net_rx_bps=2e3, net_tx_bps=1e3, contention_percent=0.5)
            rows.append(DomainRow(host, "kvm", domain, rates, frozenset({"t"}), taken_at))
        health = HostHealth(HostStatus.UP, last_ok_at=time.monotonic())
        out.append(HostView(HostConfig(name=host, driver="sim"), health, HostFacts("kvm", cpus=64), tuple(rows),
                            False, frozenset(), 1))
    return out


async def frame(pilot: Pilot[int]) -> None:
    """Let every widget handle its messages, then composite and write one frame."""
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


def domain_lines(app: VFleetApp) -> range:
    region = app.fleet_screen.table.region
    return range(region.y + 1, region.bottom)  # under the header


def lines_written(stream: str) -> set[int]:
    """Screen lines (0-based) Textual wrote to: it moves the cursor before every run of text."""
    moves = [(m.end(), int(m.group(1)) - 1) for m in CUP.finditer(stream)]
    # a move followed by another move, a mode or nothing only places the cursor
    return {y for end, y in moves if end < len(stream) and not PLACE_ONLY.match(stream, end)}


def test_the_console_writes_through_the_screen_diff() -> None:
    app = VFleetApp(Fleet([]), start_fleet=False)
    assert issubclass(app.driver_class, LinuxDriver)
    assert app.driver_class.write is not LinuxDriver.write


async def test_a_tick_with_no_changed_value_writes_no_domain_row(capture: list[str]) -> None:
    app = VFleetApp(Fleet([]), start_fleet=False)
    diff = ScreenDiff()  # what the console's driver does with the same stream

    def written_since(mark: int) -> tuple[str, str]:
        raw = "".join(capture[mark:])
        return raw, diff.feed(raw)

    async with app.run_test(size=SIZE) as pilot:
        app.apply_views(views())
        await frame(pilot)
        await pilot.pause()
        await frame(pilot)  # whatever the first data laid out again
        lines = set(domain_lines(app))
        raw, _ = written_since(0)
        assert lines_written(raw) >= lines, "the first frames draw every row"
        mark = len(capture)
        app.apply_views(views(taken_at=3.0))  # new rows, the same values
        await frame(pilot)
        raw, lean = written_since(mark)
        assert not lines_written(raw) & lines
        assert lean == ""
        # One value changes: its row goes again, and through the diff only its cells.
        mark = len(capture)
        app.apply_views(views({"kvm1-vm03": 77.0}, taken_at=5.0))
        await frame(pilot)
        raw, lean = written_since(mark)
        table = app.fleet_screen.table
        row_line = table.region.y + 1 + table.get_row_index("kvm1/kvm1-vm03") - int(table.scroll_y)
        assert lines_written(raw) & lines == {row_line}
        assert "77" in lean and "kvm1-vm03" not in lean and len(lean) < 40, repr(lean)  # 13.0 -> 77.0: two cells


def test_an_unchanged_frame_sends_nothing_and_a_changed_cell_only_itself() -> None:
    diff = ScreenDiff()
    frame_a = "\x1b[?2026h\x1b[3;1H\x1b[1;38;2;1;2;3mhello\x1b[0m\x1b[38;2;9;9;9m world\x1b[0m\x1b[1;1H\x1b[?2026l"
    first = diff.feed(frame_a)
    assert "hello" in first and " world" in first
    assert diff.feed(frame_a) == ""
    frame_b = frame_a.replace("world", "wormy")
    # the terminal still has the colour of " world": no SGR at all
    assert diff.feed(frame_b) == "\x1b[?2026h\x1b[3;10Hmy\x1b[1;1H\x1b[?2026l"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # 22 takes bold and dim off: dim goes back
        ((("bold", "1"), ("dim", "2"), ("fg", "38;2;1;2;3")), (("dim", "2"), ("fg", "38;2;1;2;3")), "\x1b[22;2m"),
        ((("bold", "1"), ("dim", "2")), (("dim", "2"),), "\x1b[0;2m"),  # a reset is shorter
        ((("fg", "38;2;1;2;3"),), (("fg", "31"),), "\x1b[31m"),
        ((("fg", "31"), ("italic", "3")), (), "\x1b[0m"),
        ((("x4:3", "4:3"),), (("bold", "1"),), "\x1b[0;1m"),  # an unknown attribute: only a reset removes it
    ],
)
def test_sgr_goes_by_difference(before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...],
                                expected: str) -> None:
    assert sgr_transition(before, after) == expected


# -- the same screen on a real terminal -------------------------------------------------------------


class Panes:
    """A private tmux server; each replay gets its own pane of SIZE."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = str(directory / "tmux.sock")
        self.count = 0

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def replay(self, stream: str) -> str:
        """What a terminal shows (characters and attributes) after `stream`."""
        self.count += 1
        name = f"p{self.count}"
        data, done = self.directory / f"{name}.out", self.directory / f"{name}.done"
        data.write_text(stream, encoding="utf-8")
        # raw mode, as Textual's driver sets it: a "\n" is a line feed and nothing else
        command = f"stty raw -echo; cat {data}; touch {done}; exec sleep 600"
        self.tmux("new-session", "-d", "-s", name, "-x", str(SIZE[0]), "-y", str(SIZE[1]), command)
        deadline = time.monotonic() + 20
        while not done.exists():
            assert time.monotonic() < deadline, "the pane did not finish its replay"
            time.sleep(0.05)  # another process's output: nothing to await
        return self.tmux("capture-pane", "-p", "-e", "-N", "-t", name)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def panes(tmp_path: Path) -> Iterator[Panes]:
    need_backend("tmux", shutil.which("tmux") is not None)
    short = Path(f"/tmp/vfleet-diff-{tmp_path.name[-12:]}")  # a unix socket path must be short
    short.mkdir(exist_ok=True)
    p = Panes(short)
    yield p
    p.close()
    shutil.rmtree(short, ignore_errors=True)


def replayed_alike(panes: Panes, chunks: list[str]) -> tuple[str, str, int, int]:
    raw = "".join(chunks)
    diff = ScreenDiff()
    lean = "".join(diff.feed(c) for c in chunks)
    return panes.replay(raw), panes.replay(lean), len(raw.encode()), len(lean.encode())


async def test_the_diffed_stream_draws_the_same_screen_on_a_real_terminal(capture: list[str], panes: Panes) -> None:
    app = VFleetApp(Fleet([]), start_fleet=False)
    async with app.run_test(size=SIZE) as pilot:
        app.apply_views(views())
        await frame(pilot)
        for tick in range(1, 6):  # values move, the cursor moves, rows re-sort
            app.apply_views(views({f"kvm{tick % 3}-vm0{tick}": 90.0 - tick, "kvm0-vm01": 5.0 * tick}, 1.0 + tick))
            await pilot.press("down", "down")
            if tick == 3:
                await pilot.press("greater_than_sign")  # sort by the next column
            await frame(pilot)
        await pilot.press("slash", "k", "v", "m", "1")  # the filter box: an input with its cursor
        await pilot.pause(0.3)
        await frame(pilot)
        await pilot.press("escape")
        await frame(pilot)
    raw_screen, lean_screen, raw_bytes, lean_bytes = replayed_alike(panes, list(capture))
    assert "kvm0-vm01" in raw_screen
    assert lean_screen == raw_screen
    assert lean_bytes < raw_bytes / 2


def test_wide_characters_marks_and_unknown_sequences_replay_alike(panes: Panes) -> None:
    def at(y: int, x: int) -> str:
        return f"\x1b[{y};{x}H"

    chunks = [
        at(1, 1) + "\x1b[1;2;31mab日本cd\x1b[0m" + at(2, 1) + "e\u0301tude  x",
        at(1, 1) + "\x1b[1;2;31mab\x1b[0m\x1b[2;31mZ本cd\x1b[0m",  # the left half of 日 taken by a narrow Z
        at(1, 1) + "\x1b[2;31mabc\x1b[4:3m日\x1b[0m" + at(2, 1) + "e\u0300tude  y",  # the right half of 本, a mark
        at(1, 5) + "Q",  # onto the right half of 日: the terminal blanks its left half
        at(1, 1) + "\x1b[2;31mabc\x1b[4:3m日\x1b[0m",  # so 日 must go again
        "\x1b[2J" + at(3, 1) + "after a clear",  # not modelled: passed through, the screen forgotten
        at(1, 1) + "\x1b[7mab日本cd\x1b[0m" + at(3, 1) + "after a clear",
    ]
    raw_screen, lean_screen, _, _ = replayed_alike(panes, chunks)
    assert "after a clear" in raw_screen
    assert lean_screen == raw_screen
