"""Counters -> rates: correct math, and never a negative or invented rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vfleet.core.metrics import compute_rates, rate
from vfleet.core.models import DomainCounters, DomainGauges, DomainRates


def test_rate_math() -> None:
    assert rate(1000, 3000, 2.0) == 1000.0
    assert rate(5, 5, 1.0) == 0.0


def test_reset_or_wrap_gives_none_not_negative() -> None:
    assert rate(2**64 - 10, 5, 1.0) is None  # wrapped
    assert rate(10_000, 0, 1.0) is None  # domain restarted


def test_missing_values_and_bad_intervals_give_none() -> None:
    assert rate(None, 5, 1.0) is None and rate(5, None, 1.0) is None
    assert rate(1, 2, 0.0) is None and rate(1, 2, -1.0) is None


def test_cpu_percent_of_vcpus_and_of_host() -> None:
    before = DomainCounters(taken_at=10.0, cpu_time_ns=0, vcpu_wait_ns=0)
    after = DomainCounters(taken_at=12.0, cpu_time_ns=2_000_000_000, vcpu_wait_ns=200_000_000)
    rates = compute_rates(before, after, vcpus=2, host_cpus=8)
    assert rates.cpu_percent == 50.0  # 1 s of CPU per second over 2 vCPUs
    assert rates.cpu_host_percent == 12.5  # ... over 8 host CPUs
    assert rates.contention_percent == 5.0


def test_disk_and_net_rates_and_iops() -> None:
    before = DomainCounters(0.0, disk_read_bytes=0, disk_write_bytes=0, disk_read_reqs=0, disk_write_reqs=0,
                            net_rx_bytes=0, net_tx_bytes=0)
    after = DomainCounters(4.0, disk_read_bytes=4096, disk_write_bytes=8192, disk_read_reqs=8, disk_write_reqs=4,
                           net_rx_bytes=400, net_tx_bytes=40)
    r = compute_rates(before, after, vcpus=1, host_cpus=1)
    assert (r.disk_read_bps, r.disk_write_bps, r.disk_read_iops, r.disk_write_iops) == (1024, 2048, 2, 1)
    assert (r.net_rx_bps, r.net_tx_bps) == (100, 10)


def test_first_sample_has_no_rates_but_keeps_gauges() -> None:
    only = DomainCounters(1.0, cpu_time_ns=5)
    assert compute_rates(None, only, vcpus=1, host_cpus=4) == DomainRates()
    gauges = DomainGauges(cpu_percent=40.0, net_rx_bps=7.0)
    rates = compute_rates(None, only, vcpus=2, host_cpus=4, gauges=gauges)
    assert rates.cpu_percent == 40.0 and rates.cpu_host_percent == 20.0 and rates.net_rx_bps == 7.0


def test_iops_gauges_fill_in_where_there_are_no_request_counters() -> None:
    """esxi_ssh's esxtop gives IOPS as rates: shown from the first poll; counters, where a driver has them, win."""
    gauges = DomainGauges(disk_read_iops=4.02, disk_write_iops=9.24)
    first = compute_rates(None, DomainCounters(1.0), vcpus=2, host_cpus=4, gauges=gauges)
    assert (first.disk_read_iops, first.disk_write_iops) == (4.02, 9.24)
    later = compute_rates(DomainCounters(1.0), DomainCounters(3.0), vcpus=2, host_cpus=4, gauges=gauges)
    assert (later.disk_read_iops, later.disk_write_iops) == (4.02, 9.24)
    counted = compute_rates(DomainCounters(1.0, disk_read_reqs=10), DomainCounters(3.0, disk_read_reqs=30),
                            vcpus=2, host_cpus=4, gauges=gauges)
    assert (counted.disk_read_iops, counted.disk_write_iops) == (10.0, 9.24)


counter = st.one_of(st.none(), st.integers(min_value=0, max_value=2**64 - 1))


@given(
    a=st.tuples(counter, counter, counter, counter, counter),
    b=st.tuples(counter, counter, counter, counter, counter),
    dt=st.floats(min_value=-5, max_value=1000, allow_nan=False),
    vcpus=st.one_of(st.none(), st.integers(min_value=0, max_value=256)),
)
def test_rates_are_never_negative_and_percentages_bounded(a: tuple, b: tuple, dt: float, vcpus: int | None) -> None:
    def counters(t: float, v: tuple) -> DomainCounters:
        return DomainCounters(t, cpu_time_ns=v[0], disk_read_bytes=v[1], disk_write_reqs=v[2], net_tx_bytes=v[3],
                              vcpu_wait_ns=v[4])

    rates = compute_rates(counters(100.0, a), counters(100.0 + dt, b), vcpus=vcpus, host_cpus=4)
    for name in DomainRates.__slots__:
        value = getattr(rates, name)
        assert value is None or value >= 0, name
    for pct in (rates.cpu_percent, rates.cpu_host_percent, rates.contention_percent):
        assert pct is None or pct <= 100.0
