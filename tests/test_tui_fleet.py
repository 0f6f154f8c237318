"""Pilot tests of the fleet screen: table, filter, sort, marks, drill-down, actions by tier, health."""

from __future__ import annotations

import pytest
from test_tui_support import FakeHost, domain, loaded, make_app, until
from textual import events
from textual.binding import Binding
from textual.widgets import Footer, Input, Label, OptionList, Static

from vfleet.app import VFleetApp
from vfleet.core.models import ActionResult, DomainEvent, HostStatus, PowerState, Verb
from vfleet.core.operations import Target
from vfleet.messages import JobDone, JobResult
from vfleet.screens.commands import _ALIASES, COMMAND_HELP
from vfleet.screens.details import EventScreen, JobScreen
from vfleet.screens.domain import DomainScreen
from vfleet.screens.host import HostScreen
from vfleet.screens.modals import ActionMenu, ConfirmPlan, HelpScreen, key_label
from vfleet.widgets.jobs import Job
from vfleet.widgets.panes import EventsPane, HostsPane, JobsPane

SIZE = (160, 50)


def names(app: VFleetApp) -> list[str]:
    table = app.fleet_screen.table
    return [table.rows_by_key[k].domain.name for k in table.shown_keys()]


def text_of(widget: Static) -> str:
    return str(widget.content)


def goto(app: VFleetApp, name: str) -> None:
    table = app.fleet_screen.table
    key = next(k for k in table.shown_keys() if table.rows_by_key[k].domain.name == name)
    table.move_cursor(row=table.get_row_index(key))


def header_x(app: VFleetApp, key: str) -> int:
    """Where a column's header starts on screen: widths follow the content, so ask the layout."""
    x = 0
    for column, width in app.fleet_screen.table.laid_out:
        if column.key == key:
            return x + 1
        x += width + 2
    raise AssertionError(f"column {key} is not shown")


