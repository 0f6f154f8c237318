"""The fleet's latest views as Prometheus metric families (`vfleet export`).

The names are agreed with the Prometheus read path (`--source prometheus`): change
them only by adding. This module builds plain `Family` values from HostViews and
needs no third-party package; `to_prometheus()` turns them into prometheus-client
families, importing the library only when an exporter runs, so other commands do
not pay for it. Nothing here calls a host: a scrape reads the engine's snapshot.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vfleet.core.engine import HostView
from vfleet.core.errors import UsageError
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, HostStatus
from vfleet.core.sanitize import printable
from vfleet.core.selector import Selector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

DEFAULT_PORT = 9708  # free in Prometheus' default port allocations; the libvirt exporter has 9177
DEFAULT_MAX_TAG_LABELS = 20
# A host's domains are exported while its connection stands; once it is down they go
# (Prometheus marks them stale) instead of repeating the last poll for ever.
_DOMAINS_SHOWN = frozenset({HostStatus.UP, HostStatus.STALE, HostStatus.DEGRADED})
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")

Labels = dict[str, str]


@dataclass(slots=True)
class Family:
    name: str  # counters without the _total suffix, as prometheus-client wants them
    kind: str  # "gauge" | "counter" | "info"-like gauges are "gauge"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name


def _gauge(name: str, help_: str) -> Family:
    return Family(name, "gauge", help_)


def _counter(name: str, help_: str) -> Family:
    return Family(name.removesuffix("_total"), "counter", help_)


# (family, unit factor, DomainCounters attribute)
_COUNTERS = (
    ("vfleet_domain_cpu_seconds_total", 1e-9, "cpu_time_ns", "CPU time used by the domain"),
    ("vfleet_domain_vcpu_wait_seconds_total", 1e-9, "vcpu_wait_ns", "time vCPUs were runnable but not running"),
    ("vfleet_domain_disk_read_bytes_total", 1, "disk_read_bytes", "bytes read from all disks"),
    ("vfleet_domain_disk_written_bytes_total", 1, "disk_write_bytes", "bytes written to all disks"),
    ("vfleet_domain_disk_reads_completed_total", 1, "disk_read_reqs", "read requests completed on all disks"),
    ("vfleet_domain_disk_writes_completed_total", 1, "disk_write_reqs", "write requests completed on all disks"),
    ("vfleet_domain_network_receive_bytes_total", 1, "net_rx_bytes", "bytes received on all interfaces"),
    ("vfleet_domain_network_transmit_bytes_total", 1, "net_tx_bytes", "bytes sent on all interfaces"),
)
# (family, unit factor, DomainRates attribute)
_RATES = (
    ("vfleet_domain_cpu_ratio", 0.01, "cpu_percent", "CPU busy, 0..1 of the domain's vCPUs (vfleet's rate)"),
    ("vfleet_domain_contention_ratio", 0.01, "contention_percent", "vCPU wait (steal/ready), 0..1 of its vCPUs"),
    ("vfleet_domain_disk_read_bytes_per_second", 1, "disk_read_bps", "disk read rate (vfleet's rate)"),
    ("vfleet_domain_disk_write_bytes_per_second", 1, "disk_write_bps", "disk write rate (vfleet's rate)"),
    ("vfleet_domain_network_receive_bytes_per_second", 1, "net_rx_bps", "network receive rate (vfleet's rate)"),
    ("vfleet_domain_network_transmit_bytes_per_second", 1, "net_tx_bps", "network transmit rate (vfleet's rate)"),
)
# (family, Domain attribute)
_DOMAIN_GAUGES = (
    ("vfleet_domain_vcpus", "vcpus", "virtual CPUs"),
    ("vfleet_domain_memory_max_bytes", "memory_max_bytes", "configured maximum memory"),
    ("vfleet_domain_memory_current_bytes", "memory_current_bytes", "current allocation (balloon target)"),
    ("vfleet_domain_memory_used_bytes", "memory_used_bytes", "memory in use (guest, host RSS or hypervisor)"),
    ("vfleet_domain_uptime_seconds", "uptime_s", "seconds since the domain started"),
)

HOST_FAMILIES = (
    "vfleet_host_info",
    "vfleet_host_up",
    "vfleet_host_status",
    "vfleet_host_data_age_seconds",
    "vfleet_host_last_poll_timestamp_seconds",
    "vfleet_host_cpus",
    "vfleet_host_memory_bytes",
    "vfleet_host_domains",
)
# The servers of a pool or cluster (HostFacts.nodes): their capacity and how many domains run
# there. Per-node use is PromQL over the domain series joined with vfleet_domain_info's `node`.
NODE_FAMILIES = (
    "vfleet_node_info",
    "vfleet_node_cpus",
    "vfleet_node_memory_bytes",
    "vfleet_node_domains",
)
DOMAIN_FAMILIES = (
    "vfleet_domain_info",
    *(name for name, *_ in _DOMAIN_GAUGES),
    *(name for name, *_ in _COUNTERS),
    *(name for name, *_ in _RATES),
    "vfleet_domain_snapshots",
    "vfleet_domain_oldest_snapshot_age_seconds",
)
SELF_FAMILIES = ("vfleet_exporter_shard_info",)
# Every sample name the exporter writes (counters with their _total), for dashboards and tests.
METRIC_NAMES = frozenset((*HOST_FAMILIES, *NODE_FAMILIES, *DOMAIN_FAMILIES, *SELF_FAMILIES))


# -- sharding ---------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N), 1 <= K <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/3")
    return int(match[1]), int(match[2])


def shard_of(host: str, shards: int) -> int:
    """The shard (1..N) that exports this host: a stable hash of its name (not Python's salted hash())."""
    digest = hashlib.sha256(host.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def in_shard(hosts: Sequence[HostConfig], shard: tuple[int, int] | None) -> list[HostConfig]:
    if shard is None:
        return list(hosts)
    k, n = shard
    return [h for h in hosts if shard_of(h.name, n) == k]


# -- labels -------------------------------------------------------------------------


def label_name(prefix: str, name: str) -> str:
    """`group_<name>` / `tag_<name>` with every character a label name cannot hold as `_`."""
    return f"{prefix}_{_LABEL_BAD.sub('_', name)}"


def membership_labels(hosts: Iterable[HostConfig], cap: int) -> frozenset[str]:
    """The group/tag label names exported: groups first, then tags, sorted, at most `cap`.

    Computed over the whole inventory (before sharding), so every shard exports the same set.
    """
    groups = sorted({label_name("group", g) for h in hosts for g in h.groups})
    tags = sorted({label_name("tag", t) for h in hosts for t in h.tags} - set(groups))
    return frozenset([*groups, *tags][: max(0, cap)])


def _value(text: str) -> str:
    return printable(text)


# -- building -----------------------------------------------------------------------


@dataclass
class Exposition:
    """Turns HostViews into families; one instance per exporter."""

    allowed_labels: frozenset[str] = frozenset()
    selector: Selector | None = None
    shard: tuple[int, int] | None = None
    interval: Callable[[str], float] = lambda _host: 2.0
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def families(self, views: Sequence[HostView]) -> list[Family]:
        now, wall_now = self.monotonic(), self.wall()
        fam: dict[str, Family] = {}

        def family(name: str, kind: str, help_: str) -> Family:
            found = fam.get(name)
            if found is None:
                found = fam[name] = _counter(name, help_) if kind == "counter" else _gauge(name, help_)
            return found

        if self.shard is not None:
            k, n = self.shard
            family("vfleet_exporter_shard_info", "gauge", "the shard this exporter serves, K/N").samples.append(
                ({"shard": f"{k}/{n}"}, 1.0)
            )
        for view in views:
            if self.selector is not None and not self.selector.host_may_match(view.config):
                continue
            self._host(view, now, wall_now, family)
        return list(fam.values())

    def _membership(self, config: HostConfig) -> Labels:
        labels: Labels = {}
        for prefix, names in (("group", config.groups), ("tag", config.tags)):
            for name in names:
                label = label_name(prefix, name)
                if label in self.allowed_labels:
                    labels[label] = "1"
        return labels

    def _host(self, view: HostView, now: float, wall_now: float, family: Callable[[str, str, str], Family]) -> None:
        facts = view.facts
        hypervisor = _value(facts.hypervisor) if facts else "unknown"
        base = {"host": _value(view.name), "hypervisor": hypervisor, "driver": view.config.driver}
        membership = self._membership(view.config)
        info = {**base, "version": _value(facts.version or "") if facts else "", **membership}
        family("vfleet_host_info", "gauge", "one series per host, with its groups and tags").samples.append((info, 1.0))
        health = view.health
        age = health.data_age(now)
        status = health.status
        if status is HostStatus.UP and (age is None or age > 2 * self.interval(view.name)):
            status = HostStatus.STALE  # the snapshot may be older than the scrape
        up = 1.0 if status is HostStatus.UP else 0.0
        family("vfleet_host_up", "gauge", "1 when the last poll succeeded and its data is fresh").samples.append(
            (base, up)
        )
        family("vfleet_host_status", "gauge", "the host's status in the engine").samples.append(
            ({**base, "status": status.value}, 1.0)
        )
        family("vfleet_host_data_age_seconds", "gauge", "seconds since the last good poll (NaN: never)").samples.append(
            (base, math.nan if age is None else age)
        )
        if age is not None:
            family(
                "vfleet_host_last_poll_timestamp_seconds", "gauge", "wall-clock time of the last good poll"
            ).samples.append((base, wall_now - age))
        if facts and facts.cpus is not None:
            family("vfleet_host_cpus", "gauge", "physical CPUs of the host").samples.append((base, float(facts.cpus)))
        if facts and facts.memory_bytes is not None:
            family("vfleet_host_memory_bytes", "gauge", "memory of the host").samples.append(
                (base, float(facts.memory_bytes))
            )
        if status not in _DOMAINS_SHOWN or facts is None:
            return
        rows = [r for r in view.rows if self.selector is None or self.selector.matches(r, view.config)]
        family("vfleet_host_domains", "gauge", "domains exported for this host").samples.append(
            (base, float(len(rows)))
        )
        self._nodes(view, rows, base, family)
        for row in rows:
            self._domain(row, base, membership, family, wall_now)

    def _nodes(
        self, view: HostView, rows: Sequence[DomainRow], base: Labels, family: Callable[[str, str, str], Family]
    ) -> None:
        """One series per server of a pool or cluster: as few as the servers, never per domain."""
        facts = view.facts
        known = {n.name: n for n in facts.nodes} if facts else {}
        counts = dict.fromkeys(known, 0)
        for row in rows:
            if row.domain.node is not None:
                counts[row.domain.node] = counts.get(row.domain.node, 0) + 1
        for name, count in counts.items():
            labels = {**base, "node": _value(name)}
            family("vfleet_node_info", "gauge", "one series per server of a pool or cluster").samples.append(
                (labels, 1.0)
            )
            node = known.get(name)
            if node is not None and node.cpus is not None:
                family("vfleet_node_cpus", "gauge", "physical CPUs of the server").samples.append(
                    (labels, float(node.cpus))
                )
            if node is not None and node.memory_bytes is not None:
                family("vfleet_node_memory_bytes", "gauge", "memory of the server").samples.append(
                    (labels, float(node.memory_bytes))
                )
            family("vfleet_node_domains", "gauge", "domains exported that run on the server").samples.append(
                (labels, float(count))
            )

    def _domain(
        self,
        row: DomainRow,
        base: Labels,
        membership: Labels,
        family: Callable[[str, str, str], Family],
        wall_now: float,
    ) -> None:
        d = row.domain
        labels = {**base, "domain": _value(d.name), "domain_key": _value(d.key)}
        info = {**labels, "state": d.state.value, **membership}
        if d.node is not None:  # here only: a domain's other series keep their identity when it moves
            info["node"] = _value(d.node)
        if d.memory_used_source is not None and d.memory_used_bytes is not None:
            info["memory_source"] = d.memory_used_source.value  # what "used" means: guest, host-rss, hypervisor
        family("vfleet_domain_info", "gauge", "one series per domain, with its state, groups and tags").samples.append(
            (info, 1.0)
        )
        for name, attr, help_ in _DOMAIN_GAUGES:
            value = getattr(d, attr)
            if value is not None:
                family(name, "gauge", help_).samples.append((labels, float(value)))
        if d.snapshot_count is not None:  # read by some drivers every few polls: see the README
            family("vfleet_domain_snapshots", "gauge", "snapshots the domain has").samples.append(
                (labels, float(d.snapshot_count))
            )
        age = d.snapshot_age(wall_now)
        if age is not None:
            family(
                "vfleet_domain_oldest_snapshot_age_seconds", "gauge", "seconds since its oldest snapshot was taken"
            ).samples.append((labels, age))
        counters = d.counters
        if counters is not None:
            for name, factor, attr, help_ in _COUNTERS:
                value = getattr(counters, attr)
                if value is not None:
                    family(name, "counter", help_).samples.append((labels, value * factor))
        rates = row.rates
        for name, factor, attr, help_ in _RATES:
            value = getattr(rates, attr)
            if value is not None:
                family(name, "gauge", help_).samples.append((labels, value * factor))


def to_prometheus(families: Iterable[Family]) -> Iterator[Metric]:
    """prometheus-client families (imported here: only exporters load the library)."""
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    for f in families:
        metric = Metric(f.name, f.help, f.kind)
        sample_name = f.sample_name
        metric.samples = [Sample(sample_name, labels, value) for labels, value in f.samples]
        yield metric
