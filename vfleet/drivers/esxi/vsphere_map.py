"""Pure mapping from vSphere API values to vfleet models (no pyVmomi import).

The esxi_api driver reads plain property dictionaries with the PropertyCollector
and performance samples with QueryPerf; everything here turns those into
Domain, DomainGauges and HostFacts, so it can be tested without a server.

What 0 means in quickStats: ESXi fills quickStats only for powered-on VMs and
only once its statistics have caught up (vcsim never does). A zero there is
"no estimate yet", not a measurement, except for CPU where an idle VM really
does use 0 MHz. So: powered-off/suspended VMs get no usage numbers at all;
memory values of 0 are None; quickStats CPU counts only when the VM's
quickStats are populated at all (uptimeSeconds > 0 or hostMemoryUsage > 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainGauges, HostFacts, HostSnapshot, MemorySource, NodeFacts, PowerState

MIB = 1024 * 1024
KIB = 1024

# Every vim.VirtualMachinePowerState value, explicitly; anything else is UNKNOWN.
POWER_STATES: Mapping[str, PowerState] = {
    "poweredOn": PowerState.RUNNING,
    "poweredOff": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
}

VM_PROPERTIES = (
    "name",
    "config.uuid",
    "config.instanceUuid",
    "config.template",
    "runtime.powerState",
    "runtime.bootTime",
    "runtime.maxCpuUsage",
    "summary.config.numCpu",
    "summary.config.memorySizeMB",
    "summary.quickStats.overallCpuUsage",
    "summary.quickStats.guestMemoryUsage",
    "summary.quickStats.hostMemoryUsage",
    "summary.quickStats.uptimeSeconds",
    # By path, not `snapshot`: vcsim fails reading an unset vm.snapshot; unset here is just absent.
    "snapshot.rootSnapshotList",
    "runtime.host",  # the ESXi server it runs on: Domain.node when the inventory host is a vCenter
)

HOST_PROPERTIES = (
    "name",
    "summary.config.product.fullName",
    "summary.config.product.version",
    "summary.hardware.numCpuThreads",
    "summary.hardware.memorySize",
    "summary.hardware.cpuModel",
)

# Realtime (20 s) counters, by "group.name.rollup". Units: cpu.usage is in
# hundredths of a percent of the VM's vCPUs, cpu.ready is milliseconds spent
# ready-but-not-running per sample interval (summed over vCPUs), disk and net
# are KiB/s.
PERF_COUNTERS = (
    "cpu.usage.average",
    "cpu.ready.summation",
    "disk.read.average",
    "disk.write.average",
    "net.received.average",
    "net.transmitted.average",
)
REALTIME_INTERVAL_S = 20


def power_state(raw: object) -> tuple[PowerState, str]:
    text = "" if raw is None else str(raw)
    return POWER_STATES.get(text, PowerState.UNKNOWN), text or "unknown"


def _positive(value: object) -> int | None:
    """A quickStats number, or None when it is unset or 0 (no estimate)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class PerfSample:
    """The latest realtime values of one VM, keyed by counter name (see PERF_COUNTERS)."""

    values: Mapping[str, int]
    interval_s: int = REALTIME_INTERVAL_S


def gauges_from_perf(sample: PerfSample | None, vcpus: int | None) -> DomainGauges | None:
    if sample is None:
        return None
    v = sample.values

    def rate(name: str) -> float | None:
        value = v.get(name)
        return None if value is None or value < 0 else float(value * KIB)  # -1: no data this interval

    usage = v.get("cpu.usage.average")
    ready = v.get("cpu.ready.summation")
    contention = None
    if ready is not None and ready >= 0 and vcpus:
        # Per-vCPU share of the interval, like KVM's vcpu delay / (elapsed * vCPUs).
        contention = 100.0 * ready / (sample.interval_s * 1000.0 * vcpus)
    return DomainGauges(
        cpu_percent=usage / 100.0 if usage is not None and usage >= 0 else None,
        contention_percent=contention,
        disk_read_bps=rate("disk.read.average"),
        disk_write_bps=rate("disk.write.average"),
        net_rx_bps=rate("net.received.average"),
        net_tx_bps=rate("net.transmitted.average"),
    )


def _cpu_from_quickstats(props: Mapping[str, Any]) -> float | None:
    populated = _positive(props.get("summary.quickStats.uptimeSeconds")) or _positive(
        props.get("summary.quickStats.hostMemoryUsage")
    )
    used, cap = _count(props.get("summary.quickStats.overallCpuUsage")), _positive(props.get("runtime.maxCpuUsage"))
    if not populated or used is None or cap is None:
        return None
    return 100.0 * used / cap