async def type_text(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(*("space" if c == " " else c for c in text))


def burst(app: VFleetApp, *keys: str) -> None:
    """Keys as a terminal delivers a fast typist's: all queued at once, no pause between them
    (Pilot.press waits for the app to go idle after each key, which hides lost keys)."""
    for key in keys:
        char = {"slash": "/", "colon": ":", "space": " ", "enter": "\r"}.get(key, key if len(key) == 1 else None)
        event = events.Key(key, char)
        event.set_sender(app)  # as the driver's keys are
        app.post_message(event)


def filter_open(app: VFleetApp) -> bool:
    return bool(app.fleet_screen.query_one("#filter-bar").display)


def screen_text(app: VFleetApp) -> str:
    """What the terminal shows now, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_table_shows_every_domain_with_host_health_and_totals() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert sorted(names(app)) == sorted(["web-1", "web-2", "db-1", "build-1", "mail-1", "dns-1", "web-3", "ci-1"])
        table = app.fleet_screen.table
        web1 = next(k for k in table.shown_keys() if k.endswith("uuid-web-1"))
        cells = [str(c) for c in table.get_row(web1)]
        assert cells[1:6] == ["kvm1", "kvm", "web-1", "running", "!!95.0"]  # 95 % is at the crit threshold
        assert "1.0G(g)/4.0G" in cells  # used, with its source, over the allocation
        assert "1.0K/2.0K" in cells  # disk read/write rates
        summary = app.fleet_screen._summary
        assert "3 hosts: 3 up" in summary and "8 domains, 6 running" in summary
        hosts = app.fleet_screen.query_one(HostsPane)
        assert all(hosts.cell_text(name, "status") == "UP" for name in ("kvm1", "xen1", "esx1"))


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ("web", {"web-1", "web-2", "web-3"}),
        ("re:^d", {"db-1", "dns-1"}),
        ("name:web-?", {"web-1", "web-2", "web-3"}),
        ("host:kvm*", {"web-1", "web-2", "db-1", "build-1"}),
        ("state:paused", {"dns-1"}),
        ("tag:lab", {"mail-1", "dns-1"}),
        ("group:g-esx1", {"web-3", "ci-1"}),
        ("hv:esxi", {"web-3", "ci-1"}),
        ("cpu>80", {"web-1", "web-3"}),
        ("vcpus>=4", {"db-1", "ci-1"}),
        ("host:kvm1 cpu>30", {"web-1", "db-1"}),
        ("!host:kvm*", {"mail-1", "dns-1", "web-3", "ci-1"}),
        ("web|db", {"web-1", "web-2", "web-3", "db-1"}),
        ("state:paused|off", {"dns-1", "build-1"}),
        ("HOST:KVM1 name:WEB-*", {"web-1", "web-2"}),
        ("!state:running|paused tag:PROD", {"build-1"}),
    ],
)
async def test_filter_terms(terms: str, expected: set[str]) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        await type_text(pilot, terms)
        await pilot.press("enter")
        await until(pilot, lambda: set(names(app)) == expected, what=f"filter {terms!r}")
        assert f"filter '{terms}'" in app.fleet_screen._summary
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: len(names(app)) == 8, what="filter cleared")


async def test_the_filter_applies_as_you_type() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        await type_text(pilot, "web")  # no enter
        await until(pilot, lambda: set(names(app)) == {"web-1", "web-2", "web-3"}, what="the live filter")
        box = app.fleet_screen.query_one("#filter", Input)
        assert filter_open(app) and app.fleet_screen.focused is box  # still typing
        await type_text(pilot, " !host:esx*")
        await until(pilot, lambda: set(names(app)) == {"web-1", "web-2"}, what="the refined filter")
        await pilot.press("escape")  # cancels the edit: back to the filter before `/`
        await until(pilot, lambda: len(names(app)) == 8, what="the filter from before")
        assert not filter_open(app) and app.fleet_screen.focused is app.fleet_screen.table


async def test_keys_typed_right_after_slash_or_colon_are_kept() -> None:
    """`/db` enter typed in one go filters on db; it never opens db's detail screen."""
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        burst(app, "slash", "d", "b", "enter")
        await until(pilot, lambda: names(app) == ["db-1"], what="the typed-ahead filter")
        assert app.screen is app.fleet_screen and app.fleet_screen.table.selector.text == "db"
        burst(app, "colon", "s", "o", "r", "t", "space", "c", "p", "u", "enter")
        await until(pilot, lambda: app.fleet_screen.table.sort_column == "cpu", what="the typed-ahead command")
        assert app.screen is app.fleet_screen


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ("bogus:x", "filter term 'bogus:x': unknown filter term 'bogus:'"),
        ("re:(db", "filter term 're:(db': bad regular expression"),
        ("cpu>>1", "filter term 'cpu>>1': bad comparison"),
        ("state:bogus", "filter term 'state:bogus': unknown state 'bogus'"),
    ],
)
async def test_a_bad_term_shows_under_the_box_and_the_last_good_filter_stays(terms: str, message: str) -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        await type_text(pilot, "web")
        await until(pilot, lambda: len(names(app)) == 3, what="the good filter")
        box = app.fleet_screen.query_one("#filter", Input)
        box.insert_text_at_cursor(f" {terms}")  # pasted: typed, `cpu` alone would be a good filter a moment
        error = app.fleet_screen.query_one("#filter-error", Label)
        await until(pilot, lambda: error.display and message in text_of(error), what="the filter error")
        await pilot.pause()
        footer = app.fleet_screen.query_one(Footer)
        assert error.region.y == box.region.bottom and error.region.bottom <= footer.region.y  # right under the box
        assert message in screen_text(app)  # and on screen, not covered
        assert len(names(app)) == 3  # the table keeps the last good filter
        await pilot.press("enter")  # a bad filter is not taken: the box stays, with its error
        assert filter_open(app) and app.fleet_screen.focused is box and error.display
        for _ in range(len(terms) + 1):
            await pilot.press("backspace")
        await until(pilot, lambda: not error.display, what="the error gone once the text is good")
        await pilot.press("enter")
        await until(pilot, lambda: not filter_open(app), what="the box closed")
        assert app.fleet_screen.table.selector.text == "web"


async def test_a_bad_filter_command_opens_the_box_with_its_error() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("colon")
        await type_text(pilot, "filter cpu>>5")
        await pilot.press("enter")
        error = app.fleet_screen.query_one("#filter-error", Label)
        await until(pilot, lambda: error.display and "'cpu>>5': bad comparison" in text_of(error), what="the error")
        box = app.fleet_screen.query_one("#filter", Input)
        assert filter_open(app) and box.value == "cpu>>5" and app.fleet_screen.focused is box
        assert len(names(app)) == 8


