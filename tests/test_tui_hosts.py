"""Pilot tests of the hosts pane, the host screen and the detail screen's empty series.

The aggregates the pane shows are checked against numbers computed by hand for the
scripted fleet of test_tui_support (every fake host has 16 CPUs and 64 GiB).
"""

from __future__ import annotations

from dataclasses import replace

from test_tui_support import FakeHost, domain, loaded, make_app, until
from textual.widgets import DataTable, Label, Sparkline, Static

from vfleet.app import VFleetApp
from vfleet.core.models import DomainGauges
from vfleet.screens.domain import DomainScreen
from vfleet.screens.host import HostScreen
from vfleet.widgets.panes import FLEET_ROW, HostsPane, host_row_key

SIZE = (160, 50)


def rendered(table: DataTable[object]) -> str:
    """What the widget draws, line by line (the terminal's view, scrolling included)."""
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


def pane(app: VFleetApp) -> HostsPane:
    return app.fleet_screen.query_one(HostsPane)


def facts_of(app: VFleetApp) -> str:
    return str(app.screen.query_one("#host-facts", Static).content)


def thirty_hosts() -> dict[str, FakeHost]:
    world = {f"h{i:02d}": FakeHost(f"h{i:02d}", "kvm", [domain(f"vm-{i:02d}")]) for i in range(30)}
    world["h15"] = FakeHost("h15", "xen", [], down=True)  # down from the start, no domains ever seen
    return world


async def test_the_hosts_pane_shows_every_host_of_30_scrolls_and_opens_each_one() -> None:
    app, _ = make_app(thirty_hosts())
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, rows=29)
        hosts = pane(app)
        await until(pilot, lambda: hosts.cell_text("h15", "status").startswith("DOWN"), what="h15 down")
        assert hosts.row_count == 31  # the FLEET row and every host
        assert hosts.cell_text("h15", "doms") == "-" and hosts.cell_text("h15", "cpu") == "-"  # unknown, not 0
        # sized to its hosts up to 40% of the screen (less the footer), the rest scrolls
        await until(pilot, lambda: hosts.outer_size.height >= 15, what="the pane grown to its cap")
        assert hosts.outer_size.height <= 20 and hosts.max_scroll_y > 0
        await until(pilot, lambda: "h00" in rendered(hosts), what="the first host drawn")
        assert "h29" not in rendered(hosts)

        await pilot.press("H")  # into the pane, on its first host
        await until(pilot, lambda: app.focused is hosts, what="the pane focused")
        assert hosts.host_at_cursor() == "h00"
        await pilot.press(*["down"] * 29)
        await until(pilot, lambda: hosts.host_at_cursor() == "h29", what="the cursor on the last host")
        await until(pilot, lambda: "h29" in rendered(hosts), what="the last host scrolled into view")
        shown = rendered(hosts)
        assert "FLEET" in shown and "h00" not in shown  # scrolled, and the totals stayed put
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen), what="the host screen")
        assert app.screen.host == "h29" and "domains     1: 1 running" in facts_of(app)

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.fleet_screen and app.focused is hosts, what="back in the pane")
        await pilot.press(*["up"] * 14)
        await until(pilot, lambda: hosts.host_at_cursor() == "h15", what="the cursor on the down host")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen), what="the down host's screen")
        facts = facts_of(app)
        assert app.screen.host == "h15" and "connection  DOWN" in facts
        assert "connection refused (test)" in facts and "domains     unknown: no poll answered yet" in facts
        assert app.screen.query_one("#host-domains", DataTable).row_count == 0


async def test_enter_on_the_fleet_row_stays_and_H_goes_back_to_the_table() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        hosts = pane(app)
        await pilot.press("H")
        await until(pilot, lambda: app.focused is hosts, what="the pane focused")
        await pilot.press("up", "enter")
        await pilot.pause()
        assert hosts.host_at_cursor() is None and app.screen is app.fleet_screen
        await pilot.press("H")
        await until(pilot, lambda: app.focused is app.fleet_screen.table, what="the table focused")


