"""The TUI's console key where no terminal can be handed over (pilot): a domain without a serial
console gives a notice and leaves the screen as it was; a driver that has one, on a terminal
Textual cannot suspend, is refused cleanly. Both are on record. The hand-over itself is tested
in a real terminal in tests/test_console.py."""

from __future__ import annotations

import json

from test_tui_support import loaded, make_app, until

from vfleet.app import VFleetApp

SIZE = (160, 50)


def _records(app: VFleetApp) -> list[dict[str, object]]:
    path = app.fleet_screen.operations.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _cursor_domain(app: VFleetApp) -> str:
    table = app.fleet_screen.table
    key = table.row_key_at_cursor()
    assert key is not None
    return table.rows_by_key[key].domain.name


async def test_o_on_a_domain_without_a_console_says_so_and_keeps_the_screen() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("down", "down")
        before = _cursor_domain(app)
        await pilot.press("o")
        await until(pilot, lambda: any("no serial console" in str(n.message) for n in app._notifications),
                    what="the notice")
        assert app.screen is app.fleet_screen and _cursor_domain(app) == before
        records = _records(app)
        assert [r["kind"] for r in records] == ["console", "result", "close"]
        assert records[0]["face"] == "tui" and records[0]["targets"][0]["domain"] == before  # type: ignore[index]
        assert records[1]["result"] == "failed"


async def test_colon_console_is_the_same_and_a_terminal_that_cannot_suspend_is_refused() -> None:
    from vfleet.core.console import ConsoleStream
    from vfleet.drivers.base import Driver

    closed: list[bool] = []

    class Quiet(ConsoleStream):  # a console with nothing to say
        async def read(self) -> bytes:
            return b""

        async def write(self, data: bytes) -> None:
            return None

        async def close(self) -> None:
            closed.append(True)

    async def open_console(self: Driver, target: object, **_kw: object) -> ConsoleStream:
        return Quiet()

    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        driver = app.fleet_screen.fleet.driver(app.fleet_screen.table.rows_by_key[
            app.fleet_screen.table.row_key_at_cursor() or ""].host)
        assert driver is not None
        driver.open_console = open_console.__get__(driver)  # type: ignore[method-assign]
        await pilot.press(":", *"console", "enter")
        await until(pilot, lambda: any("cannot be handed over" in str(n.message) for n in app._notifications),
                    what="the refusal")
        assert closed == [True]  # the opened console was released
        assert app.screen is app.fleet_screen
        assert [r.get("result") for r in _records(app) if r["kind"] == "result"] == ["failed"]
