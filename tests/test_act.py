"""Actions through the one policy engine: bulk dispatch on test-driver hosts, and the
headless `act` command on real QEMU guests (tiers, protection, read-only, dry-run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodexml import SHUTOFF, write_node
from vfleet.core.audit import AuditLog, verify
from vfleet.core.engine import Fleet
from vfleet.core.errors import ExitCode
from vfleet.core.models import HostConfig, PowerState, Verb
from vfleet.core.operations import Operations, always
from vfleet.core.policy import select
from vfleet.core.selector import Selector

pytestmark = pytest.mark.usefixtures("libvirt_module")


def counting_factory(peaks: Counter[str]):  # type: ignore[no-untyped-def]
    """Real LibvirtDriver instances whose perform() counts concurrent calls per host."""
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    in_flight: Counter[str] = Counter()

    class Counting(LibvirtDriver):
        async def perform(self, verb, target, *, deadline=None):  # type: ignore[no-untyped-def]
            in_flight[self.host] += 1
            peaks[self.host] = max(peaks[self.host], in_flight[self.host])
            try:
                return await super().perform(verb, target, deadline=deadline)
            finally:
                in_flight[self.host] -= 1

    return lambda config, read_only: Counting(config, read_only=read_only)


async def test_bulk_start_and_stop_of_500_domains_on_10_hosts(tmp_path: Path) -> None:
    from vfleet.core.operations import PER_HOST_LIMIT

    hosts = [
        HostConfig(name=f"t{i}", driver="libvirt", poll_interval=0.5,
                   uri=f"test://{write_node(tmp_path / f'n{i}.xml', [(f't{i}-d{j:02d}', SHUTOFF) for j in range(50)])}")
        for i in range(10)
    ]
    peaks: Counter[str] = Counter()
    audit = AuditLog(tmp_path / "audit.jsonl")
    async with Fleet(hosts, driver_factory=counting_factory(peaks)) as fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=20)
        ops = Operations(fleet, audit, face="test")
        for verb, want in ((Verb.START, PowerState.RUNNING), (Verb.SHUTDOWN, PowerState.OFF)):
            targets = select(fleet.views(), Selector.parse(""))
            assert len(targets) == 500
            dispatch = await ops.run(ops.plan(verb, targets), always, timeout=30, wait=30)
            assert len(dispatch.results) == 500
            assert Counter(r.outcome for r in dispatch.results) == {"ok": 500}, Counter(r.message for r in dispatch.results)
            assert all(r.state_after is want for r in dispatch.results)
            assert max(peaks.values()) <= PER_HOST_LIMIT and max(peaks.values()) >= 2  # bounded, yet concurrent
            assert max(dispatch.peak_in_flight.values()) <= PER_HOST_LIMIT
            # results come back in plan order: stable per host
            assert [(r.host, r.domain) for r in dispatch.results] == [(t.host, t.domain) for t in targets]
    records = list(audit.records())
    intents = [r for r in records if r["kind"] == "intent"]
    assert [r["verb"] for r in intents] == ["start", "shutdown"] and all(len(r["targets"]) == 500 for r in intents)
    assert Counter(r["kind"] for r in records) == {"intent": 2, "result": 1000, "close": 2}
    assert verify(audit.path).ok


def act(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env=env)


@pytest.fixture
def guest_fleet(testbed: dict[str, str], tmp_path: Path) -> Iterator[tuple[Path, list[str], Path]]:
    import libvirt

    guests = testbed["VFLEET_GUESTS"].split(",")
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(f"hosts:\n  - name: kvm\n    driver: libvirt\n    uri: {testbed['VFLEET_QEMU_URI']}\n"
                         f"    protected_domains: ['{guests[1]}']\n")
    yield inventory, guests, tmp_path / "audit.jsonl"
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])  # leave the guests running for the next test
    for name in guests:
        dom = conn.lookupByName(name)
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif not dom.isActive():
            dom.create()
    conn.close()


def states(testbed: dict[str, str]) -> dict[str, int]:
    import libvirt

    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    try:
        return {d.name(): d.state()[0] for d in conn.listAllDomains()}
    finally:
        conn.close()


def results(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return list(json.loads(run.stdout)["results"])


def test_act_on_real_guests_obeys_the_policy(testbed: dict[str, str], guest_fleet: tuple[Path, list[str], Path]) -> None:
    import libvirt

    inventory, (g1, g2), audit = guest_fleet
    base = ("-i", str(inventory), "act")
    log = ("--audit-log", str(audit), "-o", "json")

    # a dry run changes nothing, and says what the policy would refuse
    before = states(testbed)
    run = act(*base, "force-off", "vfleet-t*", "--multiple", "--dry-run", *log)
    assert run.returncode == ExitCode.OK, run.stderr
    planned = {p["domain"]: p for p in json.loads(run.stdout)["plan"]}
    assert planned[g1]["would"] == "run" and planned[g2]["would"] == "refuse" and "protected" in planned[g2]["why"]
    assert states(testbed) == before

    # no terminal and no --yes: refused, nothing happens
    run = act(*base, "pause", g1, *log)
    assert run.returncode == ExitCode.REFUSED and "--yes" in run.stderr
    assert states(testbed)[g1] == libvirt.VIR_DOMAIN_RUNNING

    # several matches need --multiple
    run = act(*base, "pause", "vfleet-t*", "--yes", *log)
    assert run.returncode == ExitCode.REFUSED and "--multiple" in run.stderr

    # graceful shutdown waits until the guest is really off; a second one is a no-op
    run = act(*base, "shutdown", g1, "--yes", *log)
    assert run.returncode == ExitCode.OK, run.stderr
    assert results(run)[0]["result"] == "ok" and results(run)[0]["state_after"] == "off"
    assert states(testbed)[g1] == libvirt.VIR_DOMAIN_SHUTOFF
    run = act(*base, "shutdown", g1, "--yes", *log)
    assert run.returncode == ExitCode.OK and results(run)[0]["result"] == "no-op"

    run = act(*base, "start", g1, "--yes", *log)
    assert run.returncode == ExitCode.OK and results(run)[0]["state_after"] == "running"

    # force-off on a protected domain: refused, then allowed with the override
    run = act(*base, "force-off", g2, "--yes", *log)
    assert run.returncode == ExitCode.REFUSED and results(run)[0]["result"] == "refused"
    assert states(testbed)[g2] == libvirt.VIR_DOMAIN_RUNNING
    run = act(*base, "force-off", g2, "--yes", "--override-protection", *log)
    assert run.returncode == ExitCode.OK and results(run)[0]["state_after"] == "off"

    # read-only: refused in the core, whatever the face
    run = act("--read-only", *base, "pause", g1, "--yes", *log)
    assert run.returncode == ExitCode.REFUSED and "read-only" in results(run)[0]["message"]
    assert states(testbed)[g1] == libvirt.VIR_DOMAIN_RUNNING

    # suspend to disk is not a libvirt verb here: refused with the driver's reason, nothing sent
    run = act(*base, "suspend", g1, "--yes", *log)
    assert run.returncode == ExitCode.REFUSED and "managedsave" in results(run)[0]["message"], run.stdout
    assert states(testbed)[g1] == libvirt.VIR_DOMAIN_RUNNING

