"""The action policy: what may be sent, what is a no-op, what needs which confirmation.

Checked in the core, so every face obeys the same rules:
- read-only (global flag, group, host) refuses every verb;
- a verb the host's driver cannot do is refused;
- protected hosts and domains (inventory flag or name patterns, or a backend's native
  flag) refuse destructive verbs unless the caller overrides, and the override is
  recorded;
- a verb with nothing to do in the domain's current state is a no-op, never sent, and a
  verb that cannot apply in that state (pause an off domain) is refused before sending;
- the interlock: several targets need an explicit "multiple" from headless callers,
  and a cap on the target count.
Targets are aimed by domain key (the UUID where the backend has one), never by name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from vfleet.core.engine import HostView
from vfleet.core.models import (
    LIFECYCLE_VERBS,
    SNAPSHOT_VERBS,
    ActionParams,
    Domain,
    DomainRef,
    MigrateParams,
    PowerState,
    Verb,
)
from vfleet.core.selector import Selector
from vfleet.drivers.base import capability_for, check_params

# Revert throws away the guest's present; delete throws away a way back.
DESTRUCTIVE = frozenset({Verb.FORCE_OFF, Verb.RESET, Verb.SNAPSHOT_REVERT, Verb.SNAPSHOT_DELETE})
HARMLESS = frozenset({Verb.RESUME})
# Not destructive, but a protected domain is pinned where it is (licences, devices): moving it needs the override.
MOVES = frozenset({Verb.MIGRATE})
# Verbs that have nothing to do in a state: reported as a no-op, never sent twice.
ALREADY = {
    Verb.START: frozenset({PowerState.RUNNING, PowerState.PAUSED}),
    Verb.SHUTDOWN: frozenset({PowerState.OFF, PowerState.SHUTTING_DOWN}),
    Verb.FORCE_OFF: frozenset({PowerState.OFF}),
    Verb.PAUSE: frozenset({PowerState.PAUSED}),
    Verb.RESUME: frozenset({PowerState.RUNNING}),
    Verb.SUSPEND: frozenset({PowerState.SUSPENDED}),
}
# The states a verb can act on; UNKNOWN always passes (the backend decides).
APPLIES = {
    Verb.START: frozenset({PowerState.OFF, PowerState.CRASHED, PowerState.SUSPENDED}),
    Verb.SHUTDOWN: frozenset({PowerState.RUNNING}),
    Verb.REBOOT: frozenset({PowerState.RUNNING}),
    Verb.PAUSE: frozenset({PowerState.RUNNING}),
    Verb.RESUME: frozenset({PowerState.PAUSED, PowerState.SUSPENDED}),
    Verb.SUSPEND: frozenset({PowerState.RUNNING}),
    Verb.FORCE_OFF: frozenset(
        {PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTTING_DOWN, PowerState.CRASHED, PowerState.SUSPENDED}
    ),
    Verb.RESET: frozenset({PowerState.RUNNING, PowerState.PAUSED}),
} | {verb: frozenset(PowerState) for verb in (*SNAPSHOT_VERBS, Verb.MIGRATE)}  # snapshots: the backend knows;
# migrate: the pre-flight check (core.migration) decides per state
# The state each verb leads to, for --wait.
TARGET_STATE = {
    Verb.START: PowerState.RUNNING,
    Verb.SHUTDOWN: PowerState.OFF,
    Verb.REBOOT: PowerState.RUNNING,
    Verb.PAUSE: PowerState.PAUSED,
    Verb.RESUME: PowerState.RUNNING,
    Verb.SUSPEND: PowerState.SUSPENDED,
    Verb.FORCE_OFF: PowerState.OFF,
    Verb.RESET: PowerState.RUNNING,
}


# The states that count as "done" for --wait: ESXi's pause is a suspend.
REACHED = {verb: frozenset({state}) for verb, state in TARGET_STATE.items()} | {
    Verb.PAUSE: frozenset({PowerState.PAUSED, PowerState.SUSPENDED}),
}


class Tier(Enum):
    """How much confirmation a face must get before anything is sent."""

    NONE = "none"
    YES_NO = "yes-no"
    TYPE_NAME = "type-name"  # type the domain name, or the target count for several


def confirmation_tier(verb: Verb, targets: int, *, overridden: bool = False, hidden: int = 0) -> Tier:
    """`targets` counts what would be sent; protection overrides and hidden targets raise the tier."""
    if targets == 0:
        return Tier.NONE
    if verb in DESTRUCTIVE or targets > 1 or overridden:
        return Tier.TYPE_NAME
    if hidden:
        return Tier.YES_NO
    return Tier.NONE if verb in HARMLESS else Tier.YES_NO


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    domain: str  # the name, for messages
    key: str = ""  # the domain's key (UUID where known); "" aims by name

    @property
    def ref(self) -> DomainRef:
        return DomainRef(self.domain, self.key or self.domain)


@dataclass(frozen=True, slots=True)
class Decision:
    target: Target
    refused: str | None = None  # why nothing will be sent (policy, state, driver), or None
    noop: str | None = None  # "already off": nothing to send
    overridden: bool = False  # a protection was overridden for this target
    state: PowerState | None = None  # as last polled
    notes: str = ""  # what a pre-flight check found (migration), shown with the plan

    @property
    def dispatch(self) -> bool:
        return self.refused is None and self.noop is None

    @property
    def plan_word(self) -> str:
        return "refused" if self.refused else "no-op" if self.noop else "send"


@dataclass(frozen=True, slots=True)
class Plan:
    verb: Verb
    decisions: tuple[Decision, ...]
    hidden: int = 0  # targets the face's filter hides from the operator (marked earlier)
    blocked: str | None = None  # the interlock's refusal of the whole plan, or None
    params: ActionParams | None = None  # the verb's parameters, the same for every target

    @property
    def action(self) -> str:
        """The verb with its parameters, for prompts and messages: `snapshot-create pre-patch`."""
        return self.verb.value if self.params is None else f"{self.verb.value} {self.params.name}"

    @property
    def sendable(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.dispatch)

    @property
    def tier(self) -> Tier:
        sendable = self.sendable
        overridden = any(d.overridden for d in sendable)
        return confirmation_tier(self.verb, len(sendable), overridden=overridden, hidden=self.hidden)

    @property
    def expected_answer(self) -> str:
        """What a TYPE_NAME confirmation wants typed: the one domain's name, or the count."""
        sendable = self.sendable
        return sendable[0].target.domain if len(sendable) == 1 else str(len(sendable))

    def summary(self) -> str:
        """One line: what will happen to how many targets."""
        counts = {word: sum(d.plan_word == word for d in self.decisions) for word in ("send", "no-op", "refused")}
        parts = [f"{self.action} {counts['send']} of {len(self.decisions)}"]
        parts += [f"{n} {word}" for word, n in counts.items() if n and word != "send"]
        if self.hidden:
            parts.append(f"{self.hidden} hidden by the filter")
        return ", ".join(parts)


