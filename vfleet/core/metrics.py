"""Counters -> rates, and the row the faces show for each domain (history: core/history.py).

Rates come from two cumulative samples and their monotonic timestamps. A counter
that went backwards (the domain restarted, the counter wrapped, the backend reset
it) gives None for that interval: never a negative rate and never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from vfleet.core.models import Domain, DomainCounters, DomainGauges, DomainRates, Value


def rate(before: int | None, after: int | None, seconds: float) -> float | None:
    """Per-second rate of a cumulative counter, or None when it cannot be known."""
    if before is None or after is None or seconds <= 0:
        return None
    delta = after - before
    if delta < 0:  # reset or wrap: the true delta is unknowable
        return None
    return delta / seconds


_NO_GAUGES = DomainGauges()
_NO_RATES = DomainRates()  # frozen: one shared instance for "nothing known"
# The counters in DomainCounters order, read in one C call.
_COUNTER_VALUES = attrgetter(
    "cpu_time_ns",
    "disk_read_bytes",
    "disk_write_bytes",
    "disk_read_reqs",
    "disk_write_reqs",
    "net_rx_bytes",
    "net_tx_bytes",
    "vcpu_wait_ns",
)


def compute_rates(
    before: DomainCounters | None,
    after: DomainCounters | None,
    *,
    vcpus: int | None,
    host_cpus: int | None,
    gauges: DomainGauges | None = None,
    seconds: float | None = None,
) -> DomainRates:
    """Rates between two samples; gauges fill what counters cannot give.

    `seconds` overrides the samples' own timestamps (the engine passes it when the
    earlier values were still current at a later poll). This runs for every domain
    of every poll: one pass over the counters, no call per field.
    """
    if seconds is None and before is not None and after is not None:
        seconds = after.taken_at - before.taken_at
    if before is None or after is None or seconds is None or seconds <= 0:
        if gauges is None:
            return _NO_RATES
        return DomainRates(
            cpu_percent=gauges.cpu_percent,
            cpu_host_percent=_scale(gauges.cpu_percent, vcpus, host_cpus),
            disk_read_bps=gauges.disk_read_bps,
            disk_write_bps=gauges.disk_write_bps,
            disk_read_iops=gauges.disk_read_iops,
            disk_write_iops=gauges.disk_write_iops,
            net_rx_bps=gauges.net_rx_bps,
            net_tx_bps=gauges.net_tx_bps,
            contention_percent=gauges.contention_percent,
        )
    # A counter that went backwards (reset, wrap) gives None, never a negative rate.
    cpu, rd, wr, rdr, wrr, rx, tx, wait = [
        None if b is None or a is None or a < b else (a - b) / seconds
        for b, a in zip(_COUNTER_VALUES(before), _COUNTER_VALUES(after), strict=True)
    ]
    g = gauges or _NO_GAUGES
    # Percentages inline (capped: sampling jitter can push a busy domain a hair over 100).
    cpu_percent = min(100.0, max(0.0, 100.0 * cpu / (1e9 * vcpus))) if cpu is not None and vcpus else None
    host_percent = min(100.0, max(0.0, 100.0 * cpu / (1e9 * host_cpus))) if cpu is not None and host_cpus else None
    contention = min(100.0, max(0.0, 100.0 * wait / (1e9 * vcpus))) if wait is not None and vcpus else None
    return DomainRates(
        cpu_percent if cpu_percent is not None else g.cpu_percent,
        host_percent,
        rd if rd is not None else g.disk_read_bps,
        wr if wr is not None else g.disk_write_bps,
        rdr if rdr is not None else g.disk_read_iops,
        wrr if wrr is not None else g.disk_write_iops,
        rx if rx is not None else g.net_rx_bps,
        tx if tx is not None else g.net_tx_bps,
        contention if contention is not None else g.contention_percent,
    )


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _scale(domain_percent: float | None, vcpus: int | None, host_cpus: int | None) -> float | None:
    if domain_percent is None or not vcpus or not host_cpus:
        return None
    return min(100.0, domain_percent * vcpus / host_cpus)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainRow(Value):
    """What the faces show for one domain: the latest poll plus derived rates."""

    host: str
    hypervisor: str
    domain: Domain
    rates: DomainRates
    tags: frozenset[str]
    taken_at: float
