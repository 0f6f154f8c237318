"""The operations service: the only way any face acts on the fleet.

An operation runs through fixed steps, whatever the face:
1. plan: resolve the targets by domain key and apply the policy (core.policy);
2. confirm: the face gets the plan and answers one callback; the tier is the core's;
3. audit the intent before anything is sent (refuse if the log cannot be written);
4. execute with bounded concurrency, per host and globally;
5. audit each target's result as it completes, and a closing record in `finally`
   (Ctrl-C, cancellation and crashes of the face included).
Every target gets exactly one result: ok, no-op, refused, failed or timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from vfleet.core.audit import AuditLog, new_op_id
from vfleet.core.console import ConsoleStream
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import AuditUnavailable, HostUnreachable, PolicyRefused, VFleetError
from vfleet.core.models import (
    LIFECYCLE_VERBS,
    ActionParams,
    ActionResult,
    PowerState,
    SnapshotInfo,
    SnapshotParams,
    Verb,
)
from vfleet.core.policy import (
    REACHED,
    Decision,
    Plan,
    Target,
    Tier,
    allowed_verbs,
    applicable_verbs,
    confirmation_tier,
    plan,
)

__all__ = [
    "Operation",
    "Operations",
    "Plan",
    "Target",
    "Tier",
    "allowed_verbs",
    "applicable_verbs",
    "confirmation_tier",
]

log = logging.getLogger(__name__)

PER_HOST_LIMIT = 4  # libvirtd serves 5 calls per connection: one stays free for polls
GLOBAL_LIMIT = 32

Confirm = Callable[[Plan], Awaitable[bool]]


class _Recorder:
    """Writes result records off the event loop, in batches, in the order they came.

    An fsync per record on the loop would stall every host's polling during a bulk
    action; here the loop only queues, and a thread appends whatever has gathered.
    """

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._pending: list[dict[str, Any]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            self._audit.append_many(batch)
        except Exception:  # the intent is on disk: a lost result line must not stop the others
            log.exception("audit: could not record %d result(s)", len(batch))

    async def drain(self) -> None:
        """Everything queued is on disk (or logged as lost); safe to call while being cancelled."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        if self._pending:
            batch, self._pending = self._pending, []
            await asyncio.shield(asyncio.to_thread(self._write, batch))


@dataclass
class Operation:
    """What one operation did: for the face's report, the exit code and tests."""

    op: str
    plan: Plan
    status: str = "planned"  # planned, refused, not-confirmed, dry-run, completed, interrupted, crashed
    results: list[ActionResult] = field(default_factory=list)
    peak_in_flight: Counter[str] = field(default_factory=Counter)  # per host
    seconds: float = 0.0


def _target_record(decision: Decision) -> dict[str, object]:
    t = decision.target
    return {
        "host": t.host,
        "domain": t.domain,
        "key": t.ref.key,
        "plan": decision.plan_word,
        "why": decision.refused or decision.noop,
        "override": decision.overridden,
        "state": decision.state.value if decision.state else None,
        **({"preflight": decision.notes} if decision.notes else {}),
    }


def expand_params(params: ActionParams | None, now: datetime | None = None) -> ActionParams | None:
    """`{date}` and `{time}` in a snapshot name, expanded once per operation: one name on every target."""
    if not isinstance(params, SnapshotParams) or "{" not in params.name:
        return params
    now = now or datetime.now()
    name = params.name.replace("{date}", now.strftime("%Y-%m-%d")).replace("{time}", now.strftime("%H%M%S"))
    return replace(params, name=name)


def _params_record(params: ActionParams | None) -> dict[str, object]:
    return {} if params is None else {"params": params.record()}


def _result_record(op: str, result: ActionResult, overridden: bool, params: ActionParams | None) -> dict[str, object]:
    return {
        "kind": "result",
        "op": op,
        "host": result.host,
        "domain": result.domain,
        "key": result.key,
        "verb": result.verb.value,
        **_params_record(params),
        "result": result.outcome,
        "state_after": result.state_after.value if result.state_after else None,
        "override": overridden,
        "error": None if result.ok else result.message,
    }