def uptime_seconds(props: Mapping[str, Any], now: datetime) -> float | None:
    """quickStats.uptimeSeconds when ESXi filled it, else now - runtime.bootTime."""
    quick = _positive(props.get("summary.quickStats.uptimeSeconds"))
    if quick is not None:
        return float(quick)
    boot = props.get("runtime.bootTime")
    if isinstance(boot, datetime) and boot.tzinfo is not None and now.tzinfo is not None:
        return max(0.0, (now - boot).total_seconds())  # client clock: skew shows up here
    return None


def domain_from_props(
    props: Mapping[str, Any], now: datetime, perf: PerfSample | None = None, protected: bool = False
) -> Domain | None:
    """One VM's properties -> Domain; None for templates (they cannot run)."""
    if props.get("config.template") is True:
        return None
    state, raw = power_state(props.get("runtime.powerState"))
    vcpus = _positive(props.get("summary.config.numCpu"))
    size_mb = _positive(props.get("summary.config.memorySizeMB"))
    running = state is PowerState.RUNNING
    guest_mb = _positive(props.get("summary.quickStats.guestMemoryUsage")) if running else None
    host_mb = _positive(props.get("summary.quickStats.hostMemoryUsage")) if running else None
    gauges = gauges_from_perf(perf, vcpus) if running else None
    if running and (gauges is None or gauges.cpu_percent is None):
        fallback = _cpu_from_quickstats(props)
        if fallback is not None:
            gauges = replace(gauges or DomainGauges(), cpu_percent=fallback)
    uuid = props.get("config.instanceUuid") or props.get("config.uuid")
    return Domain(
        name=str(props.get("name") or uuid or "?"),
        state=state,
        raw_state=raw,
        # instanceUuid is unique per vCenter; the BIOS uuid repeats in copied VMs.
        uuid=str(uuid) if uuid else None,
        vcpus=vcpus,
        memory_max_bytes=size_mb * MIB if size_mb else None,
        memory_current_bytes=host_mb * MIB if host_mb else None,  # consumed: what the host backs now
        memory_used_bytes=guest_mb * MIB if guest_mb else None,
        # "guest memory usage" is the hypervisor's active-memory estimate, not the guest's own figure.
        memory_used_source=MemorySource.HYPERVISOR if guest_mb else None,
        uptime_s=uptime_seconds(props, now) if running else None,
        gauges=gauges,
        protected=protected,
        **snapshot_facts(props.get("snapshot.rootSnapshotList")),
    )


def snapshot_facts(roots: Any) -> dict[str, Any]:
    """Count and oldest creation time of the tree; a VM without snapshots has the path unset (0 of them)."""
    times: list[float] = []
    count, stack = 0, list(roots or [])
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node.createTime, datetime):
            times.append(node.createTime.timestamp())
        stack.extend(node.childSnapshotList or [])
    return {"snapshot_count": count, "oldest_snapshot_at": min(times, default=None)}


def facts_from_hosts(
    about_full_name: str | None, hosts: Iterable[Mapping[str, Any]], hostname: str, *, vcenter: bool = False
) -> HostFacts:
    """One inventory host may be a vCenter of many ESXi hosts: sum their capacity, and list each
    one as a node (the servers its VMs run on, for per-node aggregates)."""
    hosts = list(hosts)
    nodes = tuple(
        sorted(
            (
                NodeFacts(
                    str(h["name"]),
                    _positive(h.get("summary.hardware.numCpuThreads")),
                    _positive(h.get("summary.hardware.memorySize")),
                )
                for h in hosts
                if vcenter and h.get("name")
            ),
            key=lambda n: n.name,
        )
    )
    cpus = [_positive(h.get("summary.hardware.numCpuThreads")) for h in hosts]
    memory = [_positive(h.get("summary.hardware.memorySize")) for h in hosts]
    models = {str(h.get("summary.hardware.cpuModel")) for h in hosts if h.get("summary.hardware.cpuModel")}
    if len(hosts) == 1:
        hostname = str(hosts[0].get("name") or hostname)
    return HostFacts(
        hypervisor="esxi",
        version=about_full_name,
        hostname=hostname,
        cpus=sum(c for c in cpus if c) if cpus and all(cpus) else None,
        memory_bytes=sum(m for m in memory if m) if memory and all(memory) else None,
        cpu_model=models.pop() if len(models) == 1 else None,
        nodes=nodes,
    )


