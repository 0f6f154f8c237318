"""Pure mapping from xapi records (VM, VM_metrics, host, ...) and rrd values to vfleet models.

Records arrive through XML-RPC (64-bit ints as strings, datetimes as xmlrpc DateTime
objects) or JSON-RPC (ints as numbers, datetimes as strings in several spellings):
every number and time here goes through one tolerant reader, and a value it cannot
read is None, never 0.

What the rrd data sources mean (xcp-rrdd, per VM): `cpuN` the fraction of vCPU N busy;
`memory` bytes allocated; `memory_target` the balloon target in bytes;
`memory_internal_free` KiB free as the guest agent reports; `vbd_DEV_read|write`
and `vif_N_rx|tx` bytes/s; `runstate_full_contention` the fraction of time all the
VM's vCPUs were runnable but not running, `runstate_partial_contention` the fraction
when some were: their sum is the share of time the VM waited for a physical CPU,
the same notion as KVM's vcpu delay and ESXi's ready time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from vfleet.core.models import Domain, DomainGauges, HostFacts, MemorySource, NodeFacts, PowerState, Verb
from vfleet.drivers.xapi.rrd import number, whole

KIB = 1024
# Every vm_power_state of the API definition, explicitly; anything else is UNKNOWN.
POWER_STATES: Mapping[str, PowerState] = {
    "Running": PowerState.RUNNING,
    "Halted": PowerState.OFF,
    "Paused": PowerState.PAUSED,
    "Suspended": PowerState.SUSPENDED,
}
_STOPPING = frozenset({"clean_shutdown", "hard_shutdown", "shutdown"})
# The xapi operation (an enum vm_operations value) each verb asks for, as allowed_operations
# and blocked_operations name it. RESUME depends on the state: see operation_for().
OPERATIONS: Mapping[Verb, str] = {
    Verb.START: "start",
    Verb.SHUTDOWN: "clean_shutdown",
    Verb.FORCE_OFF: "hard_shutdown",
    Verb.REBOOT: "clean_reboot",
    Verb.RESET: "hard_reboot",
    Verb.PAUSE: "pause",
    Verb.RESUME: "unpause",
    Verb.SUSPEND: "suspend",
    Verb.SNAPSHOT_CREATE: "snapshot",
    Verb.SNAPSHOT_REVERT: "revert",
    Verb.SNAPSHOT_DELETE: "destroy",
    Verb.MIGRATE: "pool_migrate",
}
_VBD = re.compile(r"^vbd_([^_]+)_(read|write)$")
_VIF = re.compile(r"^vif_(\d+)_(rx|tx)$")
_CPU = re.compile(r"^cpu(\d+)$")
_NULL_REF = "OpaqueRef:NULL"
# xapi's "no time" (the epoch); a datetime before it is unset too.
_EPOCH_WORDS = ("19700101T00:00:00Z", "1970-01-01T00:00:00Z")


def is_guest(vm: Mapping[str, Any]) -> bool:
    """A VM the fleet shows: not a template, not a snapshot, not a host's control domain."""
    return not (_flag(vm.get("is_a_template")) or _flag(vm.get("is_a_snapshot")) or _flag(vm.get("is_control_domain")))


def power_state(vm: Mapping[str, Any]) -> tuple[PowerState, str]:
    raw = str(vm.get("power_state") or "unknown")
    state = POWER_STATES.get(raw, PowerState.UNKNOWN)
    running_ops = vm.get("current_operations")
    stopping = isinstance(running_ops, Mapping) and _STOPPING & set(map(str, running_ops.values()))
    if state is PowerState.RUNNING and stopping:
        return PowerState.SHUTTING_DOWN, raw
    return state, raw


def operation_for(verb: Verb, state: PowerState) -> str:
    """RESUME unpauses a paused VM and resumes a suspended one (memory read back from disk)."""
    if verb is Verb.RESUME and state is PowerState.SUSPENDED:
        return "resume"
    if verb is Verb.SNAPSHOT_CREATE:
        return "snapshot"
    return OPERATIONS[verb]


def blocked_reason(vm: Mapping[str, Any], operation: str) -> str | None:
    """Why the pool blocks `operation` on this VM (blocked_operations: op -> reason), or None."""
    blocked = vm.get("blocked_operations")
    if not isinstance(blocked, Mapping) or operation not in blocked:
        return None
    return str(blocked[operation] or "no reason given")


def not_allowed(vm: Mapping[str, Any], operation: str) -> bool:
    """xapi lists what the VM's current state allows; an operation not in that list would fail."""
    allowed = vm.get("allowed_operations")
    return isinstance(allowed, list | tuple) and operation not in allowed


