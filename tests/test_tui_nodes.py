"""Pools in the console, on the demo fleet's XCP-ng pool (sim): the NODE column, the `node:` filter,
the hosts pane's line per server and the host screen's per-server aggregates.

What the screens say is checked against the fleet's own views (which server each domain
runs on), not against numbers written down here: the sim's metrics move.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from test_tui_support import QUIET_AGE, until
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from vfleet.app import VFleetApp
from vfleet.core.audit import AuditLog
from vfleet.core.config import Config
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState
from vfleet.screens.host import HostScreen
from vfleet.widgets.columns import PADDING
from vfleet.widgets.panes import HostsPane, host_row_key, node_row_key

POOL = "xcp-pool-1"


def demo_app(*names: str) -> VFleetApp:
    hosts = [h for h in demo_inventory(latency=0.0).hosts if h.name in names]
    audit = AuditLog(Path(tempfile.mkdtemp(prefix="vfleet-tui-nodes-")) / "audit.jsonl")
    return VFleetApp(Fleet(hosts), audit=audit, demo=True, config=Config(thresholds=QUIET_AGE))


async def polled(pilot: Pilot[object], app: VFleetApp, *names: str) -> None:
    """Every host answered two polls (rates known) and its rows are in the table."""
    expected = sum(int(str(h.options["domains"])) for h in demo_inventory().hosts if h.name in names)
    await until(
        pilot,
        lambda: app.fleet_screen.table.row_count == expected
        and all(app.fleet.view(n).health.polls >= 2 for n in names),
        timeout=20,
        what=f"{expected} rows, polled twice",
    )


def placements(app: VFleetApp) -> dict[str, str | None]:
    return {r.domain.name: r.domain.node for r in app.fleet.view(POOL).rows}


async def test_the_node_column_comes_with_a_pool_and_the_node_filter_selects_a_server() -> None:
    app = demo_app("kvm-ams-1")
    async with app.run_test(size=(120, 40)) as pilot:
        await polled(pilot, app, "kvm-ams-1")
        table = app.fleet_screen.table
        assert "node" in table.chosen and "node" not in table.shown_columns  # no pool: no column of dashes
        assert "node" not in table.dropped_columns()  # and nobody is told it lacked room

    app = demo_app("kvm-ams-1", POOL)
    async with app.run_test(size=(120, 40)) as pilot:
        await polled(pilot, app, "kvm-ams-1", POOL)
        table = app.fleet_screen.table
        assert table.shown_columns[:3] == ["mark", "host", "node"]
        where = placements(app)
        assert set(where.values()) == {"xcp-01", "xcp-02", None}  # the halted VMs run nowhere
        for key, row in table.rows_by_key.items():
            shown = str(table.get_cell(key, "node"))
            assert shown == (row.domain.node or "-"), key
        await pilot.press("slash", *"node:xcp-02", "enter")
        on_two = {name for name, node in where.items() if node == "xcp-02"}
        await until(pilot, lambda: table.shown_count == len(on_two), what="the rows on xcp-02")
        assert {table.rows_by_key[k].domain.name for k in table.shown_keys()} == on_two

    app = demo_app("kvm-ams-1", POOL)
    async with app.run_test(size=(80, 24)) as pilot:  # 80 columns: the essentials first, nothing scrolls sideways
        await polled(pilot, app, "kvm-ams-1", POOL)
        table = app.fleet_screen.table
        assert {"host", "name", "state", "cpu", "mem"} <= set(table.shown_columns)
        assert sum(width + PADDING for _, width in table.laid_out) <= 80


async def test_the_hosts_pane_has_a_line_per_server_under_its_pool_and_enter_opens_the_pool() -> None:
    app = demo_app("kvm-ams-1", POOL)
    async with app.run_test(size=(160, 50)) as pilot:
        await polled(pilot, app, "kvm-ams-1", POOL)
        hosts = app.fleet_screen.query_one(HostsPane)
        keys = [str(row.key.value) for row in hosts.ordered_rows]
        pool_at = keys.index(host_row_key(POOL))
        assert keys[pool_at + 1 : pool_at + 3] == [node_row_key(POOL, "xcp-01"), node_row_key(POOL, "xcp-02")]
        running = Counter(r.domain.node for r in app.fleet.view(POOL).rows if r.domain.state is PowerState.RUNNING)
        on = Counter(r.domain.node for r in app.fleet.view(POOL).rows)

        def doms(node: str) -> str:
            return str(hosts.get_cell(node_row_key(POOL, node), "doms"))

        await until(pilot, lambda: doms("xcp-01") == f"{running['xcp-01']}/{on['xcp-01']}", what="xcp-01's DOMS")
        assert doms("xcp-02") == f"{running['xcp-02']}/{on['xcp-02']}"
        assert str(hosts.get_cell(node_row_key(POOL, "xcp-01"), "host")) == " └ xcp-01"
        await pilot.press("H")
        await until(pilot, lambda: app.focused is hosts, what="the pane focused")
        while hosts.cursor_row < pool_at + 2:  # onto the pool's second server
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen), what="the host screen")
        assert app.screen.host == POOL


async def test_the_host_screen_of_a_pool_lists_each_servers_aggregates_and_a_node_column() -> None:
    app = demo_app("kvm-ams-1", POOL)
    async with app.run_test(size=(120, 40)) as pilot:
        await polled(pilot, app, "kvm-ams-1", POOL)
        await app.push_screen(HostScreen(app.fleet, POOL))
        table = app.screen.query_one("#host-domains", DataTable)
        await until(pilot, lambda: table.row_count == 12, what="the pool's domains")
        facts = str(app.screen.query_one("#host-facts", Static).content).splitlines()
        at = next(i for i, line in enumerate(facts) if line.startswith("nodes"))
        assert any(line.startswith("hypervisor  xen XCP-ng") and "in 2 servers" in line for line in facts)
        assert facts[at].split()[1:] == ["NODE", "CPU%", "MEM", "use/alloc/tot", "COMMIT", "CONT%", "DOMS"]
        view = app.fleet.view(POOL)
        for line, node in zip(facts[at + 1 : at + 3], ("xcp-01", "xcp-02"), strict=True):
            rows = [r for r in view.rows if r.domain.node == node]
            running = sum(r.domain.state is PowerState.RUNNING for r in rows)
            cells = line.split()
            assert cells[0] == node and cells[-1] == f"{running}/{len(rows)}"
            assert cells[2].endswith("/128G")  # each server's own memory, not the pool's 256G
        assert [str(c.key.value) for c in table.ordered_columns][:2] == ["name", "node"]
        for row in view.rows:
            assert str(table.get_cell(row.domain.key, "node")) == (row.domain.node or "-")
        await pilot.press("escape")
        await app.push_screen(HostScreen(app.fleet, "kvm-ams-1"))
        single = app.screen.query_one("#host-domains", DataTable)
        await until(pilot, lambda: single.row_count == 14, what="the single host's domains")
        assert "node" not in [str(c.key.value) for c in single.ordered_columns]
        facts = str(app.screen.query_one("#host-facts", Static).content).splitlines()
        assert not any(line.startswith("nodes") for line in facts)