class Operations:
    """Plans and runs operations for one face ("tui", "cli") over one fleet and one audit log."""

    def __init__(self, fleet: Fleet, audit: AuditLog, *, face: str) -> None:
        self.fleet = fleet
        self.audit = audit
        self.face = face
        # (host, key) -> (state the driver read back, when): until a later poll shows it
        self._read_back: dict[tuple[str, str], tuple[PowerState, float]] = {}

    # -- 1. plan ---------------------------------------------------------------

    def plan(
        self,
        verb: Verb,
        targets: Sequence[Target],
        *,
        override: bool = False,
        multiple: bool = True,
        max_targets: int | None = None,
        hidden: int = 0,
        params: ActionParams | None = None,
    ) -> Plan:
        """Placeholders in `params` are expanded here, once: the plan shows what will be sent and recorded."""
        return plan(
            self._views(),
            verb,
            targets,
            override=override,
            multiple=multiple,
            max_targets=max_targets,
            hidden=hidden,
            params=expand_params(params),
        )

    def applicable_verbs(self, targets: Sequence[Target], verbs: Sequence[Verb] = LIFECYCLE_VERBS) -> list[Verb]:
        return applicable_verbs(self._views(), targets, verbs)

    def _views(self) -> list[HostView]:
        """The fleet's views, with the states our own actions read back where no poll has caught up.

        Without this, a plan made right after `pause` (no --wait) would still see the
        domain running and call a `resume` a no-op.
        """
        views = self.fleet.views()
        if not self._read_back:
            return views
        patched = []
        for view in views:
            rows = []
            polled_at = view.polled_at if view.polled_at is not None else float("-inf")
            for row in view.rows:
                known = self._read_back.get((view.name, row.domain.key))
                if known is not None and polled_at < known[1]:  # the host's last poll, not the row's
                    row = replace(row, domain=replace(row.domain, state=known[0]))
                elif known is not None:
                    del self._read_back[(view.name, row.domain.key)]  # a newer poll knows better
                rows.append(row)
            patched.append(replace(view, rows=tuple(rows)))
        return patched

    # -- 2 to 5 ----------------------------------------------------------------

    async def run(
        self,
        the_plan: Plan,
        confirm: Confirm,
        *,
        timeout: float = 60.0,
        wait: float | None = None,
        on_result: Callable[[ActionResult], None] | None = None,
        on_start: Callable[[Operation], None] | None = None,
        dry_run: bool = False,
        context: dict[str, object] | None = None,
    ) -> Operation:
        """Confirm, audit and execute a plan. Raises PolicyRefused (interlock) and AuditUnavailable."""
        operation = Operation(new_op_id(), the_plan)
        header = {
            "op": operation.op,
            "verb": the_plan.verb.value,
            **_params_record(the_plan.params),
            "face": self.face,
            **(context or {}),
            "tier": the_plan.tier.value,
        }
        targets = [_target_record(d) for d in the_plan.decisions]
        if the_plan.blocked is not None:
            self._append({"kind": "refused", **header, "reason": the_plan.blocked, "targets": targets})
            operation.status = "refused"
            raise PolicyRefused(the_plan.blocked)
        if dry_run:
            self._append({"kind": "dry-run", **header, "targets": targets})
            operation.status = "dry-run"
            return operation
        self._check_writable()
        if the_plan.sendable and the_plan.tier is not Tier.NONE:
            try:
                confirmed = await confirm(the_plan)
            except PolicyRefused as exc:  # e.g. no terminal to ask on
                self._append({"kind": "refused", **header, "reason": str(exc), "targets": targets})
                operation.status = "refused"
                raise
            except (asyncio.CancelledError, KeyboardInterrupt):
                self._append({"kind": "refused", **header, "reason": "interrupted at the confirmation"})
                operation.status = "not-confirmed"
                raise
            if not confirmed:
                self._append({"kind": "refused", **header, "reason": "not confirmed", "targets": targets})
                operation.status = "not-confirmed"
                return operation
        self._append({"kind": "intent", **header, "targets": targets})
        if on_start is not None:  # confirmed and on record: the face may show the job now
            on_start(operation)
        await self._execute(operation, timeout=timeout, wait=wait, on_result=on_result)
        return operation

    # -- consoles ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def console(
        self, target: Target, *, view_only: bool, force: bool = False, safe: bool = False, timeout: float = 30.0
    ) -> AsyncIterator[ConsoleStream]:
        """Open a domain's serial console, on record: who, when, which domain, view-only or not.

        The `console` record is written before the driver is asked (AuditUnavailable: nothing
        is opened); a `close` record with the duration follows in every case. Keystrokes
        are never recorded.
        """
        op = new_op_id()
        self._append(
            {
                "kind": "console",
                "op": op,
                "verb": "console",
                "face": self.face,
                "view_only": view_only,
                "force": force,
                "targets": [
                    {
                        "host": target.host,
                        "domain": target.domain,
                        "key": target.ref.key,
                        "plan": "view" if view_only else "attach",
                    }
                ],
            }
        )
        started = time.monotonic()
        outcome, error, how = "crashed", None, "ok"
        stream: ConsoleStream | None = None
        try:
            driver = self.fleet.driver(target.host)
            if driver is None:
                raise HostUnreachable(target.host, "not connected")
            stream = await driver.open_console(
                target.ref, force=force, safe=safe, deadline=time.monotonic() + timeout
            )
            yield stream
            outcome = "completed"
            if stream.ended is not None and stream.ended.how != "escape":  # the host, an error or a signal ended it
                how, error = stream.ended.how, stream.ended.message
        except (asyncio.CancelledError, KeyboardInterrupt):
            outcome = "interrupted"
            raise
        except VFleetError as exc:
            outcome, error = "failed", str(exc)
            raise
        finally:
            if stream is not None:
                await stream.close()
            seconds = round(time.monotonic() - started, 3)
            result = {
                "kind": "result",
                "op": op,
                "host": target.host,
                "domain": target.domain,
                "key": target.ref.key,
                "verb": "console",
                "result": how if outcome == "completed" else outcome,
                "error": error,
            }
            close = {"kind": "close", "op": op, "outcome": outcome, "seconds": seconds}
            try:
                await asyncio.shield(asyncio.to_thread(self.audit.append_many, [result, close]))
            except Exception:  # the opening is on disk: a lost close must not hide the session's own end
                log.exception("audit: could not record the end of console %s", op)

    def _append(self, record: dict[str, Any]) -> None:
        """A durable record before the next step (the intent before anything is sent)."""
        try:
            self.audit.append(record)
        except AuditUnavailable:
            raise
        except (OSError, VFleetError) as exc:
            raise AuditUnavailable(str(self.audit.path), str(exc)) from exc

    def _check_writable(self) -> None:
        self.audit.check_writable()

    async def _execute(
        self,
        operation: Operation,
        *,
        timeout: float,
        wait: float | None,
        on_result: Callable[[ActionResult], None] | None,
    ) -> None:
        the_plan, op = operation.plan, operation.op
        verb = the_plan.verb
        started = time.monotonic()
        global_slots = asyncio.Semaphore(GLOBAL_LIMIT)
        host_slots = {d.target.host: asyncio.Semaphore(PER_HOST_LIMIT) for d in the_plan.decisions}
        in_flight: Counter[str] = Counter()
        sent: dict[int, Decision] = {}  # sent, no result yet: "interrupted" if we stop now
        done: dict[int, ActionResult] = {}
        recorder = _Recorder(self.audit)

        def finish(index: int, decision: Decision, result: ActionResult) -> ActionResult:
            result = replace(result, key=decision.target.ref.key)
            if index in sent and result.ok and result.state_after is not None:
                self._read_back[(result.host, result.key)] = (result.state_after, time.monotonic())
            sent.pop(index, None)
            done[index] = result
            recorder.add(_result_record(op, result, decision.overridden, the_plan.params))
            if on_result is not None:
                on_result(result)
            return result

        async def one(index: int, decision: Decision) -> ActionResult:
            t = decision.target
            if decision.refused is not None:
                refused = ActionResult(
                    t.host,
                    t.domain,
                    verb,
                    ok=False,
                    refused=True,
                    state_after=decision.state,
                    message=f"refused: {decision.refused}",
                )
                return finish(index, decision, refused)
            if decision.noop is not None:
                noop = ActionResult(
                    t.host, t.domain, verb, ok=True, noop=True, state_after=decision.state, message=decision.noop
                )
                return finish(index, decision, noop)
            async with global_slots, host_slots[t.host]:
                driver = self.fleet.driver(t.host)
                if driver is None:
                    gone = ActionResult(t.host, t.domain, verb, ok=False, message=f"{t.host}: not connected")
                    return finish(index, decision, gone)
                in_flight[t.host] += 1
                operation.peak_in_flight[t.host] = max(operation.peak_in_flight[t.host], in_flight[t.host])
                sent[index] = decision
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a Ctrl-C's cancel
                    async with asyncio.timeout(timeout):
                        due = time.monotonic() + timeout
                        if the_plan.params is None:  # the lifecycle call shape, as every driver knows it
                            result = await driver.perform(verb, t.ref, deadline=due)
                        else:
                            result = await driver.perform(verb, t.ref, deadline=due, params=the_plan.params)
                except TimeoutError:
                    result = ActionResult(
                        t.host,
                        t.domain,
                        verb,
                        ok=False,
                        timed_out=True,
                        message=f"{t.host}: {verb.value} {t.domain}: no answer within {timeout:g} s",
                    )
                except VFleetError as exc:
                    result = ActionResult(t.host, t.domain, verb, ok=False, message=str(exc))
                except Exception as exc:  # a driver bug fails this target, not the whole operation
                    log.debug("%s: %s %s", t.host, verb.value, t.domain, exc_info=True)
                    result = ActionResult(
                        t.host, t.domain, verb, ok=False, message=f"{t.host}: internal error: {exc!r}"
                    )
                finally:
                    in_flight[t.host] -= 1
            self.fleet.request_poll(t.host)
            if wait is not None and result.ok and verb in REACHED:
                result = await _await_state(self.fleet, replace(result, key=t.ref.key), wait)
            return finish(index, decision, result)

        outcome = "crashed"
        try:
            tasks = [asyncio.create_task(one(i, d)) for i, d in enumerate(the_plan.decisions)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            outcome = "completed"
        except (asyncio.CancelledError, KeyboardInterrupt):
            outcome = "interrupted"
            raise
        finally:
            operation.status = outcome
            operation.results = [done[i] for i in sorted(done)]
            operation.seconds = time.monotonic() - started
            await self._close(operation, sent, recorder)

    async def _close(self, operation: Operation, sent: dict[int, Decision], recorder: _Recorder) -> None:
        """The closing record, after every result; targets sent without an answer are interrupted."""
        for decision in sent.values():
            t = decision.target
            recorder.add(
                {
                    "kind": "result",
                    "op": operation.op,
                    "host": t.host,
                    "domain": t.domain,
                    "key": t.ref.key,
                    "verb": operation.plan.verb.value,
                    **_params_record(operation.plan.params),
                    "result": "interrupted",
                    "state_after": None,
                    "override": decision.overridden,
                    "error": "sent, but the operation stopped before the host answered",
                }
            )
        counts = Counter(r.outcome for r in operation.results)
        counts["interrupted"] += len(sent)
        counts["not-sent"] += len(operation.plan.decisions) - len(operation.results) - len(sent)
        recorder.add(
            {
                "kind": "close",
                "op": operation.op,
                "outcome": operation.status,
                "counts": {k: v for k, v in counts.items() if v},
                "seconds": round(operation.seconds, 3),
            }
        )
        await recorder.drain()


async def _await_state(fleet: Fleet, result: ActionResult, wait: float) -> ActionResult:
    want = REACHED[result.verb]
    reached: list[PowerState] = []

    def done(views: list[HostView]) -> bool:
        view = next((v for v in views if v.name == result.host), None)
        rows = view.rows if view is not None else ()
        reached[:] = [r.domain.state for r in rows if r.domain.key == result.key and r.domain.state in want]
        return bool(reached)

    # Wait for the fleet's own view, not just the driver's read-back: the next plan decides on it.
    if await fleet.wait_until(done, wait):
        return replace(result, state_after=reached[0])
    names = " or ".join(sorted(s.value for s in want))
    return replace(
        result,
        ok=False,
        timed_out=True,
        message=f"{result.host}: {result.domain} did not reach {names} within {wait:g} s",
    )


@dataclass(frozen=True, slots=True)
class SnapshotListing:
    target: Target
    snapshots: tuple[SnapshotInfo, ...] = ()
    error: str | None = None  # why this domain's snapshots could not be read


async def read_snapshots(fleet: Fleet, targets: Sequence[Target], *, timeout: float = 60.0) -> list[SnapshotListing]:
    """Each target's snapshots: a read (no policy, no audit), bounded like an operation, one answer per target."""
    global_slots = asyncio.Semaphore(GLOBAL_LIMIT)
    host_slots = {t.host: asyncio.Semaphore(PER_HOST_LIMIT) for t in targets}

    async def one(t: Target) -> SnapshotListing:
        driver = fleet.driver(t.host)
        if driver is None:
            return SnapshotListing(t, error=f"{t.host}: not connected")
        async with global_slots, host_slots[t.host]:
            try:
                async with asyncio.timeout(timeout):
                    found = await driver.snapshots(t.ref, deadline=time.monotonic() + timeout)
            except TimeoutError:
                return SnapshotListing(t, error=f"{t.host}: snapshots of {t.domain}: no answer within {timeout:g} s")
            except VFleetError as exc:
                return SnapshotListing(t, error=str(exc))
        return SnapshotListing(t, found)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def always(_plan: Plan) -> bool:
    """A confirm callback for callers that confirmed otherwise (`--yes`, tests)."""
    return True
