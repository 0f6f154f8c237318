"""`--source prometheus=URL`: the fleet's metrics from a Prometheus-API server, actions to the hosts.

Every host of the engine gets a PromHostDriver. Its poll() awaits one shared
refresh for the whole fleet (regex-selected by the hosts of the inventory): three small
host queries, then, only for the hosts scraped since the last refresh, one query per
domain family (eleven), split into per-host snapshots. The server's data only changes
when a scrape lands (every 15 s or so), so most refreshes of a console ticking every
2 s read a few series per host. perform() goes to the host's real driver, made from
the inventory entry on first use. Metric names follow `vfleet export` (README, "Metrics").

Freshness comes from the samples: the exporter's `vfleet_host_last_poll_timestamp_seconds`
(its last good poll of the host, wall clock) and the scrape timestamps of the host's
series. A host without a fresh sample raises DataStale with the reason: the engine
shows it STALE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vfleet.core.errors import DataStale, HostUnreachable, VFleetError
from vfleet.core.models import (
    ActionParams,
    ActionResult,
    Domain,
    DomainGauges,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MemorySource,
    PowerState,
    SnapshotInfo,
    Verb,
)
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.registry import create_driver, driver_class
from vfleet.sources.promql import PromClient, QueryFailed, columns_of, regex_literal, series

T = TypeVar("T")
DEFAULT_MAX_AGE = 30.0  # seconds: older data is stale
LOOKBACK = "10m"  # how far back the "last sample" query looks, to say how old the newest one is
HOST_FAMILIES = ("info", "up", "status", "last_poll_timestamp_seconds", "cpus", "memory_bytes")
# domain gauge family -> (Domain field or gauge, scale to vfleet's units)
DOMAIN_VALUES = {
    "vcpus": ("vcpus", 1.0),
    "memory_max_bytes": ("memory_max_bytes", 1.0),
    "memory_used_bytes": ("memory_used_bytes", 1.0),
    "uptime_seconds": ("uptime_s", 1.0),
    "cpu_ratio": ("cpu_percent", 100.0),
    "contention_ratio": ("contention_percent", 100.0),
    "disk_read_bytes_per_second": ("disk_read_bps", 1.0),
    "disk_write_bytes_per_second": ("disk_write_bps", 1.0),
    "network_receive_bytes_per_second": ("net_rx_bps", 1.0),
    "network_transmit_bytes_per_second": ("net_tx_bps", 1.0),
}
_INTS = frozenset({"vcpus", "memory_max_bytes", "memory_used_bytes"})
_GAUGE_FIELDS = frozenset(
    {"cpu_percent", "contention_percent", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps"}
)


def selector(hosts: Iterable[str]) -> str:
    return 'host=~"' + "|".join(regex_literal(h) for h in sorted(hosts)) + '"'


def host_queries(hosts: Iterable[str], lookback: str = LOOKBACK) -> dict[str, str]:
    """Every refresh: a few series per host, whatever the number of domains."""
    sel = selector(hosts)
    names = "|".join(HOST_FAMILIES)
    return {
        "hosts": f'{{__name__=~"vfleet_host_({names})",{sel}}}',
        # scrape time of each host's series: tells a dead exporter from a live one, and
        # whether anything new arrived since the last refresh
        "scraped": f"max by (host) (timestamp(vfleet_host_up{{{sel}}}))",
        # the newest poll time within the lookback, even once the series went stale
        "last": f"max by (host) (max_over_time(vfleet_host_last_poll_timestamp_seconds{{{sel}}}[{lookback}]))",
    }


def domain_queries(hosts: Iterable[str]) -> dict[str, str]:
    """Only for hosts scraped since the last refresh: one query per domain family.

    Each keeps only the labels the reader uses (a third of the bytes of the full series;
    `max` also merges duplicates from two scrape jobs). One `or`-combined query costs
    the server far more than these (label_replace over every series)."""
    sel = selector(hosts)
    info = f"max by (host, domain, domain_key, state, memory_source, node) (vfleet_domain_info{{{sel}}})"
    values = {f"value:{f}": f"max by (host, domain_key) (vfleet_domain_{f}{{{sel}}})" for f in DOMAIN_VALUES}
    return {"domains": info, **values}


def queries(hosts: Iterable[str], lookback: str = LOOKBACK) -> dict[str, str]:
    """A full refresh's queries, by role: a fixed number whatever the fleet's size."""
    return {**host_queries(hosts, lookback), **domain_queries(hosts)}


@dataclass(slots=True)
class _HostPart:
    labels: dict[str, str] = field(default_factory=dict)  # from vfleet_host_info
    values: dict[str, float | None] = field(default_factory=dict)  # host family -> value
    status: str | None = None
    scraped: float | None = None
    last_poll: float | None = None
    domains: tuple[Domain, ...] = ()
    hypervisor: str | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """One answer for the whole fleet: per-host parts, or the error every host shares."""

    at: float  # wall clock the queries were evaluated at
    done_at: float  # monotonic
    parts: dict[str, _HostPart]
    error: str | None = None
    fetched: tuple[str, ...] = ()  # hosts whose domains this refresh read (the others: unchanged)


class PrometheusSource:
    """Shared by every host driver of one fleet: at most one refresh in flight, reused within `reuse` s."""

    def __init__(
        self,
        client: PromClient,
        hosts: Sequence[str],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        reuse: float = 0.5,
        concurrency: int = 2,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.hosts = tuple(hosts)
        self.max_age = max_age
        self.reuse = reuse
        self.refreshes = 0
        self.failures = 0
        self.queries = 0  # sent by this source's refreshes
        self._wall = wall
        self._host_queries = host_queries(self.hosts)
        self.queries_per_refresh = len(self._host_queries) + len(DOMAIN_VALUES) + 1  # when any host has news
        self.concurrency = concurrency  # more queries in flight only thrash a small server's cores
        # host -> (scrape time, its domains): Prometheus' data only changes when a scrape lands,
        # so a host not scraped since the last refresh keeps its domains without a query
        self._cache: dict[str, tuple[float, tuple[Domain, ...]]] = {}
        self._last: Refresh | None = None
        self._inflight: asyncio.Task[Refresh] | None = None

    def factory(self, config: HostConfig, read_only: bool) -> Driver:
        """A DriverFactory for Fleet(driver_factory=...)."""
        return _driver_class(config.driver)(config, read_only=read_only, source=self)

    async def refresh(self, deadline: float | None = None) -> Refresh:
        last = self._last
        if last is not None and time.monotonic() - last.done_at < self.reuse:
            return last
        if self._inflight is None or self._inflight.done():
            timeout = self.client.timeout if deadline is None else deadline - time.monotonic()
            self._inflight = asyncio.create_task(self._run(timeout), name="prometheus-refresh")
        # shield: one host's poll being cancelled must not cancel the others' shared refresh
        return await asyncio.shield(self._inflight)

    async def _ask(self, queries: dict[str, str], at: float, timeout: float) -> dict[str, list[Any]]:
        limit = asyncio.Semaphore(self.concurrency)  # made here: bound to the running loop

        async def one(promql: str) -> list[Any]:
            async with limit:
                self.queries += 1
                return await self.client.query_items(promql, at, timeout=timeout)

        answers = await asyncio.gather(*(one(q) for q in queries.values()))
        return dict(zip(queries, answers, strict=True))

    async def _run(self, timeout: float) -> Refresh:
        at = self._wall()
        due = time.monotonic() + timeout
        try:
            parts = split_hosts(await self._ask(self._host_queries, at, timeout), self.hosts)
            cache = self._cache
            news = [h for h, p in parts.items() if p.scraped is not None and cache.get(h, (None,))[0] != p.scraped]
            if news:
                answers = await self._ask(domain_queries(news), at, due - time.monotonic())
                for host, domains in split_domains(answers, news).items():
                    cache[host] = (parts[host].scraped or 0.0, tuple(domains))
        except QueryFailed as exc:
            self.failures += 1
            result = Refresh(at, time.monotonic(), {}, f"prometheus: {exc}")
        else:
            for host, part in parts.items():
                if part.scraped is None:
                    cache.pop(host, None)  # gone from the server: read it afresh when it is back
                elif host in cache:
                    part.domains = cache[host][1]
            result = Refresh(at, time.monotonic(), parts, fetched=tuple(news))
        self.refreshes += 1
        self._last = result
        return result

    def snapshot(self, host: str, refresh: Refresh) -> HostSnapshot:
        """The host's part of a refresh, or DataStale saying why there is none."""
        if refresh.error is not None:
            raise DataStale(host, refresh.error)
        part = refresh.parts.get(host)
        max_age = self.max_age
        if part is None or part.scraped is None or "up" not in part.values:
            last = part.last_poll if part else None
            since = f" (the exporter's last poll of it was {refresh.at - last:.0f} s ago)" if last else ""
            raise DataStale(host, f"prometheus: no sample newer than {max_age:g} s{since}")
        scrape_age = refresh.at - part.scraped
        if scrape_age > max_age:
            raise DataStale(host, f"prometheus: no sample newer than {max_age:g} s (newest {scrape_age:.0f} s old)")
        if part.values.get("up") != 1.0:
            raise DataStale(host, f"prometheus: exporter reports host down: {part.status or 'unknown'}")
        if part.last_poll is None:
            raise DataStale(host, "prometheus: the exporter has not polled the host yet")
        age = max(0.0, refresh.at - part.last_poll)
        if age > max_age:
            raise DataStale(host, f"prometheus: the exporter's last good poll is {age:.0f} s old (limit {max_age:g} s)")
        return HostSnapshot(host, refresh.done_at - age, part.domains, facts=_facts(part), lag=age)


