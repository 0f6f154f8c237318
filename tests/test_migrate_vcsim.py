"""esxi_api migration against real vcsim (VPX): a VM moves between two servers of a cluster,
through the operations core (pre-flight, audit), and the next poll shows its new server."""

from __future__ import annotations

import json
from pathlib import Path

from test_esxi_api import _password, config, vcsim_factory  # noqa: F401 - fixtures

from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet, HostView
from vfleet.core.models import MigrateParams, PowerState, Verb
from vfleet.core.operations import Operations, Target, always
from vfleet.core.report import domain_record


async def test_vm_moves_between_servers_of_a_vcenter(vcsim_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sim = vcsim_factory("-model", "vpx", "-cluster-hosts", "3", "-vm", "1")
    audit_path = tmp_path / "audit.jsonl"
    async with Fleet([config(sim, name="vc")]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=20), fleet.views()[0].health
        rows = fleet.views()[0].rows
        clustered = [r.domain for r in rows if (r.domain.node or "").startswith("DC0_C0_")]
        assert clustered, [(r.domain.name, r.domain.node) for r in rows]  # the poll fills node from runtime.host
        vm = next(d for d in clustered if d.state is PowerState.RUNNING)
        assert vm.node is not None
        dest = next(f"DC0_C0_H{i}" for i in range(3) if f"DC0_C0_H{i}" != vm.node)
        ops = Operations(fleet, AuditLog(audit_path), face="test")
        target = Target("vc", vm.name, vm.key)

        same = ops.plan(Verb.MIGRATE, [target], params=MigrateParams("vc", vm.node))
        assert same.decisions[0].refused == f"{vm.name} already runs on vc/{vm.node}"
        bare = ops.plan(Verb.MIGRATE, [target], params=MigrateParams("vc"))
        assert bare.decisions[0].refused is not None and "--to HOST/SERVER" in bare.decisions[0].refused

        the_plan = ops.plan(Verb.MIGRATE, [target], params=MigrateParams("vc", dest))
        assert the_plan.decisions[0].dispatch, the_plan.decisions[0]
        assert "server " + dest in the_plan.decisions[0].notes and "live" in the_plan.decisions[0].notes
        result = (await ops.run(the_plan, always)).results[0]
        assert result.ok, result.message
        assert result.message == f"now on {dest}"

        def moved(views: list[HostView]) -> bool:
            return any(r.domain.key == vm.key and r.domain.node == dest for r in views[0].rows)

        assert await fleet.wait_until(moved, timeout=20)
        row = next(r for r in fleet.views()[0].rows if r.domain.key == vm.key)
        assert row.domain.state is PowerState.RUNNING  # vMotion: it kept running
        assert domain_record(row, stale=False)["node"] == dest  # status -o json shows the new server

        unknown = (await ops.run(ops.plan(Verb.MIGRATE, [target], params=MigrateParams("vc", "nope")), always))
        assert not unknown.results[0].ok and "no server named 'nope'" in unknown.results[0].message
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    intents = [r for r in records if r["kind"] == "intent"]
    assert intents[0]["params"] == {"to": f"vc/{dest}", "live": True, "copy_storage": False}
    assert "server " + dest in intents[0]["targets"][0]["preflight"]