async def test_sort_by_keys_command_and_header_click() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        assert table.sort_column == "host"
        assert [table.rows_by_key[k].host for k in table.shown_keys()] == ["esx1"] * 2 + ["kvm1"] * 4 + ["xen1"] * 2
        await pilot.press("colon")
        await type_text(pilot, "sort cpu desc")
        await pilot.press("enter")
        await until(pilot, lambda: names(app)[:3] == ["web-1", "web-3", "db-1"], what="cpu descending")
        await pilot.press("r")
        await until(pilot, lambda: names(app)[-1] == "web-1", what="reversed")
        await pilot.press("greater_than_sign")  # next sortable column after cpu: vcpus
        assert table.sort_column == "vcpus"
        await pilot.click("#domains", offset=(header_x(app, "name"), 0))
        await until(pilot, lambda: table.sort_column == "name", what="header click")
        assert names(app) == sorted(names(app))
        await pilot.click("#domains", offset=(header_x(app, "name"), 0))  # again: reverse
        await until(pilot, lambda: names(app) == sorted(names(app), reverse=True), what="header click reverses")


async def test_mark_rows_and_mark_everything_the_filter_shows() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        await pilot.press("space", "space")  # marks two rows, the cursor moves down each time
        assert len(table.marked) == 2 and "2 marked" in app.fleet_screen._summary
        assert str(table.get_row(table.shown_keys()[0])[0]) == "●"
        await pilot.press("u")
        assert not table.marked
        await pilot.press("slash")
        await type_text(pilot, "hv:kvm")
        await pilot.press("enter", "asterisk")
        await until(pilot, lambda: len(table.marked) == 4, what="4 marked")
        assert {t.domain for t in table.targets()[0]} == {"web-1", "web-2", "db-1", "build-1"}


async def test_enter_opens_the_domain_detail_and_h_the_host_screen() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "db-1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DomainScreen), what="the detail screen")
        identity = text_of(app.screen.query_one("#identity", Static))
        assert "uuid      uuid-db-1" in identity and "host      kvm1  (fake driver, kvm)" in identity
        assert "(raw: 'running')" in identity
        assert "cpu % of its vCPUs: now 50.0" in text_of(app.screen.query_one("#cpu-title", Label))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.fleet_screen, what="back")
        goto(app, "mail-1")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HostScreen), what="the host screen")
        facts = text_of(app.screen.query_one("#host-facts", Static))
        assert "host        xen1" in facts and "connection  UP" in facts and "hostname xen1.test" in facts
        assert app.screen.query_one("#host-domains").row_count == 2


async def choose_verb(pilot, app: VFleetApp, verb: Verb) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ActionMenu), what="the action menu")
    options = app.screen.query_one(OptionList)
    offered = [options.get_option_at_index(i).id for i in range(options.option_count)]
    options.highlighted = offered.index(verb.value)
    await pilot.press("enter")


async def test_harmless_verb_runs_without_confirmation() -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "dns-1")
        await choose_verb(pilot, app, Verb.RESUME)
        await until(pilot, lambda: world["xen1"].performed == [(Verb.RESUME, "dns-1")], what="resume performed")
        jobs = app.fleet_screen.query_one(JobsPane)
        await until(
            pilot, lambda: any("resume xen1/dns-1: ok -> running" in line for line in jobs.lines), what="job line"
        )


@pytest.mark.parametrize(("answer", "performed"), [("y", True), ("n", False), ("escape", False)])
async def test_graceful_verb_asks_yes_or_no(answer: str, performed: bool) -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "web-2")
        await choose_verb(pilot, app, Verb.SHUTDOWN)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the y/N question")
        await pilot.press(answer)
        await until(pilot, lambda: app.screen is app.fleet_screen, what="the question answered")
        if performed:
            await until(pilot, lambda: world["kvm1"].performed == [(Verb.SHUTDOWN, "web-2")], what="shutdown")
        else:
            await pilot.pause()
            assert world["kvm1"].performed == []


