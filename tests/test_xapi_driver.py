"""The xapi driver against the XAPI test server (tests/xapi_server: a two-host pool behind the
unmodified XenAPI client): the shared driver contract, nodes, contention, strings-as-numbers,
HOST_IS_SLAVE, event.from token expiry, TLS pin and CA, deadlines, xapi's errors, protection
and pool_migrate."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet
from vfleet.core.errors import (
    ActionFailed,
    AuthFailed,
    DomainNotFound,
    DriverTimeout,
    ExitCode,
    HostUnreachable,
    NoConsole,
    PolicyRefused,
)
from vfleet.core.models import (
    DomainEvent,
    DomainRef,
    HostConfig,
    MigrateParams,
    PowerState,
    SnapshotParams,
    TlsSettings,
    Verb,
)
from vfleet.core.operations import Operations, Target, always
from vfleet.drivers import registry
from vfleet.drivers.base import Driver
from vfleet.drivers.xapi import recording, wire
from vfleet.drivers.xapi.driver import XapiDriver
from vfleet.testing.driver_contract import DriverContract, Subject
from xapi_server.fixture import xapi_server_fixture  # noqa: F401 - provides the xapi_server fixture
from xapi_server.server import XapiServer

PASSWORD_ENV = "VFLEET_TEST_XAPI_PASSWORD"


def config(srv: XapiServer, *, address: str = "127.0.0.1", tls: TlsSettings | None = None,
           name: str = "pool1", **options: object) -> HostConfig:
    return HostConfig(
        name=name, driver="xapi", address=address, port=srv.port, user=srv.pool.user, password_env=PASSWORD_ENV,
        tls=tls or TlsSettings(thumbprint=srv.cert.sha256), call_timeout=5.0, connect_timeout=5.0, options=options,
    )


@pytest.fixture
def pool(xapi_server: XapiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[XapiServer]:
    monkeypatch.setenv(PASSWORD_ENV, xapi_server.pool.password)
    yield xapi_server
    xapi_server.pool.faults.release()


@pytest.fixture
async def driver(pool: XapiServer) -> AsyncIterator[Driver]:
    drv = registry.create_driver(config(pool))
    await drv.connect()
    yield drv
    await drv.close()


class TestXapiContract(DriverContract):
    @pytest.fixture
    def subject(self, pool: XapiServer) -> Iterator[Subject]:
        yield Subject(config(pool))


async def _settled(drv: Driver) -> dict[str, object]:
    """The second poll: rrd answers include a row per node by then."""
    await drv.poll()
    return {d.name: d for d in (await drv.poll()).domains}


async def test_guests_only_each_on_its_node(driver: Driver, pool: XapiServer) -> None:
    snapshot = await driver.poll()
    names = {d.name for d in snapshot.domains}
    assert {"web-01", "db-01", "paused-01", "suspended-01", "halted-01", "protected-01"} <= names
    assert not names & {"debian-12", "web-01 before upgrade"} and not any("Control domain" in n for n in names)
    nodes = {d.name: d.node for d in snapshot.domains}
    assert (nodes["web-01"], nodes["db-01"], nodes["paused-01"]) == ("xcp-a", "xcp-b", "xcp-a")
    assert nodes["halted-01"] is None and nodes["suspended-01"] is None  # resident nowhere
    assert all(d.node in ("xcp-a", "xcp-b") for d in snapshot.domains if d.state is PowerState.RUNNING)
    facts = snapshot.facts
    assert facts is not None and facts.hypervisor == "xen" and facts.cpus and facts.memory_bytes
    web = next(d for d in snapshot.domains if d.name == "web-01")
    assert web.snapshot_count == 1 and web.oldest_snapshot_at is not None  # "web-01 before upgrade"


async def test_contention_is_measured_for_running_vms_and_small_when_idle(driver: Driver, pool: XapiServer) -> None:
    domains = await _settled(driver)
    for dom in domains.values():
        gauges = dom.gauges  # type: ignore[attr-defined]
        if dom.state is PowerState.RUNNING:  # type: ignore[attr-defined]
            assert gauges is not None and gauges.contention_percent is not None, dom
            assert gauges.cpu_percent is not None and gauges.disk_read_bps is not None and gauges.net_rx_bps is not None
        elif dom.state is PowerState.OFF:  # type: ignore[attr-defined]
            assert gauges is None
    busy, idle = domains["web-01"].gauges, domains["db-01"].gauges  # type: ignore[attr-defined]
    assert busy.contention_percent > 2.0 and busy.cpu_percent > 40.0
    assert 0.0 <= idle.contention_percent < 1.0 and idle.cpu_percent < 5.0
    assert domains["web-01"].memory_used_source is not None  # type: ignore[attr-defined]  # guest agent


async def test_rrd_numbers_as_strings_give_the_same_values(pool: XapiServer) -> None:
    frozen = time.time()
    pool.pool.clock = lambda: frozen
    values = []
    for as_strings in (False, True):
        pool.pool.rrd_numbers_as_strings = as_strings
        drv = registry.create_driver(config(pool))
        await drv.connect()
        try:
            domains = await _settled(drv)
        finally:
            await drv.close()
        values.append({n: d.gauges for n, d in domains.items()})  # type: ignore[attr-defined]
    assert values[0] == values[1] and values[0]["web-01"] is not None


async def test_a_pool_member_redirects_to_the_master_once(pool: XapiServer) -> None:
    pool.pool.make_master(1)
    drv = registry.create_driver(config(pool, address="127.0.0.1", tls=TlsSettings(ca_file=str(pool.cert.cert))))
    assert isinstance(drv, XapiDriver)
    await drv.connect()
    try:
        assert drv.redirected_from == "127.0.0.1" and "127.0.0.2" in drv.endpoint
        assert any("HOST_IS_SLAVE" in w and "127.0.0.2" in w for w in drv.warnings)
        assert {d.name for d in (await drv.poll()).domains} >= {"web-01", "db-01"}
    finally:
        await drv.close()
    # a pin names one certificate: the member's pin does not vouch for the master it names
    pinned = registry.create_driver(config(pool, address="127.0.0.1"))  # the pin of host 0, now a member
    with pytest.raises(AuthFailed, match=r"TLS certificate of 127\.0\.0\.2:\d+ does not match tls.thumbprint"):
        await pinned.connect()
    await pinned.close()


async def test_event_feed_follows_changes_and_resyncs_after_token_expiry(driver: Driver, pool: XapiServer) -> None:
    events: asyncio.Queue[DomainEvent] = asyncio.Queue()

    async def pump() -> None:
        async for event in driver.events():
            await events.put(event)

    async def next_event(name: str) -> DomainEvent:
        while True:
            event = await asyncio.wait_for(events.get(), 20)
            if event.domain == name:
                return event

    task = asyncio.create_task(pump())
    try:
        halted = next(d for d in (await driver.poll()).domains if d.name == "halted-01")
        await asyncio.sleep(0.3)  # let the feed take its baseline
        await driver.perform(Verb.START, DomainRef.of(halted))
        assert (await next_event("halted-01")).kind == "started"
        pool.pool.store.expire_event_tokens()  # the feed's next event.from gets EVENTS_LOST
        pool.pool.store.modify("VM", pool.pool.vm("db-01"), power_state="Paused")  # a change during the gap
        event = await next_event("db-01")
        assert (event.kind, event.detail) == ("paused", "Running -> Paused")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "event.from" in pool.pool.calls


async def test_a_wrong_pin_is_a_clear_auth_error(pool: XapiServer) -> None:
    drv = registry.create_driver(config(pool, tls=TlsSettings(thumbprint="AB" * 32)))
    with pytest.raises(AuthFailed, match=r"^pool1: TLS certificate of 127\.0\.0\.1:\d+ does not match tls.thumbprint"):
        await drv.connect()
    await drv.close()


async def test_ca_file_verifies_and_an_unknown_ca_names_the_fingerprint(pool: XapiServer) -> None:
    good = registry.create_driver(config(pool, tls=TlsSettings(ca_file=str(pool.cert.cert))))
    await good.connect()
    await good.close()
    untrusted = registry.create_driver(config(pool, tls=TlsSettings()))  # system CAs only
    with pytest.raises(AuthFailed, match="is not trusted") as caught:
        await untrusted.connect()
    assert "SHA-256" in str(caught.value) and "\n" not in str(caught.value)


async def test_wrong_password_keeps_xapis_error(pool: XapiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "Not-The-Pa55word")
    drv = registry.create_driver(config(pool))
    with pytest.raises(AuthFailed, match="SESSION_AUTHENTICATION_FAILED") as caught:
        await drv.connect()
    assert isinstance(caught.value.__cause__, wire.XapiFailure)
    assert "Pa55word" not in str(caught.value)  # never the password


async def test_a_hung_call_ends_at_the_deadline(driver: Driver, pool: XapiServer) -> None:
    pool.pool.faults.hang("VM.get_all_records")
    started = time.monotonic()
    with pytest.raises(DriverTimeout, match="no answer"):
        await driver.poll(deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 2.0
    pool.pool.faults.release()


async def test_xapi_refusals_keep_the_error_array(driver: Driver, pool: XapiServer) -> None:
    halted = pool.pool.vm("halted-01")
    # xapi's list of what the state allows would stop us first: make it claim pause is allowed
    pool.pool.store.modify("VM", halted, allowed_operations=["pause", "start"])
    await driver.poll()
    with pytest.raises(ActionFailed, match="VM_BAD_POWER_STATE") as caught:
        await driver.perform(Verb.PAUSE, DomainRef.named("halted-01"))
    assert isinstance(caught.value.__cause__, wire.XapiFailure)
    assert caught.value.__cause__.code == "VM_BAD_POWER_STATE"
    with pytest.raises(ActionFailed, match="does not allow hard_reboot"):  # from allowed_operations
        await driver.perform(Verb.RESET, DomainRef.named("halted-01"))
    with pytest.raises(DomainNotFound):
        await driver.perform(Verb.START, DomainRef.named("debian-12"))  # a template is not a guest


async def test_blocked_operations_are_a_policy_refusal(driver: Driver, pool: XapiServer) -> None:
    domains = await _settled(driver)
    assert domains["protected-01"].protected  # type: ignore[attr-defined]
    with pytest.raises(PolicyRefused, match="the pool blocks hard_shutdown"):
        await driver.perform(Verb.FORCE_OFF, DomainRef.named("protected-01"))
    assert pool.pool.store.record("VM", pool.pool.vm("protected-01"))["power_state"] == "Running"


async def test_pool_migrate_moves_a_vm_to_the_other_node(driver: Driver, pool: XapiServer) -> None:
    web = (await _settled(driver))["web-01"]
    assert web.node == "xcp-a"  # type: ignore[attr-defined]
    result = await driver.perform(Verb.MIGRATE, DomainRef.of(web), params=MigrateParams("pool1", node="xcp-b"))  # type: ignore[arg-type]
    assert result.ok and result.state_after is PowerState.RUNNING and result.message == "now on xcp-b"
    assert {d.name: d.node for d in (await driver.poll()).domains}["web-01"] == "xcp-b"
    with pytest.raises(ActionFailed, match="no node named 'nope'"):
        await driver.perform(Verb.MIGRATE, DomainRef.named("web-01"), params=MigrateParams("pool1", node="nope"))


async def test_a_recording_replays_into_the_domains_the_poll_gave(driver: Driver, pool: XapiServer) -> None:
    frozen = time.time()
    pool.pool.clock = lambda: frozen  # the same metrics for the recorded poll and the one after
    files = await driver.record_poll()  # type: ignore[attr-defined]
    polled = {d.key: replace(d, uptime_s=None) for d in (await driver.poll()).domains}
    assert {"VM.get_all_records.json", "host.get_all_records.json", "poll.json"} <= set(files)
    assert len([n for n in files if n.startswith("rrd_updates.")]) == 2  # one per node
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files)
    replayed = recording.replay("pool1", files)
    assert {d.key: replace(d, uptime_s=None) for d in replayed.domains} == polled and replayed.facts is not None
    assert any(d.gauges and d.gauges.contention_percent for d in replayed.domains)


async def test_missing_password_env_says_what_to_do(pool: XapiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    drv = registry.create_driver(config(pool))
    with pytest.raises(AuthFailed, match=f"{PASSWORD_ENV} .* is not set"):
        await drv.connect()


async def test_console_says_where_xapis_consoles_are(driver: Driver) -> None:
    with pytest.raises(NoConsole, match="no serial console over XAPI") as caught:
        await driver.open_console(DomainRef.named("web-01"))
    assert "\n" not in str(caught.value)


async def test_an_expired_session_is_renewed_by_the_next_poll(driver: Driver, pool: XapiServer) -> None:
    await driver.poll()
    pool.pool.store.expire_sessions()
    assert {d.name for d in (await driver.poll()).domains} >= {"web-01"}  # XenAPI logged in again
    result = await driver.perform(Verb.PAUSE, DomainRef.named("web-01"))  # actions use the new session
    assert result.ok and result.state_after is PowerState.PAUSED


async def test_with_a_pin_each_member_is_checked_against_the_fingerprint_the_master_lists(pool: XapiServer) -> None:
    """Each host has its own certificate; the pin names the master's; the master lists the members' (Certificate)."""
    store, member = pool.pool.store, pool.pool.hosts[1]
    assert pool.cert.hosts[1].sha256 != pool.cert.sha256
    gauges = {}
    for case in ("as listed", "tampered"):
        if case == "tampered":
            cert = store.add("Certificate", {"name": "", "type": "host", "host": member, "fingerprint": "00" * 32})
            store.modify("host", member, certificates=[cert])
        drv = registry.create_driver(config(pool))  # pinned to the master's certificate
        await drv.connect()
        try:
            gauges[case] = {d.name: d.gauges for d in (await drv.poll()).domains}
        finally:
            await drv.close()
    trusted, refused = gauges["as listed"], gauges["tampered"]
    assert trusted["db-01"] is not None and trusted["db-01"].contention_percent is not None  # db-01 runs on xcp-b
    assert refused["web-01"] is not None and refused["db-01"] is None  # xcp-b's metrics were not trusted


def _open_sessions(pool: XapiServer) -> set[str]:
    return {ref for ref, s in pool.pool.store.sessions.items() if s.valid}


async def test_close_after_a_stuck_call_still_logs_out(pool: XapiServer) -> None:
    drv = registry.create_driver(config(pool))
    assert isinstance(drv, XapiDriver)
    before = _open_sessions(pool)
    await drv.connect()
    assert len(_open_sessions(pool) - before) == 1
    pool.pool.faults.hang("VM.get_all_records")
    with pytest.raises(TimeoutError):  # the engine gives up on a poll the same way: it cancels it
        await asyncio.wait_for(drv.poll(), 0.5)
    closing = asyncio.ensure_future(drv.close())  # the logout queues behind the stuck poll
    await asyncio.sleep(0.2)
    assert len(_open_sessions(pool) - before) == 1  # not yet: the poll still holds the lane
    pool.pool.faults.release()
    await asyncio.wait_for(closing, 10)
    assert _open_sessions(pool) == before  # logged out: no session left on the pool


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port, served by another process, that accepts connections and never answers (TLS never starts)."""
    code = ("import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(64)\n"
            "print(s.getsockname()[1], flush=True)\nheld = []\nwhile True: held.append(s.accept()[0])\n")
    hole = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert hole.stdout is not None
        yield int(hole.stdout.readline())
    finally:
        hole.kill()
        hole.wait()


