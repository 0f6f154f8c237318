"""Domain selectors: the `/` filter of the TUI and the filters of the CLI, in one place.

A selector is a list of terms separated by spaces, all of which must match (AND):
  web           the domain name contains "web", any case (`act`: the name, a glob)
  name:GLOB     glob on the domain name          host:GLOB   glob on the host name
  group:GLOB    a group of the host              tag:GLOB    a tag of the host
  hv:GLOB       hypervisor (kvm, xen, esxi ...) or driver name (libvirt, xen_xl ...)
  node:GLOB     the server the domain runs on in a pool or cluster (a domain on none never matches)
  state:STATE   power state (running, off, paused, ...; "on" = running)
  re:REGEX      regular expression searched in the name (any case); the rest of the term
  FIELD>N, FIELD<N, FIELD>=N, FIELD<=N, FIELD=N   on cpu, mem (used %), vcpus, disk, net, contention
  a|b           either alternative; one without a key keeps the key before it (state:running|paused)
  !term         the term does not match (! negates all its alternatives: !state:off|paused)
Globs and keys ignore case. A bad term raises UsageError naming it, in one line.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from vfleet.core.errors import UsageError
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, PowerState, Value

_STATE_ALIASES = {"on": PowerState.RUNNING, "shutoff": PowerState.OFF, "stopped": PowerState.OFF}
_COMPARE = re.compile(r"^(?P<field>[a-z_]+)(?P<op>>=|<=|>|<|=)(?P<value>-?\d+(\.\d+)?)$", re.IGNORECASE)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "=": operator.eq,
}
_KEYS = ("name", "host", "node", "group", "tag", "state", "hv", "re")
Predicate = Callable[[DomainRow, HostConfig], bool]
# What a term says from the host alone: True/False, or None when it depends on the domain.
HostTest = Callable[[HostConfig], bool | None]
Bare = Literal["text", "name"]

# The grammar in short, for the console's help and the CLI's --help.
GRAMMAR: tuple[tuple[str, str], ...] = (
    ("web", "the name contains web (any case)"),
    ("name:GLOB host:GLOB", "globs, any case: name:web-?  host:kvm*"),
    ("group:G tag:T hv:H", "the host's group, tag; hypervisor or driver (globs)"),
    ("node:GLOB", "the server in a pool or cluster: node:esx-0?"),
    ("state:STATE", "running paused off shutting-down crashed suspended"),
    ("re:REGEX", "regex in the name; takes the rest of the term"),
    ("cpu>80 mem>=90", "> < >= <= = on cpu mem vcpus disk net contention"),
    ("a b", "both terms match"),
    ("a|b", "either matches; state:running|paused keeps the key"),
    ("!term", "the term does not match: !state:off  !host:esx*|xen*"),
)


class _Bad(Exception):
    """A problem with one part of a term; the caller names the whole term."""


@dataclass(frozen=True, repr=False, eq=False)
class _Term(Value):
    matches: Predicate
    on_host: HostTest


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A shell glob (`*`, `?`, `[...]`) that ignores case, as every glob of the filters does."""
    match = re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL).match
    return lambda text: match(text) is not None


def parse_state(word: str) -> PowerState:
    word = word.lower()
    if word in _STATE_ALIASES:
        return _STATE_ALIASES[word]
    for state in PowerState:
        if word in (state.value, state.name.lower()):
            return state
    raise UsageError(f"unknown state {word!r} (expected one of: {', '.join(s.value for s in PowerState)})")


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
        raise _Bad(f"unknown filter field {field!r} (numeric fields: {', '.join(getters)})")
    return getters[field]


def _unknown(_host: HostConfig) -> bool | None:
    return None


def _compare(text: str) -> _Term | None:
    match = _COMPARE.match(text)
    if match is None:
        return None
    get, op, limit = _number(match["field"].lower()), _OPS[match["op"]], float(match["value"])

    def compare(row: DomainRow, host: HostConfig) -> bool:
        value = get(row)
        return value is not None and op(value, limit)

    return _Term(compare, _unknown)