async def test_destructive_verb_needs_the_typed_name() -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "web-1")
        await choose_verb(pilot, app, Verb.FORCE_OFF)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the typed confirmation")
        await type_text(pilot, "web-2")
        await pilot.press("enter")
        error = app.screen.query_one("#confirm-error", Label)
        assert "not 'web-1'" in text_of(error) and world["kvm1"].performed == []
        await type_text(pilot, "web-1")
        await pilot.press("enter")
        await until(pilot, lambda: world["kvm1"].performed == [(Verb.FORCE_OFF, "web-1")], what="force-off")


async def test_several_targets_need_the_typed_count_and_each_gets_a_result() -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        await type_text(pilot, "web")
        await pilot.press("enter", "asterisk")
        await choose_verb(pilot, app, Verb.REBOOT)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the typed confirmation")
        assert app.screen.expected == "3"
        listed = text_of(app.screen.query_one("#confirm-list", Static))
        assert all(f"send     {where}" in listed for where in ("kvm1/web-1", "kvm1/web-2", "esx1/web-3"))
        await type_text(pilot, "3")
        await pilot.press("enter")
        jobs = app.fleet_screen.query_one(JobsPane)
        await until(pilot, lambda: any("done, 3 ok, 0 failed" in line for line in jobs.lines), what="job done")
        assert sorted(world["kvm1"].performed + world["esx1"].performed) == [
            (Verb.REBOOT, "web-1"),
            (Verb.REBOOT, "web-2"),
            (Verb.REBOOT, "web-3"),
        ]
        assert not app.fleet_screen.table.marked


async def test_read_only_a_menu_and_a_typed_command_refuse_alike_without_asking() -> None:
    app, world = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert app.fleet_screen.query_one("#ro-badge", Label).display
        goto(app, "web-1")
        await pilot.press("a")
        await until(pilot, lambda: any("read-only" in str(n.message) for n in app._notifications), what="notice")
        assert app.screen is app.fleet_screen  # no menu: nothing is allowed
        for verb in ("shutdown", "start"):
            await pilot.press("colon")
            await type_text(pilot, verb)
            await pilot.press("enter")
            await until(pilot, lambda v=verb: any(f"{v}: nothing to send" in str(n.message) and "read-only" in str(n.message)
                                                  for n in app._notifications), what=f"the {verb} refusal")
            assert app.screen is app.fleet_screen  # never asked to confirm what will not be sent
        assert all(not host.performed for host in world.values())
        assert not app.operations.audit.path.exists() or "intent" not in app.operations.audit.path.read_text()


async def test_a_host_going_down_goes_stale_in_the_table_and_comes_back() -> None:
    world = {
        "kvm1": FakeHost("kvm1", "kvm", [domain("web-1"), domain("web-2")]),
        "xen1": FakeHost("xen1", "xen", [domain("mail-1")]),
    }
    app, world = make_app(world, interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, rows=3)
        hosts = app.fleet_screen.query_one(HostsPane)
        table = app.fleet_screen.table
        world["xen1"].down = True
        # DOWN with the error of the moment: the lost poll's, then each failed reconnect's
        await until(pilot, lambda: hosts.cell_text("xen1", "status").startswith("DOWN")
                    and any(e in hosts.cell_text("xen1", "error") for e in ("connection reset (test)", "connection refused (test)")),
                    what="xen1 DOWN with its error")
        mail = next(k for k in table.shown_keys() if "mail-1" in k)
        await until(pilot, lambda: str(table.get_row(mail)[4]) == "running?", what="the stale row")
        assert str(table.get_row(next(k for k in table.shown_keys() if "web-1" in k))[4]) == "running"
        assert "1 down" in app.fleet_screen._summary
        world["xen1"].down = False
        await until(pilot, lambda: hosts.cell_text("xen1", "status") == "UP", what="xen1 back UP")
        await until(pilot, lambda: str(table.get_row(mail)[4]) == "running", what="the row fresh again")


