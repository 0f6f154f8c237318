"""The blocking-library drivers (libvirt, esxi_api) against hung backends: deadlines,
a bounded per-host thread pool, actions that never block polls, and no leaks.

Everything is real: a real libvirtd with a QEMU domain of our own whose process we
freeze (SIGSTOP: its monitor stops answering, as with a wedged QEMU), TCP listeners in
another process that accept and never say a word (a host hung before the SSH banner
or the TLS handshake), and vcsim paused with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import need_backend
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim
from vfleet.core.errors import DriverBusy, DriverTimeout
from vfleet.core.models import DomainRef, HostConfig, PowerState, TlsSettings, Verb

PASSWORD_ENV = "VFLEET_TEST_LIMITS_PASSWORD"


# -- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A TCP port, served by another process, that accepts connections and never answers."""
    code = (
        "import socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(64)\n"
        "print(s.getsockname()[1], flush=True)\n"
        "held = []\n"
        "while True: held.append(s.accept()[0])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def ssh_children() -> list[int]:
    """Our child processes running ssh (zombies included: an unreaped child is a leak too)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 1 :].split()
        if int(fields[1]) == me and name in ("ssh", "sh"):
            found.append(int(entry))
    return found


async def until(condition: object, timeout: float) -> bool:
    """For what only /proc can tell (another process's state): check every 20 ms, up to `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def no_stuck_calls(driver: object, timeout: float = 20) -> None:
    """Wait until every call the driver gave up on has returned."""
    pool = getattr(driver, "_pool", None)
    stuck = pool.stuck_futures() if pool is not None else []
    if stuck:
        _, pending = await asyncio.wait({asyncio.wrap_future(f) for f in stuck}, timeout=timeout)
        assert not pending, "a stuck call never returned"


# -- a real QEMU domain that we can freeze --------------------------------------------------


@dataclass
class QemuDomain:
    name: str
    uri: str

    @property
    def pid(self) -> int:
        return int(Path(f"/run/libvirt/qemu/{self.name}.pid").read_text())

    def monitor_busy(self) -> bool:
        """A call holds the domain's job and waits on its QEMU monitor (libvirt's control info)."""
        import libvirt

        conn = libvirt.open(self.uri)
        try:
            return bool(conn.lookupByName(self.name).controlInfo()[0] == libvirt.VIR_DOMAIN_CONTROL_OCCUPIED)
        finally:
            conn.close()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the QEMU process: libvirt calls that need its monitor block until SIGCONT."""
        pid = self.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def qemu_domain(testbed: dict[str, str], libvirt_module: object) -> Iterator[QemuDomain]:
    """A transient, diskless QEMU domain of this test run (the shared guests stay untouched)."""
    import libvirt

    name = f"vfleet-limits-{os.getpid()}"
    xml = (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>"
    )
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    dom = conn.createXML(xml, 0)
    try:
        yield QemuDomain(name, testbed["VFLEET_QEMU_URI"])
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            os.kill(QemuDomain(name, "").pid, signal.SIGCONT)  # never leave it frozen
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        conn.close()


@pytest.fixture
def running_domain(qemu_domain: QemuDomain) -> QemuDomain:
    import libvirt

    conn = libvirt.open(qemu_domain.uri)
    try:
        dom = conn.lookupByName(qemu_domain.name)
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
    finally:
        conn.close()
    return qemu_domain


def kvm(name: str, uri: str, **kw: object) -> HostConfig:
    values: dict[str, object] = {"connect_timeout": 15.0, "call_timeout": 15.0}
    values.update(kw)
    return HostConfig(name=name, driver="libvirt", uri=uri, **values)  # type: ignore[arg-type]


@pytest.fixture
async def libvirt_driver(request: pytest.FixtureRequest, running_domain: QemuDomain) -> AsyncIterator[object]:
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(kvm(f"kvm-{request.node.name[:40]}", running_domain.uri))
    await driver.connect()
    yield driver
    await no_stuck_calls(driver)
    await driver.close()


# -- libvirt: the pool -----------------------------------------------------------------------


async def test_polls_go_on_while_four_actions_hang(libvirt_driver, running_domain: QemuDomain) -> None:  # type: ignore[no-untyped-def]
    from vfleet.drivers.threaded import Lane

    driver, target = libvirt_driver, DomainRef.named(running_domain.name)
    with running_domain.frozen():
        due = time.monotonic() + 30
        actions = [asyncio.ensure_future(driver.perform(Verb.PAUSE, target, deadline=due)) for _ in range(4)]
        # Polls skip a domain whose job is taken (NOWAIT); before a pause takes it, a poll would
        # itself take the job and wait on the frozen monitor. So: first the pause in libvirtd.
        assert await until(running_domain.monitor_busy, 5)
        polls, four_in_flight, started = 0, False, time.monotonic()
        while polls < 3 or not four_in_flight:  # each poll is real work; no sleeping here
            assert time.monotonic() - started < 10, (polls, driver._pool.running(Lane.ACTION))
            snapshot = await driver.poll(deadline=time.monotonic() + 2)
            polls += 1
            assert running_domain.name in {d.name for d in snapshot.domains}
            assert not any(a.done() for a in actions)  # QEMU is frozen: no action can have finished
            four_in_flight = four_in_flight or driver._pool.running(Lane.ACTION) == 4
        # the fifth waits for one of the 4 action threads (libvirtd serves 5 calls per connection)
        with pytest.raises(DriverTimeout, match="no free thread"):
            await driver.perform(Verb.PAUSE, target, deadline=time.monotonic() + 0.5)
    results = await asyncio.wait_for(asyncio.gather(*actions), 20)
    assert [r.state_after for r in results] == [PowerState.PAUSED] * 4


async def test_a_host_whose_threads_are_all_stuck_answers_busy(libvirt_driver, running_domain: QemuDomain) -> None:  # type: ignore[no-untyped-def]
    from vfleet.drivers.threaded import Lane

    driver, target = libvirt_driver, DomainRef.named(running_domain.name)
    with running_domain.frozen():
        due = time.monotonic() + 1.0
        results = await asyncio.gather(
            *(driver.perform(Verb.PAUSE, target, deadline=due) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, DriverTimeout) and "no answer" in str(r) for r in results), results
        assert len(driver._pool.stuck(Lane.ACTION)) == 4
        threads = threading.active_count()
        started = time.monotonic()
        with pytest.raises(DriverBusy, match=r"an earlier call \(pause vfleet-limits-.*\) is still running"):
            await driver.perform(Verb.PAUSE, target, deadline=time.monotonic() + 5)
        assert time.monotonic() - started < 0.5  # refused at once, not after its deadline
        assert threading.active_count() == threads  # and no thread was started for it
        assert driver._pool.threads() <= 5
        # the control lane is free: polls still work
        assert running_domain.name in {d.name for d in (await driver.poll(deadline=time.monotonic() + 2)).domains}
    await no_stuck_calls(driver)
    result = await driver.perform(Verb.RESUME, target)  # the host takes actions again
    assert result.state_after is PowerState.RUNNING


async def test_per_domain_polling_stops_at_the_deadline(libvirt_driver, running_domain: QemuDomain) -> None:  # type: ignore[no-untyped-def]
    driver = libvirt_driver
    driver._bulk = False  # the libxl path: one call per domain and device
    with running_domain.frozen():
        started = time.monotonic()
        with pytest.raises(DriverTimeout):
            await driver.poll(deadline=started + 1.0)  # call_timeout is 15 s
        assert time.monotonic() - started < 1.5
    await no_stuck_calls(driver)
    assert running_domain.name in {d.name for d in (await driver.poll()).domains}


# -- libvirt over ssh to a host that never sends a banner ---------------------------------------


async def test_hung_ssh_host_leaves_no_threads_or_ssh_children(testbed: dict[str, str], libvirt_module: object) -> None:
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    with black_hole() as port:
        uri = f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={testbed['VFLEET_SSH_KEY']}"
        config = kvm("hung-ssh", uri, connect_timeout=30.0)
        threads, children = threading.active_count(), len(ssh_children())
        outcomes = []
        for _ in range(10):
            driver = LibvirtDriver(config)
            with pytest.raises(DriverTimeout) as caught:  # DriverBusy is one too
                await driver.connect(deadline=time.monotonic() + 0.4)
            outcomes.append(type(caught.value).__name__)
            await driver.close()
            assert threading.active_count() <= threads + 1, outcomes
            assert len(ssh_children()) <= children + 1, outcomes
        print(f"\n10 connects to a banner-less ssh host: {outcomes}")
        # an abandoned connect's ssh child is killed at once, long before its ConnectTimeout (30 s)
        assert await until(lambda: len(ssh_children()) == children, 3), ssh_children()
        driver = LibvirtDriver(config)
        connect = asyncio.ensure_future(driver.connect())
        assert await until(lambda: len(ssh_children()) > children, 5)
        connect.cancel()  # as when the fleet stops
        with pytest.raises(asyncio.CancelledError):
            await connect
        assert await until(lambda: len(ssh_children()) == children, 2), ssh_children()
        await no_stuck_calls(driver, timeout=5)
        assert threading.active_count() <= threads + 1


# -- esxi_api ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture(scope="module")
def vcsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    pytest.importorskip("pyVmomi")
    need_backend(f"vcsim binary {VCSIM_BIN} (testbed/vcsim.sh build)", VCSIM_BIN.exists())
    sim = start_vcsim(tmp_path_factory.mktemp("vcsim"), "-model", "esx", "-vm", "2")
    yield sim
    sim.stop()


def esxi(name: str, address: str, port: int, **kw: object) -> HostConfig:
    values: dict[str, object] = {
        "address": address, "port": port, "user": USER, "password_env": PASSWORD_ENV,
        "tls": TlsSettings(insecure=True), "connect_timeout": 5.0, "call_timeout": 5.0,
    }
    values.update(kw)
    return HostConfig(name=name, driver="esxi_api", **values)  # type: ignore[arg-type]


async def test_unreachable_esxi_host_leaks_no_threads_or_sockets() -> None:
    pytest.importorskip("pyVmomi")
    from vfleet.drivers.esxi.api import EsxiApiDriver

    with black_hole() as port:  # TCP handshake done, TLS never answered
        config = esxi("hole", "127.0.0.1", port)
        threads, fds = threading.active_count(), open_fds()
        outcomes = []
        started = time.monotonic()
        for _ in range(10):
            driver = EsxiApiDriver(config)
            with pytest.raises(DriverTimeout) as caught:
                await driver.connect(deadline=time.monotonic() + 0.4)
            outcomes.append(type(caught.value).__name__)
            await driver.close()
            assert threading.active_count() <= threads + 2, outcomes
            assert open_fds() <= fds + 2, outcomes
            # the TLS handshake's own timeout ends the attempt's call, thread and socket: then retry for real
            await no_stuck_calls(driver, timeout=10)
            assert await until(lambda: threading.active_count() <= threads + 1 and open_fds() <= fds, 3), outcomes
        elapsed = time.monotonic() - started
        assert outcomes == ["DriverTimeout"] * 10
        assert threading.active_count() <= threads + 1 and open_fds() <= fds
        print(f"\n10 connects to a TLS black hole in {elapsed:.1f} s: {outcomes}")


async def test_esxi_poll_honours_its_deadline(vcsim: Vcsim) -> None:
    from vfleet.drivers.esxi.api import EsxiApiDriver

    driver = EsxiApiDriver(esxi("esx-deadline", vcsim.address, vcsim.port))  # call_timeout 5 s
    await driver.connect()
    try:
        vcsim.pause()
        try:
            started = time.monotonic()
            with pytest.raises(DriverTimeout, match="esx-deadline: poll: no answer"):
                await driver.poll(deadline=started + 1.0)
            assert time.monotonic() - started < 1.5
        finally:
            vcsim.resume()
        await no_stuck_calls(driver)
        assert len((await driver.poll()).domains) == vcsim.vms
    finally:
        await driver.close()


def _session_keys(sim: Vcsim) -> set[str]:
    """The sessions vcsim holds, seen from a connection of its own."""
    import ssl

    from pyVim.connect import Disconnect, SmartConnect

    si = SmartConnect(host=sim.address, port=sim.port, user=USER, pwd=PASSWORD,
                      sslContext=ssl._create_unverified_context())
    try:
        mine = si.content.sessionManager.currentSession.key
        return {s.key for s in si.content.sessionManager.sessionList} - {mine}
    finally:
        Disconnect(si)


async def test_close_after_a_stuck_call_still_logs_out(vcsim: Vcsim) -> None:
    from vfleet.drivers.esxi.api import EsxiApiDriver

    before = await asyncio.to_thread(_session_keys, vcsim)
    driver = EsxiApiDriver(esxi("esx-logout", vcsim.address, vcsim.port))
    await driver.connect()
    key = driver._si.content.sessionManager.currentSession.key
    assert await asyncio.to_thread(_session_keys, vcsim) == before | {key}
    vcsim.pause()
    try:
        with pytest.raises(TimeoutError):  # the engine gives up on a poll the same way: it cancels it
            await asyncio.wait_for(driver.poll(), 0.5)  # its thread stays blocked (socket timeout 5 s)
        closing = asyncio.ensure_future(driver.close())  # the logout queues behind the stuck poll
        await asyncio.sleep(0)
    finally:
        vcsim.resume()
    await asyncio.wait_for(closing, 10)
    await no_stuck_calls(driver)
    assert await asyncio.to_thread(_session_keys, vcsim) == before  # logged out: no session left behind
