"""Columns that follow the terminal, the column chooser, sort directions, threshold colours,
and the config file in the console (theme, sort, columns, keys, views, interval)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.style import Style
from test_tui_fleet import header_x, names, type_text
from test_tui_support import GIB, FakeHost, domain, loaded, make_app, until
from textual.widgets import SelectionList

from vfleet.core import config
from vfleet.core.models import MemorySource
from vfleet.screens.chooser import ColumnChooser
from vfleet.widgets.columns import BY_KEY, CHOOSABLE, COLUMNS, INDEX, layout
from vfleet.widgets.fleet_table import FleetTable

LONG_HOST = "a-very-long-hypervisor-host"
LONG_NAME = "billing-database-primary-replica-in-frankfurt"


def long_world() -> dict[str, FakeHost]:
    """Two hosts and four domains whose names share long prefixes; one memory cell of 15 characters."""
    odd_memory = replace(domain(f"{LONG_NAME}-02", cpu=40.0), memory_used_bytes=int(1013.8 * (1 << 20)),
                         memory_current_bytes=2 * GIB, memory_max_bytes=2 * GIB, memory_used_source=MemorySource.GUEST)
    return {
        f"{LONG_HOST}-01": FakeHost(f"{LONG_HOST}-01", "kvm", [domain(f"{LONG_NAME}-01", cpu=96.0), odd_memory]),
        f"{LONG_HOST}-02": FakeHost(f"{LONG_HOST}-02", "esxi", [domain(f"{LONG_NAME}-03", cpu=12.0),
                                                                 domain("dns", cpu=1.0)]),
    }


async def click_header(pilot, app, key: str) -> None:  # type: ignore[no-untyped-def]
    """Click a column's header once the screen shows it where the layout put it (a click hits what is drawn)."""
    table = app.fleet_screen.table
    x = header_x(app, key)

    def drawn() -> bool:
        meta = app.screen.get_style_at(table.region.x + x, table.region.y).meta
        return meta.get("row") == -1 and meta.get("column") == table.shown_columns.index(key)

    await pilot.pause()  # let pending layout (panes that just got their rows) settle first
    await until(pilot, drawn, what=f"the {key} header drawn")
    await pilot.click("#domains", offset=(x, 0))


def screen_lines(table: FleetTable) -> list[str]:
    """The table as the terminal shows it, line by line (header first)."""
    return ["".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)]


def assert_nothing_cut_but_names(table: FleetTable) -> None:
    """Every number (with its unit) is whole on screen; cut text ends in an ellipsis."""
    lines = screen_lines(table)
    for y, key in enumerate(table.shown_keys()[: table.size.height - 1], start=1):
        texts = table._texts[key]
        for column, _width in table.laid_out:
            text = texts[INDEX[column.key]]
            if column.shrink_to is None and text.strip():
                assert text in lines[y], f"{column.key} cut: {text!r} not in {lines[y]!r}"


async def test_at_80_columns_the_useful_set_fits_names_cut_in_the_middle_numbers_whole() -> None:
    app, _ = make_app(long_world())
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app, rows=4)
        table = app.fleet_screen.table
        shown = table.shown_columns
        assert {"mark", "host", "name", "state", "cpu", "mem"} <= set(shown), shown
        assert table.dropped_columns()  # not everything fits in 80 columns
        assert sum(width + 2 for _, width in table.laid_out) <= table.scrollable_content_region.width
        lines = screen_lines(table)
        assert "1013.8M(g)/2.0G" in "\n".join(lines)  # the unit stays: never `/2.0`
        cut = [line for line in lines[1:] if "billing" in line]
        assert len(cut) == 3 and all("…" in line for line in cut)
        assert len({line.split("…")[-1].split()[0] for line in cut}) == 3  # the ends that differ stay apart
        assert_nothing_cut_but_names(table)


async def test_wider_terminals_show_more_columns_and_200_uses_the_width() -> None:
    app, _ = make_app(long_world())
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app, rows=4)
        table = app.fleet_screen.table
        at_80 = set(table.shown_columns)
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: set(table.shown_columns) > at_80, what="more columns at 120")
        assert {"vcpus", "cont"} <= set(table.shown_columns)
        assert_nothing_cut_but_names(table)
        await pilot.resize_terminal(200, 50)
        await until(pilot, lambda: not table.dropped_columns(), what="every column at 200")
        lines = screen_lines(table)
        assert not any("…" in line for line in lines), "nothing is cut at 200 columns"
        used = sum(width + 2 for _, width in table.laid_out)
        assert 150 < used <= table.scrollable_content_region.width
        assert f"{LONG_NAME}-01" in "\n".join(lines) and f"{LONG_HOST}-02" in "\n".join(lines)
        assert_nothing_cut_but_names(table)
        await pilot.resize_terminal(80, 24)  # and back: the layout follows every resize
        await until(pilot, lambda: set(table.shown_columns) == at_80, what="the 80-column layout again")