def timestamp(value: object) -> float | None:
    """Seconds since the epoch from any spelling xapi uses, None for "unset" (the epoch) or garbage.

    XML-RPC gives xmlrpc.client.DateTime ("20240420T12:00:00Z" in .value); JSON-RPC gives
    strings: "20240420T12:00:00Z", "2024-04-20T12:00:00Z", without the Z (UTC all the same),
    or a number of seconds ("1627478400.").
    """
    text = getattr(value, "value", value)
    if isinstance(text, datetime):
        moment = text if text.tzinfo else text.replace(tzinfo=UTC)
        return moment.timestamp() if moment.timestamp() > 0 else None
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text in _EPOCH_WORDS:
        return None
    seconds: float | None = number(text)
    if seconds is None:
        for pattern in ("%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%dT%H%M%S"):
            try:
                parsed = datetime.strptime(text.removesuffix("Z").split(".")[0], pattern)
            except ValueError:
                continue
            seconds = parsed.replace(tzinfo=UTC).timestamp()
            break
    return seconds if seconds is not None and seconds > 0 else None


def gauges_from_rrd(values: Mapping[str, float], vcpus: int | None) -> DomainGauges | None:
    """Rates and percentages of one VM from its rrd data sources; None when it has none."""
    if not values:
        return None
    cpus = sorted((int(m.group(1)), v) for name, v in values.items() if (m := _CPU.match(name)))
    if vcpus:
        cpus = [(n, v) for n, v in cpus if n < vcpus] or cpus
    cpu = 100.0 * sum(v for _n, v in cpus) / len(cpus) if cpus else _percent(values.get("cpu_usage"))
    full, partial = values.get("runstate_full_contention"), values.get("runstate_partial_contention")
    contention = None if full is None and partial is None else _percent((full or 0.0) + (partial or 0.0))
    disk = _sum_by(values, _VBD)
    net = _sum_by(values, _VIF)
    return DomainGauges(
        cpu_percent=_clamp(cpu),
        contention_percent=_clamp(contention),
        disk_read_bps=disk.get("read"),
        disk_write_bps=disk.get("write"),
        net_rx_bps=net.get("rx"),
        net_tx_bps=net.get("tx"),
    )


def domain_from_records(
    vm: Mapping[str, Any],
    metrics: Mapping[str, Any] | None,
    rrd: Mapping[str, float] | None,
    *,
    node: str | None,
    now: float,
    snapshots: tuple[int, float | None] | None = None,
) -> Domain:
    """One guest VM; `now` is wall time (time.time()) for the uptime, `snapshots` (count, oldest)."""
    state, raw = power_state(vm)
    live = state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTTING_DOWN)
    metrics = metrics or {}
    rrd = rrd if live and rrd else {}
    vcpus = (whole(metrics.get("VCPUs_number")) if live else None) or whole(vm.get("VCPUs_at_startup"))
    # allocated now: rrd `memory`, else the balloon target, else VM_metrics' memory_actual
    current = _positive(rrd.get("memory")) or _positive(rrd.get("memory_target"))
    if current is None and live:
        current = _positive(whole(metrics.get("memory_actual")))
    free_kib = rrd.get("memory_internal_free")
    used = None
    if current is not None and free_kib is not None and 0 <= free_kib * KIB <= current:
        used = int(current - free_kib * KIB)
    started = timestamp(metrics.get("start_time")) if live else None
    domid = whole(vm.get("domid"))
    uuid = vm.get("uuid")
    blocked = vm.get("blocked_operations")
    count, oldest = snapshots if snapshots is not None else (None, None)
    return Domain(
        name=str(vm.get("name_label") or uuid or "?"),
        state=state,
        raw_state=raw,
        uuid=str(uuid) if uuid else None,
        domain_id=domid if domid is not None and domid >= 0 and live else None,
        vcpus=vcpus if vcpus and vcpus > 0 else None,
        memory_max_bytes=_positive(whole(vm.get("memory_static_max"))),
        memory_current_bytes=int(current) if current is not None else None,
        memory_used_bytes=used,
        memory_used_source=MemorySource.GUEST if used is not None else None,
        uptime_s=max(0.0, now - started) if started is not None else None,
        gauges=gauges_from_rrd(rrd, vcpus) if live else None,
        # Xen Orchestra's "protect from accidental deletion / shutdown" is blocked_operations:
        # any blocked operation marks the VM protected, as Proxmox's protection flag does.
        protected=bool(blocked) if isinstance(blocked, Mapping) else False,
        snapshot_count=count,
        oldest_snapshot_at=oldest,
        node=node,
    )


