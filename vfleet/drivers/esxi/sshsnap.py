"""esxi_ssh snapshots: the vim-cmd command lines and a parser for `vim-cmd vmsvc/snapshot.get` (no I/O here).

snapshot.get prints the tree as dash-indented records, two dashes per level, with
VMware's own spelling of "Desciption" (layout as in public captures from ESXi 5.5 to 7):

    Get Snapshot:
    |-ROOT
    --Snapshot Name        : pre-patch
    --Snapshot Id        : 1
    --Snapshot Desciption  : before the upgrade
    --Snapshot Created On  : 2/23/2015 18:12:50
    --Snapshot State       : powered on
    --|-CHILD
    ----Snapshot Name        : ...

It does not say which snapshot is current: `vim-cmd vmsvc/get.snapshotinfo` does,
as `currentSnapshot = 'vim.vm.Snapshot:VMID-snapshot-ID'`. A snapshot taken with the
memory of a running VM records it "powered on"; one without memory "powered off".
Created On is the host's clock, which ESXi keeps in UTC.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import SnapshotInfo, SnapshotParams

_FIELD = re.compile(
    r"^(?P<dashes>-+)Snapshot (?P<key>Name|Id|Desciption|Description|Created On|State)\s*:\s?(?P<value>.*)$"
)
_CURRENT = re.compile(r"currentSnapshot = 'vim\.vm\.Snapshot:\d+-snapshot-(?P<id>\d+)'")


@dataclass(frozen=True, slots=True)
class EsxiSnapshot:
    id: int  # the per-VM snapshot id vim-cmd's revert and remove take
    info: SnapshotInfo


def _created(text: str) -> float | None:
    try:
        return datetime.strptime(text.strip(), "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def parse_snapshot_get(text: str, current_text: str = "", host: str = "") -> list[EsxiSnapshot]:
    """Every snapshot in the tree, oldest first, each with its parent's name and the current flag."""
    if not text.startswith("Get Snapshot:"):
        raise GarbledOutput(host, "vim-cmd vmsvc/snapshot.get: no `Get Snapshot:` header")
    found = _CURRENT.search(current_text)
    current = int(found.group("id")) if found else None
    records: list[dict[str, str]] = []
    depths: list[int] = []
    for line in text.splitlines()[1:]:
        match = _FIELD.match(line)
        if match is None:
            continue  # |-ROOT, --|-CHILD and the continuation lines of a multi-line description
        key, depth = match.group("key"), len(match.group("dashes")) // 2
        if key == "Name":
            records.append({})
            depths.append(depth)  # two dashes per level: 1 for a root
        elif not records:
            raise GarbledOutput(host, f"vim-cmd vmsvc/snapshot.get: {line.strip()!r} before any snapshot name")
        records[-1][key] = match.group("value").strip()
    snapshots: list[EsxiSnapshot] = []
    stack: list[str] = []  # the names of the open ancestors, by depth
    for depth, record in zip(depths, records, strict=True):
        name = record["Name"]
        if "Id" not in record or not record["Id"].isdigit():
            raise GarbledOutput(host, f"vim-cmd vmsvc/snapshot.get: snapshot {name!r} has no id (truncated?)")
        del stack[depth - 1 :]
        parent = stack[-1] if stack else None
        stack.append(name)
        state = record.get("State", "")
        snapshot_id = int(record["Id"])
        info = SnapshotInfo(
            name=name,
            created=_created(record.get("Created On", "")),
            parent=parent,
            current=snapshot_id == current,
            memory=(state == "powered on") if state else None,
            description=record.get("Desciption", record.get("Description", "")),
            state=state,
            key=str(snapshot_id),
        )
        snapshots.append(EsxiSnapshot(snapshot_id, info))
    return sorted(snapshots, key=lambda s: (s.info.created or 0.0, s.id))


def listing_commands(vmid: int) -> list[str]:
    return [f"vim-cmd vmsvc/snapshot.get {vmid}", f"vim-cmd vmsvc/get.snapshotinfo {vmid}"]


def create_command(vmid: int, params: SnapshotParams) -> str:
    """snapshot.create VMID NAME DESCRIPTION INCLUDEMEMORY QUIESCE (no quiescing: it needs VMware Tools)."""
    name, description = shlex.quote(params.name), shlex.quote(params.description)
    return f"vim-cmd vmsvc/snapshot.create {vmid} {name} {description} {int(params.memory)} 0"


def revert_command(vmid: int, snapshot_id: int) -> str:
    """suppressPowerOn 0: the VM comes back in the state the snapshot saved (running only with its memory)."""
    return f"vim-cmd vmsvc/snapshot.revert {vmid} {snapshot_id} 0"


def remove_command(vmid: int, snapshot_id: int) -> str:
    return f"vim-cmd vmsvc/snapshot.remove {vmid} {snapshot_id}"
