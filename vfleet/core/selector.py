"""Domain selectors: the `/` filter of the TUI and the filters of the CLI, in one place.

A selector is a list of terms, all of which must match (AND):
  text          substring of the domain name (case-insensitive)
  re:PATTERN    regular expression searched in the domain name
  name:GLOB     glob on the domain name          host:GLOB   glob on the host name
  group:NAME    the host is in this group        tag:NAME    the host carries this tag
  state:STATE   power state (running, off, paused, ...; "on" = running)
  hv:NAME       hypervisor (kvm, qemu, xen, esxi, ...) or driver name
  FIELD>N, FIELD<N, FIELD>=N, FIELD<=N, FIELD=N   on cpu, mem (used %), vcpus, disk, net
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vfleet.core.errors import UsageError
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, PowerState

_STATE_ALIASES = {"on": PowerState.RUNNING, "shutoff": PowerState.OFF, "stopped": PowerState.OFF}
_COMPARE = re.compile(r"^(?P<field>[a-z_]+)(?P<op>>=|<=|>|<|=)(?P<value>-?\d+(\.\d+)?)$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "=": operator.eq,
}
Predicate = Callable[[DomainRow, HostConfig], bool]


def _number(field: str) -> Callable[[DomainRow], float | None]:
    def mem(row: DomainRow) -> float | None:
        d = row.domain
        if d.memory_used_bytes is None or not d.memory_max_bytes:
            return None
        return 100.0 * d.memory_used_bytes / d.memory_max_bytes

    def total(a: float | None, b: float | None) -> float | None:
        return None if a is None and b is None else (a or 0.0) + (b or 0.0)

    getters: dict[str, Callable[[DomainRow], float | None]] = {
        "cpu": lambda r: r.rates.cpu_percent,
        "mem": mem,
        "vcpus": lambda r: r.domain.vcpus,
        "disk": lambda r: total(r.rates.disk_read_bps, r.rates.disk_write_bps),
        "net": lambda r: total(r.rates.net_rx_bps, r.rates.net_tx_bps),
        "contention": lambda r: r.rates.contention_percent,
    }
    if field not in getters:
        raise UsageError(f"unknown filter field {field!r} in a comparison (numeric fields: {', '.join(getters)})")
    return getters[field]


def parse_state(word: str) -> PowerState:
    word = word.lower()
    if word in _STATE_ALIASES:
        return _STATE_ALIASES[word]
    for state in PowerState:
        if word in (state.value, state.name.lower()):
            return state
    raise UsageError(f"unknown state {word!r} (expected one of: {', '.join(s.value for s in PowerState)})")


def _term(term: str) -> Predicate:
    if match := _COMPARE.match(term):
        get, op, limit = _number(match["field"]), _OPS[match["op"]], float(match["value"])

        def compare(row: DomainRow, host: HostConfig) -> bool:
            value = get(row)
            return value is not None and op(value, limit)

        return compare
    key, sep, value = term.partition(":")
    if not sep and any(c in term for c in "<>="):
        raise UsageError(f"bad comparison {term!r} (expected FIELD>N, FIELD<=N, ... e.g. cpu>80)")
    if not sep:
        needle = term.lower()
        return lambda row, host: needle in row.domain.name.lower()
    if not value:
        raise UsageError(f"filter term {term!r} has nothing after the colon")
    if key == "re":
        try:
            pattern = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise UsageError(f"bad regular expression {value!r}: {exc}") from None
        return lambda row, host: pattern.search(row.domain.name) is not None
    if key == "name":
        return lambda row, host: fnmatch.fnmatchcase(row.domain.name, value)
    if key == "host":
        return lambda row, host: fnmatch.fnmatchcase(row.host, value)
    if key == "group":
        return lambda row, host: value in host.groups
    if key == "tag":
        return lambda row, host: value in row.tags
    if key == "state":
        state = parse_state(value)
        return lambda row, host: row.domain.state is state
    if key in ("hv", "hypervisor"):
        word = value.lower()
        return lambda row, host: word in (row.hypervisor.lower(), host.driver.lower())
    raise UsageError(f"unknown filter term {key + ':'!r} (known: name: host: group: tag: state: hv: re:)")


@dataclass(frozen=True)
class Selector:
    text: str
    predicates: tuple[Predicate, ...]

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> Selector:
        terms = text.split() if isinstance(text, str) else [t for t in text if t]
        return cls(" ".join(terms), tuple(_term(t) for t in terms))

    def __bool__(self) -> bool:
        return bool(self.predicates)

    def matches(self, row: DomainRow, host: HostConfig) -> bool:
        return all(p(row, host) for p in self.predicates)

    def host_may_match(self, host: HostConfig) -> bool:
        """False when no domain of this host can match: the host need not be polled."""
        for term in self.text.split():
            key, _, value = term.partition(":")
            if key == "host" and not fnmatch.fnmatchcase(host.name, value):
                return False
            if key == "group" and value not in host.groups:
                return False
            if key == "tag" and value not in host.tags:
                return False
        return True
