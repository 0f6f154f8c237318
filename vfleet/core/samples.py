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
    DomainRates,
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
    if domain.identity is not None and type(domain.identity) is not str:
        return f"identity is {domain.identity!r:.60}, not text"
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


# Per domain key: (the Domain last absorbed, the counters its next rates start from,
# the time those counters were last known current (None: at the last poll absorbed,
# HostData.taken_at), the rates it was given, the counters whose stand-still those
# rates are, or None when they are the rates of a change, and its row), so a domain
# that keeps standing still reuses its zero rates, its row and this very entry.
_Seen = tuple[Domain, DomainCounters | None, float | None, DomainRates, DomainCounters | None, DomainRow]


class HostData:
    """What the engine knows of one host's domains: rows, last counters, history."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.facts: HostFacts | None = None
        self.rows: tuple[DomainRow, ...] = ()
        self.taken_at: float | None = None  # of the last snapshot absorbed (a kept row keeps its own time)
        self.seen: dict[str, _Seen] = {}
        self.history: HostHistory | None = None  # kept only for a face that draws it (Fleet.keep_history)
        self._host_cpus: int | None = None

    @property
    def counters(self) -> dict[str, DomainCounters]:
        """The last counters of each domain: where its next rates start from."""
        return {key: seen[1] for key, seen in self.seen.items() if seen[1] is not None}

    def absorb(self, snapshot: HostSnapshot) -> None:
        """Take in one poll; raises (changing nothing) if the snapshot is malformed.

        A driver that hands back last poll's Domain object says "nothing changed":
        it was checked then, and its rates are those of unchanged counters, so the
        check and the arithmetic are skipped (most of a large fleet idles or is off),
        and from its second still poll on it keeps its row where no history is kept
        (taken_at: when its values were read; the host's last poll is self.taken_at).
        """
        config = self.config
        check_facts(config.name, snapshot.facts)
        facts = snapshot.facts if snapshot.facts is not None else self.facts
        host_cpus = facts.cpus if facts else None
        hypervisor = facts.hypervisor if facts else config.driver
        name, tags, taken = config.name, config.tags, snapshot.taken_at
        last = self.seen if host_cpus == self._host_cpus else {}
        # With history kept, a console draws a sparkline that moves on every poll: it
        # redraws the rows that are new objects, so each poll's rows are new there.
        keep_rows = self.history is None
        last_poll = self.taken_at if self.taken_at is not None else 0.0
        seen: dict[str, _Seen] = {}
        rows: list[DomainRow] = []
        for domain in snapshot.domains:
            key = domain.identity or domain.uuid or domain.name
            prev = last.get(key)
            counters = domain.counters
            if prev is not None and prev[0] is domain:  # unchanged since the last poll
                if counters is None or prev[4] is counters:
                    rates = prev[3]
                    row = prev[5]
                    if keep_rows and row.hypervisor == hypervisor and (counters is None or prev[2] is None):
                        seen[key] = prev  # standing still again: all as it was
                        rows.append(row)
                        continue
                    if not keep_rows or row.hypervisor != hypervisor:
                        row = DomainRow(name, hypervisor, domain, rates, tags, taken)
                else:  # the first poll it stood still: zero deltas from its own values
                    rates = compute_rates(
                        counters,
                        counters,
                        vcpus=domain.vcpus,
                        host_cpus=host_cpus,
                        gauges=domain.gauges,
                        seconds=taken - (prev[2] if prev[2] is not None else last_poll),
                    )
                    row = DomainRow(name, hypervisor, domain, rates, tags, taken)
                # Its counters are current as of this poll (None says so without a new time per poll).
                entry: _Seen = (domain, prev[1], None if counters is not None else prev[2], rates, counters, row)
            else:
                problem = _problem(domain)
                if problem is not None:
                    raise GarbledOutput(name, f"bad sample: domain {domain.name!r:.60}: {problem}")
                before, at = (None, 0.0) if prev is None else (prev[1], last_poll if prev[2] is None else prev[2])
                rates = compute_rates(
                    before,
                    counters,
                    vcpus=domain.vcpus,
                    host_cpus=host_cpus,
                    gauges=domain.gauges,
                    seconds=None if before is None or counters is None else counters.taken_at - at,
                )
                row = DomainRow(name, hypervisor, domain, rates, tags, taken)
                if counters is None:  # off: the last counters stay, as they were
                    entry = (domain, before, at, rates, None, row)
                else:
                    entry = (domain, counters, counters.taken_at, rates, None, row)  # rates of a change
            seen[key] = entry
            rows.append(row)
        # Commit: nothing above changed self, so a sample that raised left the host as it was.
        self.seen = seen
        self._host_cpus = host_cpus
        if self.history is not None:
            self.history.record(rows)
        self.facts = facts
        self.rows = tuple(rows)
        self.taken_at = taken
