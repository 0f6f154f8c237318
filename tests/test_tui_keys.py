"""Keys stay quick while a big fleet updates: work over every row goes in slices, keys in between."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from rich.style import Style
from test_tui_support import domain, loaded, make_app, until
from textual import events
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import DataTable

import vfleet.app
from vfleet.app import VFleetApp
from vfleet.core.engine import Fleet, HostView
from vfleet.core.history import History
from vfleet.core.metrics import DomainRow
from vfleet.core.models import DomainRates, HostConfig, HostHealth, HostStatus
from vfleet.core.thresholds import Threshold, Thresholds
from vfleet.messages import FleetUpdated
from vfleet.widgets.columns import INDEX
from vfleet.widgets.fleet_table import AGE_SLICE_ROWS, FleetTable
from vfleet.widgets.live_table import LiveTable

HOSTS, PER_HOST = 3, 600  # more rows than one slice holds, and a slice never ends on a host
AGED = Thresholds(age=Threshold(10.0, 3600.0))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class KeyWatchingTable(FleetTable):
    """Notes how many rows still waited for their age mark when the cursor moved."""

    waiting_at_move: list[int]

    def watch_cursor_coordinate(self, old: object, new: object) -> None:
        super().watch_cursor_coordinate(old, new)  # type: ignore[arg-type]
        self.waiting_at_move.append(len(self._age_queue))


class TableApp(App[None]):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.history_reads = 0
        self.clock = clock

    def history(self, host: str, key: str) -> History | None:
        self.history_reads += 1
        return None

    def compose(self) -> ComposeResult:
        table = KeyWatchingTable(self.history, thresholds=AGED, clock=self.clock)
        table.waiting_at_move = []
        yield table


def views(last_ok: float, hosts: int = HOSTS, per_host: int = PER_HOST, first: int = 0) -> list[HostView]:
    out = []
    for h in range(first, first + hosts):
        config = HostConfig(name=f"kvm{h}", driver="fake")
        rows = tuple(
            DomainRow(config.name, "kvm", domain(f"vm{i:04d}"), DomainRates(cpu_percent=float(i % 100)), frozenset(), 0)
            for i in range(per_host)
        )
        health = HostHealth(HostStatus.UP, last_ok_at=last_ok)
        out.append(HostView(config, health, None, rows, False, frozenset(), 1))
    return out


async def test_aged_hosts_redraw_only_their_host_cells_a_slice_at_a_time_with_keys_between() -> None:
    clock = Clock()
    app = TableApp(clock)
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.query_one(KeyWatchingTable)
        table.apply(views(last_ok=clock.now))
        await until(pilot, lambda: table.row_count == HOSTS * PER_HOST, what="every row")
        host = INDEX["host"]
        before = dict(table._texts)
        reads = app.history_reads
        clock.now += 11  # every host's data is past the warning age now
        table._check_ages()
        marked = sum(t[host].startswith("!") for t in table._texts.values())
        assert marked == AGE_SLICE_ROWS  # one slice now; the rest after the keys already queued
        assert app._driver is not None and table.cursor_row == 0
        table.waiting_at_move.clear()
        app._driver.send_message(events.Key("down", None))  # as the terminal's input thread does
        await until(pilot, lambda: not table._age_queue and table.waiting_at_move != [], what="every row aged")
        assert all(t[host].startswith("!") for t in table._texts.values())
        # The key was handled while rows still waited: it did not wait for all of them.
        assert table.waiting_at_move and table.waiting_at_move[0] > 0
        # Only the host cell changed, and nothing re-read the history (no sparkline redrawn).
        assert app.history_reads == reads
        for key, texts in table._texts.items():
            old = before[key]
            assert texts[:host] + texts[host + 1 :] == old[:host] + old[host + 1 :]
            assert texts[host] == "!" + old[host]
        # A quiet tick later nothing is redrawn again.
        table._check_ages()
        assert not table._age_queue


async def test_full_garbage_collections_wait_for_a_pause_in_the_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vfleet.app, "GC_EVERY", 0.0)  # due at once: only the typing holds it back
    monkeypatch.setattr(vfleet.app, "GC_QUIET", 1.0)
    full: list[float] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    before = gc.get_threshold()
    app, _ = make_app()
    gc.callbacks.append(note)
    try:
        async with app.run_test() as pilot:
            await loaded(pilot, app)
            assert gc.get_threshold()[2] > 1_000_000  # none of Python's own full passes now
            typing_from = time.monotonic()
            while time.monotonic() - typing_from < 2.5:  # a key every 0.1 s: never a 1 s pause
                await pilot.press("down")
                await asyncio.sleep(0.1)
            typed_until = time.monotonic()
            held = [t for t in full if typing_from + 1.0 < t < typed_until]
            await until(pilot, lambda: any(t > typed_until for t in full), what="a full collection in the pause")
        assert not held, f"full collections while typing: {held}"
    finally:
        gc.callbacks.remove(note)
    assert gc.get_threshold() == before  # the process's own setting back once the app is gone


async def test_held_views_go_in_slices_and_a_key_from_the_terminal_gets_between_them() -> None:
    app = VFleetApp(Fleet([]), start_fleet=False)
    async with app.run_test(size=(160, 40)) as pilot:
        app.apply_views(views(time.monotonic(), hosts=1, per_host=50))
        table = app.fleet_screen.table
        await until(pilot, lambda: table.row_count == 50, what="the first rows")
        held_at_move: list[int] = []
        app.watch(table, "cursor_coordinate", lambda _c: held_at_move.append(len(app._held)), init=False)
        # 8,000 rows in two messages: far more than one slice takes.
        now = time.monotonic()
        app.post_message(FleetUpdated({v.name: v for v in views(now, hosts=20, per_host=200, first=1)}))
        app.post_message(FleetUpdated({v.name: v for v in views(now, hosts=20, per_host=200, first=21)}))
        await until(pilot, lambda: bool(app._held), what="views held")
        assert app._driver is not None
        app._driver.send_message(events.Key("down", None))  # as the terminal's input thread does
        await until(pilot, lambda: table.row_count == 50 + 8000, timeout=60, what="every row applied")
        assert not app._held
        # The key moved the cursor while views still waited: it did not wait for all of them.
        assert held_at_move and held_at_move[0] > 0


class LinesApp(App[None]):
    def compose(self) -> ComposeResult:
        table: LiveTable[str] = LiveTable(cursor_type="row")
        for column in ("host", "name", "cpu"):
            table.add_column(column, key=column)
        for i in range(200):
            table.add_row("kvm0", f"vm{i:03d}", f"{i}%", key=f"r{i}")
        yield table


async def test_a_key_that_scrolls_redraws_only_the_lines_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []
    stock = DataTable._render_line

    def counted(self: DataTable[str], y: int, x1: int, x2: int, base_style: Style) -> Strip:
        drawn.append(y)
        return stock(self, y, x1, x2, base_style)

    monkeypatch.setattr(DataTable, "_render_line", counted)
    app = LinesApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(LiveTable)
        table.focus()
        await pilot.pause()
        for _ in range(table.size.height + 5):  # down past the bottom: the table scrolls at each key
            await pilot.press("down")
        await pilot.pause()
        assert table.scroll_offset.y > 0
        drawn.clear()
        await pilot.press("down")
        await until(pilot, lambda: len(drawn) > 0, what="the scrolled table drawn")
        await pilot.pause()
        # The line the cursor left and the one it came to (header aside): not the whole screen again.
        header = table.header_height
        assert set(drawn) - {0} == {table.cursor_row - 1 + header, table.cursor_row + header}
        # A replaced cell is drawn anew, on its own line only.
        row = table.cursor_row - 3
        drawn.clear()
        with table.updating_rows():
            table.set_cells(f"r{row}", {"cpu": "99%"})
        await until(pilot, lambda: len(drawn) > 0, what="the changed line drawn")
        await pilot.pause()
        assert set(drawn) == {row + header}
        assert "99%" in "".join(s.text for s in table.render_line(row - table.scroll_offset.y + header))
