"""The libvirt driver against libvirt's own test driver: scale, lifecycle, events.

The test driver runs inside libvirt itself (no daemon), each node XML file gives a
private host. It fills only the `state` stats group, so metrics are tested on real
QEMU guests (test_libvirt_qemu.py); here we test scale, states and lifecycle.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nodexml import PAUSED, RUNNING, SHUTOFF, many, write_node
from vfleet.core.engine import Fleet
from vfleet.core.errors import DomainNotFound, DriverError, PolicyRefused
from vfleet.core.models import DomainEvent, DomainRef, HostConfig, HostStatus, PowerState, Verb

pytestmark = pytest.mark.usefixtures("libvirt_module")


def config(path: Path, name: str = "test1", **kw: object) -> HostConfig:
    return HostConfig(name=name, driver="libvirt", uri=f"test://{path}", poll_interval=0.2, **kw)  # type: ignore[arg-type]


def driver_for(cfg: HostConfig, read_only: bool = False):  # type: ignore[no-untyped-def]
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    return LibvirtDriver(cfg, read_only=read_only)


async def next_event(events: object, want: str, timeout: float = 5.0) -> DomainEvent:
    async def find() -> DomainEvent:
        async for event in events:  # type: ignore[attr-defined]
            if event.kind == want:
                return event  # type: ignore[no-any-return]
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(find(), timeout)


async def test_hundreds_of_domains_in_one_poll(tmp_path: Path) -> None:
    node = write_node(tmp_path / "node.xml", many("vm", 600))
    driver = driver_for(config(node))
    facts = await driver.connect()
    try:
        snapshot = await driver.poll()
    finally:
        await driver.close()
    assert facts.cpus == 16 and facts.hypervisor == "test"
    states = {d.name: d.state for d in snapshot.domains}
    assert len(states) == 600
    expected = {name: {RUNNING: PowerState.RUNNING, PAUSED: PowerState.PAUSED, SHUTOFF: PowerState.OFF}[s]
                for name, s in many("vm", 600)}
    assert states == expected
    off = next(d for d in snapshot.domains if d.state is PowerState.OFF)
    assert off.domain_id is None and off.counters is None
    assert all(d.uuid for d in snapshot.domains)


async def test_lifecycle_verbs_change_state_and_raise_events(tmp_path: Path) -> None:
    node = write_node(tmp_path / "node.xml", [("a", RUNNING), ("b", SHUTOFF)])
    driver = driver_for(config(node))
    await driver.connect()
    events = driver.events()
    try:
        steps = [
            (Verb.PAUSE, "a", PowerState.PAUSED, "suspended"),
            (Verb.RESUME, "a", PowerState.RUNNING, "resumed"),
            (Verb.RESET, "a", PowerState.RUNNING, None),
            (Verb.REBOOT, "a", PowerState.RUNNING, None),
            (Verb.SHUTDOWN, "a", PowerState.OFF, "stopped"),  # the test driver powers off at once
            (Verb.START, "a", PowerState.RUNNING, "started"),
            (Verb.FORCE_OFF, "a", PowerState.OFF, "stopped"),
            (Verb.START, "b", PowerState.RUNNING, "started"),
        ]
        for verb, name, state, event_kind in steps:
            result = await driver.perform(verb, DomainRef.named(name))
            assert result.ok and result.state_after is state, (verb, result)
            if event_kind:
                event = await next_event(events, event_kind)
                assert event.domain == name and event.host == "test1"
        snapshot = await driver.poll()
        assert {d.name: d.state for d in snapshot.domains} == {"a": PowerState.OFF, "b": PowerState.RUNNING}
    finally:
        await driver.close()


async def test_action_errors_are_typed(tmp_path: Path) -> None:
    node = write_node(tmp_path / "node.xml", [("a", SHUTOFF)])
    driver = driver_for(config(node))
    await driver.connect()
    try:
        with pytest.raises(DomainNotFound, match=r"test1: .*nope"):
            await driver.perform(Verb.START, DomainRef.named("nope"))
        with pytest.raises(DriverError, match=r"test1: .*not running"):
            await driver.perform(Verb.PAUSE, DomainRef.named("a"))
    finally:
        await driver.close()


async def test_read_only_host_refuses_actions_and_still_polls(tmp_path: Path) -> None:
    node = write_node(tmp_path / "node.xml", [("a", RUNNING)])
    driver = driver_for(config(node), read_only=True)
    await driver.connect()
    try:
        with pytest.raises(PolicyRefused, match="read-only"):
            await driver.perform(Verb.FORCE_OFF, DomainRef.named("a"))
        assert (await driver.poll()).domains[0].state is PowerState.RUNNING
    finally:
        await driver.close()


async def test_fleet_of_test_hosts_sees_events_and_new_state(tmp_path: Path) -> None:
    hosts = [config(write_node(tmp_path / f"n{i}.xml", many(f"h{i}-", 200)), name=f"t{i}") for i in range(3)]
    fleet = Fleet(hosts)
    seen: list[DomainEvent] = []
    fleet.on_event(seen.append)
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 1 for x in v), timeout=10)
        assert [len(v.rows) for v in fleet.views()] == [200, 200, 200]
        driver = fleet.driver("t1")
        assert driver is not None
        await driver.perform(Verb.PAUSE, DomainRef.named("h1-0001"))
        assert await fleet.wait_until(
            lambda v: any(r.domain.name == "h1-0001" and r.domain.state is PowerState.PAUSED for r in v[1].rows),
            timeout=5,
        )
    assert any(e.domain == "h1-0001" and e.kind == "suspended" for e in seen)
    assert all(v.health.status is not HostStatus.DOWN for v in fleet.views())


async def test_unreachable_uri_is_a_clear_error(tmp_path: Path) -> None:
    fleet = Fleet([config(tmp_path / "missing.xml", name="ghost")])
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.DOWN, timeout=10)
        error = fleet.view("ghost").health.last_error or ""
    assert error.startswith("ghost: ") and "missing.xml" in error and "\n" not in error


class _WithoutBulkStats:
    """A real test-driver connection whose getAllDomainStats fails the way libxl's does:
    with a genuine VIR_ERR_NO_SUPPORT error raised by libvirt (from an API the test
    driver does not implement), everything else passing through."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self.bulk_calls = 0

    def getAllDomainStats(self, *_args: object) -> object:
        self.bulk_calls += 1
        return self._conn.getMemoryStats(-1, 0)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


