"""Hosts, events and jobs panes of the fleet screen."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from vfleet.core.aggregates import (
    SUMMARY_COLUMNS,
    FleetSummary,
    HostSummary,
    hypervisor_label,
    summarize_fleet,
    summarize_host,
    summarize_nodes,
    summary_cells,
)
from vfleet.core.engine import HostView
from vfleet.core.models import ActionResult, DomainEvent, HostStatus
from vfleet.core.output import human_duration
from vfleet.core.sanitize import display_width, printable
from vfleet.widgets.jobs import Job
from vfleet.widgets.live_table import LiveTable

# Theme variable for each host status (resolved against the running theme). A healthy
# host is left plain: problems stand out, and a plain cell costs fewer bytes per repaint.
STATUS_COLOURS = {
    HostStatus.CONNECTING: "secondary",
    HostStatus.STALE: "warning",
    HostStatus.DEGRADED: "error",
    HostStatus.DOWN: "error",
    HostStatus.AUTH_FAILED: "error",
}
HOST_COLUMNS = (("host", "HOST"), ("status", "STATUS"), *SUMMARY_COLUMNS, ("hv", "HV"), ("error", "LAST ERROR"))
_KEYS = tuple(key for key, _ in HOST_COLUMNS)
_RIGHT = frozenset(key for key, _ in SUMMARY_COLUMNS)
FLEET_ROW = "fleet"  # the totals row; host rows are keyed "host:NAME", so no host can take its place
_HOST_PREFIX = "host:"
_NODE_PREFIX = "node:"  # a server of a pool or cluster, under its host: "node:HOST\x1fNODE"
_NODE_SEP = "\x1f"  # never in an inventory name
_ERROR_WIDTH = 100  # the pane shows the start of an error; the host screen shows all of it


def health_text(view: HostView, now: float) -> str:
    """UP, STALE/DEGRADED with the age of the data, DOWN/AUTH_FAILED (the error goes in its own column)."""
    status = view.health.status
    age = view.health.data_age(now)
    if status is HostStatus.UP:
        return "UP"
    if status is HostStatus.STALE:
        return f"STALE {_age(age)}"
    if status is HostStatus.DEGRADED:
        return f"DEGRADED {_age(age)}"
    if status is HostStatus.CONNECTING:
        return "CONNECTING" if age is None else f"CONNECTING {_age(age)}"
    word = "DOWN" if status is HostStatus.DOWN else "AUTH-FAILED"
    return word if age is None else f"{word} {_age(age)}"


def _age(age: float | None) -> str:
    if age is None:
        return "no data"
    return f"{age:.0f}s old" if age < 60 else f"{human_duration(age)} old"


def host_texts(view: HostView, summary: HostSummary, now: float) -> tuple[str, ...]:
    """The plain text of a host's cells, in HOST_COLUMNS order."""
    status = health_text(view, now) + (" ro" if view.read_only else "")
    error = "" if view.health.status is HostStatus.UP else (view.health.last_error or "")
    error = error.removeprefix(f"{view.name}: ")  # the row names the host already
    if len(error) > _ERROR_WIDTH:
        error = error[: _ERROR_WIDTH - 1] + "…"
    return (printable(view.name), status, *summary_cells(summary), printable(hypervisor_label(view)), printable(error))


def node_texts(node: HostSummary) -> tuple[str, ...]:
    """A server of a pool or cluster, on a line under its host: the host's columns for its domains."""
    return (f" └ {printable(node.node or '-')}", "", *summary_cells(node), "", "")


class _Ordered(Text):
    """A row's first cell, carrying the row's place: the fleet row, then each host followed by its nodes."""

    order: tuple[int, int, int] = (0, 0, 0)


def fleet_texts(fleet: FleetSummary) -> tuple[str, ...]:
    up = fleet.hosts_in(HostStatus.UP)
    return ("FLEET", f"{up}/{fleet.hosts} up", *summary_cells(fleet), "", "")