async def test_a_host_whose_polls_fail_is_degraded_with_its_error() -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1")]), "xen1": FakeHost("xen1", "xen", [domain("mail-1")])}
    app, world = make_app(world, interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, rows=2)
        hosts = app.fleet_screen.query_one(HostsPane)
        table = app.fleet_screen.table
        world["xen1"].garbled = True
        await until(pilot, lambda: hosts.cell_text("xen1", "status").startswith("DEGRADED"), what="xen1 DEGRADED")
        assert "unexpected header (test)" in hosts.cell_text("xen1", "error")
        mail = next(k for k in table.shown_keys() if "mail-1" in k)
        await until(pilot, lambda: str(table.get_row(mail)[4]) == "running?", what="the stale row")
        assert "1 degraded" in app.fleet_screen._summary
        world["xen1"].garbled = False
        await until(pilot, lambda: hosts.cell_text("xen1", "status") == "UP", what="xen1 back UP")


async def test_help_lists_every_key_and_q_quits_closing_every_connection() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = app.screen.text
        for binding in app.fleet_screen.BINDINGS:
            assert isinstance(binding, Binding)
            assert f"\n{key_label(binding.key)}  " in text, binding  # every key, under some heading
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_value == 0
    assert all(app.fleet.driver(name) is None for name in ("kvm1", "xen1", "esx1"))


async def test_help_at_80x24_reads_grouped_keys_as_typed_and_scrolls_to_the_commands() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause()
        shown = screen_text(app)
        lines = shown.splitlines()
        assert len(lines) == 24 and all(len(line) == 80 for line in lines)  # the whole terminal
        assert "escape closes" in lines[-2] and "Table" in shown and "Marks and actions" in shown
        text = app.screen.text
        for key in ("/", "*", "<", ">", "?", "Z", "space", ":"):
            assert f"\n{key}  " in text, key
        assert not any(word in text for word in ("slash", "asterisk", "less_than_sign", "question_mark"))
        for heading in ("Table", "Marks and actions", "Panes", "Filter", "Command line"):
            assert f"{heading}" in text
        last_usage = COMMAND_HELP[-1][0]  # the end of the help: its last command
        assert ":sort COLUMN" not in shown and last_usage not in shown  # below the fold at 80x24 ...
        body = app.screen.query_one("#help-body")
        await pilot.press("end")  # ... until scrolled to
        await until(pilot, lambda: body.scroll_y == body.max_scroll_y > 0, what="the help scrolled")
        await pilot.pause()
        shown = screen_text(app)
        assert last_usage in shown and ":sort COLUMN" in text
        assert "escape closes" in shown.splitlines()[-2]  # still there
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.fleet_screen, what="help closed")


def test_help_lists_every_command() -> None:
    listed = {usage.split()[0] for usage, _ in COMMAND_HELP}
    assert set(_ALIASES.values()) <= listed and "VERB" in listed


async def test_events_pane_shows_fleet_events_newest_first() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for n, kind in enumerate(("stopped", "started")):
            event = DomainEvent("kvm1", "web-1", kind, "test", "uuid-web-1", wall_time=1_700_000_000.0 + n)
            app.fleet.events.appendleft(event)
            app._on_fleet_event(event)
        pane = app.fleet_screen.query_one(EventsPane)
        await until(pilot, lambda: any("kvm1/web-1 started" in line for line in pane.lines), what="the event")
        assert "started" in pane.lines[0] and "stopped" in pane.lines[1]


