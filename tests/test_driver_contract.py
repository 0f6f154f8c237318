"""One contract, every driver (as napalm's shared getter tests): each backend runs against
the most real thing this machine has: libvirt's test driver, SSH test hosts serving real
Xen and documented ESXi outputs, VMware's vcsim, and the simulator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from conftest import need_backend
from nodexml import PAUSED, RUNNING, SHUTOFF, write_node
from sshhost import EsxiHost, Keys, SshTestServer, XenHost
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, start_vcsim
from vfleet.core.errors import DriverError, DriverTimeout, PolicyRefused, UnsupportedAction
from vfleet.core.models import DomainCounters, DomainRef, HostConfig, PowerState, TlsSettings, Verb
from vfleet.drivers.base import Capability, Driver, capability_for
from vfleet.drivers.registry import create_driver

PASSWORD_ENV = "VFLEET_CONTRACT_ESX_PASSWORD"


@dataclass
class Subject:
    config: HostConfig

    def driver(self, read_only: bool = False) -> Driver:
        return create_driver(self.config, read_only=read_only)


@pytest.fixture(params=["sim", "libvirt", "xen_xl", "esxi_ssh", "esxi_api"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Subject]:
    kind = request.param
    cleanup: list[Callable[[], object]] = []
    if kind == "sim":
        config = HostConfig(name="sim1", driver="sim", options={"domains": 8, "seed": 3, "latency": 0.001})
    elif kind == "libvirt":
        request.getfixturevalue("libvirt_module")
        node = write_node(tmp_path / "node.xml", [("c1", RUNNING), ("c2", SHUTOFF), ("c3", PAUSED)])
        config = HostConfig(name="lv1", driver="libvirt", uri=f"test://{node}")
    elif kind in ("xen_xl", "esxi_ssh"):
        server = await SshTestServer(XenHost() if kind == "xen_xl" else EsxiHost(), Keys.generate(), tmp_path).start()
        config = server.config(name=f"{kind}1", driver=kind)
        cleanup.append(server.close)
    else:
        need_backend(f"vcsim ({VCSIM_BIN})", VCSIM_BIN.exists())
        sim = start_vcsim(tmp_path / "vcsim", "-model", "esx", "-vm", "3")
        cleanup.append(sim.stop)
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        config = HostConfig(name="esx1", driver="esxi_api", address=sim.address, port=sim.port, user=USER,
                            password_env=PASSWORD_ENV, tls=TlsSettings(thumbprint=sim.sha256))
    yield Subject(config)
    for step in reversed(cleanup):
        result = step()
        if hasattr(result, "__await__"):
            await result  # type: ignore[misc]


async def test_connect_poll_and_close(subject: Subject) -> None:
    driver = subject.driver()
    facts = await driver.connect()
    try:
        first = await driver.poll()
        second = await driver.poll()
    finally:
        await driver.close()
        await driver.close()  # twice is harmless
    assert facts.hypervisor and (facts.cpus is None or facts.cpus > 0)
    assert first.host == second.host == subject.config.name and first.domains
    keys = [d.key for d in first.domains]
    assert len(keys) == len(set(keys)), "domain keys must be unique within a host"
    for dom in first.domains:
        assert isinstance(dom.state, PowerState) and dom.raw_state.strip(), dom
        for number in (dom.vcpus, dom.memory_max_bytes, dom.memory_used_bytes, dom.uptime_s):
            assert number is None or number >= 0, dom
        assert (dom.memory_used_bytes is None) == (dom.memory_used_source is None), dom
        if dom.state is PowerState.OFF:  # nothing runs, so nothing is measured: None, never 0
            assert dom.counters is None and dom.memory_used_bytes is None, dom
    before = {d.key: d.counters for d in first.domains if d.counters}
    for dom in second.domains:  # counters are cumulative: they never go back on a running domain
        old = before.get(dom.key)
        if old is None or dom.counters is None or dom.state is not PowerState.RUNNING:
            continue
        for field in fields(DomainCounters):
            a, b = getattr(old, field.name), getattr(dom.counters, field.name)
            if field.name != "taken_at" and a is not None and b is not None:
                assert b >= a, (dom.name, field.name, a, b)


async def test_a_deadline_is_honoured_even_when_it_has_passed(subject: Subject) -> None:
    """The caller's deadline, not the host's call_timeout, bounds every call: a spent one fails at once."""
    driver = subject.driver()
    await driver.connect()
    try:
        target = (await driver.poll()).domains[-1]
        started = time.monotonic()
        with pytest.raises(DriverTimeout):
            await driver.poll(deadline=started - 1)
        with pytest.raises(DriverTimeout):
            await driver.perform(Verb.FORCE_OFF, DomainRef.of(target), deadline=started - 1)
        assert time.monotonic() - started < 1.0
        after = {d.key: d.state for d in (await driver.poll()).domains}
        assert after[target.key] is target.state  # nothing was done
    finally:
        await driver.close()
    late = subject.driver()
    with pytest.raises(DriverTimeout):
        await late.connect(deadline=time.monotonic() - 1)
    await late.close()


async def test_capabilities_are_declared_and_honoured(subject: Subject) -> None:
    driver = subject.driver()
    await driver.connect()
    try:
        running = next(d.name for d in (await driver.poll()).domains if d.state is PowerState.RUNNING)
        for verb in Verb:
            if capability_for(verb) not in type(driver).capabilities:
                with pytest.raises(UnsupportedAction, match=f"^{subject.config.name}: "):
                    await driver.perform(verb, DomainRef.named(running))
    finally:
        await driver.close()
    assert Capability.START in type(driver).capabilities and Capability.FORCE_OFF in type(driver).capabilities


async def test_unknown_domain_is_a_one_line_typed_error(subject: Subject) -> None:
    driver = subject.driver()
    await driver.connect()
    try:
        with pytest.raises(DriverError) as caught:
            await driver.perform(Verb.FORCE_OFF, DomainRef.named("no-such-domain-4711"))
    finally:
        await driver.close()
    message = str(caught.value)
    assert message.startswith(f"{subject.config.name}: ") and "\n" not in message


async def test_read_only_driver_refuses_every_verb_and_still_polls(subject: Subject) -> None:
    driver = subject.driver(read_only=True)
    await driver.connect()
    try:
        domains = (await driver.poll()).domains
        running = next(d for d in domains if d.state is PowerState.RUNNING)
        for verb in Verb:
            if capability_for(verb) in type(driver).capabilities:
                with pytest.raises(PolicyRefused, match="read-only"):
                    await driver.perform(verb, DomainRef.named(running.name))
        after = {d.key: d.state for d in (await driver.poll()).domains}
    finally:
        await driver.close()
    assert after[running.key] is PowerState.RUNNING
