"""The libvirt driver against a real libvirtd running real QEMU (TCG) Linux guests.

The guests (testbed/guests-up.sh) are a Debian cloud kernel with a busybox initramfs
that reads and writes its disk, sends packets and burns a little CPU every second,
and powers off on the ACPI power button.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from vfleet.core.engine import Fleet, HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import Domain, DomainEvent, DomainRef, HostConfig, HostStatus, MemorySource, PowerState, Verb
from vfleet.drivers.base import Driver

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def guests(testbed: dict[str, str], libvirt_module: object) -> list[str]:
    """The testbed's guests, each running (a previous test may have stopped one)."""
    import libvirt

    names = testbed["VFLEET_GUESTS"].split(",")
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    try:
        for name in names:
            dom = conn.lookupByName(name)
            state = dom.state()[0]
            if state == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            elif state != libvirt.VIR_DOMAIN_RUNNING:
                dom.create()
    finally:
        conn.close()
    return names


def qemu_host(testbed: dict[str, str], interval: float = 1.0) -> HostConfig:
    return HostConfig(name="qemu", driver="libvirt", uri=testbed["VFLEET_QEMU_URI"], poll_interval=interval,
                      connect_timeout=15, call_timeout=15)


def row(view: HostView, name: str) -> DomainRow | None:
    return next((r for r in view.rows if r.domain.name == name), None)


async def test_real_guests_report_plausible_metrics(testbed: dict[str, str], guests: list[str]) -> None:
    fleet = Fleet([qemu_host(testbed)], history=True)

    def active(views: list[HostView]) -> bool:
        rows = [row(views[0], g) for g in guests]
        return all(
            r is not None and (r.rates.disk_write_bps or 0) > 0 and (r.rates.disk_read_bps or 0) > 0
            and (r.rates.net_tx_bps or 0) > 0 and r.domain.memory_used_source is MemorySource.GUEST
            for r in rows
        )

    async with fleet:
        assert await fleet.wait_until(active, timeout=60), [
            (r.domain.name, r.rates, r.domain.memory_used_source) for r in fleet.view("qemu").rows
        ]
        view = fleet.view("qemu")
    assert view.health.status is HostStatus.UP and view.facts is not None and view.facts.hypervisor == "kvm"
    for name in guests:
        r = row(view, name)
        assert r is not None
        d, rates = r.domain, r.rates
        assert d.state is PowerState.RUNNING and d.raw_state == "running" and d.domain_id and d.uuid
        assert d.vcpus == 1
        assert d.memory_max_bytes == 128 * MIB
        assert d.memory_used_bytes is not None and 1 * MIB < d.memory_used_bytes < 128 * MIB
        assert rates.cpu_percent is not None and 0.0 < rates.cpu_percent <= 100.0
        assert rates.cpu_host_percent is not None and rates.cpu_host_percent <= rates.cpu_percent
        assert rates.disk_write_iops is not None and rates.disk_write_iops > 0
        assert rates.contention_percent is not None and 0.0 <= rates.contention_percent <= 100.0
        assert rates.net_rx_bps is not None  # present, may be 0: nobody sends to the guest
        history = fleet.history("qemu", d.key)
        assert history is not None and len(history) >= 2
        assert history.series("cpu_percent")[-1] is not None and history.series("memory_used_bytes")[-1]


async def _events(driver: Driver) -> AsyncIterator[DomainEvent]:
    async for event in driver.events():
        yield event


async def wait_event(stream: AsyncIterator[DomainEvent], domain: str, kind: str, timeout: float) -> DomainEvent:
    async def find() -> DomainEvent:
        async for event in stream:
            if event.domain == domain and event.kind == kind:
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(find(), timeout)


async def state_of(driver: Driver, name: str) -> PowerState:
    snapshot = await driver.poll()
    return next(d.state for d in snapshot.domains if d.name == name)