def _facts(part: _HostPart) -> HostFacts:
    cpus, memory = part.values.get("cpus"), part.values.get("memory_bytes")
    return HostFacts(
        hypervisor=part.labels.get("hypervisor") or part.hypervisor or "unknown",
        version=part.labels.get("version") or None,
        cpus=int(cpus) if cpus is not None else None,
        memory_bytes=int(memory) if memory is not None else None,
    )


def split_hosts(answers: dict[str, list[Any]], hosts: Iterable[str]) -> dict[str, _HostPart]:
    """Per-host parts of the host queries' answers; series of hosts not asked for are dropped."""
    parts = {h: _HostPart() for h in hosts}
    for s in series(answers.get("hosts", [])):
        part = parts.get(s.labels.get("host", ""))
        if part is None:
            continue
        family = s.labels.get("__name__", "").removeprefix("vfleet_host_")
        if family == "info":
            part.labels = dict(s.labels)
        elif family == "status":
            if s.value == 1.0:
                part.status = s.labels.get("status")
        else:
            part.values[family] = s.value
            if family == "up":
                part.hypervisor = s.labels.get("hypervisor")
    for role, attr in (("scraped", "scraped"), ("last", "last_poll")):
        for s in series(answers.get(role, [])):
            part = parts.get(s.labels.get("host", ""))
            if part is not None and s.value is not None:
                setattr(part, attr, s.value)
    return parts


