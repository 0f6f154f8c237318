"""VM power transitions (vm-lifecycle.md), snapshots, revert, destroy and pool_migrate.

Checks run in xapi's order: template / snapshot / control domain, then blocked_operations
(OPERATION_BLOCKED, as xapi's api_errors), then the power state (VM_BAD_POWER_STATE
[vm, expected, actual], states in lower case as xapi writes them).
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from . import devices
from .seed import allowed_operations
from .store import XapiError, now

if TYPE_CHECKING:
    from .pool import XapiPool

NULL = "OpaqueRef:NULL"
# operations a snapshot or template allows (everything else: VM_IS_SNAPSHOT / VM_IS_TEMPLATE); as
# xapi_vm_lifecycle.ml's check_snapshot: a checkpoint (a suspended snapshot) is halted before destroy
SNAPSHOT_OPERATIONS = {"revert", "destroy", "clone", "copy", "export", "snapshot_destroy", "hard_shutdown"}


def allowed_operations_of(record: dict[str, Any]) -> list[str]:
    return allowed_operations(record["power_state"], record["blocked_operations"])


def check(pool: XapiPool, vm: str, op: str, states: tuple[str, ...]) -> dict[str, Any]:
    record = pool.store.get("VM", vm)
    if record["is_a_template"] and not record["is_a_snapshot"] and op not in {"clone", "copy", "destroy"}:
        raise XapiError("VM_IS_TEMPLATE", vm, op)
    if record["is_a_snapshot"] and op not in SNAPSHOT_OPERATIONS:
        raise XapiError("VM_IS_SNAPSHOT", vm, op)
    if record["is_control_domain"]:
        raise XapiError("OPERATION_NOT_ALLOWED", f"Operation '{op}' is not allowed on a control domain")
    if op in record["blocked_operations"]:
        raise XapiError("OPERATION_BLOCKED", vm, record["blocked_operations"][op])
    if record["current_operations"]:
        raise XapiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, next(iter(record["current_operations"])))
    if record["power_state"] not in states:
        raise XapiError("VM_BAD_POWER_STATE", vm, states[0].lower(), record["power_state"].lower())
    return record


def set_power(pool: XapiPool, vm: str, state: str, host: str | None = None) -> None:
    """Move a VM to a power state; host is where it runs (None keeps the current one)."""
    store = pool.store
    with store.lock:
        record = store.get("VM", vm)
        live = state in {"Running", "Paused"}
        old_host = record["resident_on"]
        new_host = (host or old_host) if live else NULL
        if new_host == NULL and live:
            new_host = pool.master_ref()
        if old_host != new_host:
            if old_host != NULL:
                residents = store.get("host", old_host)["resident_VMs"]
                store.modify("host", old_host, resident_VMs=[r for r in residents if r != vm])
            if new_host != NULL:
                store.modify("host", new_host, resident_VMs=[*store.get("host", new_host)["resident_VMs"], vm])
        was_live = record["power_state"] in {"Running", "Paused"}
        domid = record["domid"] if was_live and live else (pool.next_domid() if live else -1)
        store.modify(
            "VM", vm,
            power_state=state,
            resident_on=new_host,
            domid=domid,
            memory_target=record["memory_dynamic_max"] if live else 0,
            allowed_operations=allowed_operations(state, record["blocked_operations"]),
        )
        metrics = record["metrics"]
        if metrics != NULL:
            vcpus = record["VCPUs_at_startup"]
            changes: dict[str, Any] = {
                "memory_actual": record["memory_dynamic_max"] if live else 0,
                "VCPUs_number": vcpus if live else 0,
                "last_updated": now(),
            }
            if live and not was_live:
                changes["start_time"] = now()
            store.modify("VM_metrics", metrics, **changes)
        devices.set_live(pool, vm, live)


def start(pool: XapiPool, vm: str, start_paused: bool, force: bool, host: str | None = None) -> str:
    if host is not None:
        pool.store.get("host", host)  # HANDLE_INVALID before anything moves
    check(pool, vm, "start", ("Halted",))
    set_power(pool, vm, "Paused" if start_paused else "Running", host)
    return ""


def clean_shutdown(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "clean_shutdown", ("Running",))
    set_power(pool, vm, "Halted")
    return ""


def hard_shutdown(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "hard_shutdown", ("Running", "Paused", "Suspended"))
    set_power(pool, vm, "Halted")
    return ""


def clean_reboot(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "clean_reboot", ("Running",))
    _reboot(pool, vm)
    return ""


def hard_reboot(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "hard_reboot", ("Running", "Paused"))
    _reboot(pool, vm)
    return ""


def _reboot(pool: XapiPool, vm: str) -> None:
    # a reboot is a new domain on the same host
    with pool.store.lock:
        pool.store.modify("VM", vm, domid=pool.next_domid(), power_state="Running")
        set_power(pool, vm, "Running")


def pause(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "pause", ("Running",))
    set_power(pool, vm, "Paused")
    return ""


def unpause(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "unpause", ("Paused",))
    set_power(pool, vm, "Running")
    return ""


def suspend(pool: XapiPool, vm: str) -> str:
    check(pool, vm, "suspend", ("Running",))
    set_power(pool, vm, "Suspended")
    return ""


def resume(pool: XapiPool, vm: str, start_paused: bool, force: bool, host: str | None = None) -> str:
    if host is not None:
        pool.store.get("host", host)
    check(pool, vm, "resume", ("Suspended",))
    set_power(pool, vm, "Paused" if start_paused else "Running", host)
    return ""


def pool_migrate(pool: XapiPool, vm: str, host: str, options: dict[str, str]) -> str:
    pool.store.get("host", host)  # HANDLE_INVALID for an unknown host
    check(pool, vm, "pool_migrate", ("Running",))
    set_power(pool, vm, "Running", host)
    return ""


def snapshot(pool: XapiPool, vm: str, new_name: str, ignore_vdis: list[str] | None = None) -> str:
    """A disk snapshot: a halted copy of the VM's record (is_a_snapshot and is_a_template)."""
    return _take(pool, vm, new_name, "snapshot", ("Running", "Halted", "Paused", "Suspended"), "Halted")


