"""A VM's devices: one disk (VBD xvda -> VDI on the pool's shared SR), one network
interface (VIF 0 on the pool network) and a console while it runs, kept in step with the
lifecycle as xapi keeps them:

- VM.snapshot / checkpoint snapshot each disk: the snapshot VM gets VBDs to new VDIs with
  is_a_snapshot, snapshot_of the live VDI;
- VM.revert gives the VM fresh clones of the snapshot's VDIs (the old disks go);
- VM.destroy removes the VM's VBDs, VIFs and consoles but leaves its VDIs (xapi does: a
  client destroys a snapshot's disks itself, VDI.destroy);
- VDI.destroy of a disk a running VM uses: VDI_IN_USE.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .store import XapiError, now

if TYPE_CHECKING:
    from .pool import XapiPool

NULL = "OpaqueRef:NULL"
GIB = 1024**3


def seed_storage(pool: XapiPool) -> None:
    store = pool.store
    pool.sr = store.add(
        "SR",
        {
            "name_label": "Shared NFS storage", "type": "nfs", "content_type": "user", "shared": True,
            "physical_size": 2048 * GIB, "physical_utilisation": 300 * GIB, "virtual_allocation": 400 * GIB,
            "allowed_operations": ["vdi_create", "vdi_destroy", "vdi_snapshot", "vdi_clone", "scan"],
        },
    )
    pool.network = store.add(
        "network", {"name_label": "Pool-wide network associated with eth0", "bridge": "xenbr0", "MTU": 1500}
    )


def _add_vdi(pool: XapiPool, name: str, size: int, **extra: Any) -> str:
    store = pool.store
    vdi = store.add(
        "VDI",
        {
            "name_label": name, "SR": pool.sr, "virtual_size": size, "physical_utilisation": size // 4,
            "type": "user", "managed": True, "allowed_operations": ["clone", "snapshot", "destroy", "copy"],
            **extra,
        },
    )
    store.modify("SR", pool.sr, VDIs=[*store.get("SR", pool.sr)["VDIs"], vdi])
    return vdi


def _add_vbd(pool: XapiPool, vm: str, vdi: str, device: str, attached: bool) -> str:
    store = pool.store
    vbd = store.add(
        "VBD",
        {
            "VM": vm, "VDI": vdi, "device": device, "userdevice": "0", "bootable": True, "mode": "RW",
            "type": "Disk", "currently_attached": attached, "allowed_operations": ["attach"],
        },
    )
    store.modify("VDI", vdi, VBDs=[*store.get("VDI", vdi)["VBDs"], vbd])
    store.modify("VM", vm, VBDs=[*store.get("VM", vm)["VBDs"], vbd])
    return vbd


def attach_new_devices(pool: XapiPool, vm: str, live: bool, disk_size: int = 20 * GIB) -> None:
    """A fresh VM's disk, network interface and (when running) console."""
    store = pool.store
    record = store.get("VM", vm)
    vdi = _add_vdi(pool, f"{record['name_label'][:40]} disk 0", disk_size)
    _add_vbd(pool, vm, vdi, "xvda", live)
    mac = "aa:bb:cc:" + ":".join(f"{b:02x}" for b in uuid.UUID(record["uuid"]).bytes[:3])
    vif = store.add(
        "VIF",
        {"device": "0", "network": pool.network, "VM": vm, "MAC": mac, "MTU": 1500, "currently_attached": live,
         "locking_mode": "network_default", "allowed_operations": ["attach"]},
    )
    store.modify("network", pool.network, VIFs=[*store.get("network", pool.network)["VIFs"], vif])
    store.modify("VM", vm, VIFs=[vif])
    set_live(pool, vm, live)


def set_live(pool: XapiPool, vm: str, live: bool) -> None:
    """Devices follow the power state: attached and with a console only while the domain exists."""
    store = pool.store
    record = store.get("VM", vm)
    for cls, refs in (("VBD", record["VBDs"]), ("VIF", record["VIFs"])):
        for ref in refs:
            if ref in store.objects.get(cls, {}) and store.get(cls, ref)["currently_attached"] != live:
                store.modify(cls, ref, currently_attached=live)
    if live and not record["consoles"]:
        protocol = "vt100" if record["is_control_domain"] else "rfb"
        console_uuid = str(uuid.uuid4())
        host = store.objects.get("host", {}).get(record["resident_on"])
        address = host["address"] if host else pool.addresses[0]
        console = store.add(
            "console",
            {"uuid": console_uuid, "protocol": protocol, "VM": vm, "location": f"https://{address}/console?uuid={console_uuid}"},
        )
        store.modify("VM", vm, consoles=[console])
    elif not live and record["consoles"]:
        for console in record["consoles"]:
            if console in store.objects.get("console", {}):
                store.remove("console", console)
        store.modify("VM", vm, consoles=[])


