"""The supervised engine: nothing a driver, a sample or a listener does ends a host's task,
stop() survives swallowed cancellations, and health says what really happened.

The drivers here are small fakes defined in this file: the engine is under test, not a driver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sshhost import XEN_SESSION, Keys, SshTestServer, XenHost
from vfleet.core import inventory
from vfleet.core.demo import demo_inventory
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import DriverError, ExitCode, HostUnreachable
from vfleet.core.models import (
    Domain,
    DomainCounters,
    DomainEvent,
    HostConfig,
    HostFacts,
    HostSnapshot,
    HostStatus,
    PowerState,
)
from vfleet.core.report import build_report, collect
from vfleet.core.selector import Selector
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.sim import SimDriver

ENGINE_LOG = "vfleet.core.engine"


class FakeClock:
    """The engine's health clock, moved by hand; scheduling still runs on real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Behaviour:
    """What one fake host does; each hook gets the call number (1, 2, ...)."""

    poll: Callable[[int], Awaitable[HostSnapshot]]
    connect: Callable[[int], Awaitable[None]] | None = None
    events: Callable[[int], AsyncIterator[DomainEvent]] | None = None
    connects: int = 0
    polls: int = 0
    event_streams: int = 0
    deadlines: list[tuple[str, float | None, float]] = field(default_factory=list)


class FakeDriver(Driver):
    kind = "fake"
    capabilities = frozenset({Capability.EVENTS})

    def __init__(self, config: HostConfig, behaviour: Behaviour) -> None:
        super().__init__(config)
        self.behaviour = behaviour

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        b = self.behaviour
        b.connects += 1
        b.deadlines.append(("connect", deadline, time.monotonic()))
        if b.connect is not None:
            await b.connect(b.connects)
        return HostFacts(hypervisor="fake", cpus=4)

    async def close(self) -> None:
        return None

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        b = self.behaviour
        b.polls += 1
        b.deadlines.append(("poll", deadline, time.monotonic()))
        return await b.poll(b.polls)

    async def events(self) -> AsyncIterator[DomainEvent]:
        b = self.behaviour
        b.event_streams += 1
        if b.events is None:
            await asyncio.Event().wait()
            return
        async for event in b.events(b.event_streams):
            yield event


def config(name: str = "h1", interval: float = 0.1, **kw: object) -> HostConfig:
    settings: dict[str, object] = {"connect_timeout": 1.0, "call_timeout": 2.0, **kw}
    return HostConfig(name=name, driver="fake", poll_interval=interval, **settings)  # type: ignore[arg-type]


def fleet_of(behaviours: dict[str, Behaviour], *configs: HostConfig, **kw: object) -> Fleet:
    configs = configs or tuple(config(name) for name in behaviours)
    kw.setdefault("backoff_base", 0.05)
    return Fleet(configs, driver_factory=lambda c, ro: FakeDriver(c, behaviours[c.name]), **kw)  # type: ignore[arg-type]


def sample(host: str, cpu_ns: object, name: str = "d1") -> HostSnapshot:
    now = time.monotonic()
    counters = DomainCounters(now, cpu_time_ns=cpu_ns)  # type: ignore[arg-type]
    dom = Domain(name=name, state=PowerState.RUNNING, raw_state="running", uuid="u-" + name, vcpus=1, counters=counters)
    return HostSnapshot(host, now, (dom,))


def good_polls(host: str, bad: dict[int, Callable[[], HostSnapshot]] | None = None) -> Callable[[int], Awaitable[HostSnapshot]]:
    """Counting CPU samples; call numbers in `bad` return (or raise) what their callable gives."""

    async def poll(n: int) -> HostSnapshot:
        if bad and n in bad:
            return bad[n]()
        return sample(host, n * 50_000_000)

    return poll


def status_of(fleet: Fleet, host: str = "h1") -> HostStatus:
    return fleet.view(host).health.status


def first(views: list[HostView]) -> HostView:
    return views[0]


# -- 1. stop() and Python 3.11's swallowed cancellation --------------------------------


