"""The fleet screen's operator side: every action it offers goes through the core's operations
service (plan on the domains the operator sees, confirm, audit, run) and its jobs pane follows them."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from textual.screen import Screen

from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import VFleetError
from vfleet.core.models import LIFECYCLE_VERBS, ActionParams, ActionResult, Verb
from vfleet.core.operations import Operation, Operations, Plan, Target
from vfleet.core.sanitize import printable
from vfleet.messages import JobDone, JobResult
from vfleet.screens.console import farewell, run_console
from vfleet.screens.details import JobScreen
from vfleet.screens.migrate import ask_and_migrate, migrate_refusal, migrate_to
from vfleet.screens.modals import ActionMenu, ConfirmPlan
from vfleet.screens.snapshots import SnapshotsScreen, ask_and_create, create_refusal
from vfleet.widgets.fleet_table import FleetTable
from vfleet.widgets.jobs import Job
from vfleet.widgets.panes import JobsPane

_job_numbers = itertools.count(1)


class FleetOperator(Screen[None]):
    """What the fleet screen does to domains; the screen itself shows them."""

    fleet: Fleet
    operations: Operations
    read_only: bool
    views: dict[str, HostView]

    @property
    def table(self) -> FleetTable:
        return self.query_one(FleetTable)

    def _update_summary(self) -> None:
        """Redraw the summary line (the fleet screen draws one; marks cleared by a job change it)."""

    def _job_changed(self, number: int) -> None:
        screen = self.app.screen
        if isinstance(screen, JobScreen) and screen.job.number == number:
            screen.refresh_job()

    async def action_console(self) -> None:
        """The cursor row's serial console in this terminal; the screen comes back as it was."""
        key = self.table.row_key_at_cursor()
        row = self.table.rows_by_key.get(key) if key is not None else None
        if row is None:
            self.notify("no domain under the cursor", severity="warning")
            return
        view = self.views.get(row.host)
        view_only = self.read_only or (view is not None and view.read_only)
        target = Target(row.host, row.domain.name, row.domain.key)
        ended = await run_console(self.app, self.operations, target, view_only=view_only)
        self.notify(
            ended.message or farewell(ended, target.domain),
            markup=False,
            severity="error" if ended.how == "error" else "information",
        )

    def action_actions(self) -> None:
        targets, hidden = self.table.targets()
        if not targets:
            self.notify("no domain under the cursor and none marked", severity="warning")
            return
        verbs = self.operations.applicable_verbs(targets)
        if not verbs:
            self.notify(f"no actions: {self._why_nothing(targets)}", severity="warning", markup=False)
            return
        # the verbs with a prompt of their own: greyed out with the reason, not hidden
        asks = {
            Verb.SNAPSHOT_CREATE: (create_refusal, ask_and_create),
            Verb.MIGRATE: (migrate_refusal, ask_and_migrate),
        }
        why_not = {verb: refusal(self.operations, targets) for verb, (refusal, _) in asks.items()}

        def chosen(verb: Verb | None) -> None:
            if verb in asks:
                asks[verb][1](self.app, targets, hidden)
            elif verb is not None:
                self.start_operation(verb, targets, hidden)

        menu = ActionMenu([*verbs, *(v for v, why in why_not.items() if why is None)], targets, hidden,
                          unavailable={v: why for v, why in why_not.items() if why})
        self.app.push_screen(menu, chosen)

    def action_snapshots(self) -> None:
        row = self.table.row_at_cursor()
        if row is None:
            self.notify("no domain under the cursor", severity="warning")
            return
        self.app.push_screen(SnapshotsScreen(self.fleet, Target(row.host, row.domain.name, row.domain.key)))

    def _why_nothing(self, targets: list[Target]) -> str:
        """Why no verb applies: the policy's own reasons, most common first."""
        reasons: dict[str, int] = {}
        for verb in LIFECYCLE_VERBS:
            for decision in self.operations.plan(verb, targets).decisions:
                why = decision.refused or decision.noop or ""
                if "read-only" in why:
                    return "read-only"
                reasons[why] = reasons.get(why, 0) + 1
        return max(reasons, key=lambda r: reasons[r]) if reasons else "nothing applies"

    def run_verb(self, verb: Verb) -> None:
        """`:VERB`: the same plan, refusals and confirmation as the `a` menu."""
        targets, hidden = self.table.targets()
        if not targets:
            self.notify("no domain under the cursor and none marked", severity="warning")
            return
        self.start_operation(verb, targets, hidden)

    def migrate(self, to: str | None) -> None:
        """`:migrate [HOST]`: the picker, or straight to the plan for HOST."""
        targets, hidden = self.table.targets()
        if not targets:
            self.notify("no domain under the cursor and none marked", severity="warning")
        elif to is None:
            ask_and_migrate(self.app, targets, hidden)
        else:
            migrate_to(self.app, targets, hidden, to)

    def start_operation(
        self,
        verb: Verb,
        targets: list[Target],
        hidden: int = 0,
        *,
        params: ActionParams | None = None,
        done: Callable[[], None] | None = None,
    ) -> None:
        """Plan now, on the domains the operator sees (by key), then confirm, audit and run; `done` after."""
        plan = self.operations.plan(verb, targets, hidden=hidden, params=params)
        if not plan.sendable:
            reasons = sorted({d.refused or d.noop or "" for d in plan.decisions})
            self.notify(f"{verb.value}: nothing to send: {'; '.join(reasons)}", severity="warning", markup=False)
            return
        job = next(_job_numbers)

        def report(result: ActionResult) -> None:
            self.post_message(JobResult(job, result))

        async def confirm(the_plan: Plan) -> bool:
            answer: bool = await self.app.push_screen(ConfirmPlan(the_plan), wait_for_dismiss=True)
            return answer

        def started(operation: Operation) -> None:
            jobs = self.query_one(JobsPane)
            jobs.display = True
            jobs.job_started(Job(job, verb.value, tuple(d.target for d in operation.plan.decisions)))

        async def run() -> None:
            try:
                operation = await self.operations.run(plan, confirm, on_result=report, on_start=started)
            except VFleetError as exc:
                self.notify(printable(str(exc)), severity="error", markup=False)
                self.query_one(JobsPane).job_done(job, error=str(exc))  # if it had started
                self._job_changed(job)
                return
            if done is not None:
                done()
            if operation.status != "completed":
                return
            ok = sum(r.ok for r in operation.results)
            self.post_message(JobDone(job, ok, len(operation.results) - ok))

        self.run_worker(run(), group="jobs", exit_on_error=False)

    def on_job_result(self, message: JobResult) -> None:
        self.query_one(JobsPane).result(message.job, message.result)
        self._job_changed(message.job)

    def on_job_done(self, message: JobDone) -> None:
        self.query_one(JobsPane).job_done(message.job)
        self._job_changed(message.job)
        if message.ok and self.table.marked:
            self.table.clear_marks()
            self._update_summary()
