"""The esxi_api driver against vcsim (VMware's simulator, built by testbed/vcsim.sh).

Every simulator here is a real SOAP server on loopback with its own self-signed
certificate: login, TLS, PropertyCollector, QueryPerf, tasks and faults are the
real protocol. The mapping helpers are also tested on their own at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import need_backend
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim
from vfleet.core.engine import Fleet
from vfleet.core.errors import (
    ActionFailed,
    AuthFailed,
    DomainNotFound,
    DriverBusy,
    DriverTimeout,
    HostUnreachable,
    PolicyRefused,
)
from vfleet.core.models import Domain, DomainRef, HostConfig, HostStatus, MemorySource, PowerState, TlsSettings, Verb
from vfleet.drivers.esxi import vsphere_map as vm_map
from vfleet.drivers.tls import parse_thumbprint

PASSWORD_ENV = "VFLEET_TEST_VCSIM_PASSWORD"
WRONG_PASSWORD = "Wr0ng-Secret-4711"


@pytest.fixture(scope="session")
def vcsim_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("pyVmomi")
    need_backend(f"vcsim binary {VCSIM_BIN} (testbed/vcsim.sh build)", VCSIM_BIN.exists())
    started: list[Vcsim] = []

    def start(*args: str) -> Vcsim:
        sim = start_vcsim(tmp_path_factory.mktemp("vcsim"), *args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="session")
def esx300(vcsim_factory) -> Vcsim:  # type: ignore[no-untyped-def]
    return vcsim_factory("-model", "esx", "-vm", "300")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def vpx(vcsim_factory) -> Vcsim:  # type: ignore[no-untyped-def]
    return vcsim_factory("-model", "vpx", "-vm", "3", "-cluster-hosts", "3")  # type: ignore[no-any-return]


@pytest.fixture
def esx(vcsim_factory) -> Vcsim:  # type: ignore[no-untyped-def]
    """A private small ESXi per test: lifecycle tests change state."""
    return vcsim_factory("-model", "esx", "-vm", "2")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def config(sim: Vcsim, *, name: str = "esx1", pin: bool = True, **kw: object) -> HostConfig:
    tls = kw.pop("tls", TlsSettings(thumbprint=sim.sha256) if pin else TlsSettings())
    values: dict[str, object] = {
        "address": sim.address, "port": sim.port, "user": USER, "password_env": PASSWORD_ENV, "tls": tls,
        "poll_interval": 0.2, "call_timeout": 5.0, "connect_timeout": 5.0,
    }
    values.update(kw)
    return HostConfig(name=name, driver="esxi_api", **values)  # type: ignore[arg-type]


def driver_for(cfg: HostConfig, read_only: bool = False):  # type: ignore[no-untyped-def]
    from vfleet.drivers.esxi.api import EsxiApiDriver

    return EsxiApiDriver(cfg, read_only=read_only)


# -- models: ESXi and vCenter ---------------------------------------------------------


async def test_esxi_host_with_300_vms_is_polled_in_one_round_trip(esx300: Vcsim) -> None:
    driver = driver_for(config(esx300))
    facts = await driver.connect()
    try:
        driver.calls.clear()
        started = time.perf_counter()
        first = await driver.poll()
        first_s = time.perf_counter() - started
        first_calls = dict(driver.calls)
        driver.calls.clear()
        started = time.perf_counter()
        second = await driver.poll()
        second_s = time.perf_counter() - started
        second_calls = dict(driver.calls)
    finally:
        await driver.close()
    print(f"\n300 VMs: vcsim start {esx300.started_in_s * 1000:.0f} ms, "
          f"poll {first_s * 1000:.0f} ms (with QueryPerf), {second_s * 1000:.0f} ms (properties only)")
    # One property read for every VM and host; realtime counters at most once per 20 s sample.
    assert first_calls == {"RetrievePropertiesEx": 1, "QueryPerf": 1}
    assert second_calls == {"RetrievePropertiesEx": 1}
    assert second_s < 2.0
    assert facts.hypervisor == "esxi" and "ESXi" in (facts.version or "")
    assert facts.cpus and facts.cpus > 0 and facts.memory_bytes and facts.memory_bytes > 2**30
    assert len(first.domains) == esx300.vms == 300
    assert len({d.uuid for d in first.domains}) == 300
    assert all(d.state is PowerState.RUNNING and d.raw_state == "poweredOn" for d in first.domains)
    vm = first.domains[0]
    assert vm.vcpus == 1 and vm.memory_max_bytes == 32 * 2**20
    # vcsim leaves quickStats empty: unknown stays None, never a made-up 0
    assert vm.memory_used_bytes is None and vm.memory_used_source is None and vm.memory_current_bytes is None
    assert vm.uptime_s is not None and 0 <= vm.uptime_s < 600  # from runtime.bootTime
    assert vm.gauges is not None and vm.gauges.cpu_percent is not None and vm.gauges.disk_read_bps is not None
    assert vm.gauges.contention_percent is not None and 0 <= vm.gauges.contention_percent <= 100
    # the perf sample is reused between 20 s samples, not dropped
    assert {d.key: d.gauges for d in second.domains} == {d.key: d.gauges for d in first.domains}


async def test_vcenter_host_covers_every_esxi_host_and_vm(vpx: Vcsim) -> None:
    driver = driver_for(config(vpx, name="vc1"))
    facts = await driver.connect()
    try:
        snapshot = await driver.poll()
    finally:
        await driver.close()
    assert vpx.hosts == 4  # one standalone host + a cluster of 3
    assert "vCenter" in (facts.version or "") and facts.hypervisor == "esxi"
    assert facts.hostname == vpx.address  # many hosts: the inventory host is the vCenter
    single_host_cpus = 2  # vcsim's HostSystem template
    assert facts.cpus == single_host_cpus * vpx.hosts
    assert len(snapshot.domains) == vpx.vms and vpx.vms > 3
    assert snapshot.facts == facts


# -- credentials and TLS -------------------------------------------------------------


async def test_wrong_password_is_auth_failed_and_never_shown(
    esx300: Vcsim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, WRONG_PASSWORD)
    caplog.set_level(logging.DEBUG)
    driver = driver_for(config(esx300))
    with pytest.raises(AuthFailed) as failure:
        await driver.connect()
    await driver.close()
    message = str(failure.value)
    assert message.startswith("esx1: ") and "refused" in message and USER in message
    assert WRONG_PASSWORD not in message and WRONG_PASSWORD not in repr(failure.value.__cause__)
    assert WRONG_PASSWORD not in caplog.text


async def test_missing_password_variable_names_it(esx300: Vcsim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    driver = driver_for(config(esx300))
    with pytest.raises(AuthFailed, match=f"esx1: .*{PASSWORD_ENV}.* not set"):
        await driver.connect()
    await driver.close()


async def test_default_tls_verification_rejects_the_self_signed_cert(esx300: Vcsim) -> None:
    driver = driver_for(config(esx300, pin=False))
    with pytest.raises(AuthFailed) as failure:
        await driver.connect()
    await driver.close()
    message = str(failure.value)
    assert "not trusted" in message and "tls.thumbprint" in message and "tls.ca_file" in message
    assert esx300.sha256 in message  # what the server showed, to check out of band and pin


@pytest.mark.parametrize("how", ["sha256", "sha1", "sha256-plain-lowercase", "ca_file"])
async def test_pinned_or_ca_verified_cert_connects_without_warnings(esx300: Vcsim, how: str) -> None:
    tls = {
        "sha256": TlsSettings(thumbprint=esx300.sha256),
        "sha1": TlsSettings(thumbprint=esx300.sha1),
        "sha256-plain-lowercase": TlsSettings(thumbprint=esx300.sha256.replace(":", "").lower()),
        "ca_file": TlsSettings(ca_file=str(esx300.cert)),
    }[how]
    driver = driver_for(config(esx300, tls=tls))
    try:
        facts = await driver.connect()
        assert len((await driver.poll()).domains) == 300
    finally:
        await driver.close()
    assert facts.hypervisor == "esxi" and driver.warnings == []


async def test_wrong_pin_fails_clearly(esx300: Vcsim) -> None:
    wrong = "AA:" * 31 + "AA"
    driver = driver_for(config(esx300, tls=TlsSettings(thumbprint=wrong, insecure=True)))
    with pytest.raises(AuthFailed, match=r"does not match tls.thumbprint") as failure:
        await driver.connect()
    await driver.close()
    assert esx300.sha256 in str(failure.value)
    bad = driver_for(config(esx300, tls=TlsSettings(thumbprint="not-a-fingerprint")))
    with pytest.raises(AuthFailed, match="neither a SHA-256"):
        await bad.connect()
    await bad.close()


async def test_insecure_connects_and_is_flagged(esx300: Vcsim) -> None:
    driver = driver_for(config(esx300, tls=TlsSettings(insecure=True)))
    try:
        await driver.connect()
        assert len((await driver.poll()).domains) == 300
    finally:
        await driver.close()
    assert driver.warnings and "verification is OFF" in driver.warnings[0]


async def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    pytest.importorskip("pyVmomi")
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = HostConfig(name="gone", driver="esxi_api", address="127.0.0.1", port=port, user=USER,
                     password_env=PASSWORD_ENV, connect_timeout=5.0)
    driver = driver_for(cfg)
    with pytest.raises(HostUnreachable, match=f"gone: .*127.0.0.1:{port}"):
        await driver.connect()
    await driver.close()


# -- lifecycle and faults ------------------------------------------------------------


async def test_lifecycle_with_state_read_back(esx: Vcsim) -> None:
    driver = driver_for(config(esx))
    await driver.connect()
    try:
        name = (await driver.poll()).domains[0].name

        async def polled(verb: Verb) -> Domain:
            domain: Domain = next(d for d in (await driver.poll()).domains if d.name == name)
            # a VM that runs again gets fresh realtime metrics at once, not after the next 20 s sample
            assert (domain.gauges is not None) is (domain.state is PowerState.RUNNING), verb
            return domain

        steps = [
            (Verb.FORCE_OFF, PowerState.OFF),
            (Verb.START, PowerState.RUNNING),
            (Verb.PAUSE, PowerState.SUSPENDED),  # PAUSE = SuspendVM_Task
            (Verb.RESUME, PowerState.RUNNING),  # RESUME = PowerOnVM_Task of a suspended VM
            (Verb.RESET, PowerState.RUNNING),
            (Verb.SHUTDOWN, PowerState.OFF),  # vcsim's ShutdownGuest powers off at once
            (Verb.START, PowerState.RUNNING),
        ]
        for verb, state in steps:
            result = await driver.perform(verb, DomainRef.named(name))
            assert result.ok and result.state_after is state, (verb, result)
            assert (await polled(verb)).state is state, verb

        before = next(d for d in (await driver.poll()).domains if d.name == name)
        assert before.uptime_s is not None
        reboot = await driver.perform(Verb.REBOOT, DomainRef.named(name))
        after = next(d for d in (await driver.poll()).domains if d.name == name)
        assert reboot.state_after is PowerState.RUNNING and "reboot" in reboot.message
        assert after.uptime_s is not None and after.uptime_s < before.uptime_s  # a new boot time

        with pytest.raises(ActionFailed, match="poweredOn"):
            await driver.perform(Verb.START, DomainRef.named(name))  # InvalidPowerState from the server
        await driver.perform(Verb.FORCE_OFF, DomainRef.named(name))
        with pytest.raises(ActionFailed, match="only a suspended VM can be resumed"):
            await driver.perform(Verb.RESUME, DomainRef.named(name))
        with pytest.raises(ActionFailed, match="poweredOff"):
            await driver.perform(Verb.REBOOT, DomainRef.named(name))
        with pytest.raises(DomainNotFound, match=r"esx1: .*no-such-vm"):
            await driver.perform(Verb.START, DomainRef.named("no-such-vm"))
    finally:
        await driver.close()


async def test_action_by_uuid_before_any_poll(esx: Vcsim) -> None:
    reader = driver_for(config(esx))
    await reader.connect()
    try:
        target = (await reader.poll()).domains[1]
    finally:
        await reader.close()
    driver = driver_for(config(esx))
    await driver.connect()
    try:
        assert target.uuid
        result = await driver.perform(Verb.PAUSE, DomainRef.named(target.uuid))
    finally:
        await driver.close()
    assert result.state_after is PowerState.SUSPENDED


async def test_read_only_refuses_actions(esx: Vcsim) -> None:
    driver = driver_for(config(esx), read_only=True)
    await driver.connect()
    try:
        name = (await driver.poll()).domains[0].name
        with pytest.raises(PolicyRefused, match="read-only"):
            await driver.perform(Verb.FORCE_OFF, DomainRef.named(name))
        assert driver.calls["PowerOffVM_Task"] == 0
    finally:
        await driver.close()


async def test_free_license_fault_suggests_esxi_ssh(vcsim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = vcsim_factory("-model", "esx", "-vm", "1", "-fault", "restricted")
    driver = driver_for(config(sim))
    await driver.connect()
    try:
        name = (await driver.poll()).domains[0].name
        with pytest.raises(ActionFailed, match=r"RestrictedVersion.*use the esxi_ssh driver"):
            await driver.perform(Verb.FORCE_OFF, DomainRef.named(name))
    finally:
        await driver.close()


async def test_missing_privilege_is_named(vcsim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = vcsim_factory("-model", "esx", "-vm", "1", "-fault", "noperm")
    driver = driver_for(config(sim))
    await driver.connect()
    try:
        name = (await driver.poll()).domains[0].name
        with pytest.raises(ActionFailed, match=r"permission denied: .*VirtualMachine.Interact.Reset"):
            await driver.perform(Verb.RESET, DomainRef.named(name))
    finally:
        await driver.close()


async def test_hung_server_times_out_then_recovers(esx: Vcsim) -> None:
    driver = driver_for(config(esx, call_timeout=1.0))
    await driver.connect()
    try:
        esx.pause()  # SIGSTOP: the TCP connection stays open, nobody answers
        try:
            with pytest.raises(DriverTimeout, match="esx1: poll: no answer"):
                await driver.poll()
            with pytest.raises(DriverBusy):
                await driver.poll()
        finally:
            esx.resume()
        stuck = driver._pool.stuck_futures()
        assert len(stuck) == 1
        # the hung call ends (its socket timeout, or the answer once the server runs); then polls work again
        _, pending = await asyncio.wait({asyncio.wrap_future(f) for f in stuck}, timeout=10)
        assert not pending
        assert len((await driver.poll()).domains) == 2
    finally:
        await driver.close()


async def test_close_logs_the_session_out(esx: Vcsim) -> None:
    from pyVmomi import vim

    driver = driver_for(config(esx))
    await driver.connect()
    content = driver._content
    assert content.sessionManager.currentSession is not None
    await driver.close()
    with pytest.raises(vim.fault.NotAuthenticated):
        content.sessionManager.currentSession  # noqa: B018 - a property read is a SOAP call


# -- the fleet engine over an esxi_api host -------------------------------------------


async def test_fleet_over_esxi_api_host(esx300: Vcsim, vpx: Vcsim) -> None:
    fleet = Fleet([config(esx300, name="esx300"), config(vpx, name="vc1")])
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 2 for x in v), timeout=20)
        views = {v.name: v for v in fleet.views()}
    assert views["esx300"].health.status is HostStatus.UP and len(views["esx300"].rows) == 300
    assert views["vc1"].health.status is HostStatus.UP and len(views["vc1"].rows) == vpx.vms
    assert views["vc1"].facts is not None and "vCenter" in (views["vc1"].facts.version or "")
    row = views["esx300"].rows[0]
    assert row.domain.state is PowerState.RUNNING


async def test_fleet_marks_wrong_password_auth_failed(esx300: Vcsim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, WRONG_PASSWORD)
    fleet = Fleet([config(esx300, name="locked")])
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.AUTH_FAILED, timeout=10)
        error = fleet.view("locked").health.last_error or ""
    assert "refused" in error and WRONG_PASSWORD not in error
    assert os.environ[PASSWORD_ENV] == WRONG_PASSWORD


# -- pure mapping (no server) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [("poweredOn", PowerState.RUNNING), ("poweredOff", PowerState.OFF), ("suspended", PowerState.SUSPENDED),
     ("standby", PowerState.UNKNOWN), (None, PowerState.UNKNOWN)],
)
def test_every_power_state_maps_explicitly(raw: str | None, state: PowerState) -> None:
    assert vm_map.power_state(raw) == (state, raw or "unknown")


NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def props(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "web 1", "config.uuid": "bios-uuid", "config.instanceUuid": "instance-uuid",
        "runtime.powerState": "poweredOn", "summary.config.numCpu": 2, "summary.config.memorySizeMB": 4096,
    }
    base.update({k.replace("__", "."): v for k, v in extra.items()})
    return base


def test_zero_quickstats_are_unknown_not_zero() -> None:
    domain = vm_map.domain_from_props(props(**{
        "summary.quickStats.guestMemoryUsage": 0, "summary.quickStats.hostMemoryUsage": 0,
        "summary.quickStats.overallCpuUsage": 0, "summary.quickStats.uptimeSeconds": 0, "runtime.maxCpuUsage": 4000,
    }), NOW)
    assert domain is not None and domain.uuid == "instance-uuid"
    assert domain.memory_used_bytes is None and domain.memory_current_bytes is None
    assert domain.gauges is None and domain.uptime_s is None  # quickStats not populated: no CPU from 0 MHz


def test_populated_quickstats_map_with_their_source() -> None:
    domain = vm_map.domain_from_props(props(**{
        "summary.quickStats.guestMemoryUsage": 512, "summary.quickStats.hostMemoryUsage": 3000,
        "summary.quickStats.overallCpuUsage": 0, "summary.quickStats.uptimeSeconds": 3600,
        "runtime.maxCpuUsage": 4000, "runtime.bootTime": NOW - timedelta(hours=5),
    }), NOW)
    assert domain is not None
    assert domain.memory_used_bytes == 512 * 2**20 and domain.memory_used_source is MemorySource.HYPERVISOR
    assert domain.memory_current_bytes == 3000 * 2**20 and domain.memory_max_bytes == 4096 * 2**20
    assert domain.gauges is not None and domain.gauges.cpu_percent == 0.0  # idle is a real 0 here
    assert domain.uptime_s == 3600.0  # quickStats win over bootTime


def test_stopped_vm_has_no_usage_and_templates_are_skipped() -> None:
    off = vm_map.domain_from_props(props(**{"runtime.powerState": "poweredOff",
                                            "summary.quickStats.guestMemoryUsage": 100}), NOW)
    assert off is not None and off.state is PowerState.OFF and off.memory_used_bytes is None and off.uptime_s is None
    assert vm_map.domain_from_props(props(**{"config.template": True}), NOW) is None


def test_perf_gauges_units() -> None:
    sample = vm_map.PerfSample({"cpu.usage.average": 2550, "cpu.ready.summation": 400, "disk.read.average": 10,
                                "disk.write.average": -1, "net.received.average": 3, "net.transmitted.average": 0})
    gauges = vm_map.gauges_from_perf(sample, vcpus=2)
    assert gauges is not None
    assert gauges.cpu_percent == 25.5
    assert gauges.contention_percent == 1.0  # 400 ms ready of 2 vCPUs x 20 s
    assert gauges.disk_read_bps == 10 * 1024 and gauges.disk_write_bps is None  # -1: no data this interval
    assert gauges.net_rx_bps == 3 * 1024 and gauges.net_tx_bps == 0.0


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [("AB:" * 31 + "AB", "sha256"), ("ab" * 20, "sha1"), ("SHA256 Fingerprint=" + "0F:" * 31 + "0F", "sha256")],
)
def test_thumbprint_forms(text: str, algorithm: str) -> None:
    assert parse_thumbprint(text)[0] == algorithm


def test_bad_thumbprint_is_rejected() -> None:
    with pytest.raises(ValueError, match="neither"):
        parse_thumbprint("ab" * 19)
