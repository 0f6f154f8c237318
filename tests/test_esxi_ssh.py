"""The esxi_ssh driver over real SSH against a test host serving the hand-written
ESXi outputs in tests/fixtures/esxi (no real vim-cmd captures exist here: see its README),
and a real esxtop batch capture, cut down by the driver's own awk program."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sshhost import EsxiHost, Keys, SshTestServer
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import ActionFailed, AuthFailed, DomainNotFound, DriverTimeout, GarbledOutput
from vfleet.core.models import Domain, DomainRef, HostSnapshot, HostStatus, MemorySource, PowerState, Verb
from vfleet.drivers.esxi.esxtop import MEBI
from vfleet.drivers.esxi.ssh import ESXTOP_MAX_AGE_S, EsxiSshDriver
from vfleet.drivers.registry import create_driver

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
def esx() -> EsxiHost:
    return EsxiHost()


@pytest.fixture
async def server(keys: Keys, tmp_path: Path, esx: EsxiHost) -> AsyncIterator[SshTestServer]:
    srv = await SshTestServer(esx, keys, tmp_path).start()
    yield srv
    await srv.close()


@pytest.fixture
async def driver(server: SshTestServer) -> AsyncIterator[EsxiSshDriver]:
    drv = create_driver(server.config(name="esx1", driver="esxi_ssh"))
    assert isinstance(drv, EsxiSshDriver)
    await drv.connect()
    yield drv
    await drv.close()


async def test_connect_reads_host_facts(server: SshTestServer) -> None:
    drv = EsxiSshDriver(server.config(name="esx1", driver="esxi_ssh"))
    try:
        facts = await drv.connect()
    finally:
        await drv.close()
    assert (facts.hypervisor, facts.version, facts.hostname) == ("esxi", "7.0.3 Releasebuild-21930508",
                                                                 "esx01.lab.example.com")
    assert (facts.cpus, facts.memory_bytes) == (8, 34359738368)


async def test_poll_batches_all_summaries_into_one_command(driver: EsxiSshDriver, esx: EsxiHost,
                                                           server: SshTestServer) -> None:
    before = len(esx.shell.lines)
    snapshot = await driver.poll()
    lines = [line for line in esx.shell.lines[before:] if not line.startswith("TERM=xterm esxtop")]
    # two round trips, and on the first poll (then every 10th) a third for the snapshot facts;
    # esxtop runs on a channel of its own beside them (test_esxtop_* below)
    assert len(lines) == 3 and lines[1].count("vim-cmd vmsvc/get.summary") == 4
    assert lines[2].count("vim-cmd vmsvc/snapshot.get") == 4
    by_name = {d.name: d for d in snapshot.domains}
    assert set(by_name) == {"web01", "db server (primary)", "vCLS-4c4c4544-0033-4b10 (1)", "win #2"}
    web = by_name["web01"]
    assert (web.state, web.raw_state, web.domain_id, web.vcpus) == (PowerState.RUNNING, "poweredOn", 1, 2)
    assert web.memory_max_bytes == 4096 * MIB and web.memory_current_bytes is None
    assert (web.memory_used_bytes, web.memory_used_source) == (409 * MIB, MemorySource.HYPERVISOR)
    assert web.uptime_s == 86400.0 and web.uuid == "524d2a1c-91b5-8e3f-07a2-5c0e1f3b6d21"
    assert web.gauges is not None and web.gauges.cpu_percent == pytest.approx(100 * 523 / 4788)
    db = by_name["db server (primary)"]
    assert (db.state, db.memory_used_bytes, db.uptime_s, db.gauges) == (PowerState.OFF, None, None, None)
    assert by_name["win #2"].state is PowerState.SUSPENDED
    assert server.connections == 1


async def test_lifecycle(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    steps = [
        (Verb.SHUTDOWN, "web01", PowerState.OFF, "vim-cmd vmsvc/power.shutdown 1"),
        (Verb.START, "web01", PowerState.RUNNING, "vim-cmd vmsvc/power.on 1"),
        (Verb.REBOOT, "web01", PowerState.RUNNING, "vim-cmd vmsvc/power.reboot 1"),
        (Verb.RESET, "web01", PowerState.RUNNING, "vim-cmd vmsvc/power.reset 1"),
        (Verb.PAUSE, "web01", PowerState.SUSPENDED, "vim-cmd vmsvc/power.suspend 1"),
        (Verb.RESUME, "web01", PowerState.RUNNING, "vim-cmd vmsvc/power.on 1"),
        (Verb.SUSPEND, "web01", PowerState.SUSPENDED, "vim-cmd vmsvc/power.suspend 1"),
        (Verb.RESUME, "web01", PowerState.RUNNING, "vim-cmd vmsvc/power.on 1"),
        (Verb.FORCE_OFF, "web01", PowerState.OFF, "vim-cmd vmsvc/power.off 1"),
        (Verb.RESUME, "win #2", PowerState.RUNNING, "vim-cmd vmsvc/power.on 4"),
    ]
    for verb, name, state, command in steps:
        result = await driver.perform(verb, DomainRef.named(name))
        assert (result.ok, result.state_after, result.noop) == (True, state, False), (verb, result)
        assert command in esx.shell.lines, command
    assert esx.power == {1: "poweredOff", 2: "poweredOff", 3: "poweredOn", 4: "poweredOn"}


async def test_force_off_of_an_off_vm_is_a_noop(driver: EsxiSshDriver) -> None:
    result = await driver.perform(Verb.FORCE_OFF, DomainRef.named("db server (primary)"))
    assert (result.ok, result.noop, result.state_after) == (True, True, PowerState.OFF)


async def test_fault_block_becomes_a_clear_error(driver: EsxiSshDriver) -> None:
    with pytest.raises(ActionFailed, match=r"start db server \(primary\): power on failed: GenericVmConfigFault: "
                                           r"Failed to lock the file"):
        await driver.perform(Verb.START, DomainRef.named("db server (primary)"))
    with pytest.raises(ActionFailed, match="reboot win #2: reboot guest failed: InvalidPowerState"):
        await driver.perform(Verb.REBOOT, DomainRef.named("win #2"))


async def test_wedged_vm_is_killed_gentlest_first(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    esx.wedged.add(1)
    result = await driver.perform(Verb.FORCE_OFF, DomainRef.named("web01"))
    assert (result.ok, result.state_after) == (True, PowerState.OFF)
    assert "killed with --type hard" in result.message
    kills = [line for line in esx.shell.lines if "process kill" in line]
    assert kills == ["esxcli vm process kill --type soft --world-id 2100001",
                     "esxcli vm process kill --type hard --world-id 2100001"]


async def test_unknown_vm(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    with pytest.raises(DomainNotFound, match="no VM named 'nope'"):
        await driver.perform(Verb.START, DomainRef.named("nope"))
    # A VM unregistered between the listing and the summaries is skipped, not an error.
    esx.overrides["vim-cmd vmsvc/get.summary 4"] = (esx.fixture("unknown-vm.txt"), "", 1)
    names = {d.name for d in (await driver.poll()).domains}
    assert "win #2" not in names and len(names) == 3


async def test_garbled_summary(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    esx.overrides["vim-cmd vmsvc/get.summary 3"] = (esx.summary(3)[:900], "", 0)
    with pytest.raises(GarbledOutput):
        await driver.poll()


async def test_wrong_client_key(server: SshTestServer) -> None:
    drv = EsxiSshDriver(server.config(name="esx1", driver="esxi_ssh", key_file=server.stranger_key_file))
    with pytest.raises(AuthFailed, match="refused our keys"):
        await drv.connect()
    await drv.close()


async def test_fleet_over_esxi_ssh(server: SshTestServer) -> None:
    fleet = Fleet([server.config(name="esx1", driver="esxi_ssh")])

    def polled_twice(views: list[HostView]) -> bool:
        return views[0].health.polls >= 2

    async with fleet:
        assert await fleet.wait_until(polled_twice, timeout=20), fleet.view("esx1").health
        view = fleet.view("esx1")
    assert view.health.status is HostStatus.UP and view.facts is not None and view.facts.hypervisor == "esxi"
    rows = {r.domain.name: r for r in view.rows}
    assert rows["web01"].rates.cpu_percent == pytest.approx(100 * 523 / 4788)
    assert rows["db server (primary)"].rates.cpu_percent is None
    assert server.connections == 1


async def test_one_deadline_covers_both_round_trips_of_a_poll(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    """Each round trip alone fits in the budget; together they do not: the poll stops at its deadline."""
    esx.delays = {"vim-cmd vmsvc/getallvms": 0.6, "vim-cmd vmsvc/get.summary": 0.6}
    started = time.monotonic()
    with pytest.raises(DriverTimeout, match=r"get\.summary .*no answer within 0\.[0-4]\d* s"):
        await driver.poll(deadline=started + 1.0)
    assert time.monotonic() - started < 1.3
    esx.delays = {}
    assert len((await driver.poll(deadline=time.monotonic() + 3)).domains) == 4


async def test_one_deadline_covers_an_action_and_its_read_back(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    esx.delays = {"vim-cmd vmsvc/": 0.4}  # the listing, the power call and the read-back: 1.2 s in all
    started = time.monotonic()
    with pytest.raises(DriverTimeout):
        await driver.perform(Verb.PAUSE, DomainRef.named("web01"), deadline=started + 1.0)
    assert time.monotonic() - started < 1.3


async def test_snapshots_through_the_operations_core(server: SshTestServer, esx: EsxiHost, tmp_path: Path) -> None:
    """create (name with spaces and quotes), list with parents and current, revert, delete: vim-cmd as ESXi takes it."""
    from vfleet.core.audit import AuditLog
    from vfleet.core.models import SnapshotParams
    from vfleet.core.operations import Operations, Target, always, read_snapshots

    web = Target("esx1", "web01", "524d2a1c-91b5-8e3f-07a2-5c0e1f3b6d21")
    async with Fleet([server.config(name="esx1", driver="esxi_ssh")]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=20), fleet.view("esx1").health
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")

        async def run(verb: Verb, snap: str, memory: bool = False) -> tuple[bool, str]:
            plan = ops.plan(verb, [web], params=SnapshotParams(snap, memory=memory, description="it's mine"))
            result = (await ops.run(plan, always)).results[0]
            return result.ok, result.message

        assert await run(Verb.SNAPSHOT_CREATE, "pre patch 'one'", memory=True) == (True, "poweredOn")
        assert "vim-cmd vmsvc/snapshot.create 1 'pre patch '\"'\"'one'\"'\"'' 'it'\"'\"'s mine' 1 0" in esx.shell.lines
        assert (await run(Verb.SNAPSHOT_CREATE, "disk only"))[0]
        ok, message = await run(Verb.SNAPSHOT_CREATE, "disk only")
        assert not ok and "a snapshot named 'disk only' exists" in message
        (listed,) = [item.snapshots for item in await read_snapshots(fleet, [web])]
        assert [(s.name, s.parent, s.current, s.memory, s.description) for s in listed] == [
            ("pre patch 'one'", None, False, True, "it's mine"),
            ("disk only", "pre patch 'one'", True, False, "it's mine"),
        ]
        assert all(s.created is not None and abs(s.created - time.time()) < 120 for s in listed)

        assert await run(Verb.SNAPSHOT_REVERT, "disk only") == (True, "poweredOff")  # no memory: off
        assert "vim-cmd vmsvc/snapshot.revert 1 2 0" in esx.shell.lines
        assert await run(Verb.SNAPSHOT_REVERT, "pre patch 'one'") == (True, "poweredOn")
        (listed,) = [item.snapshots for item in await read_snapshots(fleet, [web])]
        assert [s.name for s in listed if s.current] == ["pre patch 'one'"]
        ok, message = await run(Verb.SNAPSHOT_DELETE, "nope")
        assert not ok and "no snapshot named 'nope'" in message
        assert (await run(Verb.SNAPSHOT_DELETE, "pre patch 'one'"))[0]
        assert "vim-cmd vmsvc/snapshot.remove 1 1" in esx.shell.lines
        (listed,) = [item.snapshots for item in await read_snapshots(fleet, [web])]
        assert [(s.name, s.parent) for s in listed] == [("disk only", None)]
    records = (tmp_path / "audit.jsonl").read_text()
    assert records.count('"snapshot": "disk only"') >= 2


async def test_snapshot_names_several_carry_are_refused(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    from sshhost import EsxiSnap

    esx.snapshots[1] = [EsxiSnap(7, "twin", "", "1/2/2025 3:04:05", "powered off", None),
                        EsxiSnap(8, "twin", "", "1/2/2025 3:05:05", "powered off", 7)]
    from vfleet.core.models import SnapshotParams

    with pytest.raises(ActionFailed, match=r"2 snapshots are named 'twin' \(ids 7, 8\); rename one first"):
        await driver.perform(Verb.SNAPSHOT_DELETE, DomainRef.named("web01"), params=SnapshotParams("twin"))
    assert not any("snapshot.remove" in line for line in esx.shell.lines)


async def test_snapshot_facts_every_tenth_poll_and_right_after_an_operation(driver: EsxiSshDriver,
                                                                            esx: EsxiHost) -> None:
    from sshhost import EsxiSnap
    from vfleet.core.models import SnapshotParams
    from vfleet.drivers.esxi.ssh import SNAPSHOT_FACTS_EVERY

    def web(snapshot: HostSnapshot) -> tuple[int | None, float | None]:
        dom = next(d for d in snapshot.domains if d.name == "web01")
        return dom.snapshot_count, dom.oldest_snapshot_at

    assert web(await driver.poll()) == (0, None)
    esx.snapshots[1] = [EsxiSnap(5, "by hand", "", "2/23/2015 18:12:50", "powered off", None)]  # as vSphere would
    counts = [web(await driver.poll())[0] for _ in range(SNAPSHOT_FACTS_EVERY)]
    assert counts == [0] * (SNAPSHOT_FACTS_EVERY - 1) + [1]
    assert web(await driver.poll())[1] == datetime(2015, 2, 23, 18, 12, 50, tzinfo=UTC).timestamp()
    reads = sum("snapshot.get" in line for line in esx.shell.lines)
    await driver.perform(Verb.SNAPSHOT_CREATE, DomainRef.named("web01"), params=SnapshotParams("new"))
    assert web(await driver.poll())[0] == 2  # no waiting for the cadence after our own operation
    assert sum("snapshot.get" in line for line in esx.shell.lines) == reads + 2  # the create's own read, the poll's


def by_name(snapshot: HostSnapshot) -> dict[str, Domain]:
    return {d.name: d for d in snapshot.domains}


async def test_esxtop_fills_disk_net_and_contention(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    domains = by_name(await driver.poll())
    (run,) = [line for line in esx.shell.lines if "esxtop" in line]
    assert run.startswith("TERM=xterm esxtop -b -n 2 -d 2 | awk 'function whole(")
    web = domains["web01"].gauges
    assert web is not None  # the values of the capture's last sample (tests/test_esxtop.py reads them)
    assert web.cpu_percent == pytest.approx(100 * 523 / 4788)  # still from get.summary
    assert web.contention_percent == pytest.approx(2.15 / 2)
    assert (web.disk_read_bps, web.disk_write_bps) == (0.32 * MEBI, 0.05 * MEBI)
    assert (web.disk_read_iops, web.disk_write_iops) == (4.02, 9.24)
    assert (web.net_rx_bps, web.net_tx_bps) == (pytest.approx(10.44 * 174), pytest.approx(10.44 * 600))
    vcls = domains["vCLS-4c4c4544-0033-4b10 (1)"].gauges
    assert vcls is not None and vcls.net_tx_bps == pytest.approx(2.61 * 54 + 25.50 * 335)  # two vNICs
    assert domains["db server (primary)"].gauges is None and domains["win #2"].gauges is None  # not running


async def test_esxtop_missing_keeps_the_poll_and_says_so_once(driver: EsxiSshDriver, esx: EsxiHost,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    esx.esxtop = None
    with caplog.at_level(logging.WARNING, logger="vfleet.drivers.esxi.ssh"):
        polls = [by_name(await driver.poll()) for _ in range(3)]
    for domains in polls:
        web = domains["web01"].gauges
        assert web is not None and web.cpu_percent is not None
        assert (web.contention_percent, web.disk_read_bps, web.net_rx_bps) == (None, None, None)
    said = [r.getMessage() for r in caplog.records if "esxtop" in r.getMessage()]
    assert said == ["esx1: esxtop is not on this host (disk, network and contention stay empty)"]
    assert len(esx.esxtop_runs) == 1  # not asked again


async def test_a_failing_esxtop_is_reported_once_and_retried(driver: EsxiSshDriver, esx: EsxiHost,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    lines = esx.fixture("esxtop-batch.csv").splitlines(keepends=True)
    esx.esxtop = lines[0] + lines[1].replace('","', '","x","', 1)  # a row wider than its header
    with caplog.at_level(logging.WARNING, logger="vfleet.drivers.esxi.ssh"):
        first = by_name(await driver.poll())
        await poll_until(driver, lambda _: len(esx.esxtop_runs) >= 3)
    assert first["web01"].gauges is not None and first["web01"].gauges.net_rx_bps is None
    said = [r.getMessage() for r in caplog.records if "esxtop" in r.getMessage()]
    assert said == ["esx1: esxtop's sample has a different column count from its header (a VM name with a quote?) "
                    "(disk, network and contention stay empty)"]
    esx.esxtop = esx.fixture("esxtop-batch.csv")  # esxtop recovers: so do the fields
    await poll_until(driver, lambda domains: domains["web01"].gauges.net_rx_bps is not None)  # type: ignore[union-attr]


async def poll_until(driver: EsxiSshDriver, ready: Callable[[dict[str, Domain]], bool], timeout: float = 10.0) -> None:
    """Poll (as the engine would) until `ready` holds for the domains; a poll every 0.1 s inside a deadline."""
    deadline = time.monotonic() + timeout
    while not ready(by_name(await driver.poll())):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_a_slow_esxtop_holds_only_the_first_poll(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    esx.delays = {"TERM=xterm esxtop": 1.5}  # about what -n 2 -d 2 takes on a host, less the first sample
    started = time.monotonic()
    first = by_name(await driver.poll())
    assert time.monotonic() - started >= 1.5 and first["web01"].gauges is not None
    assert first["web01"].gauges.net_rx_bps is not None  # one `vfleet status` shows the fields
    for _ in range(3):
        started = time.monotonic()
        later = by_name(await driver.poll())
        assert time.monotonic() - started < 1.0  # later polls take the newest finished sample
        assert later["web01"].gauges is not None and later["web01"].gauges.net_rx_bps is not None
    assert driver.esxtop.runs == 2  # one run in flight at a time


async def test_an_old_esxtop_sample_is_not_shown_as_current(driver: EsxiSshDriver, esx: EsxiHost) -> None:
    assert by_name(await driver.poll())["web01"].gauges.net_rx_bps is not None  # type: ignore[union-attr]
    esx.delays = {"TERM=xterm esxtop": 30}  # the next run hangs
    later = time.monotonic() + ESXTOP_MAX_AGE_S + 1
    driver.esxtop.clock = lambda: later
    web = by_name(await driver.poll())["web01"].gauges
    assert web is not None and web.cpu_percent is not None and web.net_rx_bps is None


async def test_status_json_shows_disk_net_and_contention(server: SshTestServer, tmp_path: Path) -> None:
    """`vfleet status -o json` in a process of its own: one poll, the esxtop fields filled."""
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        "hosts:\n  - name: esx1\n    driver: esxi_ssh\n    address: 127.0.0.1\n"
        f"    port: {server.port}\n    user: root\n"
        f"    ssh: {{agent: false, config: false, key_file: '{server.key_file}', known_hosts: '{server.known_hosts}'}}\n"
    )

    # an async subprocess: the SSH test host answers from this very event loop
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", "-i", str(inventory), "status", "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    rows = {d["name"]: d for d in json.loads(out)["domains"]}
    web = rows["web01"]
    assert web["contention_pct"] == pytest.approx(2.15 / 2, abs=0.01)
    assert (web["disk_read_iops"], web["disk_write_iops"]) == (4.0, 9.2)  # the report rounds to 0.1
    assert web["disk_read_bps"] == pytest.approx(0.32 * MEBI, abs=1) and web["net_tx_bps"] == pytest.approx(6264, abs=1)
    assert rows["db server (primary)"]["net_rx_bps"] is None


async def test_a_recording_holds_esxtop_and_replays_its_figures(driver: EsxiSshDriver) -> None:
    """`vfleet debug record`: the esxtop run (one command line, as recordings need) and its answer are in
    the recording, and the replay through the driver's own parsing gives the same figures."""
    from vfleet.drivers.replay import replay

    await driver.poll()  # a run may be in flight when the recording starts: the recording gets its own
    files = await driver.record_poll()
    assert files["commands.txt"].count("### host$ TERM=xterm esxtop -b -n 2 -d 2 | awk ") == 1
    polled = by_name(await driver.poll())
    replayed = by_name(await replay(driver.config, files))
    for name in ("web01", "vCLS-4c4c4544-0033-4b10 (1)"):
        assert replayed[name].gauges == polled[name].gauges and replayed[name].gauges is not None
