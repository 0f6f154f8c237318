"""Pure parsers for free-license ESXi's shell tools: vim-cmd and esxcli (no I/O here).

vim-cmd prints VMODL data objects (`(vim.vm.Summary) { key = value, ... }`), with
`<unset>` for absent values and `Op failed: (vim.fault.X) { ... msg = "..." }` on
failure; esxcli prints indented `Key: Value` records. getallvms is a padded table
whose Name and File columns are free text, so names come from get.summary, where
they are quoted; getallvms only supplies the ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainGauges, HostFacts, MemorySource, PowerState

MIB = 1024 * 1024
UNKNOWN_VM = "Unable to find a VM corresponding"
POWER_STATES: Mapping[str, PowerState] = {
    "poweredOn": PowerState.RUNNING,
    "poweredOff": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
}
_ROW = re.compile(r"^(?P<vmid>\d+)\s+(?P<rest>\S.*)$")
_VMX = re.compile(r"\[[^\]]*\] .*\.vmx")
_ASSIGN = re.compile(r"^\s*(?P<key>\w+) = (?P<value>.*?),?\s*$")
_FAULT = re.compile(r"^(?P<op>[\w ]+) failed: \((?P<fault>[\w.]+)\)")
_MSG = re.compile(r'^\s*msg = "(?P<msg>.*)",?\s*$')
_RECORD = re.compile(r"^\s+(?P<key>[^:]+):\s?(?P<value>.*)$")


@dataclass(frozen=True, slots=True)
class VmSummary:
    vmid: int
    name: str
    power: str  # the raw powerState word
    uuid: str | None
    vcpus: int | None
    memory_mib: int | None
    cpu_mhz: int | None
    max_cpu_mhz: int | None
    guest_memory_mib: int | None
    uptime_s: int | None


def _complete(text: str, what: str, host: str) -> list[str]:
    if not text.strip():
        raise GarbledOutput(host, f"{what}: empty output")
    if not text.endswith("\n"):
        raise GarbledOutput(host, f"{what}: output ends in the middle of a line (truncated)")
    return text.splitlines()


def parse_getallvms(text: str, host: str = "") -> list[int]:
    """VM ids in listing order; annotation continuation lines and skipped VMs are ignored."""
    lines = _complete(text, "vim-cmd vmsvc/getallvms", host)
    header = lines[0].split()
    if header[:3] != ["Vmid", "Name", "File"]:
        raise GarbledOutput(host, f"getallvms: unexpected header {lines[0].strip()[:80]!r}")
    ids = []
    for line in lines[1:]:
        match = _ROW.match(line)
        # A row names its .vmx; a multi-line annotation may continue on lines of its own.
        if match and _VMX.search(match.group("rest")):
            ids.append(int(match.group("vmid")))
    if len(set(ids)) != len(ids):
        raise GarbledOutput(host, "getallvms: the same Vmid twice")
    return ids


def _value(raw: str) -> str | int | None:
    if raw == "<unset>" or raw.endswith(" null"):
        return None
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def summary_fields(text: str, host: str = "", vmid: int | None = None) -> dict[str, str | int | None]:
    """Flatten a get.summary dump into {"runtime.powerState": ..., "quickStats.uptimeSeconds": ...}."""
    lines = _complete(text, f"get.summary {vmid}", host)
    if any(UNKNOWN_VM in line for line in lines):
        raise LookupError(vmid)
    body = lines[1:] if lines[0].strip() == "Listsummary:" else lines
    if not body or not body[0].startswith("(vim.vm.Summary) {") or body[-1].strip() != "}":
        raise GarbledOutput(host, f"get.summary {vmid}: not a complete vim.vm.Summary (truncated?)")
    path: list[str] = []
    fields: dict[str, str | int | None] = {}
    for line in body[1:-1]:
        stripped = line.strip()
        if stripped in ("}", "},", "]", "],"):
            if not path:
                raise GarbledOutput(host, f"get.summary {vmid}: unbalanced {stripped!r}")
            path.pop()
            continue
        match = _ASSIGN.match(line)
        if match is None:
            if stripped.endswith(("{", "[")):  # an anonymous element of a list
                path.append("")
            continue
        key, raw = match.group("key"), match.group("value")
        if raw.endswith(("{", "[")):
            path.append(key)
        elif len(path) <= 1:
            fields[".".join([*path, key])] = _value(raw)
    if path:
        raise GarbledOutput(host, f"get.summary {vmid}: unbalanced braces (truncated?)")
    return fields


def _int(fields: Mapping[str, str | int | None], key: str, host: str, vmid: int) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, int):
        raise GarbledOutput(host, f"get.summary {vmid}: {key} is {value!r}, not a number")
    return value


def parse_summary(text: str, vmid: int, host: str = "") -> VmSummary:
    fields = summary_fields(text, host, vmid)
    name, power = fields.get("config.name"), fields.get("runtime.powerState")
    if not isinstance(name, str) or not isinstance(power, str):
        raise GarbledOutput(host, f"get.summary {vmid}: no config.name or runtime.powerState")
    uuid = fields.get("config.instanceUuid") or fields.get("config.uuid")
    return VmSummary(
        vmid=vmid,
        name=name,
        power=power,
        uuid=uuid if isinstance(uuid, str) else None,
        vcpus=_int(fields, "config.numCpu", host, vmid),
        memory_mib=_int(fields, "config.memorySizeMB", host, vmid),
        cpu_mhz=_int(fields, "quickStats.overallCpuUsage", host, vmid),
        max_cpu_mhz=_int(fields, "runtime.maxCpuUsage", host, vmid),
        guest_memory_mib=_int(fields, "quickStats.guestMemoryUsage", host, vmid),
        uptime_s=_int(fields, "quickStats.uptimeSeconds", host, vmid),
    )


def domain_from_summary(summary: VmSummary) -> Domain:
    state = POWER_STATES.get(summary.power, PowerState.UNKNOWN)
    on = state is PowerState.RUNNING
    cpu = None
    if on and summary.cpu_mhz is not None and summary.max_cpu_mhz:
        cpu = min(100.0, 100.0 * summary.cpu_mhz / summary.max_cpu_mhz)
    # guestMemoryUsage is the hypervisor's active-memory estimate, valid only while running.
    used = summary.guest_memory_mib * MIB if on and summary.guest_memory_mib is not None else None
    return Domain(
        name=summary.name,
        state=state,
        raw_state=summary.power,
        uuid=summary.uuid,
        domain_id=summary.vmid,
        vcpus=summary.vcpus,
        memory_max_bytes=summary.memory_mib * MIB if summary.memory_mib is not None else None,
        memory_used_bytes=used,
        memory_used_source=MemorySource.HYPERVISOR if used is not None else None,
        uptime_s=float(summary.uptime_s) if on and summary.uptime_s is not None else None,
        gauges=DomainGauges(cpu_percent=cpu) if cpu is not None else None,
    )


def parse_fault(text: str) -> str | None:
    """`Power on failed: (vim.fault.X) {... msg = "..."}` -> "power on failed: X: msg"; None if no fault."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _FAULT.match(line.strip())
        if match:
            fault = match.group("fault").rsplit(".", 1)[-1]
            message = next((m.group("msg") for m in map(_MSG.match, lines[index:]) if m), "")
            return f"{match.group('op').lower()} failed: {fault}" + (f": {message}" if message else "")
    return None


