"""Lifecycle dispatch for TUI and CLI alike: policy, bounded concurrency, audit, wait.

Every target gets exactly one result: ok, no-op, refused, failed (with the
backend's message) or timed out; nothing is dropped, and a host that dies in the
middle reports failed for its targets, never ok. Every attempt is audited.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import VFleetError
from vfleet.core.models import ActionResult, Verb
from vfleet.core.policy import (
    TARGET_STATE,
    Decision,
    Plan,
    Target,
    Tier,
    allowed_verbs,
    confirmation_tier,
    plan,
)

__all__ = ["Dispatch", "Target", "Tier", "allowed_verbs", "confirmation_tier", "execute", "run_action"]

PER_HOST_LIMIT = 5  # libvirtd serves at most 5 calls in flight per client connection
GLOBAL_LIMIT = 32


@dataclass
class Dispatch:
    """What one execution did, beyond the results: for the audit log and for tests."""

    results: list[ActionResult] = field(default_factory=list)
    peak_in_flight: Counter[str] = field(default_factory=Counter)  # per host
    seconds: float = 0.0


def _refused(decision: Decision, verb: Verb) -> ActionResult:
    t = decision.target
    return ActionResult(
        t.host,
        t.domain,
        verb,
        ok=False,
        state_after=decision.state,
        refused=True,
        message=f"refused: {decision.refused}",
    )


async def execute(
    fleet: Fleet,
    the_plan: Plan,
    *,
    timeout: float = 60.0,
    wait: float | None = None,
    on_result: Callable[[ActionResult], None] | None = None,
    audit: AuditLog | None = None,
    context: dict[str, object] | None = None,
) -> Dispatch:
    """Run a plan; `wait` seconds (if given) to see each target reach the verb's end state."""
    verb = the_plan.verb
    report = Dispatch()
    started = time.monotonic()
    global_slots = asyncio.Semaphore(GLOBAL_LIMIT)
    host_slots = {d.target.host: asyncio.Semaphore(PER_HOST_LIMIT) for d in the_plan.decisions}
    in_flight: Counter[str] = Counter()

    async def send(decision: Decision) -> ActionResult:
        t = decision.target
        if decision.refused is not None:
            return _refused(decision, verb)
        if decision.noop is not None:
            return ActionResult(
                t.host, t.domain, verb, ok=True, noop=True, state_after=decision.state, message=decision.noop
            )
        async with global_slots, host_slots[t.host]:
            driver = fleet.driver(t.host)
            if driver is None:
                return ActionResult(t.host, t.domain, verb, ok=False, message=f"{t.host}: not connected")
            in_flight[t.host] += 1
            report.peak_in_flight[t.host] = max(report.peak_in_flight[t.host], in_flight[t.host])
            try:
                result = await asyncio.wait_for(driver.perform(verb, t.ref), timeout)
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
            finally:
                in_flight[t.host] -= 1
        fleet.request_poll(t.host)
        if wait is not None and result.ok:
            result = await _await_state(fleet, result, wait)
        return result

    async def reported(decision: Decision) -> ActionResult:
        result = await send(decision)
        if on_result is not None:
            on_result(result)
        return result

    report.results = list(await asyncio.gather(*(reported(d) for d in the_plan.decisions)))
    report.seconds = time.monotonic() - started
    if audit is not None:
        audit.append(_audit_record(the_plan, report, context or {}))
    return report


async def _await_state(fleet: Fleet, result: ActionResult, wait: float) -> ActionResult:
    want = TARGET_STATE[result.verb]

    def reached(views: list[HostView]) -> bool:
        view = next((v for v in views if v.name == result.host), None)
        return view is not None and any(r.domain.name == result.domain and r.domain.state is want for r in view.rows)

    # Wait for the fleet's own view, not just the driver's read-back: the next plan decides on it.
    if await fleet.wait_until(reached, wait):
        return replace(result, state_after=want)
    return replace(
        result,
        ok=False,
        timed_out=True,
        message=f"{result.host}: {result.domain} did not reach {want.value} within {wait:g} s",
    )


def _audit_record(the_plan: Plan, report: Dispatch, context: dict[str, object]) -> dict[str, object]:
    overridden = {(d.target.host, d.target.domain) for d in the_plan.decisions if d.overridden}
    return {
        "verb": the_plan.verb.value,
        **context,
        "targets": [
            {
                "host": r.host,
                "domain": r.domain,
                "result": r.outcome,
                "noop": r.noop,
                "state_after": r.state_after.value if r.state_after else None,
                "override": (r.host, r.domain) in overridden,
                "error": None if r.ok else r.message,
            }
            for r in report.results
        ],
    }


async def run_action(
    fleet: Fleet,
    verb: Verb,
    targets: Sequence[Target],
    *,
    timeout: float = 60.0,
    override: bool = False,
    on_result: Callable[[ActionResult], None] | None = None,
    audit: AuditLog | None = None,
) -> list[ActionResult]:
    """Plan against the fleet's current views and execute: the one call the TUI needs."""
    the_plan = plan(fleet.views(), verb, targets, override=override)
    dispatch = await execute(
        fleet, the_plan, timeout=timeout, on_result=on_result, audit=audit, context={"face": "tui"}
    )
    return dispatch.results