class HostsPane(LiveTable[Text]):
    """Every host with its aggregates, under a fixed fleet-totals row; updated cell by cell.

    A host's CPU use moves on every poll. Only the spans of the cells that changed are
    refreshed, and the terminal gets each such line from its start up to the last
    changed cell (that is how Textual writes a partial line): the moving columns come
    first, so a screenful of hosts costs a few hundred bytes per tick over SSH.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: object) -> None:
        super().__init__(cursor_type="row", fixed_rows=1, **kwargs)
        self._clock = clock
        self._shown: dict[str, tuple[str, ...]] = {}  # host name -> its texts on screen
        self._summaries: dict[str, tuple[HostView, HostSummary]] = {}
        self._node_summaries: dict[str, tuple[HostSummary, ...]] = {}  # host -> its servers (pools, clusters)
        self._node_rows: dict[str, set[str]] = {}  # host -> the row keys of its servers' lines
        self._places: dict[str, int] = {}  # host -> its place (the order hosts were first seen)
        self._order: dict[str, tuple[int, int, int]] = {FLEET_ROW: (0, 0, 0)}  # row key -> its place
        self._fleet: tuple[str, ...] = ()
        self._fleet_summary = summarize_fleet([])
        self._widths: dict[str, int] = {}  # the widest text each column has held
        self._touched_cells: dict[str, set[str]] = {}
        self.colours: dict[str, Style] = {}

    def on_mount(self) -> None:
        for key, label in HOST_COLUMNS:
            self.add_column(Text(label, justify="right" if key in _RIGHT else "left"), key=key)
            self._widths[key] = len(label)
        self._add_fleet_row()

    @property
    def fleet_summary(self) -> FleetSummary:
        """The totals of every host applied so far (the FLEET row)."""
        return self._fleet_summary

    def cell_text(self, host: str | None, column: str) -> str:
        """What a cell of a host's row (None: the FLEET row) shows; "" before the host was applied."""
        texts = self._fleet if host is None else self._shown.get(host, ())
        return texts[_KEYS.index(column)] if texts else ""

    def apply(self, views: Iterable[HostView]) -> None:
        now = self._clock()
        added_nodes = False
        with self.updating_rows():
            for view in views:
                place = self._places.setdefault(view.name, len(self._places) + 1)
                self._order[host_row_key(view.name)] = (place, 0, 0)
                texts = host_texts(view, self._summarize(view, now), now)
                old = self._shown.get(view.name)
                if texts != old:
                    self._shown[view.name] = texts
                    self._show(host_row_key(view.name), old, texts, view.health.status)
                added_nodes |= self._show_nodes(view.name, place)
            self._fleet_summary = summarize_fleet([summary for _, summary in self._summaries.values()])
            texts = fleet_texts(self._fleet_summary)
            if texts != self._fleet:
                old, self._fleet = self._fleet, texts
                self._show(FLEET_ROW, old, texts, None)
        if added_nodes:  # rows are added at the end: put each server back under its host (rare)
            self.sort(_KEYS[0], key=lambda cell: getattr(cell, "order", (0, 0, 0)))

    def _show_nodes(self, host: str, place: int) -> bool:
        """The lines of a host's servers, under it; True when one was added."""
        nodes = self._node_summaries.get(host, ())
        shown = self._node_rows.get(host)
        if not nodes and not shown:  # a single host: nothing to do (the pane runs this for every host each second)
            return False
        keys = {node_row_key(host, n.node or ""): n for n in nodes}
        added = False
        for index, (key, node) in enumerate(keys.items(), start=1):
            self._order[key] = (place, index, 0)
            texts = node_texts(node)
            old = self._shown.get(key)
            if texts != old:
                self._shown[key] = texts
                self._show(key, old, texts, None)
                added |= old is None
        for gone in (shown or set()) - keys.keys():
            del self._shown[gone]
            self.remove_row(gone)
        self._node_rows[host] = set(keys)
        return added

    def _summarize(self, view: HostView, now: float) -> HostSummary:
        # The health tick re-applies every host each second: reuse a summary while its data is the same.
        cached = self._summaries.get(view.name)
        if cached is not None:
            old, summary = cached
            same = old.rows is view.rows and old.facts is view.facts and old.health.status is view.health.status
            if same and (old.health.last_ok_at is None) == (view.health.last_ok_at is None):
                return summary
        summary = summarize_host(view, now)
        self._summaries[view.name] = (view, summary)
        self._node_summaries[view.name] = summarize_nodes(view, now)
        return summary

    def _show(self, key: str, old: tuple[str, ...] | None, texts: tuple[str, ...], status: HostStatus | None) -> None:
        cells = self._cells(status, texts, bold=key == FLEET_ROW, order=self._order.get(key, (0, 0, 0)))
        grown = self._grow(texts)
        if old is None:
            self.add_row(*cells, key=key)
            return
        changed = {k: cell for k, new, before, cell in zip(_KEYS, texts, old, cells, strict=True) if new != before}
        # A text wider than its column has been: let DataTable re-measure that column (rare).
        for column in grown & changed.keys():
            self.update_cell(key, column, changed.pop(column), update_width=True)
        if changed:
            self.set_cells(key, changed)
            self._touched_cells.setdefault(key, set()).update(changed)

    def _cells(
        self, status: HostStatus | None, texts: tuple[str, ...], *, bold: bool, order: tuple[int, int, int]
    ) -> list[Text]:
        colour = self.colours.get(STATUS_COLOURS.get(status, ""), Style()) if status is not None else Style()
        base = Style(bold=True) if bold else Style()
        first = _Ordered(texts[0], style=base, justify="left", no_wrap=True, end="")
        first.order = order
        return [first] + [
            Text(
                text,
                style=colour + base if key == "status" else base,
                justify="right" if key in _RIGHT else "left",
                no_wrap=True,
                end="",
            )
            for key, text in zip(_KEYS[1:], texts[1:], strict=True)
        ]

    def _grow(self, texts: tuple[str, ...]) -> set[str]:
        grown = set()
        for key, text in zip(_KEYS, texts, strict=True):
            width = display_width(text)
            if width > self._widths.get(key, 0):
                self._widths[key] = width
                grown.add(key)
        return grown

    def _add_fleet_row(self) -> None:
        self._fleet = fleet_texts(self._fleet_summary)
        self._show(FLEET_ROW, None, self._fleet, None)

    def _repaint_rows(self) -> None:
        """Repaint the cells that changed, not their whole lines."""
        touched, self._touched_cells = self._touched_cells, {}
        self._touched.clear()
        if not touched:
            return
        header = self.header_height if self.show_header else 0
        top = int(self.scroll_offset.y)
        height = self.size.height
        spans: dict[str, tuple[int, int]] = {}
        x = -int(self.scroll_offset.x)
        for column in self.ordered_columns:
            width = column.get_render_width(self)
            spans[str(column.key.value)] = (x, width)
            x += width
        for key, columns in touched.items():
            if key not in self._row_locations:
                continue
            index = self.get_row_index(key)
            # the fleet row is fixed under the header; host rows scroll beneath it
            line = header if index < self.fixed_rows else header + index - top
            if (index >= self.fixed_rows and line < header + self.fixed_rows) or line >= height:
                continue
            for name in columns:
                left, width = spans[name]
                self.refresh(Region(left, line, width, 1))

    def restyle(self) -> None:
        self._shown.clear()
        self._node_rows.clear()
        self._node_summaries.clear()
        self._summaries.clear()
        self.clear()
        self._add_fleet_row()

    def host_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        return host_of(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def host_row_key(host: str) -> str:
    return _HOST_PREFIX + host


def node_row_key(host: str, node: str) -> str:
    return f"{_NODE_PREFIX}{host}{_NODE_SEP}{node}"


def host_of(row_key: str | None) -> str | None:
    """The host a row of the pane stands for, a server's line its host's (None for the fleet row)."""
    if row_key is not None and row_key.startswith(_NODE_PREFIX):
        return row_key.removeprefix(_NODE_PREFIX).partition(_NODE_SEP)[0]
    if row_key is None or not row_key.startswith(_HOST_PREFIX):
        return None
    return row_key.removeprefix(_HOST_PREFIX)


def event_line(event: DomainEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.wall_time)) if event.wall_time else "--:--:--"
    detail = f" ({event.detail})" if event.detail else ""
    return printable(f"{stamp} {event.host}/{event.domain} {event.kind}{detail}")