def test_layout_never_drops_name_or_state_and_never_cuts_a_number() -> None:
    natural = {c.key: 10 for c in COLUMNS} | {"name": 60, "mem": 15}
    for width in (20, 40, 80, 120, 300):
        plan = dict((c.key, w) for c, w in layout(COLUMNS, natural, width))
        assert {"name", "state", "mark"} <= set(plan)
        for key, w in plan.items():
            if BY_KEY[key].shrink_to is None:
                assert w >= natural[key], (width, key)
        if width >= 80:
            assert sum(w + 2 for w in plan.values()) <= width
    assert set(dict((c.key, w) for c, w in layout(COLUMNS, natural, 300))) == set(BY_KEY)


async def test_the_column_chooser_and_the_columns_command() -> None:
    app, _ = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        assert "host" in table.shown_columns
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ColumnChooser), what="the chooser")
        choices = app.screen.query_one(SelectionList)
        assert choices.selected == [k for k in CHOOSABLE if k not in ("snaps", "snap_age")]  # off by default
        assert choices.get_option("name").disabled and choices.get_option("state").disabled
        await pilot.press("space")  # the first choice: HOST
        await until(pilot, lambda: "host" not in table.shown_columns, what="HOST hidden")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.fleet_screen, what="the chooser closed")
        assert "HOST" not in screen_lines(table)[0]
        await pilot.press("colon")
        await type_text(pilot, "columns host,cpu")
        await pilot.press("enter")
        await until(pilot, lambda: table.shown_columns == ["mark", "host", "name", "state", "cpu"], what=":columns")
        await pilot.press("colon")
        await type_text(pilot, "columns +tags -cpu")
        await pilot.press("enter")
        await until(pilot, lambda: table.shown_columns == ["mark", "host", "name", "state", "tags"], what="+/-")
        assert "prod" in screen_lines(table)[1] or "lab" in screen_lines(table)[1]
        await pilot.press("colon")
        await type_text(pilot, "columns all")
        await pilot.press("enter")
        # every column but NODE: no domain here runs on a node of a pool or cluster (not "no room" either)
        await until(pilot, lambda: len(table.shown_columns) == len(COLUMNS) - 1, what="every column")
        assert "node" not in table.shown_columns and table.dropped_columns() == []


async def test_numbers_sort_biggest_first_text_a_to_z_and_the_header_says_which() -> None:
    app, _ = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        await click_header(pilot, app, "cpu")
        await until(pilot, lambda: table.sort_column == "cpu", what="sorted by cpu")
        assert table.sort_reverse and names(app)[:2] == ["web-1", "web-3"]  # 95 %, 85 %
        assert "CPU%▼" in screen_lines(table)[0]
        await click_header(pilot, app, "cpu")  # again: the other way
        await until(pilot, lambda: not table.sort_reverse, what="ascending")
        assert "CPU%▲" in screen_lines(table)[0] and names(app)[-1] == "web-1"
        await pilot.press("colon")
        await type_text(pilot, "sort vcpus")
        await pilot.press("enter")
        await until(pilot, lambda: table.sort_column == "vcpus", what=":sort vcpus")
        assert table.sort_reverse and names(app)[0] == "db-1"  # 8 vCPUs
        await click_header(pilot, app, "name")
        await until(pilot, lambda: table.sort_column == "name", what="sorted by name")
        assert not table.sort_reverse and names(app) == sorted(names(app))


async def test_thresholds_colour_cells_and_mark_them_for_no_color() -> None:
    app, _ = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        variables = app.theme_variables

        def cell(name: str, column: str) -> object:
            key = next(k for k in table.shown_keys() if table.rows_by_key[k].domain.name == name)
            return table.get_row(key)[table.shown_columns.index(column)]

        crit, warn, fine = cell("web-1", "cpu"), cell("web-3", "cpu"), cell("web-2", "cpu")
        assert (str(crit), str(warn), str(fine)) == ("!!95.0", "!85.0", "20.0")  # readable without colour
        assert isinstance(crit.style, Style) and crit.style.bold  # type: ignore[attr-defined]
        assert crit.style.color == Style.parse(variables["error"]).color  # type: ignore[attr-defined]
        assert warn.style.color == Style.parse(variables["warning"]).color  # type: ignore[attr-defined]
        assert not fine.style  # type: ignore[attr-defined]
        legend = dict(app.fleet_screen.threshold_legend())
        assert "CPU% >= 80%" in legend["!"] and "CPU% >= 95%" in legend["!!"]


