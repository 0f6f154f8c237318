"""Migration in the console: the `a` menu's entry, the destination picker and `:migrate HOST`.

The picker only chooses the parameters; the move itself goes through the fleet screen's
start_operation like every verb: the core's plan with its pre-flight notes and refusals in
the confirmation, the tier, the audit log and the jobs pane (a result per target).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Label, OptionList
from textual.widgets.option_list import Option

from vfleet.core.aggregates import summarize_host
from vfleet.core.engine import HostView
from vfleet.core.models import MigrateParams, Verb
from vfleet.core.operations import Operations, Target
from vfleet.core.sanitize import printable
from vfleet.screens.modals import describe
from vfleet.screens.snapshots import operator

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    free_bytes: int | None  # memory not allocated to the domains that hold it
    vcpu_commit: float | None  # vCPUs of running domains per host CPU

    @property
    def label(self) -> str:
        free = "?" if self.free_bytes is None else f"{max(0, self.free_bytes) / GIB:.1f}G"
        commit = "?" if self.vcpu_commit is None else f"{self.vcpu_commit:.2f}"
        return printable(f"{self.host}  free memory {free}  vCPU commit {commit}")


def _family(view: HostView) -> tuple[str, str | None]:
    return view.config.driver, view.facts.hypervisor if view.facts is not None else None


def destinations(views: Sequence[HostView], targets: Sequence[Target]) -> list[Destination]:
    """The inventory hosts of the targets' driver and hypervisor, but the one they all are on."""
    by_name = {v.name: v for v in views}
    families = {_family(by_name[t.host]) for t in targets if t.host in by_name}
    sources = {t.host for t in targets}
    now = time.monotonic()
    found = []
    for view in views:
        if _family(view) not in families or sources == {view.name} or view.read_only:
            continue
        summary = summarize_host(view, now)
        total, used = summary.memory_total_bytes, summary.mem_allocated_bytes
        free = None if total is None or used is None else total - used
        found.append(Destination(view.name, free, summary.vcpu_ratio))
    return found


def migrate_refusal(operations: Operations, targets: Sequence[Target]) -> str | None:
    """None when some target could be moved; else the policy's reason (most common first)."""
    if operations.applicable_verbs(targets, (Verb.MIGRATE,)):
        return None
    reasons = Counter(
        d.refused or d.noop or ""
        for t in targets
        for d in operations.plan(Verb.MIGRATE, [t], params=MigrateParams(t.host)).decisions
    )
    return reasons.most_common(1)[0][0] if reasons else "nothing to migrate"


def ask_and_migrate(
    app: App[object], targets: list[Target], hidden: int = 0, done: Callable[[], None] | None = None
) -> None:
    """The destination and mode, then the core's plan (with its pre-flight) and its confirmation."""
    ops = operator(app)
    choices = destinations(ops.operations.fleet.views(), targets)

    def chosen(params: MigrateParams | None) -> None:
        if params is not None:
            ops.start_operation(Verb.MIGRATE, targets, hidden, params=params, done=done)

    app.push_screen(MigrateTo(targets, choices), chosen)


def migrate_to(app: App[object], targets: list[Target], hidden: int, to: str) -> None:
    """`:migrate HOST[/SERVER]`: straight to the plan and its confirmation (live, shared storage)."""
    host, _, node = to.partition("/")
    operator(app).start_operation(Verb.MIGRATE, targets, hidden, params=MigrateParams(host, node or None))


class MigrateTo(ModalScreen[MigrateParams | None]):
    """Where to: the hosts of the same family with their room; offline and copy-storage choices."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, targets: Sequence[Target], choices: Sequence[Destination]) -> None:
        super().__init__()
        self._targets = targets
        self.choices = list(choices)

    def compose(self) -> ComposeResult:
        with Vertical(id="migrate-dialog", classes="dialog"):
            yield Label(f"Migrate {describe(self._targets)} to", classes="dialog-title", markup=False)
            if self.choices:
                yield OptionList(*(Option(Text(c.label), id=c.host) for c in self.choices), id="migrate-hosts")
            else:
                yield Label("no other host of this driver and hypervisor in the inventory", classes="warning")
            yield Checkbox("offline: move only domains that are off (running ones are refused)", id="migrate-offline")
            yield Checkbox("copy the storage (no storage shared by both hosts)", id="migrate-copy")
            yield Label("enter goes on to the plan and its pre-flight check, escape cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        if self.choices:
            self.query_one("#migrate-hosts", OptionList).focus()

    @on(OptionList.OptionSelected, "#migrate-hosts")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        host = event.option.id
        if host is None:
            return
        offline = self.query_one("#migrate-offline", Checkbox).value
        copy = self.query_one("#migrate-copy", Checkbox).value
        self.dismiss(MigrateParams(host, live=not offline, copy_storage=copy))

    def action_cancel(self) -> None:
        self.dismiss(None)
