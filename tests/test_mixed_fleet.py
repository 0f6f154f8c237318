"""One inventory, every kind of host: real QEMU guests (libvirt), a test-driver host over
real SSH (test+ssh), a Xen dom0 and a free ESXi over SSH (test SSH hosts serving real or
documented outputs), an ESXi behind the vSphere API (vcsim) and an XCP-ng pool of two nodes
(the XAPI test server)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import need_backend
from nodexml import RUNNING, SHUTOFF, write_node
from sshhost import EsxiHost, Keys, SshTestServer, XenHost
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim
from vfleet.core import inventory
from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet
from vfleet.core.models import PowerState, Verb
from vfleet.core.operations import Operations, always
from vfleet.core.policy import Target
from xapi_server.server import XapiServer

PASSWORD_ENV = "VFLEET_MIXED_ESX_PASSWORD"
XAPI_PASSWORD_ENV = "VFLEET_MIXED_XAPI_PASSWORD"
EXPECTED_HV = {"kvm": "kvm", "test-ssh": "test", "xen1": "xen", "esx-api": "esxi", "esx-ssh": "esxi", "xcp": "xen"}


@dataclass
class Mixed:
    inventory: Path
    xen: SshTestServer
    esx_ssh: SshTestServer
    vcsim: Vcsim
    xapi: XapiServer
    guests: list[str]


def _ssh_host(name: str, driver: str, server: SshTestServer) -> str:
    return (f"  - name: {name}\n    driver: {driver}\n    address: 127.0.0.1\n    port: {server.port}\n"
            f"    user: root\n    ssh: {{agent: false, config: false, key_file: '{server.key_file}',"
            f" known_hosts: '{server.known_hosts}'}}\n")


@pytest.fixture
async def mixed(testbed: dict[str, str], libvirt_module: object, tmp_path: Path) -> AsyncIterator[Mixed]:
    need_backend(f"vcsim ({VCSIM_BIN})", VCSIM_BIN.exists())
    keys = Keys.generate()
    xen = await SshTestServer(XenHost(), keys, tmp_path).start()
    esx_ssh = await SshTestServer(EsxiHost(), keys, tmp_path).start()
    sim = start_vcsim(tmp_path / "vcsim", "-model", "esx", "-vm", "3")
    pool = XapiServer(tmp_path / "xapi", tls=True).start()
    remote = write_node(tmp_path / "remote.xml", [("r1", RUNNING), ("r2", SHUTOFF)])
    ssh_uri = (f"test+ssh://root@127.0.0.1:{testbed['VFLEET_SSH_PORT']}{remote}"
               f"?keyfile={testbed['VFLEET_SSH_KEY']}&command={testbed['VFLEET_SSH_WRAPPER']}")
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "defaults: {connect_timeout: 20, call_timeout: 15, poll_interval: 1}\nhosts:\n"
        f"  - {{name: kvm, driver: libvirt, uri: '{testbed['VFLEET_QEMU_URI']}'}}\n"
        f"  - {{name: test-ssh, driver: libvirt, uri: '{ssh_uri}'}}\n"
        + _ssh_host("xen1", "xen_xl", xen)
        + _ssh_host("esx-ssh", "esxi_ssh", esx_ssh)
        + f"  - name: esx-api\n    driver: esxi_api\n    address: {sim.address}\n    port: {sim.port}\n"
        f"    user: {USER}\n    password_env: {PASSWORD_ENV}\n    tls: {{thumbprint: '{sim.sha256}'}}\n"
        f"  - name: xcp\n    driver: xapi\n    address: 127.0.0.1\n    port: {pool.port}\n"
        f"    user: {pool.pool.user}\n    password_env: {XAPI_PASSWORD_ENV}\n    tls: {{ca_file: '{pool.cert.cert}'}}\n"
    )
    os.environ[PASSWORD_ENV] = PASSWORD
    os.environ[XAPI_PASSWORD_ENV] = pool.pool.password
    try:
        yield Mixed(path, xen, esx_ssh, sim, pool, testbed["VFLEET_GUESTS"].split(","))
    finally:
        os.environ.pop(PASSWORD_ENV, None)
        os.environ.pop(XAPI_PASSWORD_ENV, None)
        pool.stop()
        sim.stop()
        await xen.close()
        await esx_ssh.close()


async def test_status_lists_every_kind_of_host_in_one_table(mixed: Mixed) -> None:
    # an async subprocess: the SSH test hosts answer from this very event loop
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", "-i", str(mixed.inventory), "status", "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert {h["name"]: (h["status"], h["hypervisor"]) for h in doc["hosts"]} == {
        name: ("up", hv) for name, hv in EXPECTED_HV.items()}
    domains: dict[str, dict[str, dict[str, object]]] = {}
    for d in doc["domains"]:
        domains.setdefault(str(d["host"]), {})[str(d["name"])] = d
        assert d["hypervisor"] == EXPECTED_HV[str(d["host"])]
    assert set(domains) == set(EXPECTED_HV)
    for guest in mixed.guests:  # real guests: real rates
        row = domains["kvm"][guest]
        assert row["state"] == "running" and row["cpu_pct"] is not None and row["disk_read_bps"] is not None
    assert {n: d["state"] for n, d in domains["test-ssh"].items()} == {"r1": "running", "r2": "off"}
    assert domains["xen1"]["Domain-0"]["state"] == "running" and domains["xen1"]["Domain-0"]["mem_used_bytes"] is None
    assert any(d["state"] == "running" and d["cpu_pct"] is not None for d in domains["xen1"].values())
    assert len(domains["esx-api"]) == 3 and {d["state"] for d in domains["esx-api"].values()} <= {"running", "off"}
    assert {"web01", "db server (primary)"} <= set(domains["esx-ssh"])
    xcp = domains["xcp"]  # one pool, two nodes: every running VM says where it runs, with its contention
    assert {"web-01", "db-01", "halted-01"} <= set(xcp) and "debian-12" not in xcp
    assert {d["node"] for d in xcp.values() if d["state"] == "running"} == {"xcp-a", "xcp-b"}
    assert all(d["contention_pct"] is not None for d in xcp.values() if d["state"] == "running")
    assert xcp["halted-01"]["node"] is None and xcp["halted-01"]["cpu_pct"] is None
    # per-node summaries: each pool member with its own capacity and the VMs resident on it
    hosts = {h["name"]: h for h in doc["hosts"]}
    nodes = {n["node"]: n for n in hosts["xcp"]["nodes"]}
    assert set(nodes) == {"xcp-a", "xcp-b"}
    for name, node in nodes.items():
        mine = [d for d in xcp.values() if d["node"] == name]
        assert node["domains"]["total"] == len(mine)
        assert node["domains"]["running"] == sum(d["state"] == "running" for d in mine)
        assert node["cpus"] and node["mem_total_bytes"] and node["contention_max_pct"] is not None
    assert sum(n["cpus"] for n in nodes.values()) == hosts["xcp"]["summary"]["cpus"]
    assert all(h["nodes"] == [] for name, h in hosts.items() if name != "xcp")  # single hosts and a lone ESXi


async def test_one_lifecycle_action_on_each_kind_through_the_core(mixed: Mixed, tmp_path: Path) -> None:
    hosts = inventory.load(mixed.inventory).hosts
    async with Fleet(hosts) as fleet:
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=60), [
            (x.name, x.health) for x in fleet.views()]
        first_vcsim_vm = sorted(r.domain.name for r in fleet.view("esx-api").rows)[0]
        cases = [
            (Target("kvm", mixed.guests[0]), Verb.PAUSE, PowerState.PAUSED),
            (Target("test-ssh", "r2"), Verb.START, PowerState.RUNNING),
            (Target("xen1", "tiny"), Verb.START, PowerState.RUNNING),  # only configured at the session's start
            (Target("esx-ssh", "web01"), Verb.SHUTDOWN, PowerState.OFF),
            (Target("esx-api", first_vcsim_vm), Verb.FORCE_OFF, PowerState.OFF),
            (Target("xcp", "halted-01"), Verb.START, PowerState.RUNNING),
        ]
        try:
            for target, verb, state in cases:
                (result,) = (await ops.run(ops.plan(verb, [target]), always)).results
                assert result.ok and result.state_after is state, (target, result)
        finally:
            await ops.run(ops.plan(Verb.RESUME, [Target("kvm", mixed.guests[0])]), always)
