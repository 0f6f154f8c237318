"""Counters -> rates, and the row the faces show for each domain (history: core/history.py).

Rates come from two cumulative samples and their monotonic timestamps. A counter
that went backwards (the domain restarted, the counter wrapped, the backend reset
it) gives None for that interval: never a negative rate and never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfleet.core.models import Domain, DomainCounters, DomainGauges, DomainRates


def rate(before: int | None, after: int | None, seconds: float) -> float | None:
    """Per-second rate of a cumulative counter, or None when it cannot be known."""
    if before is None or after is None or seconds <= 0:
        return None
    delta = after - before
    if delta < 0:  # reset or wrap: the true delta is unknowable
        return None
    return delta / seconds


def _percent(part_per_s: float | None, whole: float | None) -> float | None:
    if part_per_s is None or not whole:
        return None
    # Sampling jitter can push a busy domain a hair over its ceiling.
    return min(100.0, max(0.0, 100.0 * part_per_s / whole))


def compute_rates(
    before: DomainCounters | None,
    after: DomainCounters | None,
    *,
    vcpus: int | None,
    host_cpus: int | None,
    gauges: DomainGauges | None = None,
) -> DomainRates:
    """Rates between two samples; gauges fill what counters cannot give."""
    g = gauges or DomainGauges()
    if before is None or after is None:
        return DomainRates(
            cpu_percent=g.cpu_percent,
            cpu_host_percent=_scale(g.cpu_percent, vcpus, host_cpus),
            disk_read_bps=g.disk_read_bps,
            disk_write_bps=g.disk_write_bps,
            net_rx_bps=g.net_rx_bps,
            net_tx_bps=g.net_tx_bps,
            contention_percent=g.contention_percent,
        )
    seconds = after.taken_at - before.taken_at
    cpu_ns_per_s = rate(before.cpu_time_ns, after.cpu_time_ns, seconds)
    wait_ns_per_s = rate(before.vcpu_wait_ns, after.vcpu_wait_ns, seconds)
    cpu_percent = _percent(cpu_ns_per_s, 1e9 * vcpus if vcpus else None)
    return DomainRates(
        cpu_percent=_first(cpu_percent, g.cpu_percent),
        cpu_host_percent=_percent(cpu_ns_per_s, 1e9 * host_cpus if host_cpus else None),
        disk_read_bps=_first(rate(before.disk_read_bytes, after.disk_read_bytes, seconds), g.disk_read_bps),
        disk_write_bps=_first(rate(before.disk_write_bytes, after.disk_write_bytes, seconds), g.disk_write_bps),
        disk_read_iops=rate(before.disk_read_reqs, after.disk_read_reqs, seconds),
        disk_write_iops=rate(before.disk_write_reqs, after.disk_write_reqs, seconds),
        net_rx_bps=_first(rate(before.net_rx_bytes, after.net_rx_bytes, seconds), g.net_rx_bps),
        net_tx_bps=_first(rate(before.net_tx_bytes, after.net_tx_bytes, seconds), g.net_tx_bps),
        contention_percent=_first(_percent(wait_ns_per_s, 1e9 * vcpus if vcpus else None), g.contention_percent),
    )


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _scale(domain_percent: float | None, vcpus: int | None, host_cpus: int | None) -> float | None:
    if domain_percent is None or not vcpus or not host_cpus:
        return None
    return min(100.0, domain_percent * vcpus / host_cpus)


@dataclass(frozen=True, slots=True)
class DomainRow:
    """What the faces show for one domain: the latest poll plus derived rates."""

    host: str
    hypervisor: str
    domain: Domain
    rates: DomainRates
    tags: frozenset[str]
    taken_at: float