async def test_real_guest_lifecycle_with_events(testbed: dict[str, str], guests: list[str]) -> None:
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    name = guests[-1]
    driver = LibvirtDriver(qemu_host(testbed))
    await driver.connect()
    stream = _events(driver)
    try:
        result = await driver.perform(Verb.PAUSE, DomainRef.named(name))
        assert result.state_after is PowerState.PAUSED
        assert (await wait_event(stream, name, "suspended", 10)).detail == "paused"

        result = await driver.perform(Verb.RESUME, DomainRef.named(name))
        assert result.state_after is PowerState.RUNNING
        await wait_event(stream, name, "resumed", 10)

        # Graceful shutdown: the guest's init sees the ACPI button and powers off by itself.
        started = time.monotonic()
        await driver.perform(Verb.SHUTDOWN, DomainRef.named(name))
        stopped = await wait_event(stream, name, "stopped", 60)
        assert stopped.detail == "shutdown"  # not destroyed: the guest really powered off
        assert await state_of(driver, name) is PowerState.OFF
        shutdown_seconds = time.monotonic() - started

        result = await driver.perform(Verb.START, DomainRef.named(name))
        assert result.state_after is PowerState.RUNNING
        assert (await wait_event(stream, name, "started", 20)).detail == "booted"

        result = await driver.perform(Verb.FORCE_OFF, DomainRef.named(name))
        assert result.state_after is PowerState.OFF
        assert (await wait_event(stream, name, "stopped", 20)).detail == "destroyed"

        await driver.perform(Verb.START, DomainRef.named(name))  # leave the testbed as we found it
        await wait_event(stream, name, "started", 20)
        assert await state_of(driver, name) is PowerState.RUNNING
    finally:
        await driver.close()
    print(f"graceful shutdown of {name} took {shutdown_seconds:.1f} s")


async def test_read_only_connection_to_real_libvirtd(testbed: dict[str, str], guests: list[str]) -> None:
    from vfleet.core.errors import PolicyRefused
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(qemu_host(testbed), read_only=True)
    await driver.connect()
    try:
        names = {d.name for d in (await driver.poll()).domains}
        assert set(guests) <= names
        with pytest.raises(PolicyRefused):
            await driver.perform(Verb.FORCE_OFF, DomainRef.named(guests[0]))
        # Below our own refusal, libvirtd itself must refuse: the connection is read-only.
        import libvirt

        conn = driver._conn
        assert conn is not None
        with pytest.raises(libvirt.libvirtError) as denied:
            conn.lookupByName(guests[0]).suspend()
        assert denied.value.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED
        assert await state_of(driver, guests[0]) is PowerState.RUNNING
    finally:
        await driver.close()


async def test_per_domain_fallback_reads_the_same_metrics_as_bulk(testbed: dict[str, str], guests: list[str]) -> None:
    """The path used for libxl hosts, exercised on real guests: same fields, same sources."""
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    bulk = LibvirtDriver(qemu_host(testbed))
    each = LibvirtDriver(qemu_host(testbed))
    each._bulk = False
    await bulk.connect()
    await each.connect()

    def facts(d: Domain) -> tuple[object, ...]:
        return (d.state, d.vcpus, d.memory_max_bytes, d.memory_used_source)

    try:
        # a guest the fixture just started changes its facts while it boots (the balloon
        # driver comes up): compare the per-domain read with bulk reads on either side of
        # it, and only once both bulk reads agree
        for _ in range(30):
            before = {d.name: d for d in (await bulk.poll()).domains}
            middle = {d.name: d for d in (await each.poll()).domains}
            after = {d.name: d for d in (await bulk.poll()).domains}
            if all(facts(before[g]) == facts(after[g]) for g in guests):
                break
            await asyncio.sleep(1)
        else:
            pytest.fail(f"the guests' facts kept changing: {[facts(before[g]) for g in guests]}")
    finally:
        await bulk.close()
        await each.close()
    for name in guests:
        x, y, z = before[name], middle[name], after[name]
        assert facts(x) == facts(y) == facts(z)
        assert x.counters is not None and y.counters is not None and z.counters is not None
        # virDomainGetInfo sums the vCPU threads (10 ms ticks), the bulk call reads the
        # cgroup: the same CPU time within a tick or two, never a different magnitude
        assert x.counters.cpu_time_ns is not None and y.counters.cpu_time_ns is not None
        assert z.counters.cpu_time_ns is not None
        slack = max(50_000_000, z.counters.cpu_time_ns // 50)
        assert x.counters.cpu_time_ns - slack <= y.counters.cpu_time_ns <= z.counters.cpu_time_ns + slack
        for field in ("disk_read_bytes", "disk_write_bytes", "disk_read_reqs", "net_tx_bytes"):
            first, second = getattr(x.counters, field), getattr(y.counters, field)
            assert first is not None and second is not None and second >= first, field
