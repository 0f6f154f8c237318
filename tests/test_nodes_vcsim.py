"""Per-node data on a real vCenter (vcsim, VPX model: a standalone ESXi server and a cluster of three).

`vfleet status`, `status --filter node:...` and `check --per node` run as processes against
the simulator; what they say is checked against the simulator's own inventory, read
independently with pyVmomi (which server each VM runs on, its power state and vCPUs, each
server's CPU threads).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import need_backend
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim

ROOT = Path(__file__).resolve().parent.parent
PASSWORD_ENV = "VFLEET_TEST_VCSIM_PASSWORD"


@dataclass
class Truth:
    """What vcsim itself says, read with pyVmomi."""

    cpus: dict[str, int]  # server name -> CPU threads
    vms: dict[str, tuple[str, str, int]]  # VM name -> (server, power state, vCPUs)


@dataclass
class Vcenter:
    sim: Vcsim
    inventory: Path
    truth: Truth


def _truth(sim: Vcsim) -> Truth:
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    context = ssl.create_default_context(cafile=str(sim.cert))
    context.check_hostname = False  # the simulator's certificate names no address; the CA pin is enough here
    si = SmartConnect(host=sim.address, port=sim.port, user=USER, pwd=PASSWORD, sslContext=context)
    try:
        content = si.RetrieveContent()
        hosts = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True).view
        vms = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True).view
        return Truth(
            {h.name: h.summary.hardware.numCpuThreads for h in hosts},
            {
                vm.name: (vm.runtime.host.name, str(vm.runtime.powerState), vm.summary.config.numCpu)
                for vm in vms
                if not vm.config.template
            },
        )
    finally:
        Disconnect(si)


@pytest.fixture(scope="module")
def vcenter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcenter]:
    pytest.importorskip("pyVmomi")
    need_backend(f"vcsim ({VCSIM_BIN})", VCSIM_BIN.exists())
    workdir = tmp_path_factory.mktemp("nodes-vcsim")
    sim = start_vcsim(workdir / "vcsim", "-model", "vpx", "-cluster-hosts", "3", "-vm", "2")
    inventory = workdir / "fleet.yaml"
    inventory.write_text(
        "defaults: {connect_timeout: 10, call_timeout: 10, poll_interval: 1}\nhosts:\n"
        f"  - name: vc\n    driver: esxi_api\n    address: {sim.address}\n    port: {sim.port}\n"
        f"    user: {USER}\n    password_env: {PASSWORD_ENV}\n    tls: {{thumbprint: '{sim.sha256}'}}\n"
    )
    try:
        yield Vcenter(sim, inventory, _truth(sim))
    finally:
        sim.stop()


def vfleet(vc: Vcenter, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfleet", "-i", str(vc.inventory), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT), PASSWORD_ENV: PASSWORD},
        check=False,
    )


def test_status_json_carries_each_servers_summary(vcenter: Vcenter) -> None:
    truth = vcenter.truth
    assert len(truth.cpus) >= 4 and len({server for server, _, _ in truth.vms.values()}) >= 2  # a real spread
    run = vfleet(vcenter, "status", "-o", "json", "--interval", "1")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    (host,) = doc["hosts"]
    nodes = {n["node"]: n for n in host["nodes"]}
    assert set(nodes) == set(truth.cpus)  # every server, also one that runs no VM
    assert {d["name"]: d["node"] for d in doc["domains"]} == {name: vm[0] for name, vm in truth.vms.items()}
    on_server = Counter(server for server, _, _ in truth.vms.values())
    running = Counter(server for server, power, _ in truth.vms.values() if power == "poweredOn")
    for server, node in nodes.items():
        assert node["cpus"] == truth.cpus[server]
        assert node["domains"]["total"] == on_server[server], server
        assert node["domains"]["running"] == running[server], server
        expected_vcpus = sum(n for s, power, n in truth.vms.values() if s == server and power == "poweredOn")
        assert node["vcpus"] == expected_vcpus, server
        assert node["vcpu_ratio"] == round(expected_vcpus / truth.cpus[server], 2)
        assert node["mem_total_bytes"] is not None and node["mem_total_bytes"] > 0
    # the host is the sum of its servers: capacity, domains, and CPU use weighted by capacity
    summary = host["summary"]
    assert summary["cpus"] == sum(truth.cpus.values())
    assert summary["domains"]["total"] == sum(n["domains"]["total"] for n in nodes.values()) == len(truth.vms)
    if summary["cpu_pct"] is not None:
        weighted = sum((n["cpu_pct"] or 0.0) * n["cpus"] for n in nodes.values()) / summary["cpus"]
        assert abs(weighted - summary["cpu_pct"]) < 0.2


def test_the_node_filter_and_table_and_csv_on_real_placements(vcenter: Vcenter) -> None:
    truth = vcenter.truth
    clustered = {name for name, (server, _, _) in truth.vms.items() if server.startswith("DC0_C0_")}
    assert clustered and clustered != set(truth.vms)
    run = vfleet(vcenter, "status", "-o", "json", "--interval", "0", "--filter", "node:dc0_c0_*")  # globs ignore case
    assert run.returncode == 0, run.stderr
    assert {d["name"] for d in json.loads(run.stdout)["domains"]} == clustered
    run = vfleet(vcenter, "status", "-o", "json", "--interval", "0", "--filter", "!node:DC0_C0_*")
    assert {d["name"] for d in json.loads(run.stdout)["domains"]} == set(truth.vms) - clustered
    table = vfleet(vcenter, "status", "--interval", "0")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["HOST", "NODE", "HV"]
    assert {line.split()[1] for line in lines} == {server for server, _, _ in truth.vms.values()}
    csv = vfleet(vcenter, "status", "-o", "csv", "--interval", "0")
    head, *rows = csv.stdout.splitlines()
    column = head.split(",").index("node")
    assert {row.split(",")[column] for row in rows} == {server for server, _, _ in truth.vms.values()}


def test_check_per_node_judges_each_server(vcenter: Vcenter) -> None:
    run = vfleet(vcenter, "check", "--per", "node", "-m", "cpu", "-w", "cpu=~:101", "-o", "json")
    doc = json.loads(run.stdout)
    assert doc["status"] == "OK", doc
    labels = {p["label"] for p in doc["perfdata"] if p["label"].endswith(" cpu")}
    assert labels == {f"vc/{server} cpu" for server in vcenter.truth.cpus}
    # a range no server can meet: every server is named in a problem, none is the whole vCenter
    run = vfleet(vcenter, "check", "--per", "node", "-m", "cpu", "-c", "cpu=@0:100", "-o", "json")
    doc = json.loads(run.stdout)
    assert run.returncode == 2 and doc["status"] == "CRITICAL"
    assert {(p["host"], p["node"]) for p in doc["problems"]} == {("vc", s) for s in vcenter.truth.cpus}
