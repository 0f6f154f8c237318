"""Pure translation of libvirt values into vfleet models (no libvirt import here).

The numbers are libvirt's stable public ABI (virDomainState, virDomainEventType);
a test checks every one against the installed binding's constants.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainCounters, HostFacts, HostSnapshot, MemorySource, PowerState

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
    found = STATE_MAP.get(code)
    return found if found is not None else (PowerState.UNKNOWN, f"state {code}")


def event_words(event: int, detail: int) -> tuple[str, str]:
    kind = EVENT_KINDS.get(event, f"event-{event}")
    details = EVENT_DETAILS.get(event, ())
    return kind, details[detail] if 0 <= detail < len(details) else str(detail)


# Per poll this runs for every domain: the keys `prefix.N.suffix` are built once per
# (prefix, device count) and kept, instead of formatted (or regex-matched) per key.
_BLOCK = ("rd.bytes", "wr.bytes", "rd.reqs", "wr.reqs")
_NET = ("rx.bytes", "tx.bytes")
_DEVICE_KEYS: dict[tuple[str, int], tuple[tuple[str, ...], ...]] = {}
_VCPU_DELAY_KEYS: dict[int, tuple[str, ...]] = {}
_COUNT_KEYS = {"block": "block.count", "net": "net.count"}


def _device_keys(prefix: str, count: int, suffixes: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    keys = _DEVICE_KEYS.get((prefix, count))
    if keys is None:
        keys = tuple(tuple(f"{prefix}.{i}.{suffix}" for i in range(count)) for suffix in suffixes)
        if count <= 256:  # a bounded cache: a garbled count must not grow it for ever
            _DEVICE_KEYS[(prefix, count)] = keys
    return keys


def _total(stats: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """Sum of the int values under `keys`; None if none is an int (missing is never 0)."""
    total = None
    for key in keys:
        value = stats.get(key)
        if isinstance(value, int):
            total = value if total is None else total + value
    return total


def _sums(stats: Mapping[str, Any], prefix: str, suffixes: tuple[str, ...]) -> list[int | None]:
    """For each suffix, the sum of `prefix.N.suffix` over N < prefix.count; None if no device reports it."""
    count = stats.get(_COUNT_KEYS[prefix])
    if not isinstance(count, int) or count <= 0:
        return [None] * len(suffixes)
    return [_total(stats, keys) for keys in _device_keys(prefix, count, suffixes)]


def _sum(stats: Mapping[str, Any], prefix: str, suffix: str) -> int | None:
    """Sum `prefix.N.suffix` over N < prefix.count; None if no device reports it."""
    return _sums(stats, prefix, (suffix,))[0]


def _vcpu_delay(stats: Mapping[str, Any]) -> int | None:
    """Sum of vcpu.N.delay: libvirt numbers vCPUs 0 .. vcpu.maximum-1 (vcpu.current where maximum is missing)."""
    count = stats.get("vcpu.maximum")
    if not isinstance(count, int):
        count = stats.get("vcpu.current")
        if not isinstance(count, int):
            return None
    keys = _VCPU_DELAY_KEYS.get(count)
    if keys is None:
        keys = tuple(f"vcpu.{i}.delay" for i in range(max(0, count)))
        if count <= 4096:
            _VCPU_DELAY_KEYS[count] = keys
    return _total(stats, keys)


def _kib(value: Any) -> int | None:
    return value * KIB if isinstance(value, int) else None


_INACTIVE = (PowerState.OFF, PowerState.UNKNOWN)


Snapshots = tuple[int, float | None]  # (count, oldest creation time): read every few polls


def domain_from_stats(
    name: str,
    uuid: str,
    domain_id: int,
    stats: Mapping[str, Any],
    taken_at: float,
    snapshots: Snapshots | None = None,
) -> Domain:
    """One getAllDomainStats record (or our per-domain equivalent) -> Domain; `snapshots`: (count, oldest)."""
    get = stats.get
    count, oldest = snapshots if snapshots is not None else (None, None)
    state, raw = power_state(int(get("state.state", 0)))
    vcpus = get("vcpu.current")
    if state in _INACTIVE:
        return Domain(
            name=name,
            state=state,
            raw_state=raw,
            uuid=uuid,
            domain_id=domain_id if domain_id >= 0 else None,
            vcpus=vcpus if isinstance(vcpus, int) else None,
            memory_max_bytes=_kib(get("balloon.maximum")),
            snapshot_count=count,
            oldest_snapshot_at=oldest,
        )
    used, source = _memory_used(stats)
    rd_bytes, wr_bytes, rd_reqs, wr_reqs = _sums(stats, "block", _BLOCK)
    rx_bytes, tx_bytes = _sums(stats, "net", _NET)
    counters = DomainCounters(
        taken_at,
        get("cpu.time"),
        rd_bytes,
        wr_bytes,
        rd_reqs,
        wr_reqs,
        rx_bytes,
        tx_bytes,
        _vcpu_delay(stats),
    )
    return Domain(
        name=name,
        state=state,
        raw_state=raw,
        uuid=uuid,
        domain_id=domain_id if domain_id >= 0 else None,
        vcpus=vcpus if isinstance(vcpus, int) else None,
        memory_max_bytes=_kib(get("balloon.maximum")),
        memory_current_bytes=_kib(get("balloon.current")),
        memory_used_bytes=used,
        memory_used_source=source,
        counters=counters,
        snapshot_count=count,
        oldest_snapshot_at=oldest,
    )


SMALL_RECORD = 16  # keys; a running KVM guest has ~53, an idle or off domain a handful
_SHUTOFF = 5  # VIR_DOMAIN_SHUTOFF: a shut-off domain has no id (-1)


class DomainHandle(Protocol):
    """What the cache reads of a libvirt virDomain: local accessors, no RPC."""

    def name(self) -> str: ...

    def UUIDString(self) -> str: ...

    def ID(self) -> int: ...


# Per domain name: its uuid, id and state code when they were read, its stats if the
# record is small (else None), its snapshot facts, and the Domain made of them.
_Kept = tuple[str, int, object, Mapping[str, Any] | None, Snapshots | None, Domain]


class RecordCache:
    """Hands back last poll's Domain for a record whose name, id and stats are all unchanged.

    An unchanged Domain is the same object, so the engine can tell "nothing moved"
    by identity and skip its checks, rates and records. Its counters keep the time
    they were first read at (they are still the values now). Only small records
    are kept: a running guest's counters move on every poll, and keeping its 53 keys
    would cost kilobytes per domain for nothing.

    With lifecycle events (`trust_names` in from_bulk), a domain's uuid and id are read
    once and then known by its name (unique on a host) until an event for that name
    (forget()) or a change of its state: uuid and id change only with a define or a
    start, which libvirt announces. That saves two C calls per domain and poll, most of
    what a 150,000-domain poll spent beyond getAllDomainStats itself. An event that
    arrives after a poll read the stats makes the engine poll again at once.
    """

    __slots__ = ("_forgotten", "_last")

    def __init__(self) -> None:
        self._last: dict[str, _Kept] = {}
        self._forgotten: deque[str] = deque()  # appended from the event loop, drained by the poll's thread

    def forget(self, name: str) -> None:
        """An event for this domain: read its uuid and id again at the next poll (safe from any thread)."""
        self._forgotten.append(name)

    def _previous(self) -> dict[str, _Kept]:
        last, forgotten = self._last, self._forgotten
        while forgotten:
            last.pop(forgotten.popleft(), None)
        return last

    def from_bulk(
        self,
        raw: Iterable[tuple[DomainHandle, Mapping[str, Any]]],
        taken_at: float,
        snapshots: Mapping[str, Snapshots] | None = None,
        *,
        trust_names: bool,
    ) -> tuple[Domain, ...]:
        """getAllDomainStats's (virDomain, stats) pairs -> Domains; `trust_names`: lifecycle events arrive."""
        last = self._previous()
        facts = snapshots or {}
        kept: dict[str, _Kept] = {}
        out: list[Domain] = []
        for dom, stats in raw:
            name = dom.name()
            prev = last.get(name)
            state = stats.get("state.state")
            if trust_names and prev is not None and prev[2] == state:
                uuid, domain_id = prev[0], prev[1]
            else:
                uuid = dom.UUIDString()
                domain_id = -1 if state == _SHUTOFF else dom.ID()  # one C call fewer per off domain
            snaps = facts.get(uuid) if facts else None
            small = stats if len(stats) <= SMALL_RECORD else None
            if (
                prev is not None
                and small is not None
                and prev[3] == small
                and prev[0] == uuid
                and prev[1] == domain_id
                and prev[4] == snaps
            ):
                kept[name] = prev  # all as it was: no new entry either
                out.append(prev[5])
            else:
                domain = domain_from_stats(name, uuid, domain_id, stats, taken_at, snaps)
                kept[name] = (uuid, domain_id, state, small, snaps, domain)
                out.append(domain)
        self._last = kept
        return tuple(out)

    def domains(
        self,
        records: Iterable[tuple[str, str, int, Mapping[str, Any], float]],
        snapshots: Mapping[str, Snapshots] | None = None,
    ) -> tuple[Domain, ...]:
        """Records whose uuid and id are read already (the per-domain fallback) -> Domains."""
        last = self._previous()
        facts = snapshots or {}
        kept: dict[str, _Kept] = {}
        out: list[Domain] = []
        for name, uuid, domain_id, stats, taken_at in records:
            prev = last.get(name)
            snaps = facts.get(uuid)
            small = stats if len(stats) <= SMALL_RECORD else None
            if (
                prev is not None
                and small is not None
                and prev[3] == small
                and prev[0] == uuid
                and prev[1] == domain_id
                and prev[4] == snaps
            ):
                domain = prev[5]
            else:
                domain = domain_from_stats(name, uuid, domain_id, stats, taken_at, snaps)
            kept[name] = (uuid, domain_id, stats.get("state.state"), small, snaps, domain)
            out.append(domain)
        self._last = kept
        return tuple(out)


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