async def test_host_screen_reconnect_asks_the_fleet_to_poll() -> None:
    app, world = make_app(interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await app.push_screen(HostScreen(app.fleet, "kvm1"))
        world["kvm1"].domains.append(domain("new-1"))
        await pilot.press("r")
        await until(pilot, lambda: app.screen.query_one("#host-domains").row_count == 5, what="the new domain")
        assert app.fleet.view("kvm1").health.status is HostStatus.UP
        assert PowerState.RUNNING in {r.domain.state for r in app.fleet.view("kvm1").rows}


LONG_ERROR = ("vim.fault.InvalidPowerState: the attempted operation cannot be performed in the current state "
              "(Powered off); the host says more: task-1234 on datacenter-2 failed; END-OF-ERROR")


async def test_a_failed_jobs_full_error_is_readable_in_the_job_detail() -> None:
    app, world = make_app()
    world["esx1"].refuse = LONG_ERROR
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        goto(app, "web-3")
        await pilot.press("colon")
        await type_text(pilot, "reset")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the typed confirmation")
        await type_text(pilot, "web-3")
        await pilot.press("enter")
        jobs = app.fleet_screen.query_one(JobsPane)
        await until(pilot, lambda: any("FAILED" in line for line in jobs.lines), what="the failure")
        assert jobs.lines[0].endswith("END-OF-ERROR")  # the pane has the whole text ...
        job = jobs.latest()
        assert job is not None

        def pane_lines() -> list[str]:
            return [line for line in screen_text(app).splitlines() if f"job {job.number} reset" in line]

        await until(pilot, lambda: any("FAILED" in line for line in pane_lines()), what="the failure on screen")
        assert len(pane_lines()) == 1 and "…" in pane_lines()[0]  # ... shows one line of it, cut with an ellipsis
        assert "END-OF-ERROR" not in screen_text(app)

        await pilot.press("J")  # the last job in full
        await until(pilot, lambda: isinstance(app.screen, JobScreen), what="the job detail")
        await pilot.pause()
        shown = " ".join(line.strip(" │") for line in screen_text(app).splitlines())
        assert f"job {job.number}: reset on 1 domain: done, 0 ok, 1 failed" in shown
        assert "FAILED" in shown and "esx1/web-3" in shown
        assert " ".join(f"esx1: {LONG_ERROR}".split()) in " ".join(shown.split())  # every word, wrapped
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.fleet_screen, what="back")

        app.fleet_screen.set_focus(jobs)  # or a job line, then enter
        jobs.highlighted = 0
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobScreen), what="the job detail from its line")
        assert app.screen.job is job


async def test_a_job_detail_follows_a_running_job_target_by_target() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        jobs = app.fleet_screen.query_one(JobsPane)
        targets = (Target("kvm1", "web-1", "uuid-web-1"), Target("esx1", "web-3", "uuid-web-3"))
        jobs.job_started(Job(7, "reboot", targets))
        await pilot.press("J")
        await until(pilot, lambda: isinstance(app.screen, JobScreen), what="the job detail")
        results = app.screen.query_one("#job-results", Static)
        assert "pending" in screen_text(app) and "running, 0 ok, 0 failed, 2 pending" in screen_text(app)
        app.fleet_screen.post_message(JobResult(7, ActionResult("esx1", "web-3", Verb.REBOOT, ok=False,
                                                                message="esx1: no answer", key="uuid-web-3")))
        await until(pilot, lambda: "esx1: no answer" in screen_text(app), what="the result, live")
        app.fleet_screen.post_message(JobDone(7, 0, 1))
        await until(pilot, lambda: "done, 0 ok, 1 failed" in screen_text(app), what="the job done")
        assert results.display and "kvm1/web-1" in screen_text(app)


async def test_events_are_one_line_each_and_open_in_full() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        detail = "guest requested power off after the watchdog fired twice; see the host log for the rest: TAIL"
        for n, kind in enumerate(("stopped", "started")):
            event = DomainEvent("kvm1", "web-1", kind, detail, "uuid-web-1", wall_time=1_700_000_000.0 + n)
            app.fleet.events.appendleft(event)
            app._on_fleet_event(event)
        pane = app.fleet_screen.query_one(EventsPane)
        await until(pilot, lambda: len(pane.lines) == 2, what="the events")
        await pilot.pause()
        shown = screen_text(app).splitlines()
        started = [i for i, line in enumerate(shown) if "kvm1/web-1 started" in line]
        assert len(started) == 1 and "…" in shown[started[0]]  # one line, cut
        assert "kvm1/web-1 stopped" in shown[started[0] + 1]  # the next event on the next line: nothing wraps
        app.fleet_screen.set_focus(pane)
        pane.highlighted = 1
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventScreen), what="the event in full")
        await pilot.pause()
        text = " ".join(" ".join(line.strip(" │") for line in screen_text(app).splitlines()).split())
        assert "kind stopped" in text and "key uuid-web-1" in text and " ".join(detail.split()) in text


async def test_hiding_the_events_and_jobs_panes_gives_the_table_their_rows() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        await pilot.pause()
        before = table.size.height
        await pilot.press("e")
        await pilot.pause()
        assert table.size.height == before  # the jobs pane still needs the band
        await pilot.press("j")
        await until(pilot, lambda: table.size.height == before + 6, what="the band given to the table")
        assert app.fleet_screen.query_one("#bottom").size.height == 0
        await pilot.press("e", "j")
        await until(pilot, lambda: table.size.height == before, what="the band back")
