"""A bulk snapshot over 500 domains of libvirt's test driver: one result per target."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from nodexml import many, write_node
from vfleet.core.audit import AuditLog, verify
from vfleet.core.engine import Fleet
from vfleet.core.models import HostConfig, PowerState, SnapshotParams, Verb
from vfleet.core.operations import Operations, always, read_snapshots
from vfleet.core.policy import select
from vfleet.core.selector import Selector

pytestmark = pytest.mark.usefixtures("libvirt_module")


async def test_bulk_snapshot_of_500_domains_reports_each_target(tmp_path: Path) -> None:
    hosts = [
        HostConfig(name=f"t{i}", driver="libvirt", uri=f"test://{write_node(tmp_path / f'n{i}.xml', many(f'h{i}-', 250))}",
                   poll_interval=3600, call_timeout=60)
        for i in (1, 2)
    ]
    async with Fleet(hosts) as fleet:
        assert await fleet.wait_until(lambda vs: all(v.health.polls >= 1 for v in vs), timeout=60)
        targets = select(fleet.views(), Selector.parse([]))
        assert len(targets) == 500
        states = {(v.name, r.domain.key): r.domain.state for v in fleet.views() for r in v.rows}
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        # without --memory: libvirt refuses an internal snapshot of a live guest, the shut-off ones are taken
        disk_only = await ops.run(ops.plan(Verb.SNAPSHOT_CREATE, targets, params=SnapshotParams("disks")), always)
        outcomes = {(r.host, r.key): r.outcome for r in disk_only.results}
        assert len(outcomes) == 500
        for key, outcome in outcomes.items():
            assert outcome == ("ok" if states[key] is PowerState.OFF else "failed"), key
        failed = next(r for r in disk_only.results if not r.ok)
        assert "add --memory" in failed.message
        full = await ops.run(ops.plan(Verb.SNAPSHOT_CREATE, targets, params=SnapshotParams("all", memory=True)), always)
        assert Counter(r.outcome for r in full.results) == Counter({"ok": 500})
        assert max(full.peak_in_flight.values()) <= 4  # libvirtd's 5 calls per connection: one left for polls
        listings = await read_snapshots(fleet, targets)
    assert all(item.error is None for item in listings)
    names = Counter(tuple(sorted(s.name for s in item.snapshots)) for item in listings)
    off = sum(state is PowerState.OFF for state in states.values())
    assert names == Counter({("all", "disks"): off, ("all",): 500 - off})
    assert verify(tmp_path / "audit.jsonl").ok