def resolve_counters(available: Iterable[tuple[str, str, str, int]]) -> dict[int, str]:
    """(group, name, rollup, key) of every counter the server has -> {key: name} for ours."""
    wanted = set(PERF_COUNTERS)
    out: dict[int, str] = {}
    for group, name, rollup, key in available:
        full = f"{group}.{name}.{rollup}"
        if full in wanted:
            out[key] = full
    return out


def perf_samples(answer: Iterable[Mapping[str, Any]], counters: Mapping[int, str]) -> dict[str, PerfSample]:
    """QueryPerf's EntityMetric list (as JSON values, see vsphere_json) -> the latest sample per VM moId."""
    out: dict[str, PerfSample] = {}
    for metric in answer:
        infos = metric.get("sampleInfo") or []
        interval = infos[-1].get("interval") if infos else REALTIME_INTERVAL_S
        values = {}
        for series in metric.get("value") or []:
            key = int(series.get("id", {}).get("counterId", -1))
            if key in counters and series.get("value"):
                values[counters[key]] = int(series["value"][-1])
        moref = str(metric.get("entity", {}).get("_moref", ""))
        out[moref.partition(":")[2]] = PerfSample(values, int(interval or REALTIME_INTERVAL_S))
    return out


def on_node(domain: Domain | None, names: Mapping[str, str], host_moid: str) -> Domain | None:
    """The domain placed on the vCenter server (node) it runs on, when that server is known."""
    name = names.get(host_moid)
    return domain if domain is None or name is None else replace(domain, node=name)


# -- recordings (`vfleet debug record`) --------------------------------------------

RECORDING_FILE = "vsphere-poll.json"


def vsphere_json(value: Any) -> Any:
    """pyVmomi values as JSON values: data objects as {"_type", fields}, references as {"_moref"},
    times as {"_datetime"}; revive() turns them back into what this module reads. Duck-typed (no
    pyVmomi here): a managed object has `_moId`, a data object `_GetPropertyList`."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # enums are str subclasses
    if isinstance(value, datetime):
        return {"_datetime": value.isoformat()}
    if hasattr(value, "_moId"):
        return {"_moref": f"{value._wsdlName}:{value._moId}"}
    if hasattr(value, "_GetPropertyList"):
        fields = {p.name: vsphere_json(getattr(value, p.name, None)) for p in value._GetPropertyList()}
        return {"_type": value._wsdlName, **{k: v for k, v in fields.items() if v not in (None, [])}}
    if isinstance(value, dict):
        return {str(k): vsphere_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [vsphere_json(v) for v in value]
    return str(value)


def revive(value: Any) -> Any:
    """vsphere_json() values back into what this module reads: datetimes, objects with attributes."""
    if isinstance(value, list):
        return [revive(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "_datetime" in value:
        return datetime.fromisoformat(str(value["_datetime"]))
    if "_moref" in value:
        return SimpleNamespace(_moId=str(value["_moref"]).partition(":")[2], moref=str(value["_moref"]))
    fields = {k: revive(v) for k, v in value.items() if k != "_type"}
    if "_type" in value:
        tree = str(value["_type"]).endswith("SnapshotTree")  # snapshot_facts() reads these two
        defaults: dict[str, Any] = {"childSnapshotList": [], "createTime": None} if tree else {}
        return SimpleNamespace(**{**defaults, **fields})
    return fields


def replay(host: str, text: str, address: str) -> HostSnapshot:
    """A recording through the same mapping a poll uses: the recording as a fixture."""
    try:
        data = json.loads(text)
        now = datetime.fromisoformat(data["now"])
        counters = {int(k): str(v) for k, v in data["counters"].items()}
        objects = [(str(o["obj"]["_moref"]), revive(o["props"])) for o in data["objects"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise GarbledOutput(host, f"{RECORDING_FILE}: not a vSphere poll recording ({exc})") from exc
    perf = perf_samples(data.get("perf") or [], counters)
    vcenter = data.get("about", {}).get("apiType") == "VirtualCenter"
    hosts = {moref.partition(":")[2]: props for moref, props in objects if moref.startswith("HostSystem:")}
    names = {moid: str(p.get("name")) for moid, p in hosts.items() if p.get("name")}
    domains = []
    for moref, props in objects:
        if not moref.startswith("VirtualMachine:"):
            continue
        domain = domain_from_props(props, now, perf.get(moref.partition(":")[2]))
        if vcenter:
            domain = on_node(domain, names, getattr(props.get("runtime.host"), "_moId", ""))
        if domain is not None:
            domains.append(domain)
    facts = facts_from_hosts(data.get("about", {}).get("fullName"), hosts.values(), address or host, vcenter=vcenter)
    return HostSnapshot(host, 0.0, tuple(domains), facts)
