"""The test pool: two hosts, their control domains, VMs in every power state, a template,
a snapshot, a protected VM (blocked_operations) and one VM with a hostile name.

VM names (the tests and the driver's tests find VMs by them):
  web-01        Running on host 0, busy (high cpu, contention)
  db-01         Running on host 1, idle (near-zero cpu and contention)
  paused-01     Paused on host 0
  suspended-01  Suspended (resident nowhere)
  halted-01     Halted (resident nowhere)
  protected-01  Running on host 1; clean_shutdown, hard_shutdown and destroy blocked
  HOSTILE_NAME  Running on host 1 (control characters, bidi override, 300+ characters)
  debian-12     template (is_a_template, is_default_template)
  web-01 before upgrade   snapshot of web-01 (is_a_snapshot; also is_a_template, as in xapi)
  Control domain on host xcp-a / xcp-b   dom0 of each host (is_control_domain)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .store import Store

GIB = 1024**3
MIB = 1024**2
# C1 CSI (U+009B) and DEL are legal XML yet steer terminals; U+202E reverses text. ESC
# (0x1b) itself cannot travel over XML-RPC (XML 1.0 forbids it), so xapi never sends it.
HOSTILE_NAME = "evil\u009b31m\tname\nline2\u202eoverride\x7f" + "x" * 300
HOST_NAMES = ("xcp-a", "xcp-b")
RUNNING_OPERATIONS = [
    "changing_dynamic_range", "migrate_send", "pool_migrate", "changing_VCPUs_live", "suspend",
    "hard_reboot", "hard_shutdown", "clean_reboot", "clean_shutdown", "pause", "checkpoint", "snapshot",
]
OPERATIONS_BY_STATE = {
    "Running": RUNNING_OPERATIONS,
    "Halted": ["start", "start_on", "clone", "copy", "snapshot", "export", "destroy", "hard_shutdown"],
    "Paused": ["unpause", "hard_shutdown", "hard_reboot", "checkpoint", "snapshot"],
    "Suspended": ["resume", "resume_on", "hard_shutdown", "checkpoint", "snapshot"],
}


@dataclass
class Seeded:
    pool: str
    hosts: list[str]
    vms: dict[str, str] = field(default_factory=dict)  # name -> ref
    # vm uuid -> "busy" | "idle": how its metrics move in /rrd_updates
    load: dict[str, str] = field(default_factory=dict)


def allowed_operations(power_state: str, blocked: dict[str, str]) -> list[str]:
    return [op for op in OPERATIONS_BY_STATE[power_state] if op not in blocked]


def _metrics(store: Store, vcpus: int, memory: int, running: bool, started: dt.datetime) -> str:
    return store.add(
        "VM_metrics",
        {
            "memory_actual": memory if running else 0,
            "VCPUs_number": vcpus if running else 0,
            "VCPUs_utilisation": {str(i): 0.0 for i in range(vcpus)} if running else {},
            "VCPUs_CPU": {str(i): i for i in range(vcpus)} if running else {},
            "state": [],
            "start_time": started if running else dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            "install_time": started - dt.timedelta(days=30),
            "last_updated": started,
            "hvm": True,
            "current_domain_type": "hvm" if running else "unspecified",
        },
    )


def _guest_metrics(store: Store, ip: str, total_kib: int, free_kib: int) -> str:
    return store.add(
        "VM_guest_metrics",
        {
            "os_version": {"name": "Debian GNU/Linux 12 (bookworm)", "distro": "debian", "major": "12"},
            "PV_drivers_version": {"major": "9", "minor": "3", "micro": "3", "build": "1"},
            "PV_drivers_up_to_date": True,
            "memory": {"total": str(total_kib), "free": str(free_kib)},
            "networks": {"0/ip": ip, "0/ipv4/0": ip},
            "last_updated": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "live": True,
            "can_use_hotplug_vbd": "yes",
            "can_use_hotplug_vif": "yes",
            "PV_drivers_detected": True,
        },
    )


def add_vm(
    store: Store,
    name: str,
    power_state: str,
    host: str | None,
    *,
    vcpus: int = 2,
    memory: int = 2 * GIB,
    blocked: dict[str, str] | None = None,
    guest_ip: str | None = None,
    domid: int = -1,
    **extra: Any,
) -> str:
    blocked = blocked or {}
    live = power_state in {"Running", "Paused"}
    started = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    fields: dict[str, Any] = {
        "name_label": name,
        "name_description": f"test VM {name}"[:80],
        "power_state": power_state,
        "resident_on": host if live and host else "OpaqueRef:NULL",
        "memory_static_max": memory,
        "memory_dynamic_max": memory,
        "memory_dynamic_min": memory // 2,
        "memory_static_min": memory // 4,
        "memory_target": memory if live else 0,
        "memory_overhead": 20 * MIB,
        "VCPUs_max": vcpus,
        "VCPUs_at_startup": vcpus,
        "VCPUs_params": {"weight": "256"},
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cd", "firmware": "bios"},
        "platform": {"acpi": "1", "apic": "true", "pae": "true", "viridian": "false", "device-model": "qemu-upstream-compat"},
        "domid": domid if live else -1,
        "domain_type": "hvm",
        "blocked_operations": blocked,
        "allowed_operations": allowed_operations(power_state, blocked),
        "user_version": 1,
        "is_a_template": False,
        "generation_id": "0:0",
        "hardware_platform_version": 2,
        "metrics": _metrics(store, vcpus, memory, live, started),
        "guest_metrics": _guest_metrics(store, guest_ip, memory // 1024, memory // 4096)
        if guest_ip and live
        else "OpaqueRef:NULL",
    }
    fields.update(extra)
    ref = store.add("VM", fields)
    if fields["resident_on"] != "OpaqueRef:NULL":
        host_record = store.get("host", fields["resident_on"])
        store.modify("host", fields["resident_on"], resident_VMs=[*host_record["resident_VMs"], ref])
    return ref


def add_host(store: Store, name: str, address: str, index: int) -> str:
    metrics = store.add(
        "host_metrics",
        {"memory_total": 64 * GIB, "memory_free": 40 * GIB, "live": True, "last_updated": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
    )
    return store.add(
        "host",
        {
            "name_label": name,
            "name_description": f"test host {index}",
            "hostname": name,
            "address": address,
            "enabled": True,
            "API_version_major": 2,
            "API_version_minor": 21,
            "API_version_vendor": "XenSource",
            "software_version": {
                "product_brand": "XCP-ng", "product_version": "8.3.0", "platform_name": "XCP",
                "xapi": "24.11", "xen": "4.17.4", "hostname": name,
            },
            "cpu_info": {"cpu_count": "8", "socket_count": "1", "vendor": "GenuineIntel", "speed": "2999.998", "modelname": "Test CPU"},
            "memory_overhead": 300 * MIB,
            "metrics": metrics,
            "allowed_operations": ["provision", "evacuate", "reboot", "shutdown", "vm_start", "vm_resume", "vm_migrate"],
            "sched_policy": "credit",
            "bios_strings": {"bios-vendor": "Test"},
        },
    )


def seed_hosts(store: Store, addresses: tuple[str, str]) -> Seeded:
    """The pool object and its two hosts (host 0 master), no VMs."""
    hosts = [add_host(store, name, address, i) for i, (name, address) in enumerate(zip(HOST_NAMES, addresses, strict=True))]
    pool = store.add("pool", {"name_label": "vfleet-test-pool", "master": hosts[0], "name_description": "two-host test pool"})
    return Seeded(pool, hosts)


def seed_pool(store: Store, addresses: tuple[str, str]) -> Seeded:
    seeded = seed_hosts(store, addresses)
    hosts = seeded.hosts

    def vm(name: str, state: str, host: int | None, load: str = "idle", **kw: Any) -> str:
        ref = add_vm(store, name, state, hosts[host] if host is not None else None, **kw)
        seeded.vms[name] = ref
        seeded.load[store.get("VM", ref)["uuid"]] = load
        return ref

    for i, name in enumerate(HOST_NAMES):
        vm(f"Control domain on host: {name}", "Running", i, vcpus=4, memory=4 * GIB, domid=0,
           is_control_domain=True, domain_type="pv", allowed_operations=[])
    web = vm("web-01", "Running", 0, load="busy", vcpus=4, memory=4 * GIB, guest_ip="10.0.0.11", domid=11)
    vm("db-01", "Running", 1, vcpus=2, memory=8 * GIB, guest_ip="10.0.0.12", domid=12)
    vm("paused-01", "Paused", 0, domid=13)
    vm("suspended-01", "Suspended", None)
    vm("halted-01", "Halted", None)
    protected = {op: "protected by the vfleet test pool" for op in ("clean_shutdown", "hard_shutdown", "destroy")}
    vm("protected-01", "Running", 1, blocked=protected, guest_ip="10.0.0.14", domid=14)
    vm(HOSTILE_NAME, "Running", 1, load="busy", vcpus=1, memory=1 * GIB, domid=15)
    vm("debian-12", "Halted", None, is_a_template=True, is_default_template=True, allowed_operations=["clone", "copy", "export", "provision"])
    # xapi's snapshots are templates too (is_a_template and is_a_snapshot both true)
    snap = vm("web-01 before upgrade", "Halted", None, is_a_snapshot=True, is_a_template=True, snapshot_of=web,
              snapshot_time=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), allowed_operations=["revert", "destroy", "clone", "copy", "export"])
    store.modify("VM", web, snapshots=[snap], parent=snap)
    store.modify("VM", snap, children=[web])
    return seeded