class EventsPane(OptionList):
    """The fleet's lifecycle events, newest first, one line each; enter opens one in full."""

    LIMIT = 50

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)
        self.events: list[DomainEvent] = []

    def show(self, events: Iterable[DomainEvent]) -> None:
        latest = list(itertools.islice(events, self.LIMIT))
        if latest == self.events and self.option_count:
            return
        highlighted = self.selected_event()
        self.events = latest
        self.clear_options()
        if not latest:
            self.add_option(Option("no events yet", disabled=True))
            return
        self.add_options(Option(event_line(e)) for e in latest)
        if highlighted is not None and highlighted in latest:  # the highlight stays on its event
            self.highlighted = latest.index(highlighted)

    @property
    def lines(self) -> list[str]:
        return [event_line(e) for e in self.events]

    def selected_event(self) -> DomainEvent | None:
        index = self.highlighted
        return self.events[index] if index is not None and index < len(self.events) else None


class JobsPane(OptionList):
    """One line per job, newest first, updated as its results come back; enter opens it in full."""

    LIMIT = 100

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)
        self.jobs: dict[int, Job] = {}

    @property
    def lines(self) -> list[str]:
        return [printable(job.line()) for job in reversed(self.jobs.values())]

    def job_started(self, job: Job) -> None:
        self.jobs[job.number] = job
        while len(self.jobs) > self.LIMIT:
            del self.jobs[next(iter(self.jobs))]
        highlighted = self.selected_job()
        self.clear_options()
        self.add_options(Option(printable(j.line()), id=f"job-{j.number}") for j in reversed(self.jobs.values()))
        if highlighted is not None and highlighted.number in self.jobs:
            self.highlighted = self.get_option_index(f"job-{highlighted.number}")

    def result(self, number: int, result: ActionResult) -> None:
        if (job := self.jobs.get(number)) is not None:
            job.add(result)
            self._redraw(job)

    def job_done(self, number: int, error: str = "") -> None:
        if (job := self.jobs.get(number)) is not None:
            job.done, job.error = True, error
            self._redraw(job)

    def _redraw(self, job: Job) -> None:
        self.replace_option_prompt(f"job-{job.number}", printable(job.line()))

    def selected_job(self) -> Job | None:
        option = self.highlighted_option
        if option is None or option.id is None:
            return None
        return self.jobs.get(int(option.id.removeprefix("job-")))

    def latest(self) -> Job | None:
        return next(reversed(self.jobs.values()), None)