def allowed_verbs(view: HostView) -> frozenset[Verb]:
    """What this host's driver can do and policy allows at all (state aside)."""
    if view.read_only:
        return frozenset()
    return frozenset(v for v in Verb if capability_for(v) in view.capabilities)


def is_protected(view: HostView, name: str, domain: Domain | None) -> bool:
    config = view.config
    return (
        config.protected
        or any(fnmatch.fnmatchcase(name, pattern) for pattern in config.protected_domains)
        or (domain is not None and domain.protected)
    )


def find_domain(view: HostView, target: Target) -> Domain | None:
    """The target's domain in the latest view: by key, or by name for a target without one."""
    key = target.ref.key
    domain = next((r.domain for r in view.rows if r.domain.key == key), None)
    if domain is None and not target.key:
        domain = next((r.domain for r in view.rows if r.domain.name == target.domain), None)
    return domain


def decide(view: HostView | None, verb: Verb, target: Target, *, override: bool = False) -> Decision:
    if view is None:
        return Decision(target, refused=f"{target.host}: no such host in the inventory")
    domain = find_domain(view, target)
    state = domain.state if domain else None
    if view.read_only:
        return Decision(target, refused=f"{target.host}: read-only: {verb.value} refused", state=state)
    capability = capability_for(verb)
    if view.capabilities and capability not in view.capabilities:
        reason = view.unsupported.get(capability)
        return Decision(
            target,
            refused=f"{target.host}: the {view.config.driver} driver cannot {verb.value}"
            + (f": {reason}" if reason else ""),
            state=state,
        )
    if domain is None:
        return Decision(target, refused=f"{target.host}: {target.domain} was not in the host's last poll")
    overridden = False
    if (verb in DESTRUCTIVE or verb in MOVES) and is_protected(view, target.domain, domain):
        if not override:
            return Decision(
                target,
                refused=f"{target.host}: {target.domain} is protected: {verb.value} refused "
                "(override with --override-protection)",
                state=state,
            )
        overridden = True
    if state is not None and state in ALREADY.get(verb, ()):
        return Decision(target, noop=f"already {state.value}", overridden=overridden, state=state)
    if state is not None and state is not PowerState.UNKNOWN and state not in APPLIES[verb]:
        return Decision(target, refused=f"cannot {verb.value} a domain that is {state.value}", state=state)
    return Decision(target, overridden=overridden, state=state)


