"""Two vCenter VMs with the same name (in different folders) are acted on separately:
actions aim by key (instanceUuid), never by name. Real vcsim, real pyVmomi."""

from __future__ import annotations

import ssl
from pathlib import Path

from test_esxi_api import _password, config, vcsim_factory  # noqa: F401 - fixtures

from vcsim_fixture import PASSWORD, USER, Vcsim
from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState, Verb
from vfleet.core.operations import Operations, Target, always


def make_twins(sim: Vcsim) -> tuple[str, str, str]:
    """Move one VM into another folder and give it the name of another: (name, uuid a, uuid b)."""
    from pyVim.connect import Disconnect, SmartConnect
    from pyVim.task import WaitForTask
    from pyVmomi import vim

    si = SmartConnect(host=sim.address, port=sim.port, user=USER, pwd=PASSWORD,
                      sslContext=ssl._create_unverified_context())  # test setup only; the driver pins the cert
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        a, b = sorted(view.view, key=lambda vm: vm.name)[:2]
        other = content.rootFolder.childEntity[0].vmFolder.CreateFolder("other")
        WaitForTask(other.MoveIntoFolder_Task([b]))
        WaitForTask(b.Rename_Task(a.name))
        return a.name, a.config.instanceUuid, b.config.instanceUuid
    finally:
        Disconnect(si)


async def test_two_vms_with_one_name_are_acted_on_separately(vcsim_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sim = vcsim_factory("-model", "vpx", "-vm", "2")
    name, uuid_a, uuid_b = make_twins(sim)
    async with Fleet([config(sim, name="vc")]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=20), fleet.views()[0].health
        twins = [r.domain for r in fleet.view("vc").rows if r.domain.name == name]
        assert {d.key for d in twins} == {uuid_a, uuid_b}
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        operation = await ops.run(ops.plan(Verb.PAUSE, [Target("vc", name, uuid_b)]), always, wait=20)
        assert operation.results[0].ok, operation.results[0].message
        states = {r.domain.key: r.domain.state for r in fleet.view("vc").rows if r.domain.name == name}
    assert states == {uuid_a: PowerState.RUNNING, uuid_b: PowerState.SUSPENDED}