def split_domains(answers: dict[str, list[Any]], hosts: Iterable[str]) -> dict[str, list[Domain]]:
    """Each host's domains from the domain queries' answers: one column per family, keyed
    by (host, domain_key), read once per domain of the info answer (220,000 items for
    20,000 domains: no per-item objects beyond the column's entry)."""
    columns = [
        (family, columns_of(answers.get(f"value:{family}", []), "host", "domain_key")) for family in DOMAIN_VALUES
    ]
    out: dict[str, list[Domain]] = {h: [] for h in hosts}
    for s in series(answers.get("domains", [])):
        labels = s.labels
        host, key = labels.get("host", ""), labels.get("domain_key", "")
        domains = out.get(host)
        if domains is None or s.value != 1.0:
            continue
        values: dict[str, float] = {}
        at = (host, key)
        for family, column in columns:
            raw = column.get(at)
            if type(raw) is str:  # number() inlined: 220,000 calls a refresh
                try:
                    value = float(raw)
                except ValueError:
                    continue
                if value - value == 0.0:  # finite: NaN and +-Inf give NaN
                    values[family] = value
        domain = _domain(labels, values)
        if domain is not None:
            domains.append(domain)
    return out


def split(answers: dict[str, list[Any]], hosts: Iterable[str]) -> dict[str, _HostPart]:
    """Per-host parts of a full refresh's answers (raw result items by role)."""
    hosts = tuple(hosts)
    parts = split_hosts(answers, hosts)
    for host, domains in split_domains(answers, hosts).items():
        parts[host].domains = tuple(domains)
    return parts


