"""Pure translation of libvirt values into vfleet models (no libvirt import here).

The numbers are libvirt's stable public ABI (virDomainState, virDomainEventType);
a test checks every one against the installed binding's constants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vfleet.core.models import Domain, DomainCounters, MemorySource, PowerState

KIB = 1024

# virDomainState -> (PowerState, the word virsh prints)
STATE_MAP: Mapping[int, tuple[PowerState, str]] = {
    0: (PowerState.UNKNOWN, "no state"),  # VIR_DOMAIN_NOSTATE
    1: (PowerState.RUNNING, "running"),  # VIR_DOMAIN_RUNNING
    2: (PowerState.RUNNING, "blocked"),  # VIR_DOMAIN_BLOCKED: idle, waiting on a resource
    3: (PowerState.PAUSED, "paused"),  # VIR_DOMAIN_PAUSED
    4: (PowerState.SHUTTING_DOWN, "in shutdown"),  # VIR_DOMAIN_SHUTDOWN
    5: (PowerState.OFF, "shut off"),  # VIR_DOMAIN_SHUTOFF
    6: (PowerState.CRASHED, "crashed"),  # VIR_DOMAIN_CRASHED
    7: (PowerState.SUSPENDED, "pmsuspended"),  # VIR_DOMAIN_PMSUSPENDED
}

# virDomainEventType -> our event kind, and the detail words per type
EVENT_KINDS: Mapping[int, str] = {
    0: "defined",
    1: "undefined",
    2: "started",
    3: "suspended",
    4: "resumed",
    5: "stopped",
    6: "shutdown",
    7: "pmsuspended",
    8: "crashed",
}
EVENT_DETAILS: Mapping[int, tuple[str, ...]] = {
    0: ("added", "updated", "renamed", "from-snapshot"),
    1: ("removed", "renamed"),
    2: ("booted", "migrated", "restored", "from-snapshot", "wakeup"),
    3: (
        "paused",
        "migrated",
        "io-error",
        "watchdog",
        "restored",
        "from-snapshot",
        "api-error",
        "postcopy",
        "postcopy-failed",
    ),
    4: ("unpaused", "migrated", "from-snapshot", "postcopy", "postcopy-failed"),
    5: ("shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot"),
    6: ("finished", "guest", "host"),
    7: ("memory", "disk"),
    8: ("panicked", "crashloaded"),
}


def power_state(code: int) -> tuple[PowerState, str]:
    return STATE_MAP.get(code, (PowerState.UNKNOWN, f"state {code}"))


def event_words(event: int, detail: int) -> tuple[str, str]:
    kind = EVENT_KINDS.get(event, f"event-{event}")
    details = EVENT_DETAILS.get(event, ())
    return kind, details[detail] if 0 <= detail < len(details) else str(detail)


def _sum(stats: Mapping[str, Any], prefix: str, suffix: str) -> int | None:
    """Sum `prefix.N.suffix` over N < prefix.count; None if no device reports it."""
    count = stats.get(f"{prefix}.count")
    if not isinstance(count, int):
        return None
    values = [stats.get(f"{prefix}.{i}.{suffix}") for i in range(count)]
    present = [v for v in values if isinstance(v, int)]
    return sum(present) if present else None


_VCPU_DELAY = re.compile(r"^vcpu\.\d+\.delay$")


def _vcpu_delay(stats: Mapping[str, Any]) -> int | None:
    delays = [v for k, v in stats.items() if _VCPU_DELAY.match(k) and isinstance(v, int)]
    return sum(delays) if delays else None


def _kib(value: Any) -> int | None:
    return value * KIB if isinstance(value, int) else None


def domain_from_stats(
    name: str,
    uuid: str,
    domain_id: int,
    stats: Mapping[str, Any],
    taken_at: float,
    snapshots: tuple[int, float | None] | None = None,
) -> Domain:
    """One getAllDomainStats record (or our per-domain equivalent) -> Domain; `snapshots`: (count, oldest)."""
    state, raw = power_state(int(stats.get("state.state", 0)))
    active = state not in (PowerState.OFF, PowerState.UNKNOWN)
    used, source = _memory_used(stats) if active else (None, None)
    counters = None
    if active:
        counters = DomainCounters(
            taken_at=taken_at,
            cpu_time_ns=stats.get("cpu.time"),
            disk_read_bytes=_sum(stats, "block", "rd.bytes"),
            disk_write_bytes=_sum(stats, "block", "wr.bytes"),
            disk_read_reqs=_sum(stats, "block", "rd.reqs"),
            disk_write_reqs=_sum(stats, "block", "wr.reqs"),
            net_rx_bytes=_sum(stats, "net", "rx.bytes"),
            net_tx_bytes=_sum(stats, "net", "tx.bytes"),
            vcpu_wait_ns=_vcpu_delay(stats),
        )
    return Domain(
        name=name,
        state=state,
        raw_state=raw,
        uuid=uuid,
        domain_id=domain_id if domain_id >= 0 else None,
        vcpus=stats.get("vcpu.current") if isinstance(stats.get("vcpu.current"), int) else None,
        memory_max_bytes=_kib(stats.get("balloon.maximum")),
        memory_current_bytes=_kib(stats.get("balloon.current")) if active else None,
        memory_used_bytes=used,
        memory_used_source=source,
        counters=counters,
        snapshot_count=snapshots[0] if snapshots else None,
        oldest_snapshot_at=snapshots[1] if snapshots else None,
    )


def _memory_used(stats: Mapping[str, Any]) -> tuple[int | None, MemorySource | None]:
    available = stats.get("balloon.available")
    free = stats.get("balloon.usable", stats.get("balloon.unused"))
    if isinstance(available, int) and isinstance(free, int) and available >= free:
        return (available - free) * KIB, MemorySource.GUEST
    rss = stats.get("balloon.rss")
    if isinstance(rss, int) and rss > 0:
        return rss * KIB, MemorySource.HOST_RSS
    return None, None


def hypervisor_name(conn_type: str) -> str:
    return {"QEMU": "kvm", "Xen": "xen", "LXC": "lxc", "Test": "test", "ESX": "esxi"}.get(conn_type, conn_type.lower())


def version_string(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1000)
    return f"{major}.{minor}.{release}"
