"""Migration in the console, on the demo fleet: its two kvm sim hosts share this process's
registry of sim hosts, so a domain really moves between them; its xen hosts cannot migrate
(as xen_xl). Every move goes through the operations core: pre-flight, tier, audit, jobs pane."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from test_tui_fleet import SIZE
from test_tui_support import QUIET_AGE, goto, rows_of, until
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, OptionList, Static

from vfleet.app import VFleetApp
from vfleet.core.audit import AuditLog
from vfleet.core.config import Config
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState, Verb
from vfleet.screens.commands import parse_command
from vfleet.screens.migrate import MigrateTo
from vfleet.screens.modals import ActionMenu, ConfirmPlan
from vfleet.widgets.panes import JobsPane

HOSTS = ("kvm-ams-1", "kvm-ams-2", "xen-fra-1")


def demo_app() -> VFleetApp:
    hosts = [h for h in demo_inventory(latency=0.0).hosts if h.name in HOSTS]
    audit = AuditLog(Path(tempfile.mkdtemp(prefix="vfleet-tui-migrate-")) / "audit.jsonl")
    return VFleetApp(Fleet(hosts), audit=audit, demo=True, config=Config(thresholds=QUIET_AGE))


def records(app: VFleetApp) -> list[dict[str, object]]:
    path = app.operations.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def hosts_of(app: VFleetApp, names: set[str]) -> dict[str, str]:
    table = app.fleet_screen.table
    rows = [table.rows_by_key[k] for k in table.shown_keys()]
    return {r.domain.name: r.host for r in rows if r.domain.name in names}


async def ready(pilot: Pilot[object], app: VFleetApp) -> None:
    await until(pilot, lambda: app.fleet_screen.table.row_count == 36, timeout=20, what="the 36 rows of 3 hosts")


async def menu_entry(pilot: Pilot[object], app: VFleetApp) -> tuple[OptionList, int]:
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ActionMenu), what="the action menu")
    options = app.screen.query_one(OptionList)
    ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
    return options, ids.index(Verb.MIGRATE.value)


async def test_migrate_a_marked_pair_from_the_menu_shows_the_preflight_and_is_audited() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        pair = rows_of(app, "kvm-ams-1", PowerState.RUNNING)[:2]
        assert len(pair) == 2
        for target in pair:
            goto(app, target)
            await pilot.press("space")
        options, index = await menu_entry(pilot, app)
        assert not options.get_option_at_index(index).disabled
        options.highlighted = index
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MigrateTo), what="the destination picker")
        picker = app.screen
        assert isinstance(picker, MigrateTo)
        # only the other kvm host: not the source, not the xen hosts; its room is shown
        assert [c.host for c in picker.choices] == ["kvm-ams-2"]
        label = str(picker.query_one(OptionList).get_option_at_index(0).prompt)
        assert "free memory" in label and "vCPU commit" in label and "?" not in label
        picker.query_one("#migrate-copy", Checkbox).value = True
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        confirm = app.screen
        assert isinstance(confirm, ConfirmPlan)
        assert confirm.expected == "2"  # several domains: type their count
        listing = str(confirm.query_one("#confirm-list", Static).render())
        for target in pair:
            line = next(x for x in listing.splitlines() if f"/{target.domain} " in x)
            assert line.startswith("send") and "same driver sim" in line and "storage: copied" in line
            assert "free after" in line and "live" in line
        assert records(app) == []
        confirm.query_one("#confirm-input", Input).value = "2"
        await pilot.press("enter")
        await until(pilot, lambda: [r["kind"] for r in records(app)][-1:] == ["close"], what="the close record")
        jobs = app.fleet_screen.query_one(JobsPane)
        job = jobs.latest()
        assert jobs.display and job is not None and job.verb == "migrate"
        await until(pilot, lambda: job.done, what="the job done")
        for target in pair:  # a result per target, saying where it went
            result = job.result_for(target)
            assert result is not None and result.ok and result.message == "now on kvm-ams-2"
        assert jobs.lines[0] == f"job {job.number} migrate on 2 domains: done, 2 ok, 0 failed"
        names = {t.domain for t in pair}
        await until(pilot, lambda: set(hosts_of(app, names).values()) == {"kvm-ams-2"}, timeout=20,
                    what="the pair on kvm-ams-2 after a poll")
    intent = records(app)[0]
    assert intent["verb"] == "migrate" and intent["face"] == "tui"
    assert intent["params"] == {"to": "kvm-ams-2", "live": True, "copy_storage": True}
    assert sorted(t["key"] for t in intent["targets"]) == sorted(t.key for t in pair)  # type: ignore[union-attr]
    results = [r for r in records(app) if r["kind"] == "result"]
    assert len(results) == 2 and all(r["result"] == "ok" and r["params"] == intent["params"] for r in results)


async def test_offline_refuses_running_domains_in_the_confirmation() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        running = rows_of(app, "kvm-ams-1", PowerState.RUNNING)[0]
        goto(app, running)
        await pilot.press("colon")
        command = app.fleet_screen.query_one("#command", Input)
        command.value = "migrate"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MigrateTo), what="the picker from :migrate")
        app.screen.query_one("#migrate-offline", Checkbox).value = True
        await pilot.press("enter")
        # the one target is refused by the pre-flight: nothing to confirm, the reason is said
        await until(pilot, lambda: not isinstance(app.screen, MigrateTo), what="the picker closed")
        assert not isinstance(app.screen, ConfirmPlan)
        assert any("--offline moves only domains that are off" in str(n.message) for n in app._notifications)
    assert records(app) == []


async def test_colon_migrate_host_goes_to_the_plan_with_yes_no_for_one() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        target = rows_of(app, "kvm-ams-2", PowerState.RUNNING)[0]
        goto(app, target)
        app.fleet_screen.run_command(parse_command("migrate kvm-ams-1"))  # type: ignore[arg-type]
        await until(pilot, lambda: isinstance(app.screen, ConfirmPlan), what="the confirmation")
        assert "kvm-ams-1 up" in str(app.screen.query_one("#confirm-list", Static).render())
        await pilot.press("y")
        await until(pilot, lambda: hosts_of(app, {target.domain}) == {target.domain: "kvm-ams-1"}, timeout=20,
                    what="the domain on kvm-ams-1 after a poll")
    assert [r["result"] for r in records(app) if r["kind"] == "result"] == ["ok"]


async def test_xen_rows_show_the_migrate_entry_greyed_with_the_reason() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        goto(app, rows_of(app, "xen-fra-1")[0])
        options, index = await menu_entry(pilot, app)
        entry = options.get_option_at_index(index)
        assert entry.disabled and "cannot migrate" in str(entry.prompt) and "xl migrate" in str(entry.prompt)
