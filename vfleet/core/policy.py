"""The action policy, checked in the core so that the TUI and the CLI obey the same rules.

- read-only (global flag, group, host) refuses every verb;
- protected hosts and domains (inventory flag or name patterns, or a backend's native
  flag) refuse destructive verbs unless the caller overrides, and the override is
  recorded;
- a verb with nothing to do in the domain's current state is a no-op, never sent;
- the interlock: a selector that matches several domains needs an explicit
  "multiple" from headless callers, and a cap on the target count.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from vfleet.core.engine import HostView
from vfleet.core.errors import PolicyRefused
from vfleet.core.models import Domain, DomainRef, PowerState, Verb
from vfleet.core.selector import Selector
from vfleet.drivers.base import capability_for

DESTRUCTIVE = frozenset({Verb.FORCE_OFF, Verb.RESET})
HARMLESS = frozenset({Verb.RESUME})
# Verbs that have nothing to do in a state: reported as a no-op, never sent twice.
ALREADY = {
    Verb.START: frozenset({PowerState.RUNNING, PowerState.PAUSED}),
    Verb.SHUTDOWN: frozenset({PowerState.OFF}),
    Verb.FORCE_OFF: frozenset({PowerState.OFF}),
    Verb.PAUSE: frozenset({PowerState.PAUSED}),
    Verb.RESUME: frozenset({PowerState.RUNNING}),
}
# The state each verb leads to, for --wait.
TARGET_STATE = {
    Verb.START: PowerState.RUNNING,
    Verb.SHUTDOWN: PowerState.OFF,
    Verb.REBOOT: PowerState.RUNNING,
    Verb.PAUSE: PowerState.PAUSED,
    Verb.RESUME: PowerState.RUNNING,
    Verb.FORCE_OFF: PowerState.OFF,
    Verb.RESET: PowerState.RUNNING,
}


class Tier(Enum):
    """How much confirmation a face must get before dispatching."""

    NONE = "none"
    YES_NO = "yes-no"
    TYPE_NAME = "type-name"  # type the domain name, or the target count for several


def confirmation_tier(verb: Verb, targets: int) -> Tier:
    if verb in DESTRUCTIVE or targets > 1:
        return Tier.TYPE_NAME
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
    refused: str | None = None  # why the policy refuses, or None
    noop: str | None = None  # "already off": nothing to send
    overridden: bool = False  # a protection was overridden for this target
    state: PowerState | None = None  # as last polled

    @property
    def dispatch(self) -> bool:
        return self.refused is None and self.noop is None


@dataclass(frozen=True, slots=True)
class Plan:
    verb: Verb
    decisions: tuple[Decision, ...]

    @property
    def tier(self) -> Tier:
        return confirmation_tier(self.verb, len(self.decisions))


def allowed_verbs(view: HostView) -> frozenset[Verb]:
    """What may be offered for this host's domains: its driver can, and policy allows."""
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


def decide(view: HostView | None, verb: Verb, target: Target, *, override: bool = False) -> Decision:
    if view is None:
        return Decision(target, refused=f"{target.host}: no such host in the inventory")
    domain = next((r.domain for r in view.rows if r.domain.key == target.ref.key), None)
    if domain is None and not target.key:  # aimed by name (tests, old callers)
        domain = next((r.domain for r in view.rows if r.domain.name == target.domain), None)
    state = domain.state if domain else None
    if view.read_only:
        return Decision(target, refused=f"{target.host}: read-only: {verb.value} refused", state=state)
    if view.capabilities and capability_for(verb) not in view.capabilities:
        return Decision(
            target, refused=f"{target.host}: the {view.config.driver} driver cannot {verb.value}", state=state
        )
    overridden = False
    if verb in DESTRUCTIVE and is_protected(view, target.domain, domain):
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
    return Decision(target, overridden=overridden, state=state)


def plan(views: Iterable[HostView], verb: Verb, targets: Sequence[Target], *, override: bool = False) -> Plan:
    by_name = {v.name: v for v in views}
    return Plan(verb, tuple(decide(by_name.get(t.host), verb, t, override=override) for t in targets))


def select(views: Iterable[HostView], selector: Selector) -> list[Target]:
    """The domains a selector names, in inventory host order then name order."""
    targets: list[Target] = []
    for view in views:
        rows = sorted((r for r in view.rows if selector.matches(r, view.config)), key=lambda r: r.domain.name)
        targets.extend(Target(view.name, r.domain.name, r.domain.key) for r in rows)
    return targets


def interlock(count: int, *, multiple: bool, max_targets: int | None) -> None:
    """Headless safety catch: several targets need --multiple, and never more than the cap."""
    if count == 0:
        raise PolicyRefused("the selector matches no domain")
    if count > 1 and not multiple:
        raise PolicyRefused(f"the selector matches {count} domains: add --multiple to act on all of them")
    if max_targets is not None and count > max_targets:
        raise PolicyRefused(f"the selector matches {count} domains, more than --max-targets {max_targets}")