async def test_falls_back_to_per_domain_stats_on_no_support(tmp_path: Path) -> None:
    node = write_node(tmp_path / "node.xml", [("a", RUNNING), ("b", SHUTOFF), ("c", PAUSED)])
    driver = driver_for(config(node))
    await driver.connect()
    proxy = _WithoutBulkStats(driver._conn)
    driver._conn = proxy  # type: ignore[assignment]
    try:
        first = await driver.poll()
        second = await driver.poll()
    finally:
        driver._conn = proxy._conn  # type: ignore[assignment]
        await driver.close()
    assert proxy.bulk_calls == 1  # asked once, then remembered that the host cannot
    for snapshot in (first, second):
        by_name = {d.name: d for d in snapshot.domains}
        assert {n: d.state for n, d in by_name.items()} == {
            "a": PowerState.RUNNING, "b": PowerState.OFF, "c": PowerState.PAUSED}
        a = by_name["a"]
        # the per-domain path reads what the test driver has: vCPUs, memory, CPU time, devices
        assert a.vcpus == 1 and a.memory_max_bytes == 131072 * 1024
        assert a.counters is not None and a.counters.cpu_time_ns is not None
        assert a.counters.disk_read_bytes is not None and a.counters.net_rx_bytes is not None
        assert by_name["b"].counters is None


async def test_unchanged_domains_come_back_as_the_same_objects_and_changed_ones_do_not(tmp_path: Path) -> None:
    """Issue 12: the engine's short path keys on identity; a paused domain must not look unchanged."""
    node = write_node(tmp_path / "node.xml", [("steady", RUNNING), ("moving", RUNNING), ("off", SHUTOFF)])
    driver = driver_for(config(node))
    await driver.connect()
    try:
        first = {d.name: d for d in (await driver.poll()).domains}
        second = {d.name: d for d in (await driver.poll()).domains}
        assert all(second[name] is first[name] for name in first), "nothing changed: the same Domains"
        await driver.perform(Verb.PAUSE, DomainRef.of(first["moving"]))
        third = {d.name: d for d in (await driver.poll()).domains}
    finally:
        await driver.close()
    assert third["moving"] is not second["moving"] and third["moving"].state is PowerState.PAUSED
    assert third["steady"] is second["steady"] and third["off"] is second["off"]
    assert third["off"].domain_id is None and third["steady"].domain_id is not None


async def test_a_domain_redefined_or_restarted_between_polls_shows_its_new_uuid_and_id(tmp_path: Path) -> None:
    """The bulk poll knows a domain's uuid and id by its name until a lifecycle event says otherwise."""
    import uuid

    from nodexml import domain_xml

    node = write_node(tmp_path / "node.xml", [("twin", SHUTOFF), ("runner", RUNNING)])
    driver = driver_for(config(node))
    await driver.connect()
    events = driver.events()
    conn = driver._conn
    assert conn is not None
    try:
        first = {d.name: d for d in (await driver.poll()).domains}
        # Same name, same (off) stats, another domain: only the events tell.
        conn.lookupByName("twin").undefine()
        replacement = domain_xml("twin", runstate=SHUTOFF).replace(
            str(uuid.uuid5(uuid.NAMESPACE_DNS, "twin")), str(uuid.uuid4())
        )
        conn.defineXML(replacement)
        await next_event(events, "defined")
        dom = conn.lookupByName("runner")
        dom.destroy()
        dom.create()  # a new id; its (state-only) stats are as they were
        await next_event(events, "started")
        second = {d.name: d for d in (await driver.poll()).domains}
    finally:
        await driver.close()
    assert second["twin"].uuid != first["twin"].uuid and second["twin"].uuid == conn_uuid(replacement)
    assert second["runner"].domain_id != first["runner"].domain_id
    assert second["runner"].uuid == first["runner"].uuid


def conn_uuid(xml: str) -> str:
    return xml.split("<uuid>")[1].split("</uuid>")[0]
