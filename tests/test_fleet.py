"""The fleet engine, driven by scripted in-test drivers (the engine is under test, not a driver)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable

import pytest

from vfleet.core.engine import Backoff, Fleet, HostView
from vfleet.core.errors import AuthFailed, DriverError, HostUnreachable
from vfleet.core.models import Domain, DomainCounters, HostConfig, HostFacts, HostSnapshot, HostStatus, PowerState
from vfleet.drivers.base import Driver


class ScriptedDriver(Driver):
    """connect/poll behaviour comes from callables set per host by the test."""

    kind = "scripted"
    scripts: dict[str, dict[str, Callable[..., object]]] = {}

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self.script = self.scripts[config.name]

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        hook = self.script.get("connect")
        if hook is not None:
            await hook()  # type: ignore[misc]
        return HostFacts(hypervisor="scripted", cpus=4)

    async def close(self) -> None:
        return None

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        return await self.script["poll"]()  # type: ignore[no-any-return,misc]


def host(name: str, interval: float = 0.1, **kw: object) -> HostConfig:
    return HostConfig(name=name, driver="scripted", poll_interval=interval, connect_timeout=1.0,
                      call_timeout=kw.pop("call_timeout", 5.0), **kw)  # type: ignore[arg-type]


def fleet_of(*hosts: HostConfig, **scripts: dict[str, Callable[..., object]]) -> Fleet:
    ScriptedDriver.scripts = {h.name: scripts[h.name] for h in hosts}
    return Fleet(hosts, driver_factory=lambda c, ro: ScriptedDriver(c, read_only=ro), backoff_cap=0.2)


def counting_poll(name: str, cpu_step: int = 100_000_000) -> Callable[[], object]:
    state = {"cpu": 0}

    async def poll() -> HostSnapshot:
        state["cpu"] += cpu_step
        now = time.monotonic()
        dom = Domain(name="d1", state=PowerState.RUNNING, raw_state="running", uuid="u1", vcpus=1,
                     counters=DomainCounters(now, cpu_time_ns=state["cpu"]))
        return HostSnapshot(name, now, (dom,))

    return poll


def by_name(views: list[HostView]) -> dict[str, HostView]:
    return {v.name: v for v in views}


async def test_a_hung_host_never_delays_another() -> None:
    async def hang() -> HostSnapshot:
        await asyncio.Event().wait()
        raise AssertionError

    fleet = fleet_of(host("hung", call_timeout=30.0), host("fine"),
                     hung={"poll": hang}, fine={"poll": counting_poll("fine")})
    async with fleet:
        started = time.monotonic()
        assert await fleet.wait_until(lambda v: by_name(v)["fine"].health.polls >= 5, timeout=3.0)
        elapsed = time.monotonic() - started
        assert await fleet.wait_until(lambda v: by_name(v)["hung"].health.status is HostStatus.STALE, timeout=3.0)
        views = by_name(fleet.views())
    assert elapsed < 1.5  # 5 polls at 0.1 s, not held back by the hung host
    assert views["hung"].health.polls == 0 and views["hung"].health.skipped_ticks >= 2
    assert views["fine"].health.status is HostStatus.UP


async def test_slow_poll_skips_ticks_instead_of_queueing_them() -> None:
    in_flight, starts = 0, []

    async def slow() -> HostSnapshot:
        nonlocal in_flight
        in_flight += 1
        assert in_flight == 1, "two polls of one host overlapped"
        starts.append(time.monotonic())
        await asyncio.sleep(0.35)  # the poll's own latency, 3.5 ticks long
        in_flight -= 1
        return HostSnapshot("slow", time.monotonic(), ())

    fleet = fleet_of(host("slow"), slow={"poll": slow})
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 3, timeout=5.0)
        view = fleet.view("slow")
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # After a long poll the next one starts on the next tick boundary (0.4 s), never back to back.
    assert all(g >= 0.39 for g in gaps), gaps
    assert view.health.skipped_ticks >= 3 * 2


async def test_reconnects_with_backoff_after_failures() -> None:
    attempts = 0

    async def connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise HostUnreachable("flappy", "connection refused")

    fleet = fleet_of(host("flappy"), flappy={"connect": connect, "poll": counting_poll("flappy")})
    seen: list[HostStatus] = []

    async def watch() -> None:
        async for batch in fleet.subscribe():
            seen.extend(v.health.status for v in batch)

    watcher = asyncio.create_task(watch())
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=5.0)
    watcher.cancel()
    assert attempts == 3 and fleet.view("flappy").attempts == 3
    assert seen.count(HostStatus.DOWN) >= 1 and seen[-1] is HostStatus.UP


async def test_auth_failure_is_its_own_state_with_the_error() -> None:
    async def connect() -> None:
        raise AuthFailed("locked", "host key verification failed")

    fleet = fleet_of(host("locked"), locked={"connect": connect, "poll": counting_poll("locked")})
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.AUTH_FAILED, timeout=3.0)
        assert "host key verification failed" in (fleet.view("locked").health.last_error or "")


async def test_host_lost_mid_poll_goes_down_and_comes_back() -> None:
    polls = 0
    inner = counting_poll("lost")

    async def poll() -> object:
        nonlocal polls
        polls += 1
        if polls == 2:
            raise HostUnreachable("lost", "connection reset")
        return await inner()  # type: ignore[misc]

    fleet = fleet_of(host("lost"), lost={"poll": poll})
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].attempts >= 2 and v[0].health.polls >= 2, timeout=5.0)
        assert fleet.view("lost").health.status is HostStatus.UP


async def test_a_poll_error_keeps_the_connection_and_degrades_the_host() -> None:
    async def garbled() -> HostSnapshot:
        raise DriverError("odd", "garbled output")

    fleet = fleet_of(host("odd"), odd={"poll": garbled})
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.DEGRADED, timeout=3.0)
        view = fleet.view("odd")
    assert view.health.last_error == "odd: garbled output" and view.attempts == 1


async def test_rates_and_history_come_from_consecutive_polls() -> None:
    fleet = fleet_of(host("busy"), busy={"poll": counting_poll("busy", cpu_step=50_000_000)})
    fleet.keep_history()  # what the TUI asks for; off by default
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 3, timeout=3.0)
        row = fleet.view("busy").rows[0]
        history = fleet.history("busy", "u1")
    assert row.rates.cpu_percent is not None and 20 < row.rates.cpu_percent < 80  # 50 ms per ~100 ms tick
    assert history is not None and len(history) >= 3 and history.capacity == 6000
    assert history.series("cpu_percent")[0] is None  # the first poll has nothing to compare with


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0.5 * c <= d <= c for d, c in zip(delays, ceilings, strict=False)), delays
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jitter: capped delays still differ
    backoff.reset()
    assert backoff.next_delay() <= 1.0


@pytest.mark.parametrize("status", [HostStatus.DOWN])
async def test_subscribers_get_only_the_latest_view_per_host(status: HostStatus) -> None:
    fleet = fleet_of(host("a"), host("b"), a={"poll": counting_poll("a")}, b={"poll": counting_poll("b")})
    sub = fleet.subscribe()
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 4 for x in v), timeout=3.0)
        batch = await sub.next_batch()
    assert sorted(v.name for v in batch) == ["a", "b"]  # many updates collapsed into one per host


async def test_reconnect_cuts_the_backoff_and_drops_a_live_connection() -> None:
    attempts = 0

    async def connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise HostUnreachable("kicked", "connection refused")

    ScriptedDriver.scripts = {"kicked": {"connect": connect, "poll": counting_poll("kicked")}}
    fleet = Fleet([host("kicked")], driver_factory=lambda c, ro: ScriptedDriver(c, read_only=ro),
                  backoff_base=60, backoff_cap=3600)
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.DOWN, timeout=3)
        fleet.reconnect("kicked")  # without it the next try would come 30-60 s later
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, timeout=5)
        assert fleet.view("kicked").attempts == 2
        fleet.reconnect("kicked")  # connected: dropped and connected again
        assert await fleet.wait_until(lambda v: v[0].attempts == 3 and v[0].health.status is HostStatus.UP, timeout=3)


async def test_set_interval_changes_every_host_cadence_at_the_next_tick() -> None:
    """`:interval` in the console: hosts polled every hour start polling every 0.2 s, then go back."""
    fleet = fleet_of(host("a", interval=3600.0), host("b", interval=3600.0),
                     a={"poll": counting_poll("a")}, b={"poll": counting_poll("b")})
    async with fleet:
        assert await fleet.wait_until(lambda v: all(x.health.polls == 1 for x in v), timeout=5.0)
        assert fleet.interval("a") == 3600.0
        fleet.set_interval(0.2)
        assert fleet.interval("a") == 0.2
        assert await fleet.wait_until(lambda v: all(x.health.polls >= 5 for x in v), timeout=10.0)
        before = {v.name: v.health.polls for v in fleet.views()}
        fleet.set_interval(None)  # back to each host's own interval: a poll now, then quiet
        assert fleet.interval("b") == 3600.0
        assert await fleet.wait_until(lambda v: all(x.health.polls > before[x.name] for x in v), timeout=5.0)
        settled = {v.name: v.health.polls for v in fleet.views()}
        await asyncio.sleep(1.0)  # at 0.2 s this would be 5 more polls; a poll in flight at the change adds 1
        assert all(v.health.polls <= settled[v.name] + 1 for v in fleet.views())
    with pytest.raises(ValueError, match="greater than 0"):
        fleet.set_interval(0)
