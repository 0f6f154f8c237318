"""Snapshots of the main screens at fixed sizes over the scripted fleet (no clock in any text).

Update after an intended change: .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from collections.abc import Callable

from test_tui_support import loaded, make_app, until
from textual.pilot import Pilot

from vfleet.screens.domain import DomainScreen
from vfleet.screens.modals import ActionMenu, HelpScreen

SnapCompare = Callable[..., bool]


async def _loaded(pilot: Pilot[object]) -> None:
    await loaded(pilot, pilot.app)  # type: ignore[arg-type]


def test_fleet_screen_120x40(snap_compare: SnapCompare) -> None:
    app, _ = make_app(demo=True)
    assert snap_compare(app, terminal_size=(120, 40), run_before=_loaded)


def test_fleet_screen_80x24_read_only(snap_compare: SnapCompare) -> None:
    app, _ = make_app(read_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


def test_domain_detail(snap_compare: SnapCompare) -> None:
    app, _ = make_app()

    async def open_detail(pilot: Pilot[object]) -> None:
        await _loaded(pilot)
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DomainScreen), what="the detail screen")

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_detail)


def test_action_menu_on_marked_rows(snap_compare: SnapCompare) -> None:
    app, _ = make_app()

    async def open_menu(pilot: Pilot[object]) -> None:
        await _loaded(pilot)
        await pilot.press("space", "space", "a")
        await until(pilot, lambda: isinstance(pilot.app.screen, ActionMenu), what="the action menu")

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_menu)


def test_help_80x24(snap_compare: SnapCompare) -> None:
    app, _ = make_app()

    async def open_help(pilot: Pilot[object]) -> None:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help")

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_help)
