"""Snapshots in the console, on the demo fleet (sim hosts keep snapshots in memory; its xen
hosts have none, as xen_xl): every change through the operations core, confirmed and audited."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from test_tui_columns import screen_lines
from test_tui_fleet import SIZE
from test_tui_support import QUIET_AGE, goto, rows_of, until
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList

from vfleet.app import VFleetApp
from vfleet.core.audit import AuditLog
from vfleet.core.config import Config
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState, SnapshotParams, Verb
from vfleet.core.operations import always, read_snapshots
from vfleet.screens.domain import DomainScreen
from vfleet.screens.modals import ActionMenu, ConfirmPlan
from vfleet.screens.snapshots import SnapshotName, SnapshotsScreen


def demo_app() -> VFleetApp:
    hosts = [h for h in demo_inventory(latency=0.0).hosts if h.name in ("kvm-ams-1", "xen-fra-1")]
    audit = AuditLog(Path(tempfile.mkdtemp(prefix="vfleet-tui-snap-")) / "audit.jsonl")
    return VFleetApp(Fleet(hosts), audit=audit, demo=True, config=Config(thresholds=QUIET_AGE))


def records(app: VFleetApp) -> list[dict[str, object]]:
    path = app.operations.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reverts(app: VFleetApp) -> list[dict[str, object]]:
    ops = {r["op"] for r in records(app) if r.get("verb") == "snapshot-revert"}
    return [r for r in records(app) if r.get("op") in ops]


async def ready(pilot: Pilot[object], app: VFleetApp) -> None:
    await until(pilot, lambda: app.fleet_screen.table.row_count == 24, timeout=20, what="the demo's 24 rows")


async def open_menu(pilot: Pilot[object], app: VFleetApp) -> OptionList:
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ActionMenu), what="the action menu")
    return app.screen.query_one(OptionList)


async def test_snapshot_of_marked_rows_from_the_menu_asks_the_count_and_is_audited() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        marked = rows_of(app, "kvm-ams-1")[:3]
        for target in marked:
            goto(app, target)
            await pilot.press("space")
        options = await open_menu(pilot, app)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index(Verb.SNAPSHOT_CREATE.value)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SnapshotName), what="the name prompt")
        assert app.screen.query_one("#snapshot-name", Input).value == "pre-{date}"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        assert app.screen.expected == "3"  # several domains: type their count
        assert records(app) == []
        app.screen.query_one("#confirm-input", Input).value = "3"
        await pilot.press("enter")
        await until(pilot, lambda: [r["kind"] for r in records(app)][-1:] == ["close"], what="the close record")
        listed = await read_snapshots(app.fleet, marked)
        # the count shows in the SNAPS column once chosen (off by default), `-` on xen rows (not known)
        app.fleet_screen.set_columns(["host", "name", "state", "snaps", "snap_age"])
        table = app.fleet_screen.table

        def snaps_of(domain: str) -> str:
            lines = screen_lines(table)
            x = lines[0].index("SNAPS")
            return next(line for line in lines[1:] if f" {domain} " in line)[x: x + 5].strip()

        await until(pilot, lambda: snaps_of(marked[0].domain) == "1", timeout=20, what="SNAPS 1 after a poll")
        assert snaps_of(rows_of(app, "xen-fra-1")[0].domain) == "-"
    name = f"pre-{time.strftime('%Y-%m-%d')}"
    intent = records(app)[0]
    assert intent["verb"] == "snapshot-create" and intent["face"] == "tui"
    assert intent["params"] == {"snapshot": name, "memory": True}
    assert sorted(t["key"] for t in intent["targets"]) == sorted(t.key for t in marked)  # type: ignore[union-attr]
    results = [r for r in records(app) if r["kind"] == "result"]
    assert len(results) == 3 and all(r["result"] == "ok" and r["params"] == intent["params"] for r in results)
    assert [[s.name for s in item.snapshots] for item in listed] == [[name]] * 3


async def test_revert_from_the_snapshots_screen_asks_the_domain_name() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        target = rows_of(app, "kvm-ams-1", PowerState.RUNNING)[0]
        ops = app.operations
        for snap in ("before", "after"):
            plan = ops.plan(Verb.SNAPSHOT_CREATE, [target], params=SnapshotParams(snap, memory=True))
            assert (await ops.run(plan, always)).results[0].ok
        goto(app, target)
        await pilot.press("enter")  # the detail screen opens the snapshots too
        await until(pilot, lambda: isinstance(app.screen, DomainScreen), what="the detail screen")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SnapshotsScreen), what="the snapshots screen")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two snapshots listed")
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["before", "after"]
        assert [str(table.get_row_at(i)[2]) for i in range(2)] == ["", "*"]  # the current one
        table.move_cursor(row=0)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        box = app.screen.query_one("#confirm-input", Input)
        box.value = "not-it"
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmPlan) and not reverts(app)
        box.value = target.domain
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SnapshotsScreen), what="back on the snapshots screen")
        await until(pilot, lambda: str(table.get_row_at(0)[2]) == "*", what="'before' current after the revert")
    intent, result, close = reverts(app)
    assert [intent["kind"], result["kind"], close["kind"]] == ["intent", "result", "close"]
    assert intent["params"] == {"snapshot": "before", "memory": False} and result["result"] == "ok"
    assert intent["targets"][0]["key"] == target.key  # type: ignore[index]


async def test_xen_rows_show_the_snapshot_entry_greyed_with_the_reason() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        goto(app, rows_of(app, "xen-fra-1")[0])
        options = await open_menu(pilot, app)
        entry = next(options.get_option_at_index(i) for i in range(options.option_count)
                     if options.get_option_at_index(i).id == Verb.SNAPSHOT_CREATE.value)
        assert entry.disabled and "xl has no snapshots" in str(entry.prompt)
        assert "cannot snapshot-create" in str(entry.prompt)
        await pilot.press("escape")
        goto(app, rows_of(app, "kvm-ams-1")[0])
        options = await open_menu(pilot, app)
        entry = next(options.get_option_at_index(i) for i in range(options.option_count)
                     if options.get_option_at_index(i).id == Verb.SNAPSHOT_CREATE.value)
        assert not entry.disabled and str(entry.prompt) == "snapshot"
