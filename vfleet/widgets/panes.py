"""Hosts, events and jobs panes of the fleet screen."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable, OptionList
from textual.widgets.option_list import Option

from vfleet.core.engine import HostView
from vfleet.core.models import ActionResult, DomainEvent, HostStatus
from vfleet.core.output import human_duration
from vfleet.core.sanitize import printable
from vfleet.widgets.jobs import Job

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