def assemble(
    raw: Mapping[str, Mapping[str, Any]], rrd: Mapping[str, Mapping[str, float]], now: float
) -> tuple[list[tuple[str, Domain]], HostFacts]:
    """One poll's answers -> (VM ref, Domain) of every guest, and the pool's facts.

    `raw` holds get_all_records of VM, VM_metrics, host, host_metrics and pool; `rrd` the
    values by VM uuid; `now` wall time. Polls and recordings (recording.replay) both come here.
    """
    vms, metrics, hosts = raw.get("VM", {}), raw.get("VM_metrics", {}), raw.get("host", {})
    names = node_names(hosts)
    snaps = snapshot_facts(vms)
    pairs = [
        (ref, domain_from_records(
            vm,
            metrics.get(str(vm.get("metrics"))),
            rrd.get(str(vm.get("uuid"))),
            node=names.get(str(vm.get("resident_on"))),
            now=now,
            snapshots=snaps.get(ref, (0, None)),
        ))
        for ref, vm in vms.items()
        if is_guest(vm)
    ]
    pool = first_pool(raw.get("pool", {}))
    return pairs, facts_from_pool(hosts, raw.get("host_metrics", {}), pool.get("master"), pool.get("name_label"))


def first_pool(pools: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """A host belongs to exactly one pool (a standalone host is a pool of one)."""
    return next(iter(pools.values()), {})


def snapshot_facts(vms: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, float | None]]:
    """VM ref -> (number of snapshots, time of the oldest), from the snapshots among all records."""
    facts: dict[str, tuple[int, float | None]] = {}
    for record in vms.values():
        if not _flag(record.get("is_a_snapshot")):
            continue
        of = str(record.get("snapshot_of") or _NULL_REF)
        count, oldest = facts.get(of, (0, None))
        taken = timestamp(record.get("snapshot_time"))
        if taken is not None and (oldest is None or taken < oldest):
            oldest = taken
        facts[of] = (count + 1, oldest)
    return facts


def facts_from_pool(
    hosts: Mapping[str, Mapping[str, Any]],
    host_metrics: Mapping[str, Mapping[str, Any]],
    master: str | None,
    pool_name: str | None,
) -> HostFacts:
    """One inventory host is a whole pool: its capacity is the sum of its live nodes."""
    head = hosts.get(master or "") or next(iter(hosts.values()), {})
    version = _version(head.get("software_version"))
    cpus = [whole(_get(h, "cpu_info", "cpu_count")) for h in hosts.values()]
    memory = [whole(m.get("memory_total")) for m in host_metrics.values()]
    return HostFacts(
        hypervisor="xen",
        version=version,
        hostname=str(pool_name or head.get("hostname") or head.get("name_label") or "") or None,
        cpus=_sum_known(cpus),
        memory_bytes=_sum_known(memory),
        cpu_model=str(_get(head, "cpu_info", "modelname") or "") or None,
        # each member with its own capacity, for per-node aggregates (by name: a stable order)
        nodes=tuple(sorted((NodeFacts(*node) for node in node_capacity(hosts, host_metrics)), key=lambda n: n.name)),
    )


def node_capacity(
    hosts: Mapping[str, Mapping[str, Any]], host_metrics: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, int | None, int | None]]:
    """(node name, CPUs, memory bytes) of each pool member, for per-node aggregates (HostFacts.nodes)."""
    names = node_names(hosts)
    return [
        (
            names[ref],
            whole(_get(record, "cpu_info", "cpu_count")),
            whole(host_metrics.get(str(record.get("metrics")), {}).get("memory_total")),
        )
        for ref, record in hosts.items()
    ]


def node_names(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """host ref -> its name_label (the node name vfleet shows and migrate targets)."""
    return {ref: str(h.get("name_label") or h.get("hostname") or ref) for ref, h in hosts.items()}


def _version(software: object) -> str | None:
    if not isinstance(software, Mapping):
        return None
    brand, version = software.get("product_brand"), software.get("product_version")
    if brand and version:
        return f"{brand} {version}"
    xapi = software.get("xapi")
    return f"xapi {xapi}" if xapi else None


def _get(record: Mapping[str, Any], key: str, sub: str) -> object:
    inner = record.get(key)
    return inner.get(sub) if isinstance(inner, Mapping) else None


def _sum_known(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None and v > 0]
    return sum(known) if known else None


def _sum_by(values: Mapping[str, float], pattern: re.Pattern[str]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for name, value in values.items():
        match = pattern.match(name)
        if match and value >= 0:
            sums[match.group(2)] = sums.get(match.group(2), 0.0) + value
    return sums


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _clamp(percent: float | None) -> float | None:
    return None if percent is None else min(100.0, max(0.0, percent))


def _positive(value: float | int | None) -> int | None:
    return int(value) if value is not None and value > 0 else None


def _flag(value: object) -> bool:
    """xapi bools: True/False, or "true"/"false" where a map or an older client stringified them."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True
