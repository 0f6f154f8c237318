"""`vfleet check`: the fleet judged the way a monitoring plugin reports it.

Pure over HostViews (the CLI gathers them): host health and data age, domains not in an
expected state, and metrics against warn/crit ranges, per host (aggregates) or per
domain. The result renders as the Monitoring Plugins output (one status line with
perfdata after `|`, then one line per problem) or as a `vfleet.check/1` document.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal

from vfleet.core.aggregates import HostSummary, summarize_host, summarize_nodes
from vfleet.core.engine import Fleet, HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, HostStatus, PowerState
from vfleet.core.ranges import Range
from vfleet.core.sanitize import printable
from vfleet.core.selector import Selector
from vfleet.core.thresholds import memory_used_percent

SCHEMA = "vfleet.check/1"
Per = Literal["host", "node", "domain"]


class State(IntEnum):
    """The plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# Worst first when states combine: a page beats "could not tell", which beats a warning.
_RANK = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}


def worst(states: Iterable[State]) -> State:
    return max(states, key=_RANK.__getitem__, default=State.OK)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    uom: str  # perfdata unit: %, B (bytes per second for rates), s
    maximum: float | None
    rate: bool  # needs two polls
    doc: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("cpu", "%", 100.0, True, "CPU %: of the domain's vCPUs; per host (node), of its CPUs"),
        Metric("memory", "%", 100.0, False, "memory used, % of the domain's maximum; per host (node), of its"),
        Metric("contention", "%", 100.0, True, "% of time vCPUs waited for a CPU; per host (node), the worst domain"),
        Metric("disk", "B", None, True, "disk read + write, bytes/s; per host (node), the sum"),
        Metric("net", "B", None, True, "network receive + transmit, bytes/s; per host (node), the sum"),
        Metric("age", "s", None, False, "seconds since the host's last good poll (always per host)"),
    )
}


@dataclass(frozen=True, slots=True)
class Limits:
    warn: Range | None = None
    crit: Range | None = None

    def state(self, value: float | None) -> State:
        if value is None:  # unknown is never an alert (the host checks say why it is unknown)
            return State.OK
        if self.crit is not None and self.crit.alerts(value):
            return State.CRITICAL
        if self.warn is not None and self.warn.alerts(value):
            return State.WARNING
        return State.OK


@dataclass(frozen=True, slots=True)
class Spec:
    limits: Mapping[str, Limits]  # metric -> its ranges; a metric listed here is checked and graphed
    per: Per = "domain"
    expect: frozenset[PowerState] = frozenset()  # empty: any state is fine


@dataclass(frozen=True, slots=True)
class Problem:
    state: State
    check: str  # host, stale, state, selection, or a metric name
    host: str | None
    domain: str | None
    message: str  # without the host/domain prefix
    value: float | None = None
    node: str | None = None  # `--per node`: the server of a pool or cluster

    @property
    def where(self) -> str:
        return "/".join(p for p in (self.host, self.node, self.domain) if p is not None)

    def line(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.state.name}: {where}{self.message}"


@dataclass(frozen=True, slots=True)
class Perf:
    label: str
    value: float
    uom: str = ""
    warn: Range | None = None
    crit: Range | None = None
    minimum: float | None = None
    maximum: float | None = None

    def text(self) -> str:
        """`'label'=value[UOM];[warn];[crit];[min];[max]`, trailing empty fields dropped."""
        fields = [
            f"{_number(self.value)}{self.uom}",
            perf_range(self.warn) if self.warn else "",
            perf_range(self.crit) if self.crit else "",
            _number(self.minimum) if self.minimum is not None else "",
            _number(self.maximum) if self.maximum is not None else "",
        ]
        return f"{perf_label(self.label)}={';'.join(fields).rstrip(';')}"


@dataclass(frozen=True)
class Outcome:
    state: State
    summary: str
    problems: list[Problem]
    perfdata: list[Perf]
    late: list[str] = field(default_factory=list)  # hosts that did not answer in time

    def plugin_output(self) -> str:
        """The status line with the perfdata, then one line per problem (the plugins' long output)."""
        perf = " ".join(p.text() for p in self.perfdata)
        head = f"VFLEET {self.state.name} - {plugin_text(self.summary)}" + (f" | {perf}" if perf else "")
        return "\n".join([head, *(plugin_text(p.line()) for p in self.problems)]) + "\n"

    def document(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "status": self.state.name,
            "exit_code": int(self.state),
            "summary": self.summary,
            "late_hosts": self.late,
            "problems": [
                {
                    "status": p.state.name,
                    "check": p.check,
                    "host": p.host,
                    "domain": p.domain,
                    "node": p.node,
                    "message": p.message,
                    "value": p.value,
                }
                for p in self.problems
            ],
            "perfdata": [
                {
                    "label": p.label,
                    "value": p.value,
                    "uom": p.uom,
                    "warn": str(p.warn) if p.warn else None,
                    "crit": str(p.crit) if p.crit else None,
                    "min": p.minimum,
                    "max": p.maximum,
                }
                for p in self.perfdata
            ],
        }


