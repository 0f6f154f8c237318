"""esxi_api snapshots against real vcsim: create, revert, remove, and two VMs with one name kept apart."""

from __future__ import annotations

from pathlib import Path

from test_esxi_api import _password, config, vcsim_factory  # noqa: F401 - fixtures
from test_same_name_vcsim import make_twins

from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet, HostView
from vfleet.core.models import SnapshotParams, Verb
from vfleet.core.operations import Operations, Target, always, read_snapshots


async def test_snapshots_of_twin_vms_stay_apart(vcsim_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sim = vcsim_factory("-model", "vpx", "-vm", "2")
    name, uuid_a, uuid_b = make_twins(sim)
    a, b = Target("vc", name, uuid_a), Target("vc", name, uuid_b)
    async with Fleet([config(sim, name="vc")]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=20), fleet.views()[0].health
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")

        async def run(verb: Verb, target: Target, snap: str, memory: bool = False) -> None:
            the_plan = ops.plan(verb, [target], params=SnapshotParams(snap, memory=memory))
            result = (await ops.run(the_plan, always)).results[0]
            assert result.ok, result.message

        await run(Verb.SNAPSHOT_CREATE, b, "first", memory=True)
        await run(Verb.SNAPSHOT_CREATE, b, "second")
        listed = {item.target.key: item.snapshots for item in await read_snapshots(fleet, [a, b])}
        assert listed[uuid_a] == ()  # the other VM of the same name is untouched
        first, second = listed[uuid_b]
        assert (first.name, first.parent, first.memory, first.current) == ("first", None, True, False)
        # vcsim records "poweredOn" for a snapshot taken without memory too (ESXi: "poweredOff"): not checked here
        assert (second.name, second.parent, second.current) == ("second", "first", True)
        assert first.created is not None and first.key.startswith("snapshot-")

        def facts(views: list[HostView]) -> dict[str, tuple[int | None, float | None]]:
            return {r.domain.key: (r.domain.snapshot_count, r.domain.oldest_snapshot_at) for r in views[0].rows}

        # the poll's one RetrievePropertiesEx carries the tree (snapshot.rootSnapshotList): counted every poll
        assert await fleet.wait_until(lambda vs: facts(vs)[uuid_b][0] == 2, timeout=20), facts(fleet.views())
        assert facts(fleet.views())[uuid_b][1] == first.created and facts(fleet.views())[uuid_a] == (0, None)

        await run(Verb.SNAPSHOT_REVERT, b, "first")
        (after,) = [item.snapshots for item in await read_snapshots(fleet, [b])]
        assert [s.name for s in after if s.current] == ["first"]
        missing = (await ops.run(ops.plan(Verb.SNAPSHOT_REVERT, [a], params=SnapshotParams("first")), always)).results
        assert not missing[0].ok and "no snapshot named 'first'" in missing[0].message
        await run(Verb.SNAPSHOT_DELETE, b, "second")
        await run(Verb.SNAPSHOT_DELETE, b, "first")
        (empty,) = [item.snapshots for item in await read_snapshots(fleet, [b])]
    assert empty == ()