def plan(
    views: Iterable[HostView],
    verb: Verb,
    targets: Sequence[Target],
    *,
    override: bool = False,
    multiple: bool = True,
    max_targets: int | None = None,
    hidden: int = 0,
    params: ActionParams | None = None,
) -> Plan:
    """`params` are checked here (UsageError), before anything is confirmed or recorded."""
    check_params(verb, params)
    by_name = {v.name: v for v in views}
    decisions = tuple(decide(by_name.get(t.host), verb, t, override=override) for t in targets)
    if isinstance(params, MigrateParams):
        from vfleet.core.migration import preflight

        decisions, params = preflight(by_name, decisions, params)
    return Plan(verb, decisions, hidden=hidden, blocked=interlock(len(targets), multiple, max_targets), params=params)


def applicable_verbs(
    views: Iterable[HostView], targets: Sequence[Target], verbs: Sequence[Verb] = LIFECYCLE_VERBS
) -> list[Verb]:
    """The verbs a menu should offer (of `verbs`): those with at least one target they would be sent to."""
    views = list(views)
    return [verb for verb in verbs if _any_sendable(views, verb, targets)]


def _any_sendable(views: list[HostView], verb: Verb, targets: Sequence[Target]) -> bool:
    by_name = {v.name: v for v in views}
    return any(decide(by_name.get(t.host), verb, t).dispatch for t in targets)


def select(views: Iterable[HostView], selector: Selector) -> list[Target]:
    """The domains a selector names, in inventory host order then name order."""
    targets: list[Target] = []
    for view in views:
        rows = sorted((r for r in view.rows if selector.matches(r, view.config)), key=lambda r: r.domain.name)
        targets.extend(Target(view.name, r.domain.name, r.domain.key) for r in rows)
    return targets


def interlock(count: int, multiple: bool, max_targets: int | None) -> str | None:
    """Headless safety catch: several targets need --multiple, and never more than the cap."""
    if count == 0:
        return "the selector matches no domain"
    if count > 1 and not multiple:
        return f"the selector matches {count} domains: add --multiple to act on all of them"
    if max_targets is not None and count > max_targets:
        return f"the selector matches {count} domains, more than --max-targets {max_targets}"
    return None