def _keyed(key: str, value: str) -> _Term:
    """One `key:value` alternative."""
    if not value:
        raise _Bad(f"nothing after {key + ':'!r}")
    if key == "re":
        try:
            pattern = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise _Bad(f"bad regular expression: {exc}") from None
        return _Term(lambda row, host: pattern.search(row.domain.name) is not None, _unknown)
    if key == "state":
        try:
            state = parse_state(value)
        except UsageError as exc:
            raise _Bad(str(exc)) from None
        return _Term(lambda row, host: row.domain.state is state, _unknown)
    glob = glob_matcher(value)
    if key == "name":
        return _Term(lambda row, host: glob(row.domain.name), _unknown)
    if key == "host":
        return _Term(lambda row, host: glob(row.host), lambda host: glob(host.name))
    if key == "node":  # only a domain placed on a node can match one
        return _Term(lambda row, host: row.domain.node is not None and glob(row.domain.node), _unknown)
    if key == "group":
        return _Term(lambda row, host: any(map(glob, host.groups)), lambda host: any(map(glob, host.groups)))
    if key == "tag":
        return _Term(lambda row, host: any(map(glob, row.tags)), lambda host: any(map(glob, host.tags)))
    # hv: the hypervisor the host reported, or the driver the inventory names
    return _Term(lambda row, host: glob(row.hypervisor) or glob(host.driver), lambda host: glob(host.driver) or None)


def _bare(word: str, bare: Bare) -> _Term:
    if any(c in word for c in "<>="):
        raise _Bad("bad comparison (expected FIELD>N, FIELD<=N, ... e.g. cpu>80)")
    if bare == "name":  # `act force-off web1` must not also hit web10
        glob = glob_matcher(word)
        return _Term(lambda row, host: glob(row.domain.name), _unknown)
    needle = word.casefold()
    return _Term(lambda row, host: needle in row.domain.name.casefold(), _unknown)


def _alternatives(text: str, bare: Bare) -> list[_Term]:
    """`a|b|key:c|d`: a `re:` takes the rest (its own `|` included); a bare part keeps the key before it."""
    terms: list[_Term] = []
    key: str | None = None
    rest = text
    while True:
        if rest.lower().startswith("re:"):
            part, rest = rest, ""
        else:
            part, bar, rest = rest.partition("|")
            if bar and not rest:
                raise _Bad("nothing after the last '|'")
        if not part:
            raise _Bad("an empty alternative (write a|b)")
        if part.startswith("!"):
            raise _Bad("'!' goes before the whole term ('!a|b' matches neither a nor b)")
        if (compared := _compare(part)) is not None:
            terms.append(compared)
            key = None
        else:
            head, colon, value = part.partition(":")
            if colon:
                key = head.lower()
                if key == "hypervisor":
                    key = "hv"
                if key not in _KEYS:
                    raise _Bad(f"unknown filter term {head + ':'!r} (known: {' '.join(k + ':' for k in _KEYS)})")
                terms.append(_keyed(key, value))
            elif key is not None:
                terms.append(_keyed(key, part))
            else:
                terms.append(_bare(part, bare))
        if not rest:
            return terms


def _any_of(terms: list[_Term]) -> _Term:
    if len(terms) == 1:
        return terms[0]

    def on_host(host: HostConfig) -> bool | None:
        answers = [t.on_host(host) for t in terms]
        return True if True in answers else None if None in answers else False

    return _Term(lambda row, host: any(t.matches(row, host) for t in terms), on_host)


def _negated(term: _Term) -> _Term:
    def on_host(host: HostConfig) -> bool | None:
        answer = term.on_host(host)
        return None if answer is None else not answer

    return _Term(lambda row, host: not term.matches(row, host), on_host)


def _term(text: str, bare: Bare) -> _Term:
    try:
        if text.startswith("!"):
            if len(text) == 1:
                raise _Bad("nothing after '!'")
            return _negated(_any_of(_alternatives(text[1:], bare)))
        return _any_of(_alternatives(text, bare))
    except _Bad as exc:
        raise UsageError(f"filter term {text!r}: {exc}") from None


@dataclass(frozen=True, repr=False, eq=False)
class Selector(Value):
    text: str
    terms: tuple[_Term, ...]

    @classmethod
    def parse(cls, text: str | Iterable[str], *, bare: Bare = "text") -> Selector:
        """Terms from a line (split on spaces) or a list; `bare="name"`: a bare word is a name glob."""
        words = text.split() if isinstance(text, str) else [t for t in text if t]
        return cls(" ".join(words), tuple(_term(w, bare) for w in words))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, row: DomainRow, host: HostConfig) -> bool:
        return all(t.matches(row, host) for t in self.terms)

    def host_may_match(self, host: HostConfig) -> bool:
        """False when no domain of this host can match: the host need not be polled."""
        return all(t.on_host(host) is not False for t in self.terms)
