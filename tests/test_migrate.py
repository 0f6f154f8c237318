"""Migration through the operations core on simulated hosts (the sim driver moves domains between
its hosts in one process) and the headless `vfleet migrate`: pre-flight per target, policy, audit, progress."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vfleet.cli.migrate import StderrProgress, params_of
from vfleet.core.aggregates import summarize_host
from vfleet.core.audit import AuditLog, verify
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import ExitCode, UsageError
from vfleet.core.models import HostConfig, MigrateParams, PowerState, Verb
from vfleet.core.operations import Operations, always
from vfleet.core.policy import Tier, select
from vfleet.core.selector import Selector

INVENTORY = """
hosts:
  - name: a
    driver: sim
    poll_interval: 0.3
    protected_domains: ["a-db*"]
    options: {domains: 12, seed: 1, latency: 0.01}
  - name: b
    driver: sim
    poll_interval: 0.3
    options: {domains: 3, seed: 2, latency: 0.01}
  - name: ro
    driver: sim
    read_only: true
    options: {domains: 1, latency: 0.01}
  - name: lv
    driver: libvirt
    uri: test:///default
"""


def migrate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    command = [sys.executable, "-m", "vfleet", "--inventory", str(inventory), "migrate", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def plan_rows(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {row["domain"]: row for row in json.loads(run.stdout)["plan"]}


def test_evacuate_a_host_from_the_cli(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    run = migrate(tmp_path, "host:a", "--multiple", "--to", "b", "--yes", "-o", "json", "--audit-log", str(audit))
    assert run.returncode == ExitCode.PARTIAL, run.stderr  # the protected a-db01 stays
    results = {r["domain"]: r for r in json.loads(run.stdout)["results"]}
    assert len(results) == 12
    assert results["a-db01"]["result"] == "refused" and "--override-protection" in results["a-db01"]["message"]
    assert {r["result"] for name, r in results.items() if name != "a-db01"} == {"ok"}
    # progress: one line per target on stderr as each completes, stdout keeps the data
    progress = [line for line in run.stderr.splitlines() if line.startswith("vfleet: migrate [")]
    assert len(progress) == 12 and progress[-1].startswith("vfleet: migrate [12/12] ")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    (intent,) = [r for r in records if r["kind"] == "intent"]
    assert intent["verb"] == "migrate" and intent["params"] == {"to": "b", "live": True, "copy_storage": False}
    assert intent["tier"] == Tier.TYPE_NAME.value  # several targets: type the count
    sent = [t for t in intent["targets"] if t["plan"] == "send"]
    assert sent and all("same driver sim" in t["preflight"] for t in sent)
    assert all(r["params"]["to"] == "b" for r in records if r["kind"] == "result")
    assert verify(audit).ok

    again = migrate(tmp_path, "a-db01", "--to", "b", "--yes", "--override-protection", "-o", "json",
                    "--audit-log", str(audit))
    assert again.returncode == ExitCode.OK, again.stderr


def test_preflight_refusals_are_per_target_and_printed_with_the_plan(tmp_path: Path) -> None:
    offline = plan_rows(migrate(tmp_path, "host:a", "--multiple", "--to", "b", "--offline", "--dry-run", "-o", "json"))
    running = {n for n, r in offline.items() if r["state"] == "running" and not n.startswith("a-db")}
    off = {n for n, r in offline.items() if r["state"] == "off"}
    assert running and off
    assert all(offline[n]["would"] == "refuse" and "--offline moves only domains that are off" in offline[n]["why"]
               for n in running)
    assert all(offline[n]["would"] == "run" and "offline (it is off)" in offline[n]["why"] for n in off)

    copied = plan_rows(migrate(tmp_path, "a-web01", "--to", "b", "--copy-storage", "--dry-run", "-o", "json"))
    assert "storage: copied" in copied["a-web01"]["why"] and "live" in copied["a-web01"]["why"]
    shared = plan_rows(migrate(tmp_path, "a-web01", "--to", "b", "--dry-run", "-o", "json"))
    assert "storage: must be shared by both hosts" in shared["a-web01"]["why"]
    assert "vCPU commit" in shared["a-web01"]["why"] and "free after" in shared["a-web01"]["why"]

    for to, why in (
        ("ro", "ro: read-only: migrate refused"),
        ("lv", "a (sim) and lv (libvirt): domains move only between hosts of one driver"),
        ("nowhere", "nowhere: no such host in the inventory"),
        ("a", "a-web01 is already on a"),
    ):
        rows = plan_rows(migrate(tmp_path, "a-web01", "--to", to, "--dry-run", "-o", "json"))
        assert (rows["a-web01"]["would"], rows["a-web01"]["why"]) == ("refuse", why)
    bad = migrate(tmp_path, "a-web01", "--to", "b/", "--dry-run")
    assert bad.returncode == ExitCode.USAGE and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


async def test_evacuation_fills_the_destination_one_target_at_a_time(tmp_path: Path) -> None:
    hosts = [
        HostConfig(name="src", driver="sim", poll_interval=0.3, options={"domains": 12, "seed": 1, "latency": 0.01}),
        HostConfig(name="full", driver="sim", poll_interval=0.3, options={"domains": 50, "seed": 3, "latency": 0.01}),
    ]
    async with Fleet(hosts) as fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=20)
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        views = {v.name: v for v in fleet.views()}
        dest = summarize_host(views["full"], 0.0)
        assert dest.memory_total_bytes is not None and dest.mem_allocated_bytes is not None
        free = dest.memory_total_bytes - dest.mem_allocated_bytes
        targets = select(fleet.views(), Selector.parse("host:src"))
        the_plan = ops.plan(Verb.MIGRATE, targets, params=MigrateParams("full"))
        sizes = {r.domain.name: (r.domain.memory_current_bytes or 0, r.domain.state) for r in views["src"].rows}
        sent = [d.target.domain for d in the_plan.sendable]
        full = [d for d in the_plan.decisions if d.refused and "free" in d.refused]
        assert full, "the destination should run out of memory during this evacuation"
        holding = [n for n in sent if sizes[n][1] in (PowerState.RUNNING, PowerState.PAUSED)]
        assert sum(sizes[n][0] for n in holding) <= free  # never planned past its free memory
        for d in full:  # each refusal is right given what the targets before it (in name order) took
            taken = sum(sizes[n][0] for n in holding if n < d.target.domain)
            assert sizes[d.target.domain][0] > free - taken
        operation = await ops.run(the_plan, always)
        moved = {r.domain for r in operation.results if r.ok}
        assert moved == set(sent)

        def arrived(vs: list[HostView]) -> bool:
            by = {v.name: {r.domain.name for r in v.rows} for v in vs}
            return moved <= by["full"] and not moved & by["src"]

        assert await fleet.wait_until(arrived, timeout=20)


def test_params_and_progress_line_on_a_terminal() -> None:
    parse = lambda to, *flags: params_of(  # noqa: E731
        type("A", (), {"to": to, "offline": "--offline" in flags, "copy_storage": "--copy" in flags})()
    )
    assert parse("vc1/esx-2") == MigrateParams("vc1", "esx-2")
    assert parse("kvm-2", "--offline", "--copy") == MigrateParams("kvm-2", live=False, copy_storage=True)
    with pytest.raises(UsageError):
        parse("/esx-2")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    from vfleet.core.models import ActionResult

    stream = Tty()
    progress = StderrProgress(stream)
    progress.total = 2
    progress.result(ActionResult("a", "web\x1b[2J1", Verb.MIGRATE, ok=True))
    progress.result(ActionResult("a", "db1", Verb.MIGRATE, ok=False, refused=True))
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("2/2 done, 1 not moved; last a/db1\n")
    assert "\x1b[2J" not in text  # remote names are escaped


def test_a_move_inside_a_vcenter_is_checked_against_the_servers_own_room() -> None:
    from vfleet.core.engine import HostView
    from vfleet.core.metrics import DomainRow
    from vfleet.core.migration import Preflight
    from vfleet.core.models import Domain, DomainRates, HostFacts, HostHealth, HostStatus, NodeFacts

    gib = 1 << 30

    def vm(name: str, node: str, memory: int) -> DomainRow:
        domain = Domain(name, PowerState.RUNNING, "poweredOn", uuid=f"vm-{name}", vcpus=4,
                        memory_current_bytes=memory * gib, node=node)
        return DomainRow("vc", "esxi", domain, DomainRates(), frozenset(), 0.0)

    rows = (vm("big", "esx-1", 20), vm("small", "esx-1", 2), vm("resident", "esx-2", 14))
    # the cluster has 48 GiB free in all, but esx-2 only 2 of its 16
    facts = HostFacts("esxi", cpus=16, memory_bytes=64 * gib, nodes=(
        NodeFacts("esx-1", 8, 48 * gib), NodeFacts("esx-2", 8, 16 * gib)))
    vc = HostView(HostConfig("vc", "esxi_api"), HostHealth(HostStatus.UP, last_ok_at=0.0), facts, rows, False,
                  frozenset(), 1)
    check = Preflight({"vc": vc}, MigrateParams("vc", "esx-2"))
    refused = check.check(vc, rows[0].domain)
    assert refused.refused == "vc/esx-2 has 2.0G free, big needs 20.0G"
    fits = check.check(vc, rows[1].domain)
    assert fits.refused is None and "memory 2.0G, 0.0G free after" in fits.notes
    assert "vCPU commit 1.00 after" in fits.notes  # resident's 4 and small's 4 on esx-2's 8 (big took none)