async def test_stop_returns_promptly_right_after_a_poll_request() -> None:
    """request_poll() wakes the host task as stop() cancels it: on 3.11 wait_for() used to eat the cancel."""
    sim = HostConfig(name="sim1", driver="sim", poll_interval=5.0, connect_timeout=2.0, call_timeout=2.0,
                     options={"latency": 0.001, "domains": 2})
    for round_ in range(50):
        fleet = Fleet([sim])
        await fleet.start()
        assert await fleet.wait_until(lambda v: first(v).health.polls >= 1, timeout=5)
        fleet.request_poll("sim1")  # no await in between: the wake and the cancel land in one loop turn
        stopping = asyncio.ensure_future(fleet.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2.0)
        assert done, f"stop() did not return (round {round_})"


async def _an_off_demo_domain() -> str:
    host = demo_inventory(latency=0.0).hosts[1]
    driver = SimDriver(host)
    await driver.connect()
    snapshot = await driver.poll()
    await driver.close()
    return next(d.name for d in snapshot.domains if d.state is PowerState.OFF)


async def test_act_exits_once_its_target_is_done(tmp_path: Path) -> None:
    """The issue's repro: the pause is sent, fails, and act asks for a poll just before stop()."""
    off = await _an_off_demo_domain()
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", "--demo", "act", "pause", off, "--yes", "--timeout", "5",
        "--audit-log", str(tmp_path / "audit.jsonl"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"`vfleet act pause {off}` did not exit within 20 s")
    # Which of "failed" (sent, refused by the domain) or "no-op" is the policy's call, not the engine's.
    assert proc.returncode == ExitCode.REFUSED, err.decode()  # pausing an off domain cannot apply: never sent
    assert off in out.decode()
    assert time.monotonic() - started < 10


# -- 2. supervision: bad samples, unexpected exceptions, event pumps, listeners ---------


async def test_a_malformed_sample_degrades_the_host_once_and_it_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ENGINE_LOG)
    b = Behaviour(poll=good_polls("h1", bad={2: lambda: sample("h1", "12345")}))
    fleet = fleet_of({"h1": b}, history=True)
    seen: list[HostStatus] = []

    async def watch() -> None:
        async for batch in fleet.subscribe():
            seen.extend(v.health.status for v in batch)

    watcher = asyncio.create_task(watch())
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.polls >= 3, timeout=5), fleet.view("h1").health
        view = fleet.view("h1")
        history = fleet.history("h1", "u-d1")
    watcher.cancel()
    assert HostStatus.DEGRADED in seen
    assert view.health.status is HostStatus.UP and view.health.last_error is None
    assert b.connects == 1  # a bad sample does not cost the connection
    assert view.rows[0].rates.cpu_percent is not None  # rates resume from the last good sample
    assert history is not None and len(history) == view.health.polls  # the bad sample left no point
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("h1" in r.getMessage() and "cpu_time_ns" in r.getMessage() for r in warnings), caplog.text


async def test_a_bad_sample_is_shown_as_the_hosts_error() -> None:
    clock = FakeClock()
    b = Behaviour(poll=good_polls("h1", bad={n: (lambda: sample("h1", "x")) for n in range(2, 100)}))
    fleet = fleet_of({"h1": b}, clock=clock)
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.DEGRADED, timeout=5)
        view = fleet.view("h1")
    error = view.health.last_error or ""
    assert error.startswith("h1: ") and "cpu_time_ns" in error and "'x'" in error, error
    assert view.health.last_error_at == clock.now
    assert len(view.rows) == 1 and view.rows[0].domain.counters is not None
    assert view.rows[0].domain.counters.cpu_time_ns == 50_000_000  # the last good sample, never the bad one


async def test_an_unexpected_poll_exception_is_logged_shown_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ENGINE_LOG)

    def explode() -> HostSnapshot:
        raise KeyError("domstats")

    b = Behaviour(poll=good_polls("h1", bad={2: explode, 3: explode}))
    fleet = fleet_of({"h1": b})
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.DEGRADED, timeout=5)
        degraded = fleet.view("h1")
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.UP, timeout=5)
    assert "internal error" in (degraded.health.last_error or "") and "domstats" in (degraded.health.last_error or "")
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert tracebacks and "KeyError" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "h1" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one line per new error, not one per poll


