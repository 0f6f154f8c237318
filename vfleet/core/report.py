"""One-shot and streaming fleet reports, shared by `status`, `top --batch` and exporters.

Records are plain dicts in the documented, versioned JSON schema (README, "JSON schema"):
the table and CSV renderers use the same records, so every format says the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from vfleet.core.aggregates import (
    FleetSummary,
    HostSummary,
    fleet_summary_record,
    host_summary_record,
    node_summary_record,
    summarize_fleet,
    summarize_host,
    summarize_nodes,
)
from vfleet.core.engine import DriverFactory, Fleet, HostView, default_driver_factory
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, HostStatus, Value
from vfleet.core.selector import Selector

STATUS_SCHEMA = "vfleet.status/2"
TOP_SCHEMA = "vfleet.top/2"
_FAILED = (HostStatus.DEGRADED, HostStatus.DOWN, HostStatus.AUTH_FAILED)

DOMAIN_FIELDS = (
    "host",
    "hypervisor",
    "name",
    "uuid",
    "id",
    "state",
    "raw_state",
    "node",
    "vcpus",
    "cpu_pct",
    "cpu_host_pct",
    "mem_max_bytes",
    "mem_current_bytes",
    "mem_used_bytes",
    "mem_used_source",
    "disk_read_bps",
    "disk_write_bps",
    "disk_read_iops",
    "disk_write_iops",
    "net_rx_bps",
    "net_tx_bps",
    "contention_pct",
    "uptime_s",
    "snapshots",
    "oldest_snapshot_age_s",
    "stale",
    "tags",
)


@dataclass(frozen=True, repr=False, eq=False)
class Report(Value):
    hosts: list[dict[str, Any]]
    domains: list[dict[str, Any]]
    unreachable: list[str]  # hosts that are not UP, for the exit code and stderr
    problems: dict[str, str] = field(default_factory=dict)  # host -> what is wrong, one line
    # Aggregates of the whole host, whatever the domain filters; the fleet's over the hosts listed.
    host_summaries: list[HostSummary] = field(default_factory=list)
    summary: FleetSummary = field(default_factory=lambda: summarize_fleet([]))
    node_summaries: dict[str, tuple[HostSummary, ...]] = field(default_factory=dict)  # pools and clusters only

    def document(self, schema: str = STATUS_SCHEMA, **extra: Any) -> dict[str, Any]:
        return {
            "schema": schema,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            **extra,
            "summary": fleet_summary_record(self.summary),
            "hosts": self.hosts,
            "domains": self.domains,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def domain_record(row: DomainRow, stale: bool) -> dict[str, Any]:
    d, r = row.domain, row.rates
    return {
        "host": row.host,
        "hypervisor": row.hypervisor,
        "name": d.name,
        "uuid": d.uuid,
        "id": d.domain_id,
        "state": d.state.value,
        "raw_state": d.raw_state,
        "node": d.node,
        "vcpus": d.vcpus,
        "cpu_pct": _round(r.cpu_percent),
        "cpu_host_pct": _round(r.cpu_host_percent, 2),
        "mem_max_bytes": d.memory_max_bytes,
        "mem_current_bytes": d.memory_current_bytes,
        "mem_used_bytes": d.memory_used_bytes,
        "mem_used_source": d.memory_used_source.value if d.memory_used_source else None,
        "disk_read_bps": _round(r.disk_read_bps, 0),
        "disk_write_bps": _round(r.disk_write_bps, 0),
        "disk_read_iops": _round(r.disk_read_iops),
        "disk_write_iops": _round(r.disk_write_iops),
        "net_rx_bps": _round(r.net_rx_bps, 0),
        "net_tx_bps": _round(r.net_tx_bps, 0),
        "contention_pct": _round(r.contention_percent, 2),
        "uptime_s": _round(d.uptime_s, 0),
        "snapshots": d.snapshot_count,
        "oldest_snapshot_age_s": _round(d.snapshot_age(), 0),
        "stale": stale,
        "tags": sorted(row.tags),
    }


class RecordCache:
    """The last record of each domain, handed out again while its row's contents are the same objects.

    A `top` stream builds a report every frame; the engine reuses the Domain and rates
    of an unchanged domain, so its record need not be built again. Records are shared
    between reports: callers must not change them.
    """

    __slots__ = ("_hosts",)

    def __init__(self) -> None:
        self._hosts: dict[str, dict[str, tuple[object, object, str, bool, dict[str, Any]]]] = {}

    def records(self, host: str, rows: Sequence[DomainRow], stale: bool) -> list[dict[str, Any]]:
        old = self._hosts.get(host, {})
        new: dict[str, tuple[object, object, str, bool, dict[str, Any]]] = {}  # only what is shown now
        out = []
        for row in rows:
            domain, rates, hypervisor = row.domain, row.rates, row.hypervisor
            key = domain.identity or domain.uuid or domain.name
            prev = old.get(key)
            if (
                prev is not None
                and prev[0] is domain
                and prev[1] is rates
                and prev[2] == hypervisor
                and prev[3] is stale
            ):
                new[key] = prev  # as it was: no new entry either
                out.append(prev[4])
                continue
            record = domain_record(row, stale)
            new[key] = (domain, rates, hypervisor, stale, record)
            out.append(record)
        self._hosts[host] = new
        return out


def host_record(
    view: HostView, now: float, summary: HostSummary | None = None, nodes: tuple[HostSummary, ...] | None = None
) -> dict[str, Any]:
    health = view.health
    age = health.data_age(now)
    summary = summary or summarize_host(view, now)
    nodes = summarize_nodes(view, now) if nodes is None else nodes
    return {
        "name": view.name,
        "driver": view.config.driver,
        "hypervisor": view.facts.hypervisor if view.facts else None,
        "version": view.facts.version if view.facts else None,
        "status": health.status.value,
        "error": health.last_error,
        "data_age_s": None if age is None else round(age, 1),
        "domains": len(view.rows),
        "read_only": view.read_only,
        "groups": list(view.config.groups),
        "tags": sorted(view.config.tags),
        "summary": host_summary_record(summary),
        # A pool's or cluster's servers, each with the summary's fields; [] for a single host.
        "nodes": [node_summary_record(node) for node in nodes],
    }


def build_report(
    views: Sequence[HostView], selector: Selector, now: float | None = None, cache: RecordCache | None = None
) -> Report:
    """`cache` (kept by a caller that reports again and again) reuses the records of unchanged domains."""
    now = time.monotonic() if now is None else now
    hosts: list[dict[str, Any]] = []
    domains: list[dict[str, Any]] = []
    unreachable: list[str] = []
    problems: dict[str, str] = {}
    summaries: list[HostSummary] = []
    node_summaries: dict[str, tuple[HostSummary, ...]] = {}
    for view in views:
        if not selector.host_may_match(view.config):
            continue
        summary = summarize_host(view, now)
        summaries.append(summary)
        nodes = summarize_nodes(view, now)
        if nodes:
            node_summaries[view.name] = nodes
        hosts.append(host_record(view, now, summary, nodes))
        problem = host_problem(view, now)
        if problem is not None:
            unreachable.append(view.name)
            problems[view.name] = problem
        stale = view.health.status is not HostStatus.UP
        # An empty selector matches everything: no predicate call per domain then.
        rows = [row for row in view.rows if selector.matches(row, view.config)] if selector else view.rows
        if cache is not None:
            domains.extend(cache.records(view.name, rows, stale))
        else:
            domains.extend(domain_record(row, stale) for row in rows)
    return Report(hosts, domains, unreachable, problems, summaries, summarize_fleet(summaries), node_summaries)


def host_problem(view: HostView, now: float) -> str | None:
    """Why a host's data cannot be trusted, in one line without the host's name; None while it is UP."""
    health = view.health
    if health.status is HostStatus.UP:
        return None
    if health.last_error:
        return health.last_error.removeprefix(f"{view.name}: ")
    if health.status is HostStatus.STALE:
        age = health.data_age(now)
        return "connected, but no poll answered yet" if age is None else f"no poll answered for {age:.0f} s"
    return "not connected yet" if health.status is HostStatus.CONNECTING else "not reachable"


def _settled(view: HostView, polls_needed: int) -> bool:
    if view.health.polls >= polls_needed:
        return True
    # a failed poll or connection is an answer: report it rather than wait for the deadline;
    # so is a relay's "nothing fresh for this host" (STALE with a reason)
    health = view.health
    stale_answer = health.status is HostStatus.STALE and health.last_error is not None
    return view.attempts >= 1 and (health.status in _FAILED or stale_answer)


async def collect(
    hosts: Sequence[HostConfig],
    *,
    interval: float,
    read_only: bool = False,
    timeout: float | None = None,
    driver_factory: DriverFactory = default_driver_factory,
) -> list[HostView]:
    """Poll every host once (interval 0) or twice `interval` seconds apart, for rates."""
    polls_needed = 2 if interval > 0 else 1
    poll_interval = interval if interval > 0 else 3600.0
    if timeout is None:
        timeout = max((h.connect_timeout + h.call_timeout for h in hosts), default=1.0) + interval
    fleet = Fleet(
        [replace(h, poll_interval=poll_interval) for h in hosts], read_only=read_only, driver_factory=driver_factory
    )
    # A host is kept as it was when it settled: a DOWN host retrying in the
    # background must not hold the report back, nor turn back into "connecting".
    settled: dict[str, HostView] = {}

    def all_settled(views: list[HostView]) -> bool:
        for view in views:
            if view.name not in settled and _settled(view, polls_needed):
                settled[view.name] = view
        return len(settled) == len(views)

    async with fleet:
        await fleet.wait_until(all_settled, timeout)
        views = fleet.views()
    return [settled.get(v.name) or _unsettled(v, timeout) for v in views]


def _unsettled(view: HostView, timeout: float) -> HostView:
    health = view.health
    if health.status is HostStatus.UP or health.last_error is not None:
        return view  # it answered (not twice), or it has said what is wrong
    if health.status is HostStatus.CONNECTING and view.facts is None:
        health = replace(health, status=HostStatus.DOWN, last_error=f"{view.name}: no answer within {timeout:g} s")
    else:  # connected, but no poll came back in time
        status = HostStatus.DEGRADED if health.status is HostStatus.CONNECTING else health.status
        health = replace(health, status=status, last_error=f"{view.name}: no poll answered within {timeout:g} s")
    return replace(view, health=health)


async def wait_for_rates(fleet: Fleet, hosts: Sequence[HostConfig], *, interval: float) -> None:
    """Until every host has answered two polls (rates need two samples) or failed, or its time is up."""
    timeout = max((h.connect_timeout + h.call_timeout for h in hosts), default=1.0) + interval
    await fleet.wait_until(lambda views: all(_settled(v, 2) for v in views), timeout)


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
