"""One host's domain data, and the all-or-nothing step that takes in a new snapshot.

A driver bug can hand the engine a malformed sample (a string where a counter
belongs). Such a value must never become the "previous sample" that every later
rate is computed from, nor reach a face that formats it as a number: each
snapshot is checked first, and a snapshot that fails changes nothing.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

from vfleet.core.errors import GarbledOutput
from vfleet.core.history import HostHistory
from vfleet.core.metrics import DomainRow, compute_rates
from vfleet.core.models import (
    Domain,
    DomainCounters,
    DomainGauges,
    HostConfig,
    HostFacts,
    HostSnapshot,
    PowerState,
)

_NUMBER_TYPES = frozenset({int, float, type(None)})  # type(), not isinstance: True is no byte count
_DOMAIN_NUMBERS = (
    "domain_id",
    "vcpus",
    "memory_max_bytes",
    "memory_current_bytes",
    "memory_used_bytes",
    "uptime_s",
)
_COUNTERS = tuple(f.name for f in fields(DomainCounters))
_GAUGES = tuple(f.name for f in fields(DomainGauges))
_FACT_NUMBERS = ("cpus", "memory_bytes")
# This check runs for every domain of every poll: attrgetter reads all fields in one C call.
_CHECKS = tuple((attrgetter(*names), names) for names in (_DOMAIN_NUMBERS, _COUNTERS, _GAUGES, _FACT_NUMBERS))
_READ_DOMAIN, _READ_COUNTERS, _READ_GAUGES, _READ_FACTS = _CHECKS


def _bad_number(obj: object, check: tuple[attrgetter[Any], tuple[str, ...]]) -> tuple[str, object] | None:
    read, names = check
    values = read(obj)
    if _NUMBER_TYPES.issuperset(map(type, values)):
        return None
    return next((n, v) for n, v in zip(names, values, strict=True) if type(v) not in _NUMBER_TYPES)


def _problem(domain: Domain) -> str | None:
    if type(domain.name) is not str or type(domain.raw_state) is not str:
        return f"name/raw_state is not text: {domain.name!r:.60}/{domain.raw_state!r:.60}"
    if not isinstance(domain.state, PowerState):
        return f"state is {domain.state!r:.60}, not a PowerState"
    if domain.uuid is not None and type(domain.uuid) is not str:
        return f"uuid is {domain.uuid!r:.60}, not text"
    bad = (
        _bad_number(domain, _READ_DOMAIN)
        or (domain.counters and _bad_number(domain.counters, _READ_COUNTERS))
        or (domain.gauges and _bad_number(domain.gauges, _READ_GAUGES))
    )
    if bad:
        return f"{bad[0]} is {bad[1]!r:.60}, not a number"
    return None


def check_facts(host: str, facts: HostFacts | None) -> None:
    """Raise GarbledOutput if facts carry a value the engine cannot compute with."""
    if facts is None:
        return
    bad = _bad_number(facts, _READ_FACTS)
    if bad is not None:
        raise GarbledOutput(host, f"bad sample: host {bad[0]} is {bad[1]!r:.60}, not a number")


def check_snapshot(host: str, snapshot: HostSnapshot) -> None:
    """Raise GarbledOutput naming the first domain and field that is not what the models promise."""
    check_facts(host, snapshot.facts)
    for domain in snapshot.domains:
        problem = _problem(domain)
        if problem is not None:
            raise GarbledOutput(host, f"bad sample: domain {domain.name!r:.60}: {problem}")


class HostData:
    """What the engine knows of one host's domains: rows, last counters, history."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.facts: HostFacts | None = None
        self.rows: tuple[DomainRow, ...] = ()
        self.counters: dict[str, DomainCounters] = {}
        self.history: HostHistory | None = None  # kept only for a face that draws it (Fleet.keep_history)

    def absorb(self, snapshot: HostSnapshot) -> None:
        """Take in one poll; raises (changing nothing) if the snapshot is malformed."""
        config = self.config
        check_snapshot(config.name, snapshot)
        facts = snapshot.facts if snapshot.facts is not None else self.facts
        host_cpus = facts.cpus if facts else None
        hypervisor = facts.hypervisor if facts else config.driver
        rows: list[DomainRow] = []
        points: list[tuple[str, DomainCounters | None]] = []
        for domain in snapshot.domains:
            key = domain.key
            rates = compute_rates(
                self.counters.get(key), domain.counters, vcpus=domain.vcpus, host_cpus=host_cpus, gauges=domain.gauges
            )
            points.append((key, domain.counters))
            rows.append(DomainRow(config.name, hypervisor, domain, rates, config.tags, snapshot.taken_at))
        # Commit: nothing above changed self, so a sample that raised left the host as it was.
        for key, counters in points:
            if counters is not None:
                self.counters[key] = counters
        seen = {key for key, _ in points}
        if not seen.issuperset(self.counters):  # domains that left the host
            for gone in set(self.counters) - seen:
                del self.counters[gone]
        if self.history is not None:
            self.history.record(rows)
        self.facts = facts
        self.rows = tuple(rows)
