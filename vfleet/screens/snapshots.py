"""Snapshots in the console: the per-domain snapshots screen, the name prompt, the `a` menu's entry.

Every change goes through the fleet screen's start_operation, as the `a` menu's verbs do:
the core's plan, its tier's confirmation (revert and delete: type the domain's name),
the audit log and the jobs pane. Listing is a read (no audit), like `vfleet snapshot list`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, DataTable, Footer, Input, Label

from vfleet.core.engine import Fleet
from vfleet.core.models import ActionParams, SnapshotInfo, SnapshotParams, Verb
from vfleet.core.operations import Operations, Target, read_snapshots
from vfleet.core.sanitize import printable
from vfleet.screens.modals import describe

DEFAULT_NAME = "pre-{date}"  # {date} and {time} are expanded once per operation by the core
MENU_LABEL = "snapshot"  # Verb.SNAPSHOT_CREATE in the `a` menu


@runtime_checkable
class Operator(Protocol):
    """What runs an operation from the console (the fleet screen)."""

    operations: Operations

    def start_operation(
        self,
        verb: Verb,
        targets: list[Target],
        hidden: int = 0,
        *,
        params: ActionParams | None = None,
        done: Callable[[], None] | None = None,
    ) -> None: ...


def operator(app: App[object]) -> Operator:
    screen = getattr(app, "fleet_screen", None)
    if not isinstance(screen, Operator):
        raise RuntimeError("no fleet screen to run operations")
    return screen


def create_refusal(operations: Operations, targets: Sequence[Target]) -> str | None:
    """None when a snapshot can be taken of some target; else the policy's reason (most common first)."""
    if operations.applicable_verbs(targets, (Verb.SNAPSHOT_CREATE,)):
        return None
    plan = operations.plan(Verb.SNAPSHOT_CREATE, targets, params=SnapshotParams(DEFAULT_NAME))
    reasons = Counter(d.refused or d.noop or "" for d in plan.decisions)
    return reasons.most_common(1)[0][0] if reasons else "nothing to snapshot"


def ask_and_create(
    app: App[object], targets: list[Target], hidden: int = 0, done: Callable[[], None] | None = None
) -> None:
    """The name (default pre-{date}), then the core's plan and its confirmation, as any verb."""

    def chosen(params: SnapshotParams | None) -> None:
        if params is not None:
            operator(app).start_operation(Verb.SNAPSHOT_CREATE, targets, hidden, params=params, done=done)

    app.push_screen(SnapshotName(targets), chosen)


class SnapshotName(ModalScreen[SnapshotParams | None]):
    """The new snapshot's name and whether to save a running guest's memory."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, targets: Sequence[Target]) -> None:
        super().__init__()
        self._targets = targets

    def compose(self) -> ComposeResult:
        with Vertical(id="snapshot-name-dialog", classes="dialog"):
            yield Label(f"Snapshot {describe(self._targets)}", classes="dialog-title", markup=False)
            yield Label("name ({date} and {time} are filled in once, the same for every target):", markup=False)
            yield Input(DEFAULT_NAME, id="snapshot-name")
            yield Checkbox("save the memory of running guests", True, id="snapshot-memory")
            yield Label("", id="snapshot-name-error", classes="error", markup=False)
            yield Label("enter goes on to the plan, escape cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#snapshot-name", Input).focus()

    @on(Input.Submitted, "#snapshot-name")
    def _submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not name:
            self.query_one("#snapshot-name-error", Label).update("a snapshot needs a name")
            return
        self.dismiss(SnapshotParams(name, memory=self.query_one("#snapshot-memory", Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


def _created(info: SnapshotInfo) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created)) if info.created is not None else "-"


class SnapshotsScreen(Screen[None]):
    """One domain's snapshots, oldest first; n creates, r reverts to, d deletes the cursor's snapshot."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("n", "create", "New snapshot"),
        Binding("r", "revert", "Revert"),
        Binding("d", "delete", "Delete"),
        Binding("f5,ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, fleet: Fleet, target: Target) -> None:
        super().__init__()
        self.fleet = fleet
        self.target = target
        self.snapshots: tuple[SnapshotInfo, ...] = ()

    def compose(self) -> ComposeResult:
        yield Label(printable(f"snapshots of {self.target.domain} on {self.target.host}"), id="snapshots-title")
        yield DataTable(id="snapshots", cursor_type="row", zebra_stripes=True)
        yield Label("reading...", id="snapshots-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("NAME", "CREATED", "CURRENT", "MEMORY", "PARENT", "STATE WHEN TAKEN")
        table.focus()
        self.action_reload()

    @work(exclusive=True, group="snapshots")
    async def action_reload(self) -> None:
        (listing,) = await read_snapshots(self.fleet, [self.target])
        status = self.query_one("#snapshots-status", Label)
        if listing.error is not None:
            status.update(printable(listing.error))
            return
        self.snapshots = listing.snapshots
        table = self.query_one(DataTable)
        table.clear()
        for info in self.snapshots:
            memory = "-" if info.memory is None else "yes" if info.memory else "no"
            table.add_row(
                printable(info.name), _created(info), "*" if info.current else "", memory,
                printable(info.parent or "-"), printable(info.state or "-"),
            )
        count = len(self.snapshots)
        status.update(f"{count} snapshot{'s' if count != 1 else ''}" if count else "no snapshots (n takes one)")

    def _chosen(self) -> SnapshotInfo | None:
        row = self.query_one(DataTable).cursor_row
        if not self.snapshots or not 0 <= row < len(self.snapshots):
            self.notify("no snapshot under the cursor", severity="warning")
            return None
        return self.snapshots[row]

    def _run(self, verb: Verb, params: SnapshotParams) -> None:
        operator(self.app).start_operation(verb, [self.target], params=params, done=self._done)

    def _done(self) -> None:
        if self.is_attached:
            self.action_reload()

    def action_create(self) -> None:
        ask_and_create(self.app, [self.target], done=self._done)

    def action_revert(self) -> None:
        info = self._chosen()
        if info is not None:
            self._run(Verb.SNAPSHOT_REVERT, SnapshotParams(info.name))

    def action_delete(self) -> None:
        info = self._chosen()
        if info is not None:
            self._run(Verb.SNAPSHOT_DELETE, SnapshotParams(info.name))