def checkpoint(pool: XapiPool, vm: str, new_name: str) -> str:
    """Disks and memory: the snapshot is Suspended, and reverting to it resumes there."""
    return _take(pool, vm, new_name, "checkpoint", ("Running", "Paused", "Suspended"), "Suspended")


def _take(pool: XapiPool, vm: str, new_name: str, op: str, states: tuple[str, ...], snap_state: str) -> str:
    # The snapshot tree as xapi keeps it: the new snapshot's parent is the VM's parent (the
    # snapshot it last came from), and the VM's parent becomes the new snapshot.
    store = pool.store
    with store.lock:
        record = check(pool, vm, op, states)
        snap = copy.deepcopy(record)
        snap.update(
            uuid=str(uuid.uuid4()),
            name_label=new_name,
            is_a_snapshot=True,
            is_a_template=True,
            snapshot_of=vm,
            snapshot_time=now(),
            power_state=snap_state,
            resident_on=NULL,
            domid=-1,
            snapshots=[],
            children=[vm],
            blocked_operations={},
            allowed_operations=sorted(SNAPSHOT_OPERATIONS - {"snapshot_destroy"}),
            memory_target=0,
            metrics=store.add("VM_metrics", {"memory_actual": 0, "last_updated": now()}),
            guest_metrics=NULL,
        )
        ref = store.add("VM", snap)
        devices.snapshot_disks(pool, vm, ref)
        if snap["parent"] in store.objects.get("VM", {}):
            store.modify("VM", snap["parent"], children=[*store.get("VM", snap["parent"])["children"], ref])
        _reparent(pool, vm, ref)
        store.modify("VM", vm, snapshots=[*record["snapshots"], ref])
    return ref


def _reparent(pool: XapiPool, vm: str, new_parent: str) -> None:
    """Move a VM (or snapshot) under new_parent in the snapshot tree (children kept in step)."""
    store = pool.store
    old_parent = store.get("VM", vm)["parent"]
    if old_parent in store.objects.get("VM", {}):
        store.modify("VM", old_parent, children=[c for c in store.get("VM", old_parent)["children"] if c != vm])
    if new_parent in store.objects.get("VM", {}):
        children = store.get("VM", new_parent)["children"]
        store.modify("VM", new_parent, children=children if vm in children else [*children, vm])
    store.modify("VM", vm, parent=new_parent)


def revert(pool: XapiPool, snap: str) -> str:
    store = pool.store
    with store.lock:
        record = store.get("VM", snap)
        if not record["is_a_snapshot"]:
            raise XapiError("OPERATION_NOT_ALLOWED", "VM.revert needs a snapshot")
        target = record["snapshot_of"]
        store.get("VM", target)
        check(pool, target, "revert", ("Running", "Halted", "Paused", "Suspended"))
        # the VM comes back as the snapshot was taken: halted (disks) or suspended (checkpoint)
        set_power(pool, target, record["power_state"])
        devices.revert_disks(pool, target, snap)
        _reparent(pool, target, snap)
    return ""


def destroy(pool: XapiPool, vm: str) -> str:
    store = pool.store
    with store.lock:
        record = store.get("VM", vm)
        if record["is_control_domain"]:
            raise XapiError("OPERATION_NOT_ALLOWED", "Operation 'destroy' is not allowed on a control domain")
        if "destroy" in record["blocked_operations"]:
            raise XapiError("OPERATION_BLOCKED", vm, record["blocked_operations"]["destroy"])
        if record["power_state"] != "Halted":
            raise XapiError("VM_BAD_POWER_STATE", vm, "halted", record["power_state"].lower())
        parent = record["snapshot_of"]
        if record["is_a_snapshot"] and parent in store.objects.get("VM", {}):
            store.modify("VM", parent, snapshots=[s for s in store.get("VM", parent)["snapshots"] if s != vm])
        for snap in record["snapshots"]:
            if snap in store.objects.get("VM", {}):
                store.modify("VM", snap, snapshot_of=NULL)
        for child in record["children"]:  # the tree closes over a deleted snapshot
            if child in store.objects.get("VM", {}):
                _reparent(pool, child, record["parent"])
        if record["parent"] in store.objects.get("VM", {}):
            _reparent(pool, vm, NULL)
        devices.forget_vm_devices(pool, vm)
        for cls, field_name in (("VM_metrics", "metrics"), ("VM_guest_metrics", "guest_metrics")):
            if record[field_name] in store.objects.get(cls, {}):
                store.remove(cls, record[field_name])
        store.remove("VM", vm)
    return ""

