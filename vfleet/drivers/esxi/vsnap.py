"""vSphere snapshots of one VM: its snapshot tree (vm.snapshot.rootSnapshotList) and the three tasks.

A snapshot tree node names its snapshot, its creation time and the VM's power state
when it was taken: a powered-on state means the memory was saved with it (a snapshot
taken without memory records the VM as powered off). Names need not be unique on
vSphere: revert and delete refuse a name that several snapshots carry.
These run on the driver's threads. Both the snapshot property and the tasks are read
through the PropertyCollector by path: vcsim crashes on a plain read of an unset
`vm.snapshot`, and reports a snapshot task's entity as the snapshot, which pyVmomi
refuses to parse as a TaskInfo; reading `info.state` and `info.error` avoids both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from vfleet.core.errors import ActionFailed, DriverTimeout
from vfleet.core.models import SnapshotInfo, SnapshotParams, Verb

vim: Any = _vim
PC: Any = _vmodl.query.PropertyCollector


def _read(pc: Any, obj: Any, kind: Any, paths: list[str]) -> dict[str, Any]:
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=obj, skip=False)], propSet=[PC.PropertySpec(type=kind, pathSet=paths, all=False)]
    )
    return {prop.name: prop.val for item in pc.RetrieveContents([spec]) for prop in item.propSet}


def wait(pc: Any, task: Any, timeout: float, host: str, what: str) -> None:
    deadline, delay = time.monotonic() + timeout, 0.02
    while True:
        info = _read(pc, task, vim.Task, ["info.state", "info.error"])
        if info.get("info.state") == "success":
            return
        if info.get("info.state") == "error":
            raise info["info.error"]
        if time.monotonic() >= deadline:
            raise DriverTimeout(host, f"{what}: task still {info.get('info.state')} after {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _walk(nodes: list[Any], parent: str | None) -> Iterator[tuple[Any, str | None]]:
    for node in nodes or []:
        yield node, parent
        yield from _walk(node.childSnapshotList, node.name)


def _info(pc: Any, vm: Any) -> Any:
    return _read(pc, vm, vim.VirtualMachine, ["snapshot"]).get("snapshot")


def tree(pc: Any, vm: Any) -> list[tuple[Any, str | None]]:
    info = _info(pc, vm)
    return list(_walk(info.rootSnapshotList, None)) if info is not None else []


def listing(pc: Any, vm: Any) -> tuple[SnapshotInfo, ...]:
    info = _info(pc, vm)
    current = info.currentSnapshot._moId if info is not None and info.currentSnapshot is not None else None
    found = [
        SnapshotInfo(
            name=node.name,
            created=node.createTime.timestamp() if node.createTime else None,
            parent=parent,
            current=node.snapshot._moId == current,
            memory=str(node.state) == "poweredOn",
            description=node.description or "",
            state=str(node.state),
            key=node.snapshot._moId,
        )
        for node, parent in (_walk(info.rootSnapshotList, None) if info is not None else ())
    ]
    return tuple(sorted(found, key=lambda s: (s.created or 0.0, s.name)))


def _one(pc: Any, host: str, vm: Any, name: str) -> Any:
    found = [node.snapshot for node, _parent in tree(pc, vm) if node.name == name]
    if not found:
        raise ActionFailed(host, f"{vm.name}: no snapshot named {name!r}")
    if len(found) > 1:
        raise ActionFailed(host, f"{vm.name}: {len(found)} snapshots are named {name!r}; rename one first")
    return found[0]


def apply(pc: Any, host: str, vm: Any, verb: Verb, params: SnapshotParams, timeout: float) -> None:
    what = f"{verb.value} {params.name} of {vm.name}"
    if verb is Verb.SNAPSHOT_CREATE:
        if any(node.name == params.name for node, _parent in tree(pc, vm)):  # vSphere would take a second one
            raise ActionFailed(host, f"{vm.name}: a snapshot named {params.name!r} exists")
        task = vm.CreateSnapshot_Task(
            name=params.name, description=params.description, memory=params.memory, quiesce=False
        )
    elif verb is Verb.SNAPSHOT_REVERT:
        task = _one(pc, host, vm, params.name).RevertToSnapshot_Task()
    else:
        task = _one(pc, host, vm, params.name).RemoveSnapshot_Task(removeChildren=False)
    wait(pc, task, timeout, host, what)
