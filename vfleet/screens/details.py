"""The full text of a job or an event: the panes show one line each, cut to fit."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from vfleet.core.models import DomainEvent
from vfleet.core.sanitize import printable, printable_lines
from vfleet.widgets.jobs import Job

HINT = "escape closes · up/down pgup/pgdn scroll"


def _grid(rows: Iterable[tuple[Text, Text]]) -> Table:
    # Two columns: whatever wraps in the second stays under itself, the first stays readable.
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    for left, right in rows:
        grid.add_row(left, right)
    return grid


def job_title(job: Job) -> str:
    count = len(job.targets)
    return f"job {job.number}: {job.verb} on {count} domain{'s' if count != 1 else ''}: {job.status()}"


def job_rows(job: Job) -> list[tuple[Text, Text]]:
    """One row per target, in plan order: what happened, where, and the whole message."""
    rows = []
    for target in job.targets:
        result = job.result_for(target)
        place = Text(printable(f"{target.host}/{target.domain}"))
        if result is None:
            rows.append((Text("pending"), place))
            continue
        word = "FAILED" if result.outcome == "failed" else result.outcome
        if result.ok and not result.noop and result.state_after is not None:
            place.append(f"  -> {result.state_after.value}")
        if result.message:
            place.append("\n" + printable_lines(result.message))
        rows.append((Text(word, style="" if result.ok else "bold"), place))
    if job.error:
        rows.append((Text("stopped", style="bold"), Text(printable_lines(job.error))))
    return rows


class JobScreen(ModalScreen[None]):
    """Every target of one job with its full result and error; follows the job while it runs."""

    BINDINGS = [Binding("escape,q,J", "close", "Close")]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        with Vertical(id="job", classes="dialog fullsize"):
            yield Label(job_title(self.job), id="job-title", classes="dialog-title", markup=False)
            with VerticalScroll(id="job-body", classes="fullsize-body"):
                yield Static(_grid(job_rows(self.job)), id="job-results")
            yield Label(HINT, classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#job-body").focus()

    def refresh_job(self) -> None:
        """A result came back: show it."""
        self.query_one("#job-title", Label).update(job_title(self.job))
        self.query_one("#job-results", Static).update(_grid(job_rows(self.job)))

    def action_close(self) -> None:
        self.dismiss(None)


def event_rows(event: DomainEvent) -> list[tuple[Text, Text]]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.wall_time)) if event.wall_time else "unknown"
    fields = [
        ("time", when),
        ("host", printable(event.host)),
        ("domain", printable(event.domain)),
        ("key", printable(event.uuid or "-")),
        ("kind", printable(event.kind)),
        ("detail", printable_lines(event.detail) or "-"),
    ]
    return [(Text(name, style="bold"), Text(value)) for name, value in fields]


class EventScreen(ModalScreen[None]):
    """One lifecycle event with every field in full."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, event: DomainEvent) -> None:
        super().__init__()
        self.domain_event = event

    def compose(self) -> ComposeResult:
        with Vertical(id="event", classes="dialog fullsize"):
            yield Label("event", classes="dialog-title")
            with VerticalScroll(id="event-body", classes="fullsize-body"):
                yield Static(_grid(event_rows(self.domain_event)), id="event-fields")
            yield Label(HINT, classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#event-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
