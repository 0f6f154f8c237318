"""libvirt internal snapshots (qcow2): the XML we send, what we read back, the blocking calls.

libvirt (9.0 here, qemu driver) takes an internal snapshot of a running guest only
with its memory state ("internal snapshot of a running VM must include the memory
state"); of a shut-off guest, disks only. `--memory` therefore decides nothing for a
shut-off guest and is required for a running one: we say so instead of silently
saving the RAM, or silently making an external (overlay) snapshot instead.
These functions run on the driver's threads; the driver wraps them in its deadline.
"""

from __future__ import annotations

import re
import time

import libvirt

from vfleet.core.errors import ActionFailed
from vfleet.core.models import SnapshotInfo, SnapshotParams

CREATE_FLAGS = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
# The domain's states in which its memory is there to save.
_LIVE = {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_BLOCKED}


def snapshot_xml(params: SnapshotParams, memory: bool) -> str:
    """A <domainsnapshot> for an internal snapshot: the memory with the disks, or the disks alone."""
    from xml.sax.saxutils import escape  # here: it pulls in urllib, 13 ms every poll-only run pays

    description = f"<description>{escape(params.description)}</description>" if params.description else ""
    kind = "internal" if memory else "no"
    return (
        f"<domainsnapshot><name>{escape(params.name)}</name>{description}"
        f"<memory snapshot='{kind}'/></domainsnapshot>"
    )


def parse_snapshot(text: str, current: bool) -> SnapshotInfo:
    """One snapshot from its getXMLDesc() (the domain's XML inside it is ignored)."""
    import xml.etree.ElementTree as ET  # here: polls never parse snapshot XML

    tree = ET.fromstring(text)
    created = tree.findtext("creationTime")
    memory = tree.find("memory")
    return SnapshotInfo(
        name=tree.findtext("name") or "",
        created=float(created) if created else None,
        parent=tree.findtext("parent/name"),
        current=current,
        memory=None if memory is None else memory.get("snapshot") not in (None, "no"),
        description=tree.findtext("description") or "",
        state=tree.findtext("state") or "",
    )


def create(host: str, dom: libvirt.virDomain, params: SnapshotParams) -> None:
    live = dom.state()[0] in _LIVE
    if live and not params.memory:
        raise ActionFailed(
            host,
            f"{dom.name()}: libvirt takes an internal snapshot of a running guest only with its memory: "
            "add --memory, or shut the guest down first",
        )
    dom.snapshotCreateXML(snapshot_xml(params, memory=live), CREATE_FLAGS)


def revert(dom: libvirt.virDomain, name: str) -> None:
    dom.revertToSnapshot(dom.snapshotLookupByName(name, 0), 0)


def delete(dom: libvirt.virDomain, name: str) -> None:
    dom.snapshotLookupByName(name, 0).delete(0)


def listing(dom: libvirt.virDomain) -> tuple[SnapshotInfo, ...]:
    """Every snapshot of the domain, oldest first (one call each for XML and current flag)."""
    found = [parse_snapshot(s.getXMLDesc(0), bool(s.isCurrent(0))) for s in dom.listAllSnapshots(0)]
    return tuple(sorted(found, key=lambda s: (s.created or 0.0, s.name)))


# Snapshot facts for the table and the exporter. libvirt has no bulk call for them: one
# listAllSnapshots per domain (and one getXMLDesc per snapshot for its time), each an RPC.
# bench/snapshot_facts.py: about 0.06 ms per call on a local socket, so 1,000 domains cost
# about 60 ms, several times a poll's single getAllDomainStats; over +ssh each call pays a
# round trip. Read every FACTS_EVERY polls (and right after a snapshot operation): at most
# a tenth of that per poll, and counts at most FACTS_EVERY polls old.
FACTS_EVERY = 10
_CREATED = re.compile(r"<creationTime>(\d+)</creationTime>")
Facts = dict[str, tuple[int, float | None]]  # domain UUID -> (snapshot count, oldest creation time)


def facts(conn: libvirt.virConnect, deadline: float) -> tuple[Facts, bool]:
    """Every domain's snapshot count and oldest creation time; False with what was read if the deadline passed."""
    found: Facts = {}
    for dom in conn.listAllDomains(0):
        if time.monotonic() > deadline:
            return found, False
        try:
            snaps = dom.listAllSnapshots(0)
            times = [float(m.group(1)) for s in snaps if (m := _CREATED.search(s.getXMLDesc(0)))]
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT):
                continue  # went away meanwhile
            raise
        found[dom.UUIDString()] = (len(snaps), min(times, default=None))
    return found, True