async def test_the_pane_shows_hand_computed_aggregates_for_each_host_and_the_fleet() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        hosts = pane(app)
        columns = ("status", "cpu", "mem", "commit", "cont", "doms", "hv")

        def row(host: str | None) -> tuple[str, ...]:
            return tuple(hosts.cell_text(host, c) for c in columns)

        await until(pilot, lambda: row(None)[5] == "6/8", what="the fleet totals")
        # kvm1: web-1 95% of 2 vCPUs, web-2 20% of 2, db-1 50% of 8 on 16 CPUs -> 11.875 + 2.5 + 25 %;
        # 1 GiB used and 4 GiB allocated per running domain (off build-1 holds none); 12 vCPUs / 16
        assert row("kvm1") == ("UP", "39.4", "3.0G/12G/64G", "0.75x", "-", "3/4", "kvm")
        # xen1: mail-1 5% of 2 -> 0.625 %; the paused dns-1 holds its 4 GiB but reports no use
        assert row("xen1") == ("UP", "0.6", "1.0G/8.0G/64G", "0.12x", "-", "1/2", "xen")
        # esx1: web-3 85% of 2 + ci-1 1% of 4 -> 10.625 + 0.25 %; 6 vCPUs / 16
        assert row("esx1") == ("UP", "10.9", "2.0G/8.0G/64G", "0.38x", "-", "2/2", "esxi")
        # the fleet: (39.375 + 0.625 + 10.875) * 16 / 48 CPUs = 16.96 %; 20 vCPUs / 48
        assert row(None) == ("3/3 up", "17.0", "6.0G/28G/192G", "0.42x", "-", "6/8", "")
        await until(pilot, lambda: hosts.outer_size.height == 6, what="the pane sized to its 3 hosts")
        await until(pilot, lambda: "3.0G/12G/64G" in rendered(hosts), what="the hosts drawn")
        shown = rendered(hosts)
        assert "FLEET" in shown and "6.0G/28G/192G" in shown and "39.4" in shown
        assert hosts.get_row_index(FLEET_ROW) == 0 and hosts.get_row_index(host_row_key("kvm1")) == 1
        # the top bar says the same totals as the FLEET row
        assert "8 domains, 6 running, 20 vCPU" in app.fleet_screen._summary
        assert "mem 6.0G used/28.0G" in app.fleet_screen._summary


async def test_the_host_screen_shows_its_aggregates_and_100_percent_whole() -> None:
    world = {"kvm1": FakeHost("kvm1", "kvm", [domain("web-1", cpu=5.0), domain("db-1", vcpus=8, cpu=50.0)])}
    app, world = make_app(world, interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, rows=2)
        await app.push_screen(HostScreen(app.fleet, "kvm1"))
        table = app.screen.query_one("#host-domains", DataTable)
        await until(pilot, lambda: table.row_count == 2, what="the host's domains")
        facts = facts_of(app)
        assert "domains     2: 2 running" in facts
        assert "cpu         25.6% of 16 CPUs   vCPU 10 running: commit 0.62x" in facts  # 0.625 + 25
        assert "memory      2.0G/8.0G/64G used/allocated/total   (2 domains report used memory)" in facts
        assert "contention  - (no running domain reports it)" in facts
        web = world["kvm1"].domains[0]
        world["kvm1"].domains[0] = replace(web, gauges=replace(web.gauges or DomainGauges(), cpu_percent=100.0))
        await until(pilot, lambda: str(table.get_cell("uuid-web-1", "cpu")) == "100.0", what="web-1 at 100 %")
        # was cut to "100." by a column sized for the "5.0" and "50.0" it first held
        await until(pilot, lambda: " 100.0 " in rendered(table), what="100.0 drawn whole")


async def test_the_detail_screen_says_no_data_instead_of_a_flat_sparkline() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await app.push_screen(DomainScreen(app.fleet, "kvm1", "uuid-build-1"))  # off: no rates, no usage
        await until(pilot, lambda: app.screen.query_one("#cpu-none", Label).display, what="no data")
        for series in ("cpu", "mem", "disk", "net"):
            assert not app.screen.query_one(f"#{series}-spark", Sparkline).display
            none = app.screen.query_one(f"#{series}-none", Label)
            assert none.display and str(none.content) == "no data (1 sample, none with a value)"
        await pilot.press("escape")
        await app.push_screen(DomainScreen(app.fleet, "kvm1", "uuid-web-1"))
        await until(pilot, lambda: "now 95.0" in str(app.screen.query_one("#cpu-title", Label).content), what="cpu")
        assert app.screen.query_one("#cpu-spark", Sparkline).display
        assert not app.screen.query_one("#cpu-none", Label).display