def parse_records(text: str) -> list[dict[str, str]]:
    """esxcli's `Key: Value` records; an unindented line starts a new record (its title)."""
    records: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _RECORD.match(line)
        if match:
            if not records:
                records.append({})
            records[-1][match.group("key").strip()] = match.group("value").strip()
        else:
            records.append({"": line.strip()})
    return records


def world_ids(text: str, host: str = "") -> dict[str, int]:
    """`esxcli vm process list` -> display name -> world id (running VMs only)."""
    worlds = {}
    for record in parse_records(text):
        name, world = record.get("Display Name"), record.get("World ID", "")
        if name is None or not world.isdigit():
            raise GarbledOutput(host, f"esxcli vm process list: incomplete record {record.get('', '?')!r}")
        worlds[name] = int(world)
    return worlds


def host_facts(version: str, hostname: str, cpu: str, memory: str) -> HostFacts:
    def first(text: str) -> dict[str, str]:
        records = parse_records(text)
        return records[0] if records else {}

    v, h, c, m = first(version), first(hostname), first(cpu), first(memory)
    threads = c.get("CPU Threads", "")
    mem = re.fullmatch(r"(\d+) Bytes", m.get("Physical Memory", ""))
    return HostFacts(
        hypervisor="esxi",
        version=" ".join(x for x in (v.get("Version"), v.get("Build")) if x) or None,
        hostname=h.get("Fully Qualified Domain Name") or h.get("Host Name"),
        cpus=int(threads) if threads.isdigit() else None,
        memory_bytes=int(mem.group(1)) if mem else None,
    )