async def test_a_tls_black_hole_times_out_and_leaks_no_threads_or_sockets(
    black_hole: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "x")
    hole = HostConfig(name="hole", driver="xapi", address="127.0.0.1", port=black_hole, user="root",
                      password_env=PASSWORD_ENV, tls=TlsSettings(thumbprint="AB" * 32), call_timeout=1.0)
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        drv = registry.create_driver(hole)
        started = time.monotonic()
        with pytest.raises(DriverTimeout):
            await drv.connect(deadline=time.monotonic() + 0.4)
        assert time.monotonic() - started < 1.0
        await drv.close()
    stuck = drv._pool.stuck_futures()  # type: ignore[attr-defined]
    if stuck:  # the socket timeout (2 x call_timeout) ends each abandoned login
        await asyncio.wait({asyncio.wrap_future(f) for f in stuck}, timeout=10)
    deadline = time.monotonic() + 5
    while threading.active_count() > threads + 1 or len(os.listdir("/proc/self/fd")) > fds:
        assert time.monotonic() < deadline, (threading.active_count(), threads)
        await asyncio.sleep(0.05)


def test_without_xenapi_the_error_says_what_to_install(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - {name: xcp, driver: xapi, address: 127.0.0.1, user: u, password_env: P}\n")
    code = ("import sys; sys.modules['XenAPI'] = None; from vfleet.cli import main;"
            f"sys.exit(main(['-i', {str(inv)!r}, 'status']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == ExitCode.MISSING_DEPENDENCY
    assert run.stderr == "vfleet: the xapi driver needs the Python module 'XenAPI': pip install 'vfleet[xapi]'\n"


async def test_metrics_and_events_can_be_switched_off(pool: XapiServer) -> None:
    drv = registry.create_driver(config(pool, metrics=False, events=False))
    await drv.connect()
    try:
        domains = {d.name: d for d in (await drv.poll()).domains}
        stream = drv.events().__aiter__()
        with pytest.raises(TimeoutError):  # a feed that is off never yields (and never asks event.from)
            await asyncio.wait_for(stream.__anext__(), 0.3)
    finally:
        await drv.close()
    assert domains["web-01"].state is PowerState.RUNNING and domains["web-01"].gauges is None
    assert "/rrd_updates" not in pool.pool.calls and "event.from" not in pool.pool.calls


async def test_snapshot_round_and_delete_removes_only_disk_snapshots(driver: Driver, pool: XapiServer) -> None:
    store, target = pool.pool.store, DomainRef.named("halted-01")
    await driver.poll()
    for name in ("s1", "s2"):
        result = await driver.perform(Verb.SNAPSHOT_CREATE, target, params=SnapshotParams(name, memory=True))
        assert result.ok and result.message == "disk snapshot taken"  # halted: no memory to keep
    assert [s.name for s in await driver.snapshots(target)] == ["s1", "s2"]
    with pytest.raises(ActionFailed, match="a snapshot named 's1' exists"):
        await driver.perform(Verb.SNAPSHOT_CREATE, target, params=SnapshotParams("s1"))
    assert (await driver.perform(Verb.SNAPSHOT_REVERT, target, params=SnapshotParams("s1"))).ok
    assert [s.name for s in await driver.snapshots(target) if s.current] == ["s1"]
    with pytest.raises(ActionFailed, match="no snapshot named 'nope'"):
        await driver.perform(Verb.SNAPSHOT_DELETE, target, params=SnapshotParams("nope"))
    # s2 holds a snapshot of halted-01's disk; add a VBD naming the live disk itself, which must never go
    s2 = next(ref for ref in store.find("VM", name_label="s2"))
    live_vbd = store.get("VM", pool.pool.vm("halted-01"))["VBDs"][0]
    live_disk = store.get("VBD", live_vbd)["VDI"]
    (snap_disk,) = [store.get("VBD", v)["VDI"] for v in store.get("VM", s2)["VBDs"]]
    assert store.get("VDI", snap_disk)["is_a_snapshot"] and not store.get("VDI", live_disk)["is_a_snapshot"]
    rogue = store.add("VBD", {"VM": s2, "VDI": live_disk, "type": "Disk"})
    store.modify("VM", s2, VBDs=[*store.get("VM", s2)["VBDs"], rogue])
    deleted = await driver.perform(Verb.SNAPSHOT_DELETE, target, params=SnapshotParams("s2"))
    assert deleted.ok and deleted.message == "deleted with its 1 disk snapshot(s)", deleted
    assert pool.pool.calls.count("VDI.destroy") == 1  # the snapshot's disk only, never the live one
    assert snap_disk not in store.refs("VDI") and live_disk in store.refs("VDI")
    assert (await driver.perform(Verb.SNAPSHOT_DELETE, target, params=SnapshotParams("s1"))).ok
    assert await driver.snapshots(target) == ()


async def test_pool_migrate_through_the_core(pool: XapiServer, tmp_path: Path) -> None:
    """Pre-flight (a pool's nodes are its servers), audit, the driver, and the next poll's node."""
    async with Fleet([config(pool, name="xcp")]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=20), fleet.views()[0].health
        web = next(r.domain for r in fleet.views()[0].rows if r.domain.name == "web-01")
        ops = Operations(fleet, AuditLog(tmp_path / "audit.jsonl"), face="test")
        target = Target("xcp", web.name, web.key)
        same = ops.plan(Verb.MIGRATE, [target], params=MigrateParams("xcp", "xcp-a"))
        assert same.decisions[0].refused == "web-01 already runs on xcp/xcp-a"
        plan = ops.plan(Verb.MIGRATE, [target], params=MigrateParams("xcp", "xcp-b"))
        assert plan.decisions[0].dispatch and "server xcp-b" in plan.decisions[0].notes, plan.decisions[0]
        result = (await ops.run(plan, always)).results[0]
        assert result.ok and result.message == "now on xcp-b", result
        assert await fleet.wait_until(
            lambda v: any(r.domain.key == web.key and r.domain.node == "xcp-b" for r in v[0].rows), timeout=20
        )
        halted = next(r.domain for r in fleet.views()[0].rows if r.domain.name == "halted-01")
        refused = (await ops.run(ops.plan(Verb.MIGRATE, [Target("xcp", halted.name, halted.key)],
                                          params=MigrateParams("xcp", "xcp-b")), always)).results[0]
        assert not refused.ok and "pool_migrate moves a running VM" in refused.message


async def test_a_master_address_that_is_no_address_is_not_followed(pool: XapiServer) -> None:
    pool.pool.make_master(1)
    pool.pool.addresses = ("127.0.0.1", "evil/host?x=\u202e")  # what the member names as its master
    drv = registry.create_driver(config(pool))
    with pytest.raises(HostUnreachable, match=r"names no usable master \('evil/host\?x=\\\\u202e'\)"):
        await drv.connect()
    await drv.close()


async def test_a_memory_snapshot_of_a_running_vm_is_a_checkpoint(driver: Driver, pool: XapiServer) -> None:
    web = DomainRef.named("web-01")
    await driver.poll()
    taken = await driver.perform(Verb.SNAPSHOT_CREATE, web, params=SnapshotParams("live", memory=True))
    assert taken.ok and taken.message == "snapshot with memory taken" and taken.state_after is PowerState.RUNNING
    assert "Async.VM.checkpoint" in pool.pool.calls
    live = next(s for s in await driver.snapshots(web) if s.name == "live")
    assert live.memory is True and live.current


async def test_a_checkpoint_can_be_deleted(driver: Driver) -> None:
    web = DomainRef.named("web-01")
    await driver.poll()
    await driver.perform(Verb.SNAPSHOT_CREATE, web, params=SnapshotParams("live", memory=True))
    assert (await driver.perform(Verb.SNAPSHOT_DELETE, web, params=SnapshotParams("live"))).ok
    assert [s.name for s in await driver.snapshots(web)] == ["web-01 before upgrade"]


def test_act_suspends_and_resumes_a_pool_vm_and_a_second_suspend_is_a_no_op(pool: XapiServer, tmp_path: Path) -> None:
    """`vfleet act suspend` through the operations core on the pool (VM.suspend), then `resume` (VM.resume)."""
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        f"hosts:\n  - name: xcp\n    driver: xapi\n    address: 127.0.0.1\n    port: {pool.port}\n"
        f"    user: {pool.pool.user}\n    password_env: {PASSWORD_ENV}\n    tls: {{thumbprint: '{pool.cert.sha256}'}}\n"
    )
    env = {**os.environ, PASSWORD_ENV: pool.pool.password, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def act(verb: str) -> dict[str, Any]:
        run = subprocess.run(
            [sys.executable, "-m", "vfleet", "-i", str(inventory), "act", verb, "web-01", "--yes", "-o", "json",
             "--audit-log", str(tmp_path / "audit.jsonl")],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
        )
        assert run.returncode == 0, run.stderr
        result: dict[str, Any] = json.loads(run.stdout)["results"][0]
        return result

    assert act("suspend")["state_after"] == "suspended"
    assert pool.pool.store.get("VM", pool.pool.store.by_name("VM", "web-01"))["power_state"] == "Suspended"
    assert act("suspend")["result"] == "no-op"
    assert act("resume")["state_after"] == "running"
    verbs = [json.loads(line).get("verb") for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "suspend" in verbs and "resume" in verbs  # audited like every action
