"""Snapshot count and oldest age: read cheaply by the drivers, shown in status, the table and the exporter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nodexml import many, write_node
from vfleet.core.exposition import METRIC_NAMES
from vfleet.core.fields import BY_KEY
from vfleet.core.models import DomainRef, HostConfig, SnapshotParams, Verb
from vfleet.drivers.libvirt import snapshots
from vfleet.drivers.libvirt.driver import LibvirtDriver


@pytest.mark.usefixtures("libvirt_module")
async def test_libvirt_reads_snapshot_facts_every_n_polls_and_right_after_an_operation(tmp_path: Path) -> None:
    node = write_node(tmp_path / "n.xml", many("vm-", 6))
    drv = LibvirtDriver(HostConfig(name="t", driver="libvirt", uri=f"test://{node}", call_timeout=30))
    await drv.connect()
    try:
        first = await drv.poll()
        assert {d.snapshot_count for d in first.domains} == {0}
        assert {d.oldest_snapshot_at for d in first.domains} == {None}
        target = first.domains[0]
        dom = drv._conn.lookupByUUIDString(target.uuid)  # type: ignore[union-attr]  # out of band, as virsh would
        taken = time.time()
        dom.snapshotCreateXML("<domainsnapshot><name>by-virsh</name></domainsnapshot>", 0)
        counts = []
        for _ in range(snapshots.FACTS_EVERY):
            polled = await drv.poll()
            counts.append(next(d.snapshot_count for d in polled.domains if d.uuid == target.uuid))
        # not read on the next FACTS_EVERY - 1 polls, then read again
        assert counts == [0] * (snapshots.FACTS_EVERY - 1) + [1]
        polled_row = next(d for d in polled.domains if d.uuid == target.uuid)
        assert polled_row.oldest_snapshot_at is not None and abs(polled_row.oldest_snapshot_at - taken) < 5
        await drv.perform(Verb.SNAPSHOT_CREATE, DomainRef.of(target), params=SnapshotParams("ours", memory=True))
        after = await drv.poll()  # right after an operation: no waiting for the cadence
        assert next(d.snapshot_count for d in after.domains if d.uuid == target.uuid) == 2
        assert sorted(d.snapshot_count or 0 for d in after.domains) == [0, 0, 0, 0, 0, 2]
    finally:
        await drv.close()


async def test_sim_facts_reach_status_records_columns_and_metrics() -> None:
    from vfleet.core.demo import demo_inventory
    from vfleet.core.engine import Fleet
    from vfleet.core.exposition import Exposition
    from vfleet.core.report import domain_record
    hosts = [h for h in demo_inventory(latency=0.0).hosts if h.name in ("kvm-ams-1", "xen-fra-1")]
    async with Fleet(hosts) as fleet:
        assert await fleet.wait_until(lambda vs: all(v.health.polls >= 1 for v in vs), timeout=20)
        kvm = fleet.view("kvm-ams-1").rows[0]
        drv = fleet.driver("kvm-ams-1")
        assert drv is not None
        await drv.perform(Verb.SNAPSHOT_CREATE, DomainRef.of(kvm.domain), params=SnapshotParams("a", memory=True))
        polls = fleet.view("kvm-ams-1").health.polls
        assert await fleet.wait_until(lambda vs: fleet.view("kvm-ams-1").health.polls > polls, timeout=20)
        row = next(r for r in fleet.view("kvm-ams-1").rows if r.domain.key == kvm.domain.key)
        view, xen_view = fleet.view("kvm-ams-1"), fleet.view("xen-fra-1")
        xen = xen_view.rows[0]
    record = domain_record(row, stale=False)
    assert record["snapshots"] == 1 and 0 <= record["oldest_snapshot_age_s"] < 60
    assert domain_record(xen, stale=False)["snapshots"] is None  # xen hosts have none: not known, not 0
    assert BY_KEY["snaps"].row_value(row) == 1 and BY_KEY["snap_age"].row_value(row) is not None  # type: ignore[misc]
    assert {"vfleet_domain_snapshots", "vfleet_domain_oldest_snapshot_age_seconds"} <= METRIC_NAMES
    assert row.domain.oldest_snapshot_at is not None
    wall = row.domain.oldest_snapshot_at + 90.0
    families = {f.name: f for f in Exposition(wall=lambda: wall).families([view, xen_view])}
    key = {"host": "kvm-ams-1", "domain": row.domain.name, "domain_key": row.domain.key}

    def sample(name: str) -> float | None:
        return next((v for labels, v in families[name].samples if all(labels.get(k) == x for k, x in key.items())),
                    None)

    assert sample("vfleet_domain_snapshots") == 1.0
    assert sample("vfleet_domain_oldest_snapshot_age_seconds") == pytest.approx(90.0)
    xen_series = [labels for labels, _ in families["vfleet_domain_snapshots"].samples if labels["host"] == "xen-fra-1"]
    assert xen_series == []  # not known: no series rather than a 0
