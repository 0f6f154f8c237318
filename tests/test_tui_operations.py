"""The TUI acts on what the operator sees, through the core's operations service:
audited, aimed by key while rows move, confirmed with the plan in view."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_tui_fleet import SIZE, choose_verb, goto, names, text_of, type_text
from test_tui_support import FakeHost, domain, loaded, make_app, until
from textual.widgets import Label, OptionList, Static

from vfleet.app import VFleetApp
from vfleet.core.models import DomainGauges, PowerState, Verb
from vfleet.screens.modals import ActionMenu, ConfirmPlan


def audit_records(app: VFleetApp) -> list[dict[str, object]]:
    path = app.operations.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_tui_action_is_audited_intent_first_then_results_and_close() -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "web-2")
        await choose_verb(pilot, app, Verb.SHUTDOWN)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        assert audit_records(app) == []  # nothing recorded (nor sent) before the operator says yes
        await pilot.press("y")
        await until(pilot, lambda: [r["kind"] for r in audit_records(app)] == ["intent", "result", "close"], what="records")
    intent, result, close = audit_records(app)
    assert intent["face"] == "tui" and intent["verb"] == "shutdown"
    assert intent["targets"] == [{"host": "kvm1", "domain": "web-2", "key": "uuid-web-2", "plan": "send", "why": None,
                                  "override": False, "state": "running"}]
    assert result["result"] == "ok" and result["key"] == "uuid-web-2" and close["outcome"] == "completed"
    assert world["kvm1"].performed == [(Verb.SHUTDOWN, "web-2")]


def set_cpu(host: FakeHost, name: str, cpu: float) -> None:
    i = next(i for i, d in enumerate(host.domains) if d.name == name)
    host.domains[i] = replace(host.domains[i], gauges=DomainGauges(cpu_percent=cpu))


async def test_the_cursor_stays_on_its_domain_while_rows_resort_and_arrive() -> None:
    app, world = make_app(interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("colon")
        await type_text(pilot, "sort cpu desc")
        await pilot.press("enter")
        await until(pilot, lambda: names(app)[0] == "web-1", what="web-1 (95 %) on top")
        goto(app, "web-3")  # second busiest
        table = app.fleet_screen.table
        before = names(app).index("web-3")
        set_cpu(world["esx1"], "web-3", 1.0)  # it falls to the bottom of the order...
        set_cpu(world["kvm1"], "web-2", 99.0)  # ...while another domain climbs above it
        world["xen1"].domains.insert(0, domain("new-1", cpu=97.0))  # and a new row arrives on top
        await until(pilot, lambda: names(app).index("web-3") > before + 2 and "new-1" in names(app), what="the re-sort")
        row = table.row_at_cursor()
        assert row is not None and row.domain.name == "web-3"
        await choose_verb(pilot, app, Verb.PAUSE)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        assert "web-3 on esx1" in text_of(app.screen.query_one(".dialog-title", Label))


async def test_freeze_keeps_rows_in_place_until_released() -> None:
    app, world = make_app(interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.fleet_screen.table.sort_by("cpu", reverse=True)
        await until(pilot, lambda: names(app)[0] == "web-1", what="sorted by cpu")
        await pilot.press("Z")
        frozen = names(app)
        assert "FROZEN" in app.fleet_screen._summary
        set_cpu(world["kvm1"], "web-1", 0.5)
        await until(pilot, lambda: "0.5" in str(app.fleet_screen.table.get_row(
            next(k for k in app.fleet_screen.table.shown_keys() if k.endswith("uuid-web-1")))[5]), what="new value shown")
        assert names(app) == frozen
        await pilot.press("Z")
        await until(pilot, lambda: names(app).index("web-1") > names(app).index("ci-1"), what="the order live again")


async def test_the_menu_offers_only_verbs_that_apply_to_the_domains_states() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for name, offered in (("build-1", ["start"]), ("dns-1", ["resume", "force-off", "reset"]),
                              ("web-1", ["shutdown", "reboot", "pause", "force-off", "reset"])):
            goto(app, name)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ActionMenu), what="the menu")
            options = app.screen.query_one(OptionList)
            entries = [options.get_option_at_index(i) for i in range(options.option_count)]
            assert [o.id for o in entries if not o.disabled] == offered
            # the fake driver has no snapshots nor migration: the entries are there, greyed out, saying why
            assert [(o.id, "fake driver cannot" in str(o.prompt)) for o in entries if o.disabled] == [
                ("snapshot-create", True), ("migrate", True)]
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.fleet_screen, what="menu closed")


async def test_the_confirmation_lists_no_ops_and_hidden_marked_rows() -> None:
    app, world = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for name in ("web-1", "build-1", "db-1"):
            goto(app, name)
            await pilot.press("space")
        await pilot.press("slash")
        await type_text(pilot, "state:running")
        await pilot.press("enter")
        await until(pilot, lambda: "build-1" not in names(app), what="build-1 hidden by the filter")
        await choose_verb(pilot, app, Verb.SHUTDOWN)
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        screen = app.screen
        assert "1 marked row is hidden by the filter: included" in text_of(screen.query_one("#confirm-hidden", Label))
        listed = text_of(screen.query_one("#confirm-list", Static)).splitlines()
        assert any(line.startswith("no-op") and "kvm1/build-1" in line and "already off" in line for line in listed)
        assert sum(line.startswith("send") for line in listed) == 2
        assert screen.expected == "2"
        await type_text(pilot, "2")
        await pilot.press("enter")
        await until(pilot, lambda: len(world["kvm1"].performed) == 2, what="two shutdowns")
        assert sorted(world["kvm1"].performed) == [(Verb.SHUTDOWN, "db-1"), (Verb.SHUTDOWN, "web-1")]


async def test_a_bad_theme_is_a_notice_not_a_crash() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("colon")
        await type_text(pilot, "theme no-such-theme")
        await pilot.press("enter")
        await until(pilot, lambda: any("no theme named 'no-such-theme'" in str(n.message) for n in app._notifications),
                    what="the notice")
        assert app.is_running and app.screen is app.fleet_screen


async def test_an_unwritable_audit_log_refuses_in_the_tui_and_sends_nothing(tmp_path: object) -> None:
    app, world = make_app()
    from pathlib import Path

    blocker = Path(str(tmp_path)) / "file"
    blocker.write_text("")
    app.operations.audit = type(app.operations.audit)(blocker / "audit.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        goto(app, "dns-1")
        await choose_verb(pilot, app, Verb.RESUME)  # harmless: no confirmation, straight to the audit
        await until(pilot, lambda: any("cannot write the audit log" in str(n.message) for n in app._notifications),
                    what="the refusal")
        assert world["xen1"].performed == []
        assert world["xen1"].domains[1].state is PowerState.PAUSED


async def test_live_updates_wait_for_a_pause_in_the_keys_but_never_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys first: a poll's repaint must not stand between a key and its frame (bench/faults.py
    measures the latency), yet the data never freezes while a key is held down."""
    import time

    import vfleet.app
    from vfleet.messages import FleetUpdated

    monkeypatch.setattr(vfleet.app, "KEYS_FIRST", 2.0)  # long enough to look at, even on a busy machine
    monkeypatch.setattr(vfleet.app, "UPDATES_HELD_AT_MOST", 4.0)
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        view = app.fleet.view("kvm1")
        app._last_key = time.monotonic()  # a key just came
        app.post_message(FleetUpdated({"kvm1": replace(view, rows=view.rows[:1])}))
        await pilot.pause()
        assert table.row_count == 8  # held back...
        await until(pilot, lambda: table.row_count == 5, timeout=10, what="the held update applied")  # ...then shown

        held_down = time.monotonic()
        app.post_message(FleetUpdated({"kvm1": view}))

        def key_repeat_then_applied() -> bool:
            app._last_key = time.monotonic()  # the key is still held down
            return table.row_count == 8

        await until(pilot, key_repeat_then_applied, timeout=10, what="the update applied despite the keys")
        assert 4.0 * 0.5 < time.monotonic() - held_down < 4.0 + 3.0  # the cap, not the end of the typing
