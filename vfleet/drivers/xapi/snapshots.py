"""VM snapshots through XAPI (blocking; runs on the driver's action threads).

A snapshot is a VM record with is_a_snapshot=true and snapshot_of=the VM. VM.snapshot
takes the disks, VM.checkpoint the disks and the running guest's memory. VM.parent is the
snapshot the VM runs from (the last one taken or reverted to): "current" here; a
snapshot's own `parent` is the snapshot before it. xapi allows two snapshots of the same
name; vfleet names snapshots, so it refuses to create a duplicate. Deleting a snapshot
destroys its record (a checkpoint is shut down first, which drops its memory image) and
the disk snapshots (VDIs) it held, as Xen Orchestra does; the disks are not left behind
to fill the storage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vfleet.core.errors import ActionFailed
from vfleet.core.models import ActionParams, PowerState, SnapshotInfo, SnapshotParams, Verb
from vfleet.core.sanitize import printable
from vfleet.drivers.xapi import wire
from vfleet.drivers.xapi.records import POWER_STATES, timestamp

log = logging.getLogger(__name__)
_NULL = "OpaqueRef:NULL"


def _records(session: Any, vm: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    refs = [str(r) for r in vm.get("snapshots") or []]
    return {ref: wire.call(lambda ref=ref: session.xenapi.VM.get_record(ref)) for ref in refs}


def listing(session: Any, vm: Mapping[str, Any]) -> tuple[SnapshotInfo, ...]:
    """The VM's snapshots, oldest first."""
    found = _records(session, vm)
    names = {ref: str(r.get("name_label") or "") for ref, r in found.items()}
    current = str(vm.get("parent") or _NULL)
    infos = []
    for ref, snap in found.items():
        raw = str(snap.get("power_state") or "")
        infos.append(SnapshotInfo(
            name=names[ref],
            created=timestamp(snap.get("snapshot_time")),
            parent=names.get(str(snap.get("parent") or _NULL)),
            current=ref == current,
            memory=POWER_STATES.get(raw) is PowerState.SUSPENDED,  # a checkpoint holds the memory
            description=str(snap.get("name_description") or ""),
            state=raw,
            key=str(snap.get("uuid") or ref),
        ))
    return tuple(sorted(infos, key=lambda s: (s.created is None, s.created or 0.0)))


def _named(session: Any, host: str, vm: Mapping[str, Any], name: str, what: str) -> str:
    matches = [ref for ref, r in _records(session, vm).items() if r.get("name_label") == name or r.get("uuid") == name]
    if not matches:
        raise ActionFailed(host, f"{what}: no snapshot named {printable(name)!r}")
    if len(matches) > 1:
        raise ActionFailed(host, f"{what}: {len(matches)} snapshots are named {printable(name)!r}; use its UUID")
    return matches[0]


def apply(
    session: Any, host: str, ref: str, vm: Mapping[str, Any], verb: Verb, params: ActionParams,
    task_wait: float, what: str,
) -> str:
    """Create, revert or delete one snapshot; returns what to tell the operator."""
    assert isinstance(params, SnapshotParams)
    api = session.xenapi
    if verb is Verb.SNAPSHOT_CREATE:
        if any(r.get("name_label") == params.name for r in _records(session, vm).values()):
            raise ActionFailed(host, f"{what}: a snapshot named {printable(params.name)!r} exists")
        running = POWER_STATES.get(str(vm.get("power_state"))) is PowerState.RUNNING
        with_memory = params.memory and running
        call = api.Async.VM.checkpoint if with_memory else api.Async.VM.snapshot
        snap = str(wire.wait_task(session, str(wire.call(lambda: call(ref, params.name))), task_wait, host, what))
        if params.description:
            wire.call(lambda: api.VM.set_name_description(snap, params.description))
        return "snapshot with memory taken" if with_memory else "disk snapshot taken"
    snap = _named(session, host, vm, params.name, what)
    if verb is Verb.SNAPSHOT_REVERT:
        wire.wait_task(session, str(wire.call(lambda: api.Async.VM.revert(snap))), task_wait, host, what)
        return "reverted"
    return _delete(session, host, snap, what)

def _delete(session: Any, host: str, snap: str, what: str) -> str:
    api = session.xenapi
    record = wire.call(lambda: api.VM.get_record(snap))
    disks = []
    for vbd in record.get("VBDs") or []:
        try:
            attachment = wire.call(lambda vbd=vbd: api.VBD.get_record(vbd))
            vdi = str(attachment.get("VDI") or _NULL)
            if attachment.get("type") != "Disk" or vdi == _NULL:
                continue  # a CD drive, an empty slot
            # only a disk snapshot: never a live disk, whatever the VBD says
            if wire.call(lambda vdi=vdi: api.VDI.get_record(vdi)).get("is_a_snapshot") is True:
                disks.append(vdi)
            else:
                log.warning("%s: %s: VBD %s names a disk that is not a snapshot; left alone", host, what, vbd)
        except wire.XapiFailure as failure:
            log.info("%s: %s: cannot read VBD %s: %s", host, what, vbd, failure.details)
    if record.get("power_state") != "Halted":
        # a checkpoint is a suspended VM record: shutting it down drops its memory image,
        # and only a halted VM can be destroyed (Xen Orchestra does the same)
        wire.call(lambda: api.VM.hard_shutdown(snap))
    wire.call(lambda: api.VM.destroy(snap))
    left = []
    for vdi in disks:
        try:
            wire.call(lambda vdi=vdi: api.VDI.destroy(vdi))
        except wire.XapiFailure as failure:
            left.append(f"{vdi}: {wire.details_text(failure.details)}")
    if left:
        log.warning("%s: %s: disk snapshots left behind: %s", host, what, "; ".join(left))
        return f"deleted; {len(left)} of its {len(disks)} disk snapshots could not be removed (see the log)"
    return "deleted" + (f" with its {len(disks)} disk snapshot(s)" if disks else "")
