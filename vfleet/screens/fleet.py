"""The main screen: every domain of the fleet, hosts health, events and jobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rich.style import Style
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static

from vfleet.core.config import Config
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import VFleetError
from vfleet.core.fields import starts_descending
from vfleet.core.models import HostStatus, PowerState, Verb
from vfleet.core.operations import Operations
from vfleet.core.output import human_bytes
from vfleet.core.sanitize import printable
from vfleet.screens.commands import Command, parse_command
from vfleet.screens.details import EventScreen, JobScreen
from vfleet.screens.fleet_help import fleet_help
from vfleet.screens.fleet_operator import FleetOperator
from vfleet.screens.modals import HelpScreen
from vfleet.widgets.columns import CHOOSABLE, SORTABLE, threshold_legend
from vfleet.widgets.fleet_table import FleetTable
from vfleet.widgets.panes import EventsPane, HostsPane, JobsPane, host_of

FILTER_DEBOUNCE = 0.15  # seconds of quiet typing before the table follows the filter box
FILTER_HINT = "filter as you type: web !state:off host:kvm*|esx* cpu>80 (enter keeps, escape cancels)"
# Binding action -> its name in the config file's `keys:` (vfleet.core.config.KEY_ACTIONS).
_KEY_NAMES = {
    "filter": "filter",
    "mark": "mark",
    "mark_filtered": "mark_filtered",
    "unmark": "unmark",
    "actions": "actions",
    "columns": "columns",
    "freeze": "freeze",
    "open_domain": "open_domain",
    "open_host": "open_host",
    "focus_hosts": "focus_hosts",
    "job_detail": "job_detail",
    "sort_step(-1)": "sort_prev",
    "sort_step(1)": "sort_next",
    "reverse_sort": "reverse_sort",
    "toggle_pane('#hosts')": "hosts_pane",
    "toggle_pane('#events')": "events_pane",
    "toggle_pane('#jobs')": "jobs_pane",
    "command": "command",
    "console": "console",
    "snapshots": "snapshots",
    "help": "help",
    "app.quit": "quit",
}


def keyed(bindings: list[BindingType]) -> list[BindingType]:
    """Give each binding the id the config file's `keys:` names it by (an app keymap rebinds it)."""
    return [
        replace(b, id=_KEY_NAMES[b.action]) if isinstance(b, Binding) and b.action in _KEY_NAMES else b
        for b in bindings
    ]


