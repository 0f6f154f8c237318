"""libvirt value translation: every state and event constant is mapped explicitly."""

from __future__ import annotations

import pytest

from vfleet.core.models import MemorySource, PowerState
from vfleet.drivers.libvirt import parse as lp

libvirt = pytest.importorskip("libvirt")

STATE_CONSTANTS = [
    "VIR_DOMAIN_NOSTATE", "VIR_DOMAIN_RUNNING", "VIR_DOMAIN_BLOCKED", "VIR_DOMAIN_PAUSED",
    "VIR_DOMAIN_SHUTDOWN", "VIR_DOMAIN_SHUTOFF", "VIR_DOMAIN_CRASHED", "VIR_DOMAIN_PMSUSPENDED",
]


def test_every_libvirt_domain_state_is_mapped() -> None:
    values = {getattr(libvirt, name) for name in STATE_CONSTANTS}
    assert values == set(lp.STATE_MAP), "a virDomainState constant is missing from STATE_MAP"
    expected = {
        "VIR_DOMAIN_NOSTATE": PowerState.UNKNOWN, "VIR_DOMAIN_RUNNING": PowerState.RUNNING,
        "VIR_DOMAIN_BLOCKED": PowerState.RUNNING, "VIR_DOMAIN_PAUSED": PowerState.PAUSED,
        "VIR_DOMAIN_SHUTDOWN": PowerState.SHUTTING_DOWN, "VIR_DOMAIN_SHUTOFF": PowerState.OFF,
        "VIR_DOMAIN_CRASHED": PowerState.CRASHED, "VIR_DOMAIN_PMSUSPENDED": PowerState.SUSPENDED,
    }
    for name, state in expected.items():
        assert lp.power_state(getattr(libvirt, name))[0] is state, name


def test_unknown_state_codes_are_unknown_not_errors() -> None:
    assert lp.power_state(99) == (PowerState.UNKNOWN, "state 99")


def test_every_lifecycle_event_type_is_named() -> None:
    names = [n for n in dir(libvirt) if n.startswith("VIR_DOMAIN_EVENT_") and n.count("_") == 3 and not n.endswith("LAST")]
    event_values = {getattr(libvirt, n) for n in names if n.split("_")[3] in
                    {"DEFINED", "UNDEFINED", "STARTED", "SUSPENDED", "RESUMED", "STOPPED", "SHUTDOWN", "PMSUSPENDED", "CRASHED"}}
    assert event_values == set(lp.EVENT_KINDS)
    assert lp.event_words(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED) == ("stopped", "destroyed")
    assert lp.event_words(libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED) == ("suspended", "paused")
    assert lp.event_words(42, 7) == ("event-42", "7")


# A record as real libvirtd 9.0 returns it for a running QEMU guest (abridged).
RUNNING_RECORD = {
    "state.state": 1, "state.reason": 1, "cpu.time": 5_000_000_000, "balloon.current": 131072,
    "balloon.maximum": 131072, "balloon.available": 100000, "balloon.usable": 60000, "balloon.unused": 50000,
    "balloon.rss": 200000, "vcpu.current": 2, "vcpu.maximum": 2, "vcpu.0.delay": 1000, "vcpu.1.delay": 500,
    "net.count": 2, "net.0.rx.bytes": 100, "net.0.tx.bytes": 10, "net.1.rx.bytes": 1, "net.1.tx.bytes": 2,
    "block.count": 1, "block.0.rd.bytes": 4096, "block.0.wr.bytes": 512, "block.0.rd.reqs": 3, "block.0.wr.reqs": 1,
}


def test_running_record_maps_every_field() -> None:
    dom = lp.domain_from_stats("g1", "u-1", 7, RUNNING_RECORD, 100.0)
    assert (dom.state, dom.raw_state, dom.domain_id, dom.vcpus) == (PowerState.RUNNING, "running", 7, 2)
    assert dom.memory_max_bytes == dom.memory_current_bytes == 131072 * 1024
    assert dom.memory_used_bytes == (100000 - 60000) * 1024 and dom.memory_used_source is MemorySource.GUEST
    c = dom.counters
    assert c is not None
    assert (c.cpu_time_ns, c.vcpu_wait_ns) == (5_000_000_000, 1500)
    assert (c.net_rx_bytes, c.net_tx_bytes) == (101, 12)
    assert (c.disk_read_bytes, c.disk_write_bytes, c.disk_read_reqs, c.disk_write_reqs) == (4096, 512, 3, 1)


def test_missing_groups_are_none_never_zero() -> None:
    dom = lp.domain_from_stats("t", "u", 3, {"state.state": 1}, 1.0)
    assert dom.vcpus is None and dom.memory_max_bytes is None and dom.memory_used_bytes is None
    assert dom.counters is not None
    assert dom.counters.cpu_time_ns is None and dom.counters.disk_read_bytes is None and dom.counters.net_rx_bytes is None


def test_rss_is_host_usage_and_allocation_is_never_usage() -> None:
    record = {"state.state": 1, "balloon.current": 1000, "balloon.maximum": 2000, "balloon.rss": 900}
    dom = lp.domain_from_stats("g", "u", 1, record, 1.0)
    assert dom.memory_used_bytes == 900 * 1024 and dom.memory_used_source is MemorySource.HOST_RSS
    only_alloc = lp.domain_from_stats("g", "u", 1, {"state.state": 1, "balloon.current": 1000}, 1.0)
    assert only_alloc.memory_used_bytes is None and only_alloc.memory_current_bytes == 1000 * 1024


def test_shut_off_domain_has_no_counters_and_no_id() -> None:
    dom = lp.domain_from_stats("off", "u", -1, {"state.state": 5, "balloon.maximum": 4096}, 1.0)
    assert dom.state is PowerState.OFF and dom.raw_state == "shut off"
    assert dom.counters is None and dom.domain_id is None and dom.memory_current_bytes is None
    assert dom.memory_max_bytes == 4096 * 1024


def test_versions_and_hypervisor_names() -> None:
    assert lp.version_string(9_000_000) == "9.0.0" and lp.version_string(4_017_007) == "4.17.7"
    assert lp.hypervisor_name("QEMU") == "kvm" and lp.hypervisor_name("Xen") == "xen"