def host_facts(info: Sequence[Any], conn_type: str, version: int, hostname: str | None) -> HostFacts:
    """getInfo(), getType(), getVersion() and getHostname() -> HostFacts."""
    return HostFacts(
        hypervisor=hypervisor_name(conn_type),
        version=version_string(version) if version else None,
        hostname=hostname,
        cpus=int(info[2]),
        memory_bytes=int(info[1]) * 1024 * 1024,
        cpu_model=str(info[0]),
    )


# -- recordings (`vfleet debug record`): the blocking pool's (what, result) pairs as JSON ------------

CALLS_FILE = "libvirt-calls.json"
HOST_CALLS = "host facts"
_STATS_CALLS = ("getAllDomainStats", "per-domain stats")
_SNAPSHOT_CALL = "snapshot facts"


def calls_json(calls: Iterable[tuple[str, Any]]) -> str:
    """[{"call": what, "result": ...}] in call order; records are [name, uuid, id, stats, taken_at]."""
    return json.dumps([{"call": what, "result": result} for what, result in calls], indent=1, ensure_ascii=False)


def replay(host: str, text: str) -> HostSnapshot:
    """A recording's calls through the same code a poll runs: the recording as a fixture."""
    try:
        calls = {str(c["call"]): c["result"] for c in json.loads(text)}
    except (ValueError, TypeError, KeyError) as exc:
        raise GarbledOutput(host, f"{CALLS_FILE}: not a recording of libvirt calls ({exc})") from exc
    stats = next((calls[name] for name in _STATS_CALLS if name in calls), None)
    if stats is None or HOST_CALLS not in calls:
        raise GarbledOutput(host, f"{CALLS_FILE}: no {' or '.join(_STATS_CALLS)} or {HOST_CALLS} call")
    records = [(str(n), str(u), int(i), dict(s), float(t)) for n, u, i, s, t in stats]
    snapshots: dict[str, Snapshots] = {}
    if _SNAPSHOT_CALL in calls:
        found, _complete = calls[_SNAPSHOT_CALL]
        snapshots = {uuid: (int(count), oldest) for uuid, (count, oldest) in found.items()}
    taken_at = records[0][4] if records else 0.0
    return HostSnapshot(host, taken_at, RecordCache().domains(records, snapshots), host_facts(*calls[HOST_CALLS]))
