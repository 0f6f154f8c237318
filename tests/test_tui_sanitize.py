"""Pilot tests: remote text in the TUI shows escaped and is never read as markup.

The hosts are the sim driver with its `hostile` option (escape-laden names, raw
states and facts) and a Xen dom0 on the asyncssh test host whose `xl info` fails
with escapes on stderr.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.text import Text
from test_tui_support import until
from textual.widgets import DataTable, Static
from textual.widgets._toast import Toast

from sshhost import Keys, SshTestServer, XenHost
from vfleet.app import VFleetApp
from vfleet.core.engine import Fleet
from vfleet.core.models import ActionResult, DomainEvent, HostConfig, HostStatus, Verb
from vfleet.core.operations import Target
from vfleet.core.sanitize import printable
from vfleet.drivers.sim import HOSTILE_NAMES
from vfleet.screens.details import EventScreen, JobScreen
from vfleet.screens.domain import DomainScreen
from vfleet.screens.host import HostScreen
from vfleet.widgets.jobs import Job
from vfleet.widgets.panes import EventsPane, HostsPane, JobsPane, host_row_key

SIZE = (200, 50)
HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
XEN_STDERR = "\x1b[2J\x1b]0;PWNED\x07libxl: \u202ecannot connect\n"
MARKUP_HOST = "[b]evil[/b] [red"  # an inventory name that Textual markup would restyle or reject


def safe(text: str) -> bool:
    return all(c == "\n" or unicodedata.category(c) not in HIDDEN for c in text)


def screen_text(app: VFleetApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def rendered(table: DataTable[object], lines: int) -> str:
    return "\n".join(table.render_line(y).text for y in range(lines))


def plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


@pytest.fixture
async def xen(tmp_path: Path) -> AsyncIterator[SshTestServer]:
    host = XenHost(overrides={"xl info": ("", XEN_STDERR, 1)})
    server = await SshTestServer(host, Keys.generate(), tmp_path).start()
    yield server
    await server.close()


def hostile_app(*extra: HostConfig) -> VFleetApp:
    sim = HostConfig(name=MARKUP_HOST, driver="sim", poll_interval=3600.0,
                     options={"hostile": True, "domains": 12, "latency": 0.0})
    return VFleetApp(Fleet([sim, *extra], backoff_cap=30.0))


async def test_table_hosts_pane_and_error_show_remote_text_escaped(xen: SshTestServer) -> None:
    app = hostile_app(xen.config("xen1"))
    async with app.run_test(size=SIZE) as pilot:
        table = app.fleet_screen.table
        hosts = app.fleet_screen.query_one(HostsPane)
        await until(pilot, lambda: table.row_count == 12, what="the hostile domains")
        await until(pilot, lambda: hosts.cell_text("xen1", "error") != "", timeout=15, what="xen1's error")
        names = {plain(table.get_row(k)[3]) for k in table.shown_keys()}
        assert {printable(n) for n in HOSTILE_NAMES} <= names
        assert "[red]markup[/] [bold" in names and "数据库" in names  # literal, and readable
        for key in table.shown_keys():
            assert all(safe(plain(cell)) for cell in table.get_row(key))
        error = hosts.cell_text("xen1", "error")
        assert "\\x1b[2J\\x1b]0;PWNED\\x07libxl: \\u202ecannot connect" in error and safe(error)
        assert all(safe(plain(cell)) for key in ("xen1", MARKUP_HOST) for cell in hosts.get_row(host_row_key(key)))
        assert hosts.cell_text(MARKUP_HOST, "host") == MARKUP_HOST
        shown = rendered(table, 13)  # what goes to the terminal, header and 12 rows
        assert "ev\\x1b]0;PWNED-TITLE" in shown and "[red]markup[/] [bold" in shown and safe(shown)


async def test_host_and_domain_screens_escape_facts_names_and_never_read_markup() -> None:
    app = hostile_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: app.fleet_screen.table.row_count == 12, what="the hostile domains")
        await app.push_screen(HostScreen(app.fleet, MARKUP_HOST))
        domains = app.screen.query_one("#host-domains", DataTable)
        await until(pilot, lambda: domains.row_count == 12, what="the host's domains")
        facts = str(app.screen.query_one("#host-facts", Static).content)
        assert f"host        {MARKUP_HOST}   driver sim" in facts
        assert "hostname [b]evil[/b] [red\\x1b]0;PWNED-HOST\\x07.demo" in facts
        assert "9.0.0\\u202e" in facts and "Simulated\\x1b[2J Xeon" in facts and safe(facts)
        cells = {plain(domains.get_row(k)[0]) for k in domains.rows}
        assert "[red]markup[/] [bold" in cells and printable(HOSTILE_NAMES[0]) in cells
        shown = rendered(domains, 13)
        assert "[red]markup[/] [bold" in shown and safe(shown)  # before: styled, or a MarkupError

        await pilot.press("r")  # the reconnect toast names the host: literally
        await until(pilot, lambda: any(MARKUP_HOST in t.render().plain for t in app.screen.query(Toast)),
                    what="the toast with the host's name as it is")

        hostile = next(r for r in app.fleet.view(MARKUP_HOST).rows if r.domain.name == HOSTILE_NAMES[0])
        await app.push_screen(DomainScreen(app.fleet, MARKUP_HOST, hostile.domain.key))
        await until(pilot, lambda: "name      ev" in str(app.screen.query_one("#identity", Static).content),
                    what="the identity")
        identity = str(app.screen.query_one("#identity", Static).content)
        assert "name      ev\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED" in identity
        assert f"(raw: '{hostile.domain.raw_state[:-4]}\\x1b[0m')" in identity
        assert safe(identity) and safe(app.screen.title or "")


async def test_events_and_job_results_are_escaped() -> None:
    app = hostile_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.fleet_screen.table.row_count == 12, what="the hostile domains")
        event = DomainEvent(MARKUP_HOST, HOSTILE_NAMES[0], "stopped", "crashed: \x1b[2J\u202e", "u", 1_700_000_000.0)
        app.fleet.events.appendleft(event)
        app._on_fleet_event(event)
        pane = app.fleet_screen.query_one(EventsPane)
        await until(pilot, lambda: any("PWNED-TITLE" in line for line in pane.lines), what="the event")
        assert "ev\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED stopped (crashed: \\x1b[2J\\u202e)" in pane.lines[0]
        assert safe(screen_text(app))
        await app.push_screen(EventScreen(event))  # the event in full: escaped too
        await pilot.pause()
        assert "crashed: \\x1b[2J\\u202e" in screen_text(app) and safe(screen_text(app))
        await pilot.press("escape")

        jobs = app.fleet_screen.query_one(JobsPane)
        job = Job(1, "start", (Target(MARKUP_HOST, HOSTILE_NAMES[4]),))
        jobs.job_started(job)
        jobs.result(1, ActionResult(MARKUP_HOST, HOSTILE_NAMES[4], Verb.START, ok=False,
                                    message="ssh: \x1b[2Jno\nsecond line \u202e"))
        assert jobs.lines[0].endswith("two\\nlines\\tand\\x1b[2Jclear: FAILED: ssh: \\x1b[2Jno\\nsecond line \\u202e")
        assert all(safe(line) for line in jobs.lines)
        await app.push_screen(JobScreen(job))  # the job in full: its error's lines kept, each escaped
        await pilot.pause()
        shown = screen_text(app)
        assert "ssh: \\x1b[2Jno" in shown and "second line \\u202e" in shown and safe(shown)
        await pilot.press("escape")
        assert app.fleet.view(MARKUP_HOST).health.status is HostStatus.UP


async def test_a_typed_host_name_with_markup_is_shown_as_typed() -> None:
    app = hostile_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: app.fleet_screen.table.row_count == 12, what="the hostile domains")
        await pilot.press("colon")
        for key in "host [b]x[/b]":
            await pilot.press("space" if key == " " else key)
        await pilot.press("enter")
        await until(pilot, lambda: any("no host named '[b]x[/b]'" in t.render().plain
                                       for t in app.screen.query(Toast)), what="the toast, unstyled")