def _domain(labels: Mapping[str, str], values: dict[str, float]) -> Domain | None:
    name, key = labels.get("domain"), labels.get("domain_key")
    if not name or not key:
        return None
    raw_state = labels.get("state", "")
    try:
        state = PowerState(raw_state)
    except ValueError:
        state = PowerState.UNKNOWN
    numbers: dict[str, float | int] = {}
    gauges: dict[str, float] = {}
    for family, value in values.items():
        target, scale = DOMAIN_VALUES[family]
        if target in _GAUGE_FIELDS:
            gauges[target] = value * scale
        elif family in _INTS:
            numbers[target] = int(value)
        else:
            numbers[target] = value
    # the faces mark where a "used" number came from
    used_source = _memory_source(labels.get("memory_source")) if "memory_used_bytes" in numbers else None
    return Domain(
        memory_used_source=used_source,
        name=name,
        state=state,
        raw_state=raw_state,
        uuid=key if key != name else None,
        gauges=DomainGauges(**gauges) if gauges else None,
        node=labels.get("node") or None,
        **numbers,  # type: ignore[arg-type]
    )


def _memory_source(label: str | None) -> MemorySource:
    """An exporter may say where "used" came from (label memory_source); else it is the hypervisor's figure."""
    try:
        return MemorySource(label)
    except ValueError:
        return MemorySource.HYPERVISOR


_CLASSES: dict[str, type[PromHostDriver]] = {}


def _driver_class(kind: str) -> type[PromHostDriver]:
    """A subclass per backend kind: capabilities are class-level, and actions are the real driver's."""
    cls = _CLASSES.get(kind)
    if cls is None:
        real = driver_class(kind)
        caps = real.capabilities - {Capability.EVENTS}  # events would need a connection to every host
        cls = _CLASSES[kind] = type(f"Prometheus{real.__name__}", (PromHostDriver,), {"capabilities": caps})
    return cls


class PromHostDriver(Driver):
    """One host as the Prometheus server sees it; actions go to the host's own driver."""

    kind = "prometheus"

    def __init__(self, config: HostConfig, *, read_only: bool = False, source: PrometheusSource) -> None:
        super().__init__(config, read_only=read_only)
        self.source = source
        self._real: Driver | None = None
        self._real_connected = False
        self._lock = asyncio.Lock()

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        refresh = await self.source.refresh(self.due(deadline))
        part = refresh.parts.get(self.host)
        return _facts(part) if part is not None else HostFacts(hypervisor="unknown")

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        return self.source.snapshot(self.host, await self.source.refresh(self.due(deadline)))

    async def close(self) -> None:
        real, self._real, self._real_connected = self._real, None, False
        if real is not None:
            await real.close()

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        return await self._on_real(lambda real: real.perform(verb, target, deadline=deadline), deadline)

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        return await self._on_real(lambda real: real.perform(verb, target, deadline=deadline, params=params), deadline)

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        return await self._on_real(lambda real: real.snapshots(target, deadline=deadline), deadline)

    async def _on_real(self, call: Callable[[Driver], Awaitable[T]], deadline: float | None) -> T:
        async with self._lock:  # one connection to the host, made by the first action
            if self._real is None:
                self._real = create_driver(self.config, read_only=self.read_only)
            if not self._real_connected:
                try:
                    await self._real.connect(deadline=self.due(deadline))
                except VFleetError:
                    await self._real.close()
                    self._real = None
                    raise
                self._real_connected = True
            real = self._real
        try:
            return await call(real)
        except HostUnreachable:  # connect again at the next action
            self._real_connected = False
            raise