async def test_an_event_stream_that_raises_is_restarted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ENGINE_LOG)

    async def events(stream: int) -> AsyncIterator[DomainEvent]:
        if stream == 1:
            raise RuntimeError("event loop of the backend broke")
        yield DomainEvent("h1", "d1", "started")
        await asyncio.Event().wait()

    b = Behaviour(poll=good_polls("h1"), events=events)
    fleet = fleet_of({"h1": b}, config("h1", interval=30.0))
    async with fleet:
        assert await fleet.wait_until(lambda v: len(fleet.events) >= 1, timeout=5)
        # the event asked for a poll now: the second poll comes long before the 30 s tick
        assert await fleet.wait_until(lambda v: first(v).health.polls >= 2, timeout=5)
    assert b.event_streams == 2 and b.connects == 1
    assert any(r.levelno == logging.WARNING and "event" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_listener_that_raises_does_not_stop_the_event_pump(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ENGINE_LOG)
    go = asyncio.Event()

    async def events(stream: int) -> AsyncIterator[DomainEvent]:
        yield DomainEvent("h1", "d1", "started")
        await go.wait()
        yield DomainEvent("h1", "d1", "stopped")
        await asyncio.Event().wait()

    calls: list[str] = []
    received: list[str] = []

    def broken(event: DomainEvent) -> None:
        calls.append(event.kind)
        raise ValueError("listener bug")

    b = Behaviour(poll=good_polls("h1"), events=events)
    fleet = fleet_of({"h1": b})
    fleet.on_event(broken)
    fleet.on_event(lambda e: received.append(e.kind))
    async with fleet:
        assert await fleet.wait_until(lambda v: len(fleet.events) >= 1, timeout=5)
        go.set()
        assert await fleet.wait_until(lambda v: len(fleet.events) >= 2, timeout=5)
    assert calls == received == ["started", "stopped"]
    assert b.event_streams == 1
    assert any(r.levelno == logging.WARNING and "listener" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_crash_outside_the_poll_is_supervised_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ENGINE_LOG)
    made = 0
    b = Behaviour(poll=good_polls("h1"))

    def factory(c: HostConfig, read_only: bool) -> Driver:
        nonlocal made
        made += 1
        if made == 1:
            raise TypeError("driver constructor bug")
        return FakeDriver(c, b)

    fleet = Fleet([config("h1")], driver_factory=factory, backoff_base=0.05)
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.polls >= 1, timeout=5)
    assert made == 2 and fleet.view("h1").attempts == 2
    assert "driver constructor bug" in caplog.text


# -- 3. health is honest ------------------------------------------------------------------


async def test_stale_comes_from_age_and_a_failing_host_is_degraded_not_stale() -> None:
    clock = FakeClock()
    hang = asyncio.Event()

    async def once_then_hang(n: int) -> HostSnapshot:
        if n > 1:
            await hang.wait()
        return sample("slow", 1)

    async def garbled(n: int) -> HostSnapshot:
        raise DriverError("odd", "garbled output")

    async def never(n: int) -> HostSnapshot:
        await hang.wait()
        raise AssertionError

    behaviours = {"slow": Behaviour(poll=once_then_hang), "odd": Behaviour(poll=garbled), "mute": Behaviour(poll=never)}
    fleet = fleet_of(behaviours, *(config(n, interval=60.0, call_timeout=600.0) for n in behaviours), clock=clock)
    async with fleet:
        assert await fleet.wait_until(
            lambda v: {x.name: x.health.status for x in v}
            == {"slow": HostStatus.UP, "odd": HostStatus.DEGRADED, "mute": HostStatus.CONNECTING}, timeout=5)
        assert fleet.view("mute").facts is not None  # connected: only its first poll is outstanding
        clock.now += 121  # two poll intervals and a second
        views = {v.name: v for v in fleet.views()}
    assert views["slow"].health.status is HostStatus.STALE and views["slow"].health.data_age(clock.now) == 121
    assert views["mute"].health.status is HostStatus.STALE
    assert views["odd"].health.status is HostStatus.DEGRADED and views["odd"].health.last_error == "odd: garbled output"


