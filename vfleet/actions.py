"""Lifecycle actions: policy, confirmation tiers and bounded dispatch, for TUI and CLI alike.

The checks live here, below both faces, so that a read-only host refuses a verb
whichever face asked. Every target gets exactly one result: ok, no-op, refused,
failed (with the backend's message) or timed out; nothing is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from vfleet.drivers.base import capability_for
from vfleet.errors import DriverError, PolicyRefused, VFleetError
from vfleet.fleet import Fleet, HostView
from vfleet.models import ActionResult, PowerState, Verb

PER_HOST_LIMIT = 5  # libvirtd serves at most 5 calls in flight per client connection
GLOBAL_LIMIT = 32
DESTRUCTIVE = frozenset({Verb.FORCE_OFF, Verb.RESET})
HARMLESS = frozenset({Verb.RESUME})
# Verbs that have nothing to do in a state: reported as a no-op, never sent twice.
_ALREADY = {
    Verb.START: {PowerState.RUNNING, PowerState.PAUSED},
    Verb.SHUTDOWN: {PowerState.OFF},
    Verb.FORCE_OFF: {PowerState.OFF},
    Verb.PAUSE: {PowerState.PAUSED},
    Verb.RESUME: {PowerState.RUNNING},
}


class Tier(Enum):
    """How much confirmation a face must get before dispatching."""

    NONE = "none"
    YES_NO = "yes-no"
    TYPE_NAME = "type-name"  # type the domain name, or the target count for several


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    domain: str


def confirmation_tier(verb: Verb, targets: int) -> Tier:
    if verb in DESTRUCTIVE or targets > 1:
        return Tier.TYPE_NAME
    return Tier.NONE if verb in HARMLESS else Tier.YES_NO


def allowed_verbs(view: HostView) -> frozenset[Verb]:
    """What may be offered for this host's domains: its driver can, and policy allows."""
    if view.read_only:
        return frozenset()
    return frozenset(v for v in Verb if capability_for(v) in view.capabilities)


def _refusal(view: HostView | None, verb: Verb, target: Target) -> str | None:
    if view is None:
        return f"{target.host}: no such host in the inventory"
    if view.read_only:
        return f"{target.host}: read-only: {verb.value} refused"
    if view.capabilities and capability_for(verb) not in view.capabilities:
        return f"{target.host}: the {view.config.driver} driver cannot {verb.value}"
    return None


def _current_state(view: HostView, domain: str) -> PowerState | None:
    return next((r.domain.state for r in view.rows if r.domain.name == domain), None)


async def run_action(
    fleet: Fleet,
    verb: Verb,
    targets: Sequence[Target],
    *,
    timeout: float = 60.0,
    on_result: Callable[[ActionResult], None] | None = None,
) -> list[ActionResult]:
    """Dispatch one verb to many domains; results come back in the order of `targets`."""
    views = {v.name: v for v in fleet.views()}
    global_slots = asyncio.Semaphore(GLOBAL_LIMIT)
    host_slots = {name: asyncio.Semaphore(PER_HOST_LIMIT) for name in {t.host for t in targets}}

    async def one(target: Target) -> ActionResult:
        view = views.get(target.host)
        if (refusal := _refusal(view, verb, target)) is not None:
            return ActionResult(target.host, target.domain, verb, ok=False, message=refusal)
        assert view is not None
        state = _current_state(view, target.domain)
        if state is not None and state in _ALREADY.get(verb, ()):
            return ActionResult(
                target.host,
                target.domain,
                verb,
                ok=True,
                state_after=state,
                noop=True,
                message=f"already {state.value}",
            )
        driver = fleet.driver(target.host)
        if driver is None:
            return ActionResult(
                target.host,
                target.domain,
                verb,
                ok=False,
                message=f"{target.host}: not connected ({view.health.status.value})",
            )
        async with global_slots, host_slots[target.host]:
            try:
                result = await asyncio.wait_for(driver.perform(verb, target.domain), timeout)
            except TimeoutError:
                result = ActionResult(
                    target.host,
                    target.domain,
                    verb,
                    ok=False,
                    message=f"{target.host}: {verb.value} {target.domain}: no answer within {timeout:g} s",
                )
            except (DriverError, PolicyRefused, VFleetError) as exc:
                result = ActionResult(target.host, target.domain, verb, ok=False, message=str(exc))
        fleet.request_poll(target.host)
        return result

    async def reported(target: Target) -> ActionResult:
        result = await one(target)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(reported(t) for t in targets)))