def plugin_text(text: str) -> str:
    """Remote text on a plugin's output: escaped, and no `|`, which would start the perfdata."""
    return printable(text).replace("|", "\\x7c")


def perf_label(label: str) -> str:
    """A label that cannot break the perfdata: escaped, `|` and `=` replaced, quoted when it must be."""
    text = plugin_text(label).replace("=", "_")
    if any(c in text for c in " '\"") or not text:
        return "'" + text.replace("'", "''") + "'"
    return text


def perf_range(r: Range) -> str:
    """A range in perfdata: as given when its numbers are plain, else rewritten without exponents."""
    if r.text and _PLAIN_RANGE.fullmatch(r.text):
        return r.text
    at = "@" if r.inside else ""
    start = "~" if r.start == -math.inf else _number(r.start)
    if r.end == math.inf:
        return f"{at}{start}:"
    if r.start == 0 and not r.inside:
        return _number(r.end)
    return f"{at}{start}:{_number(r.end)}"


def _number(value: float) -> str:
    """Perfdata numbers are [-0-9.] only: no exponent, no inf."""
    if not math.isfinite(value):
        return "0"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


# -- evaluation ---------------------------------------------------------------------


_PLAIN_RANGE = re.compile(r"@?(~|-?[0-9.]+)?:?(-?[0-9.]+)?")
_DOWN = (HostStatus.DOWN, HostStatus.AUTH_FAILED)
_SHAKY = (HostStatus.DEGRADED, HostStatus.STALE, HostStatus.CONNECTING)


def evaluate(
    views: Sequence[HostView], selector: Selector, spec: Spec, *, late: Sequence[str] = (), now: float | None = None
) -> Outcome:
    now = time.monotonic() if now is None else now
    problems: list[Problem] = []
    perf: list[Perf] = []
    hosts = [v for v in views if selector.host_may_match(v.config)]
    answered = [v for v in hosts if _host_checks(v, spec, late, now, problems, perf)]
    rows = [(v, row) for v in answered for row in v.rows if selector.matches(row, v.config)]
    if spec.expect:
        _expect(rows, spec.expect, problems)
        if not rows and len(answered) == len(hosts):
            wanted = "|".join(sorted(s.value for s in spec.expect))
            problems.append(Problem(State.CRITICAL, "selection", None, None, f"no domain matches (expected {wanted})"))
    metrics = [m for m in spec.limits if m != "age"]
    if spec.per == "host":
        for view in answered:
            summary = summarize_host(view, now)
            selected = [row for v, row in rows if v is view]
            for metric in metrics:
                _judge(metric, _host_value(metric, summary, selected), spec, view.name, None, problems, perf)
    elif spec.per == "node":
        # Each server of a pool or cluster on its own; a single host is its own only server.
        for view in answered:
            selected = [row for v, row in rows if v is view]
            for summary in summarize_nodes(view, now) or (summarize_host(view, now),):
                on = [r for r in selected if summary.node is None or r.domain.node == summary.node]
                for metric in metrics:
                    value = _host_value(metric, summary, on)
                    _judge(metric, value, spec, view.name, None, problems, perf, node=summary.node)
    else:
        for view, row in rows:
            for metric in metrics:
                _judge(metric, _domain_value(metric, row), spec, view.name, row.domain.name, problems, perf)
    up = sum(v.health.status is HostStatus.UP for v in hosts)
    perf[:0] = [
        Perf("hosts_up", up, "", None, None, 0, len(hosts)),
        Perf("domains", len(rows), "", None, None, 0),
    ]
    state = worst(p.state for p in problems)
    problems.sort(key=lambda p: -_RANK[p.state])
    return Outcome(state, _summary(problems, len(hosts), up, len(rows), late), problems, perf, list(late))


def _host_checks(
    view: HostView, spec: Spec, late: Sequence[str], now: float, problems: list[Problem], perf: list[Perf]
) -> bool:
    """Health and data age of one host; False when none of its data can be judged."""
    health, name = view.health, view.name
    error = (health.last_error or "").removeprefix(f"{name}: ")
    if name in late:
        problems.append(Problem(State.UNKNOWN, "host", name, None, "did not answer in time" + _but(error)))
        return False
    if health.status in _DOWN:
        problems.append(Problem(State.CRITICAL, "host", name, None, f"{health.status.value}{_but(error)}"))
        return False
    if health.last_ok_at is None:  # connected, but no poll ever came back
        problems.append(Problem(State.UNKNOWN, "host", name, None, "no poll answered" + _but(error)))
        return False
    if health.status in _SHAKY:
        problems.append(Problem(State.WARNING, "host", name, None, f"{health.status.value}{_but(error)}"))
    age = health.data_age(now)
    _judge("age", age, spec, name, None, problems, perf)
    return True