def snapshot_disks(pool: XapiPool, vm: str, snap: str) -> None:
    """The snapshot VM's own VBDs, to snapshots of the VM's disks (no VIF, no console)."""
    store = pool.store
    store.modify("VM", snap, VBDs=[], VIFs=[], consoles=[])
    for vbd in store.get("VM", vm)["VBDs"]:
        attachment = store.get("VBD", vbd)
        disk = store.get("VDI", attachment["VDI"])
        copy = _add_vdi(
            pool, disk["name_label"], disk["virtual_size"], is_a_snapshot=True, snapshot_of=attachment["VDI"],
            snapshot_time=now(),
        )
        store.modify("VDI", attachment["VDI"], snapshots=[*disk["snapshots"], copy])
        _add_vbd(pool, snap, copy, attachment["device"], False)


def revert_disks(pool: XapiPool, vm: str, snap: str) -> None:
    """Point the VM's VBDs at fresh clones of the snapshot's disks; the old disks go."""
    store = pool.store
    snap_disks = {store.get("VBD", v)["device"]: store.get("VBD", v)["VDI"] for v in store.get("VM", snap)["VBDs"]}
    for vbd in store.get("VM", vm)["VBDs"]:
        attachment = store.get("VBD", vbd)
        source, old = snap_disks.get(attachment["device"]), attachment["VDI"]
        if source is None:
            continue
        disk = store.get("VDI", source)
        clone = _add_vdi(pool, disk["name_label"], disk["virtual_size"])
        store.modify("VDI", clone, VBDs=[vbd])
        store.modify("VBD", vbd, VDI=clone)
        if old in store.objects.get("VDI", {}):
            store.modify("VDI", old, VBDs=[v for v in store.get("VDI", old)["VBDs"] if v != vbd])
            destroy_vdi(pool, old)


def forget_vm_devices(pool: XapiPool, vm: str) -> None:
    """VM.destroy: its VBDs, VIFs, consoles go; its VDIs stay (unattached)."""
    store = pool.store
    record = store.get("VM", vm)
    for vbd in record["VBDs"]:
        if vbd in store.objects.get("VBD", {}):
            vdi = store.get("VBD", vbd)["VDI"]
            if vdi in store.objects.get("VDI", {}):
                store.modify("VDI", vdi, VBDs=[v for v in store.get("VDI", vdi)["VBDs"] if v != vbd])
            store.remove("VBD", vbd)
    for vif in record["VIFs"]:
        if vif in store.objects.get("VIF", {}):
            network = store.get("VIF", vif)["network"]
            if network in store.objects.get("network", {}):
                store.modify("network", network, VIFs=[v for v in store.get("network", network)["VIFs"] if v != vif])
            store.remove("VIF", vif)
    for console in record["consoles"]:
        if console in store.objects.get("console", {}):
            store.remove("console", console)


def destroy_vdi(pool: XapiPool, vdi: str) -> str:
    store = pool.store
    with store.lock:
        record = store.get("VDI", vdi)
        for vbd in record["VBDs"]:
            attachment = store.objects.get("VBD", {}).get(vbd)
            if attachment and attachment["currently_attached"]:
                raise XapiError("VDI_IN_USE", vdi, "destroy")
        for vbd in record["VBDs"]:
            if vbd in store.objects.get("VBD", {}):
                store.modify("VBD", vbd, VDI=NULL, empty=True)
        parent = record["snapshot_of"]
        if parent in store.objects.get("VDI", {}):
            store.modify("VDI", parent, snapshots=[s for s in store.get("VDI", parent)["snapshots"] if s != vdi])
        if record["SR"] in store.objects.get("SR", {}):
            store.modify("SR", record["SR"], VDIs=[v for v in store.get("SR", record["SR"])["VDIs"] if v != vdi])
        store.remove("VDI", vdi)
    return ""