# -- 4. reconnecting promptly ----------------------------------------------------------------


async def test_a_host_is_up_within_reconnect_max_after_it_returns() -> None:
    back_at: list[float] = []

    async def refuse_for_a_while(n: int) -> None:
        if not back_at:
            raise HostUnreachable("h1", "connection refused")

    b = Behaviour(poll=good_polls("h1"), connect=refuse_for_a_while)
    fleet = fleet_of({"h1": b}, config("h1", reconnect_max=1.0), backoff_base=0.1)
    async with fleet:
        await asyncio.sleep(2.5)  # the outage itself: long enough to reach the cap (0.1, 0.2, 0.4, 0.8, 1, ...)
        attempts_in_outage = b.connects
        back_at.append(time.monotonic())
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.UP, timeout=5)
        recovery = time.monotonic() - back_at[0]
    assert 4 <= attempts_in_outage <= 12, attempts_in_outage  # it kept trying, with backoff
    assert recovery <= 1.0 + 0.3, recovery


async def test_reconnect_during_a_hung_poll_reconnects_at_once() -> None:
    async def hang_first_connection(n: int) -> HostSnapshot:
        if b.connects == 1:
            await asyncio.Event().wait()
        return sample("h1", n)

    b = Behaviour(poll=hang_first_connection)
    fleet = fleet_of({"h1": b}, config("h1", call_timeout=60.0))
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.skipped_ticks >= 2, timeout=5)
        started = time.monotonic()
        fleet.reconnect("h1")
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.UP, timeout=5)
    assert time.monotonic() - started < 1.0 and b.connects == 2


async def test_reconnect_after_a_crash_skips_the_backoff() -> None:
    made = 0
    b = Behaviour(poll=good_polls("h1"))

    def factory(c: HostConfig, read_only: bool) -> Driver:
        nonlocal made
        made += 1
        if made == 1:
            raise TypeError("driver constructor bug")
        return FakeDriver(c, b)

    fleet = Fleet([config("h1", reconnect_max=3600.0)], driver_factory=factory, backoff_base=600.0)
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.DOWN, timeout=5)
        assert "internal error" in (fleet.view("h1").health.last_error or "")
        fleet.reconnect("h1")  # without it the next try would come 5-10 minutes later
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.UP, timeout=3)


def test_reconnect_max_is_an_inventory_setting(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("defaults: {reconnect_max: 3}\nhosts:\n  - {name: a, driver: sim}\n"
                    "  - {name: b, driver: sim, reconnect_max: 20}\n")
    hosts = {h.name: h for h in inventory.load(path).hosts}
    assert hosts["a"].reconnect_max == 3 and hosts["b"].reconnect_max == 20
    path.write_text("hosts:\n  - {name: a, driver: sim}\n")
    assert inventory.load(path).hosts[0].reconnect_max == 8
    path.write_text("hosts:\n  - {name: a, driver: sim, reconnect_max: 0.5}\n")
    with pytest.raises(inventory.InventoryError, match=r":2: hosts\[a\]\.reconnect_max: must be at least 1"):
        inventory.load(path)


# -- 5. deadlines ---------------------------------------------------------------------------


async def test_connect_and_poll_get_a_deadline_and_the_engine_still_bounds_them() -> None:
    async def ignore_the_deadline(n: int) -> HostSnapshot:
        if n == 2:
            await asyncio.Event().wait()  # a driver that does not honour its deadline
        return sample("h1", n)

    b = Behaviour(poll=ignore_the_deadline)
    fleet = fleet_of({"h1": b}, config("h1", interval=0.1, connect_timeout=3.0, call_timeout=0.5))
    async with fleet:
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.DEGRADED, timeout=5)
        degraded = fleet.view("h1")
        assert await fleet.wait_until(lambda v: first(v).health.status is HostStatus.UP, timeout=5)
    kinds = [k for k, _, _ in b.deadlines]
    assert kinds[:3] == ["connect", "poll", "poll"]
    for kind, deadline, called in b.deadlines:
        assert deadline is not None, kind
        budget = 3.0 if kind == "connect" else 0.5
        assert budget - 0.25 <= deadline - called <= budget + 0.01, (kind, deadline - called)
    assert "no answer within 0.5 s" in (degraded.health.last_error or "")
    assert b.connects == 1  # a slow poll keeps the connection