async def test_data_age_past_its_threshold_marks_the_host_cell() -> None:
    conf = config.parse("thresholds:\n  age: {warn: 0.5, crit: 3600}\n", "config.yaml")
    app, _ = make_app(config=conf)  # polled once an hour: the data ages from the first poll on
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        host = INDEX["host"]
        await until(pilot, lambda: all(t[host].startswith("!") for t in table._texts.values()), what="aged hosts")
        key = table.shown_keys()[0]
        cell = table.get_row(key)[table.shown_columns.index("host")]
        assert cell.style.color == Style.parse(app.theme_variables["warning"]).color  # type: ignore[attr-defined]
        assert "!kvm1" in "\n".join(screen_lines(table))
        assert "data age >= 0.5s" in dict(app.fleet_screen.threshold_legend())["!"]


CONSOLE = """\
theme: nord
sort: {column: cpu}
columns: [host, cpu, vcpus]
keys:
  columns: C
views:
  busy:
    filter: "cpu>=50"
    sort: {column: cpu, direction: asc}
    columns: [host, cpu, mem]
  esx:
    filter: "hv:esxi"
"""


async def test_the_config_sets_theme_sort_columns_and_keys() -> None:
    app, _ = make_app(config=config.parse(CONSOLE, "config.yaml"))
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        assert app.theme == "nord"
        assert (table.sort_column, table.sort_reverse) == ("cpu", True) and names(app)[0] == "web-1"
        assert table.shown_columns == ["mark", "host", "name", "state", "cpu", "vcpus"]
        await pilot.press("c")  # rebound to C: c does nothing now
        assert app.screen is app.fleet_screen
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ColumnChooser), what="the chooser on C")


async def test_an_unknown_theme_in_the_config_is_a_notice_with_file_and_line() -> None:
    app, _ = make_app(config=config.parse("columns: [cpu]\ntheme: no-such-theme\n", "config.yaml"))
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        await until(pilot, lambda: any("config.yaml:2: theme: no theme named 'no-such-theme'" in str(n.message)
                                       for n in app._notifications), what="the notice")
        assert app.is_running


async def test_a_view_applies_its_filter_sort_and_columns() -> None:
    app, _ = make_app(config=config.parse(CONSOLE, "config.yaml"))
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        await pilot.press("colon")
        await type_text(pilot, "view busy")
        await pilot.press("enter")
        await until(pilot, lambda: names(app) == ["db-1", "web-3", "web-1"], what="the busy view")  # cpu>=50, ascending
        assert table.shown_columns == ["mark", "host", "name", "state", "cpu", "mem"]
        assert "filter 'cpu>=50'" in app.fleet_screen._summary
        await pilot.press("colon")
        await type_text(pilot, "view esx")  # a view without sort or columns keeps them
        await pilot.press("enter")
        await until(pilot, lambda: set(names(app)) == {"web-3", "ci-1"}, what="the esx view")
        assert table.sort_column == "cpu" and "mem" in table.shown_columns
        await pilot.press("colon")
        await type_text(pilot, "view nope")
        await pilot.press("enter")
        await until(pilot, lambda: any("no view named 'nope' (views: busy, esx)" in str(n.message)
                                       for n in app._notifications), what="the error")


async def test_the_interval_command_changes_the_poll_cadence() -> None:
    app, _ = make_app()  # hosts polled once an hour
    async with app.run_test(size=(160, 50)) as pilot:
        await loaded(pilot, app)

        def polls() -> int:
            return min(view.health.polls for view in app.fleet.views())

        assert polls() == 1
        await pilot.press("colon")
        await type_text(pilot, "interval 0.2")
        await pilot.press("enter")
        await until(pilot, lambda: polls() >= 6, timeout=20.0, what="polls every 0.2 s")
        assert app.fleet.interval("kvm1") == 0.2
        assert any("polling every 0.2 s" in str(n.message) for n in app._notifications)
        await pilot.press("colon")
        await type_text(pilot, "interval default")
        await pilot.press("enter")
        await until(pilot, lambda: app.fleet.interval("kvm1") == 3600.0, what="back to the inventory's")


@pytest.mark.parametrize("line", ["columns nope", "columns +cpu name", "interval 0.01", "interval soon", "view a b"])
def test_bad_new_commands_say_why(line: str) -> None:
    from vfleet.screens.commands import parse_command

    with pytest.raises(ValueError, match=r"unknown|usage"):
        parse_command(line)


def test_every_rebindable_action_is_a_binding_of_the_fleet_screen() -> None:
    from vfleet.screens.fleet import FleetScreen

    ids = {b.id for b in FleetScreen.BINDINGS if not isinstance(b, tuple)}
    assert set(config.KEY_ACTIONS) <= ids
