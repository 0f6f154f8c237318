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


def _long_names_at(size: tuple[int, int], snap_compare: SnapCompare) -> bool:
    from test_tui_columns import long_world

    app, _ = make_app(long_world())

    async def laid_out(pilot: Pilot[object]) -> None:
        await loaded(pilot, pilot.app, rows=4)  # type: ignore[arg-type]
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=laid_out)


def test_long_names_at_80x24(snap_compare: SnapCompare) -> None:
    """Host, name, state, CPU%, memory fit; long names cut in the middle; `1013.8M(g)/2.0G` whole; footer keeps ? and q."""
    assert _long_names_at((80, 24), snap_compare)


def test_long_names_at_120x40(snap_compare: SnapCompare) -> None:
    assert _long_names_at((120, 40), snap_compare)


def test_long_names_at_200x50(snap_compare: SnapCompare) -> None:
    """Every column, nothing cut."""
    assert _long_names_at((200, 50), snap_compare)


def test_help_80x24(snap_compare: SnapCompare) -> None:
    app, _ = make_app()

    async def open_help(pilot: Pilot[object]) -> None:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help")

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_help)