# -- `status` and `top` over a host whose polls fail -------------------------------------


async def test_a_host_that_never_answers_a_poll_is_reported_not_up() -> None:
    async def never(n: int) -> HostSnapshot:
        await asyncio.Event().wait()
        raise AssertionError

    behaviours = {"mute": Behaviour(poll=never), "fine": Behaviour(poll=good_polls("fine"))}
    views = await collect([config("mute"), config("fine")], interval=0.1, timeout=1.0,
                          driver_factory=lambda c, ro: FakeDriver(c, behaviours[c.name]))
    report = build_report(views, Selector.parse(""))
    assert report.unreachable == ["mute"]
    assert report.problems == {"mute": "no poll answered within 1 s"}
    assert {h["name"]: h["status"] for h in report.hosts} == {"mute": "stale", "fine": "up"}


@pytest.fixture
async def garbled_xen(tmp_path: Path) -> AsyncIterator[SshTestServer]:
    if not XEN_SESSION.exists():
        pytest.skip(f"real Xen outputs missing: {XEN_SESSION}")
    dom0 = XenHost(overrides={"xl list -v": ("Name ID\n garbage here\n", "", 0)})
    server = await SshTestServer(dom0, Keys.generate(), tmp_path).start()
    yield server
    await server.close()


@pytest.mark.parametrize("command", [["status", "-o", "json", "--interval", "0.3"],
                                     ["top", "--batch", "-d", "0.5", "-n", "4"]])
async def test_status_and_top_report_a_host_whose_polls_fail(
    command: list[str], garbled_xen: SshTestServer, tmp_path: Path
) -> None:
    c = garbled_xen.config(name="xen1")
    inv = tmp_path / "fleet.yaml"
    inv.write_text(f"""\
hosts:
  - name: xen1
    driver: xen_xl
    address: 127.0.0.1
    port: {c.port}
    user: root
    ssh: {{agent: false, config: false, key_file: '{c.ssh.key_file}', known_hosts: '{c.ssh.known_hosts}'}}
  - {{name: fine, driver: sim, options: {{latency: 0.01, domains: 3}}}}
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", "-i", str(inv), *command,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.UNREACHABLE, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfleet: xen1: "), lines
    assert "xen1: xen1" not in lines[0] and ("garbage" in lines[0] or "xl list" in lines[0]), lines
    doc = json.loads(out.decode().splitlines()[-1] if command[0] == "top" else out.decode())
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["xen1"]["status"] == "degraded" and hosts["xen1"]["error"], hosts["xen1"]
    assert hosts["fine"]["status"] == "up" and hosts["fine"]["domains"] == 3


async def test_stop_is_bounded_even_if_a_task_swallows_every_cancel(caplog: pytest.LogCaptureFixture) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def stubborn(n: int) -> None:
        entered.set()
        while not release.is_set():  # a connect that eats every cancellation
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue
        raise HostUnreachable("h1", "gave up")

    fleet = fleet_of({"h1": Behaviour(poll=good_polls("h1"), connect=stubborn)}, stop_grace=0.5)
    await fleet.start()
    await asyncio.wait_for(entered.wait(), 5)
    started = time.monotonic()
    stopping = asyncio.ensure_future(fleet.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=3.0)
        elapsed = time.monotonic() - started
    finally:
        release.set()  # let the abandoned task end, so nothing outlives this test
    assert done and 0.5 <= elapsed < 1.5, elapsed
    assert "abandoned: session:h1" in caplog.text