def _but(error: str) -> str:
    return f": {error}" if error else ""


def _expect(rows: list[tuple[HostView, DomainRow]], expect: frozenset[PowerState], problems: list[Problem]) -> None:
    wanted = "|".join(sorted(s.value for s in expect))
    for view, row in rows:
        state = row.domain.state
        if state not in expect:
            message = f"{state.value}, expected {wanted}"
            problems.append(Problem(State.CRITICAL, "state", view.name, row.domain.name, message))


def _judge(
    metric: str,
    value: float | None,
    spec: Spec,
    host: str,
    domain: str | None,
    problems: list[Problem],
    perf: list[Perf],
    node: str | None = None,
) -> None:
    limits = spec.limits.get(metric)
    if limits is None or value is None:
        return
    info = METRICS[metric]
    where = "/".join(p for p in (host, node, domain) if p is not None)
    perf.append(Perf(f"{where} {metric}", value, info.uom, limits.warn, limits.crit, 0, info.maximum))
    state = limits.state(value)
    if state is not State.OK:
        breached = limits.crit if state is State.CRITICAL else limits.warn
        outside = "inside" if breached is not None and breached.inside else "outside"
        shown = f"{_number(value)}{'' if info.uom == 'B' else info.uom}{' B/s' if info.uom == 'B' else ''}"
        message = f"{metric} {shown} ({outside} {breached})"
        problems.append(Problem(state, metric, host, domain, message, value, node))


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


_DOMAIN_VALUES: dict[str, Callable[[DomainRow], float | None]] = {
    "cpu": lambda r: r.rates.cpu_percent,
    "memory": lambda r: memory_used_percent(r.domain),
    "contention": lambda r: r.rates.contention_percent,
    "disk": lambda r: _sum((r.rates.disk_read_bps, r.rates.disk_write_bps)),
    "net": lambda r: _sum((r.rates.net_rx_bps, r.rates.net_tx_bps)),
}


def _domain_value(metric: str, row: DomainRow) -> float | None:
    return _DOMAIN_VALUES[metric](row)


def _host_value(metric: str, summary: HostSummary, rows: Sequence[DomainRow]) -> float | None:
    if metric == "cpu":
        return summary.cpu_pct
    if metric == "memory":
        used, total = summary.mem_used_bytes, summary.memory_total_bytes
        return None if used is None or not total else 100.0 * used / total
    if metric == "contention":
        return summary.contention_max_pct
    return _sum(_DOMAIN_VALUES[metric](r) for r in rows)  # disk, net: the host's selected domains


def _summary(problems: list[Problem], hosts: int, up: int, domains: int, late: Sequence[str]) -> str:
    fleet = f"{up}/{hosts} hosts up, {domains} domain{'s' if domains != 1 else ''}"
    if late:
        fleet = f"no answer in time from {', '.join(late)}; " + fleet
    if not problems:
        return fleet
    if len(problems) == 1:
        return f"{problems[0].where + ': ' if problems[0].where else ''}{problems[0].message}; {fleet}"
    counts = Counter((p.state, p.check) for p in problems)
    ranked = sorted(counts.items(), key=lambda item: -_RANK[item[0][0]])
    parts = [f"{n} {check} {state.name.lower()}" for (state, check), n in ranked]
    return f"{len(problems)} problems ({', '.join(parts)}); {fleet}"


# -- gathering ----------------------------------------------------------------------


async def gather(hosts: Sequence[HostConfig], *, interval: float, timeout: float) -> tuple[list[HostView], list[str]]:
    """Poll every host once (interval 0) or twice for rates; the views and the hosts that did not settle in time."""
    polls_needed = 2 if interval > 0 else 1
    poll_interval = interval if interval > 0 else 3600.0
    fleet = Fleet([replace(h, poll_interval=poll_interval) for h in hosts])
    settled: dict[str, HostView] = {}

    def all_settled(views: list[HostView]) -> bool:
        for view in views:
            if view.name not in settled and _settled(view, polls_needed):
                settled[view.name] = view  # kept as it settled: a retrying DOWN host must not turn "connecting"
        return len(settled) == len(views)

    async with fleet:
        await fleet.wait_until(all_settled, timeout)
        views = fleet.views()
    late = [v.name for v in views if v.name not in settled]
    return [settled.get(v.name, v) for v in views], late


def _settled(view: HostView, polls_needed: int) -> bool:
    if view.health.polls >= polls_needed:
        return True
    return view.attempts >= 1 and view.health.status in (*_DOWN, HostStatus.DEGRADED)


def run_gather(hosts: Sequence[HostConfig], *, interval: float, timeout: float) -> tuple[list[HostView], list[str]]:
    return asyncio.run(gather(hosts, interval=interval, timeout=timeout))