class FleetScreen(FleetOperator):
    BINDINGS = keyed([
        # Priority: the app runs these before it hands on the keys typed after them, so the
        # box has focus when they arrive (`/db` enter in one go filters on db). check_action
        # lets `/` and `:` through to a focused box.
        Binding("slash", "filter", "Filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("space", "mark", "Mark"),
        Binding("asterisk", "mark_filtered", "Mark filtered", show=False),
        Binding("u", "unmark", "Unmark all", show=False),
        Binding("a", "actions", "Actions"),
        Binding("c", "columns", "Columns"),
        Binding("Z", "freeze", "Freeze order", show=False),
        Binding("enter", "open_domain", "Detail", show=False),
        Binding("h", "open_host", "Host", show=False),
        Binding("less_than_sign", "sort_step(-1)", "Sort <", show=False),
        Binding("greater_than_sign", "sort_step(1)", "Sort >", show=False),
        Binding("r", "reverse_sort", "Reverse", show=False),
        Binding("p", "toggle_pane('#hosts')", "Hosts pane", show=False),
        Binding("H", "focus_hosts", "Hosts list", show=False),
        Binding("e", "toggle_pane('#events')", "Events pane", show=False),
        Binding("j", "toggle_pane('#jobs')", "Jobs pane", show=False),
        Binding("J", "job_detail", "Job detail", show=False),
        Binding("colon", "command", "Command", priority=True),
        Binding("o", "console", "Console", show=False),
        Binding("s", "snapshots", "Snapshots", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ])

    def __init__(
        self,
        fleet: Fleet,
        operations: Operations,
        *,
        demo: bool = False,
        read_only: bool = False,
        config: Config | None = None,
    ) -> None:
        super().__init__()
        self.config = config or Config()
        self.fleet = fleet
        self.operations = operations
        self.demo = demo
        self.read_only = read_only
        self.views: dict[str, HostView] = {}
        self._summary = ""
        self._filter_timer: Timer | None = None
        self._filter_before = ""  # the filter in force when the box opened: escape goes back to it

    def compose(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield Label("vfleet", id="title")
            if self.demo:
                yield Label(" DEMO ", id="demo-badge", classes="badge")
            if self.read_only:
                yield Label(" READ-ONLY ", id="ro-badge", classes="badge")
            yield Static("", id="summary", markup=False)
        yield HostsPane(id="hosts")
        yield FleetTable(
            self.fleet.history, thresholds=self.config.thresholds, columns=self.config.columns, id="domains"
        )
        with Horizontal(id="bottom"):
            yield EventsPane(id="events")
            yield JobsPane(id="jobs")
        with Vertical(id="filter-bar"):  # the box and its error together: the error shows where one types
            yield Input(placeholder=FILTER_HINT, id="filter")
            yield Label("", id="filter-error", classes="error", markup=False)
        yield Input(
            placeholder="command: sort cpu desc | filter ... | shutdown | host NAME | theme NAME | q", id="command"
        )
        # Compact, with only the keys a newcomer needs first: `? Help` and `q Quit` must fit in 80 columns.
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.focus()
        if self.config.sort is not None:
            self.table.sort_by(self.config.sort.column, reverse=self.config.sort.descending)
        self.apply_theme()
        self.show_events()
        self._update_summary()

    def apply_theme(self) -> None:
        variables = self.app.theme_variables
        names = ("success", "warning", "error", "accent", "secondary")
        colours: dict[str, Style] = {name: Style.parse(variables[name]) for name in names if name in variables}
        self.table.colours = colours
        self.query_one(HostsPane).colours = colours
        self.table.refresh_styles()
        hosts = self.query_one(HostsPane)
        hosts.restyle()
        hosts.apply(self.views.values())

    # -- live data ----------------------------------------------------------------

    def apply_views(self, views: Iterable[HostView]) -> None:
        views = list(views)
        for view in views:
            self.views[view.name] = view
        self.table.apply(views)
        self.query_one(HostsPane).apply(views)
        self._update_summary()

    def show_events(self) -> None:
        self.query_one(EventsPane).show(self.fleet.events)

    def _update_summary(self) -> None:
        counts = {s: 0 for s in HostStatus}
        for view in self.views.values():
            counts[view.health.status] += 1
        fleet = self.query_one(HostsPane).fleet_summary  # the same totals as the pane's FLEET row
        parts = []  # what the operator set comes first: it must not be cut off on a narrow terminal
        if self.table.selector:
            parts.append(f"filter '{self.table.selector.text}': {self.table.shown_count} shown")
        if self.table.marked:
            parts.append(f"{len(self.table.marked)} marked")
        if self.table.frozen:
            parts.append("FROZEN")
        parts += [
            f"{len(self.views)} hosts: " + " ".join(f"{n} {s.value}" for s, n in counts.items() if n),
            f"{fleet.domains or 0} domains, {fleet.count(PowerState.RUNNING)} running, {fleet.vcpus or 0} vCPU",
            f"mem {human_bytes(fleet.mem_used_bytes)} used/{human_bytes(fleet.mem_allocated_bytes)}",
            f"sort {self.table.sort_column}{' desc' if self.table.sort_reverse else ''}",
        ]
        text = " · ".join(parts)
        summary = self.query_one("#summary", Static)
        if text != self._summary:
            self._summary = text
            summary.update(text, layout=False)  # one line of fixed size: no re-layout per tick

    # -- filter and commands ----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # a `/` or `:` typed into a box is text
        return not (action in ("filter", "command") and isinstance(self.focused, Input))

    def action_filter(self, text: str | None = None) -> None:
        box = self.query_one("#filter", Input)
        bar = self.query_one("#filter-bar")
        if not bar.display:
            self._filter_before = self.table.selector.text
        box.value = self.table.selector.text if text is None else text
        box.cursor_position = len(box.value)
        bar.display = True
        # Focus now, not after the keys already queued: `/db` typed in one go must reach the box.
        self.set_focus(box)

    def action_clear_filter(self) -> None:
        if self.table.selector:
            self.set_filter("")
        self._close_filter()

    def set_filter(self, text: str) -> bool:
        """Filter the table; a bad term is shown under the box and the table keeps its last good filter."""
        error = self.query_one("#filter-error", Label)
        box = self.query_one("#filter", Input)
        try:
            if " ".join(text.split()) != self.table.selector.text:
                self.table.set_filter(text)
        except VFleetError as exc:
            error.update(printable(str(exc)))
            error.display = True
            box.add_class("-invalid")
            return False
        error.display = False
        box.remove_class("-invalid")
        self._update_summary()
        return True

    def _close_filter(self) -> None:
        self._cancel_typed_filter()
        self.query_one("#filter-bar").display = False
        self.query_one("#filter-error", Label).display = False
        self.set_focus(self.table)

    def _cancel_typed_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        # Debounced: one rebuild of the table per pause in typing, not one per key.
        self._cancel_typed_filter()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE, self._apply_typed_filter)

    def _apply_typed_filter(self) -> None:
        self._filter_timer = None
        self.set_filter(self.query_one("#filter", Input).value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._cancel_typed_filter()
        if self.set_filter(event.value):
            self._close_filter()

    def action_command(self) -> None:
        box = self.query_one("#command", Input)
        box.value = ""
        box.display = True
        self.set_focus(box)  # now: keys typed right after `:` belong to the command

    @on(Input.Submitted, "#command")
    def _command_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.set_focus(self.table)
        try:
            command = parse_command(event.value)
        except ValueError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if command is not None:
            self.run_command(command)

    def run_command(self, command: Command) -> None:
        name, args = command.name, command.args
        if name == "quit":
            self.app.exit()
        elif name == "filter":
            if not self.set_filter(" ".join(args)):
                self.action_filter(" ".join(args))  # the bad term, its error, where it can be fixed
        elif name == "sort":
            # no direction: the column's own (numbers biggest first), even when it is the current one
            self.table.sort_by(args[0], reverse=args[1] == "desc" if len(args) > 1 else starts_descending(args[0]))
            self._update_summary()
        elif name == "host":
            self.open_host(args[0])
        elif name == "theme":
            if args[0] not in self.app.available_themes:
                known = " ".join(sorted(self.app.available_themes))
                self.notify(f"no theme named {args[0]!r} (known: {known})", severity="error", markup=False)
                return
            self.app.theme = args[0]
        elif name == "help":
            self.action_help()
        elif name == "columns":
            self.set_columns(args)
        elif name == "view":
            self.apply_view(args[0] if args else None)
        elif name == "interval":
            self.change_interval(args[0] if args else None)
        elif name == "verb":
            self.run_verb(Verb(args[0]))
        elif name == "migrate":
            self.migrate(args[0] if args else None)
        elif name == "console":
            self.run_worker(self.action_console(), exclusive=True, group="console")

    def on_key(self, event: object) -> None:
        # escape inside an input: close it and go back to the table
        from textual.events import Key

        if not (isinstance(event, Key) and event.key == "escape" and isinstance(self.focused, Input)):
            return
        event.stop()
        if self.focused.id == "filter":  # cancel the edit: the filter from before `/` comes back
            self._cancel_typed_filter()
            self.set_filter(self._filter_before)
            self._close_filter()
        else:
            self.focused.display = False
            self.set_focus(self.table)

    # -- sort and marks ----------------------------------------------------------------

    def action_sort_step(self, step: int) -> None:
        """The previous / next column on screen; it sorts its own way (numbers biggest first)."""
        shown = [k for k in self.table.shown_columns if k in SORTABLE] or list(SORTABLE)
        index = shown.index(self.table.sort_column) if self.table.sort_column in shown else -1 if step > 0 else 0
        column = shown[(index + step) % len(shown)]
        self.table.sort_by(column, reverse=starts_descending(column))
        self._update_summary()

    def action_reverse_sort(self) -> None:
        self.table.sort_by(self.table.sort_column, reverse=not self.table.sort_reverse)
        self._update_summary()

    @on(DataTable.HeaderSelected, "#domains")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE:
            self.table.sort_by(key)
            self._update_summary()

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._update_summary()

    def action_mark_filtered(self) -> None:
        self.table.mark_shown()
        self._update_summary()

    def action_unmark(self) -> None:
        self.table.clear_marks()
        self._update_summary()

    def action_toggle_pane(self, selector: str) -> None:
        widget = self.query_one(selector)
        widget.display = not widget.display
        if not widget.display and self.focused is widget:
            self.set_focus(self.table)

    # -- jobs and events in full ---------------------------------------------------

    def action_job_detail(self) -> None:
        jobs = self.query_one(JobsPane)
        job = (jobs.selected_job() if self.focused is jobs else None) or jobs.latest()
        if job is None:
            self.notify("no jobs yet: a (actions) or :VERB starts one", severity="information")
            return
        self.app.push_screen(JobScreen(job))

    @on(OptionList.OptionSelected, "#jobs")
    def _job_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        job = self.query_one(JobsPane).selected_job()
        if job is not None:
            self.app.push_screen(JobScreen(job))

    @on(OptionList.OptionSelected, "#events")
    def _event_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        chosen = self.query_one(EventsPane).selected_event()
        if chosen is not None:
            self.app.push_screen(EventScreen(chosen))

    def action_help(self) -> None:
        bindings = [b for b in self.BINDINGS if isinstance(b, Binding)]
        sections = fleet_help(bindings)
        sections.insert(len(sections) - 1, ("Thresholds", self.threshold_legend()))  # the : commands stay last
        self.app.push_screen(HelpScreen("vfleet", sections=sections))

    def threshold_legend(self) -> list[tuple[str, str]]:
        """What the `!` and `!!` markers mean, at the thresholds in force (for the help screen)."""
        return threshold_legend(self.table.thresholds)

    # -- columns, views, interval --------------------------------------------------------

    def action_columns(self) -> None:
        from vfleet.screens.chooser import ColumnChooser

        self.app.push_screen(ColumnChooser(self.table))

    def set_columns(self, words: Iterable[str]) -> None:
        """`:columns`: the chooser; `all`; `a,b,c` exactly these; `+a -b` add and remove."""
        words = list(words)
        if not words:
            self.action_columns()
            return
        if words == ["all"]:
            self.table.set_columns(CHOOSABLE)
        elif all(w[0] in "+-" for w in words):
            chosen = set(self.table.chosen)
            for word in words:
                (chosen.add if word[0] == "+" else chosen.discard)(word[1:])
            self.table.set_columns(chosen)
        else:
            self.table.set_columns(words)
        dropped = [k for k in self.table.dropped_columns() if k != "mark"]
        if dropped:
            self.notify(f"no room at this width for: {', '.join(dropped)}", severity="warning", markup=False)

    def apply_view(self, name: str | None) -> None:
        """`:view NAME`: the view's filter, sort and columns (what it leaves out stays as it is)."""
        views = self.config.views
        if name is None:
            listing = "; ".join(f"{v.name}: {v.describe()}" for v in views.values())
            self.notify(printable(listing or "no views: define them under `views:` in the config file"), markup=False)
            return
        if name not in views:
            known = ", ".join(views) or "none defined"
            self.notify(printable(f"no view named {name!r} (views: {known})"), severity="error", markup=False)
            return
        view = views[name]
        if view.columns is not None:
            self.table.set_columns(view.columns)
        if view.sort is not None:
            self.table.sort_by(view.sort.column, reverse=view.sort.descending)
        self.set_filter(view.filter)
        self._update_summary()

    def change_interval(self, seconds: str | None) -> None:
        """`:interval 5`: every host polled each 5 s from its next tick; `default`: their own intervals."""
        if seconds is not None:
            self.fleet.set_interval(None if seconds == "default" else float(seconds))
        intervals = sorted({self.fleet.interval(name) for name in self.views} or {0.0})
        said = ", ".join(f"{i:g}" for i in intervals)
        self.notify(f"polling every {said} s", markup=False)

    # -- drill down -------------------------------------------------------------------

    @on(DataTable.RowSelected, "#domains")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_domain()

    def action_open_domain(self) -> None:
        from vfleet.screens.domain import DomainScreen

        row = self.table.row_at_cursor()
        if row is not None:
            self.app.push_screen(DomainScreen(self.fleet, row.host, row.domain.key))

    @on(DataTable.RowSelected, "#hosts")
    def _host_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        host = host_of(event.row_key.value)
        if host is not None:  # None: the fleet totals row
            self.open_host(host)

    def action_focus_hosts(self) -> None:
        """Into the hosts pane (shown if hidden) and back: a host without domains is reached from there."""
        hosts = self.query_one(HostsPane)
        if self.focused is hosts:
            self.table.focus()
            return
        hosts.display = True
        hosts.focus()
        if hosts.cursor_row < hosts.fixed_rows and hosts.row_count > hosts.fixed_rows:
            hosts.move_cursor(row=hosts.fixed_rows)  # onto the first host, off the totals

    def action_open_host(self) -> None:
        host = self.query_one(HostsPane).host_at_cursor() if self.focused is self.query_one(HostsPane) else None
        row = self.table.row_at_cursor()
        host = host or (row.host if row else None)
        if host is not None:
            self.open_host(host)

    def open_host(self, host: str) -> None:
        from vfleet.screens.host import HostScreen

        if host not in self.views:
            self.notify(printable(f"no host named {host!r}"), severity="error", markup=False)
            return
        self.app.push_screen(HostScreen(self.fleet, host))

    # -- actions: every one goes through the core's operations service ---------------

    def action_freeze(self) -> None:
        self.table.freeze(not self.table.frozen)
        self.notify("order frozen: rows keep their places (Z again resumes)" if self.table.frozen else "order live")
        self._update_summary()
