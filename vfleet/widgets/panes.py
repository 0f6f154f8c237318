"""Hosts, events and jobs panes of the fleet screen."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable, Log, Static

from vfleet.core.engine import HostView
from vfleet.core.models import ActionResult, DomainEvent, HostStatus
from vfleet.core.output import human_duration
from vfleet.core.sanitize import printable

# Theme variable for each host status (resolved against the running theme).
STATUS_COLOURS = {
    HostStatus.UP: "success",
    HostStatus.CONNECTING: "secondary",
    HostStatus.STALE: "warning",
    HostStatus.DEGRADED: "error",
    HostStatus.DOWN: "error",
    HostStatus.AUTH_FAILED: "error",
}
HOST_COLUMNS = (
    ("host", "HOST", 12),
    ("hv", "HV", 5),
    ("status", "STATUS", 18),
    ("doms", "DOMS", 5),
    ("error", "LAST ERROR", 60),
)


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


class HostsPane(DataTable[Text]):
    """One line per host, updated in place."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self._clock = clock
        self._shown: dict[str, tuple[str, ...]] = {}
        self.colours: dict[str, Style] = {}

    def on_mount(self) -> None:
        for key, label, width in HOST_COLUMNS:
            self.add_column(label, width=width, key=key)

    def apply(self, views: Iterable[HostView]) -> None:
        now = self._clock()
        for view in views:
            hv = view.facts.hypervisor if view.facts else view.config.driver
            status = health_text(view, now)
            error = "" if view.health.status is HostStatus.UP else (view.health.last_error or "")
            if view.read_only:
                status += " ro"
            texts = (printable(view.name), printable(hv), status, str(len(view.rows)), printable(error))
            old = self._shown.get(view.name)
            if old == texts:
                continue
            self._shown[view.name] = texts
            colour = self.colours.get(STATUS_COLOURS[view.health.status], Style())
            cells = [Text(t, style=colour if i == 2 else "", no_wrap=True, end="") for i, t in enumerate(texts)]
            if old is None:
                self.add_row(*cells, key=view.name)
            else:
                for (key, _, _), new, before, cell in zip(HOST_COLUMNS, texts, old, cells, strict=True):
                    if new != before:
                        self.update_cell(view.name, key, cell)

    def restyle(self) -> None:
        self._shown.clear()
        self.clear()

    def host_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def event_line(event: DomainEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.wall_time)) if event.wall_time else "--:--:--"
    detail = f" ({event.detail})" if event.detail else ""
    return printable(f"{stamp} {event.host}/{event.domain} {event.kind}{detail}")


class EventsPane(Static):
    """The fleet's lifecycle events, newest first."""

    LIMIT = 50

    def show(self, events: Iterable[DomainEvent]) -> None:
        lines = [event_line(e) for _, e in zip(range(self.LIMIT), events, strict=False)]
        self.update(Text("\n".join(lines) if lines else "no events yet", no_wrap=True))


class JobsPane(Log):
    """Each action's targets and their results, as they come back."""

    def job_started(self, job: int, verb: str, count: int) -> None:
        self.write_line(f"job {job}: {verb} on {count} domain{'s' if count != 1 else ''}")

    def result(self, job: int, result: ActionResult) -> None:
        if result.ok:
            after = result.state_after.value if result.state_after else "?"
            outcome = "no-op: " + result.message if result.noop else f"ok -> {after}"
        else:
            outcome = f"FAILED: {result.message}"
        self.write_line(printable(f"job {job}: {result.verb.value} {result.host}/{result.domain}: {outcome}"))

    def job_done(self, job: int, ok: int, failed: int) -> None:
        self.write_line(f"job {job}: done, {ok} ok, {failed} failed")
