"""The fleet engine: one task per host that connects, polls and reconnects.

Each host runs on its own asyncio task, so a slow, hung or dead host never delays
another. A tick that comes while the previous poll is still in flight is
skipped, not queued; connection failures back off exponentially with jitter.
Every change is published as an immutable HostView; subscribers receive only the
latest view per host, so a slow consumer collapses old snapshots instead of
queueing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from vfleet.core.errors import AuthFailed, DriverError, DriverTimeout, HostUnreachable, VFleetError
from vfleet.core.metrics import DomainRow, History, HistoryPoint, compute_rates
from vfleet.core.models import DomainCounters, DomainEvent, HostConfig, HostFacts, HostHealth, HostSnapshot, HostStatus
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.registry import create_driver

log = logging.getLogger(__name__)

DriverFactory = Callable[[HostConfig, bool], Driver]
EVENT_LOG_SIZE = 500


def default_driver_factory(config: HostConfig, read_only: bool) -> Driver:
    return create_driver(config, read_only=read_only)


class Backoff:
    """Exponential backoff with jitter: base * 2**n, capped, times a random 0.5..1."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.failures = base, cap, 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return float(delay * self._rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True)
class HostView:
    """Everything the faces know about one host at one moment."""

    config: HostConfig
    health: HostHealth
    facts: HostFacts | None
    rows: tuple[DomainRow, ...]
    read_only: bool
    capabilities: frozenset[Capability]
    attempts: int  # connection attempts so far; lets callers tell "not tried yet"

    @property
    def name(self) -> str:
        return self.config.name


class Subscription:
    """Latest HostView per host since the last read; never grows past the fleet size."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._pending: dict[str, HostView] = {}
        self._ready = asyncio.Event()

    def _offer(self, view: HostView) -> None:
        self._pending[view.name] = view
        self._ready.set()

    async def next_batch(self) -> list[HostView]:
        await self._ready.wait()
        self._ready.clear()
        batch, self._pending = list(self._pending.values()), {}
        return batch

    def close(self) -> None:
        self._fleet._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[list[HostView]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[HostView]]:
        while True:
            yield await self.next_batch()


class _HostState:
    """Mutable per-host state, touched only from the host's own task."""

    def __init__(self, config: HostConfig, read_only: bool) -> None:
        self.config = config
        self.read_only = read_only
        self.health = HostHealth(HostStatus.CONNECTING)
        self.facts: HostFacts | None = None
        self.driver: Driver | None = None
        self.rows: tuple[DomainRow, ...] = ()
        self.counters: dict[str, DomainCounters] = {}
        self.history: dict[str, History] = {}
        self.attempts = 0
        self.wake = asyncio.Event()  # set by a lifecycle event: poll now
        self.kick = asyncio.Event()  # set by reconnect(): skip the backoff sleep
        self.reconnect_requested = False


class Fleet:
    def __init__(
        self,
        hosts: Sequence[HostConfig],
        *,
        read_only: bool = False,
        driver_factory: DriverFactory = default_driver_factory,
        clock: Callable[[], float] = time.monotonic,
        backoff_cap: float = 60.0,
        backoff_base: float = 1.0,
    ) -> None:
        self._clock = clock
        self._factory = driver_factory
        self._backoff_cap = backoff_cap
        self._backoff_base = backoff_base
        self._states = {h.name: _HostState(h, read_only or h.read_only) for h in hosts}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: set[Subscription] = set()
        self._changed = asyncio.Condition()
        self.events: deque[DomainEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._event_listeners: list[Callable[[DomainEvent], None]] = []

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        for state in self._states.values():
            self._tasks.append(asyncio.create_task(self._run_host(state), name=f"host:{state.config.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- reading -------------------------------------------------------------

    def view(self, host: str) -> HostView:
        return self._view(self._states[host])

    def views(self) -> list[HostView]:
        return [self._view(s) for s in self._states.values()]

    def history(self, host: str, key: str) -> History | None:
        state = self._states.get(host)
        return state.history.get(key) if state else None

    def driver(self, host: str) -> Driver | None:
        """The connected driver of a host, or None while it is not connected."""
        return self._states[host].driver

    def request_poll(self, host: str) -> None:
        """Poll this host as soon as its current poll (if any) is done."""
        self._states[host].wake.set()

    def reconnect(self, host: str) -> None:
        """Drop the host's connection (if any) and connect again now, skipping the backoff."""
        state = self._states[host]
        state.reconnect_requested = state.driver is not None
        state.kick.set()
        state.wake.set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subscriptions.add(sub)
        for state in self._states.values():
            sub._offer(self._view(state))
        return sub

    def on_event(self, listener: Callable[[DomainEvent], None]) -> None:
        self._event_listeners.append(listener)

    async def wait_until(self, predicate: Callable[[list[HostView]], bool], timeout: float) -> bool:
        """Wait until predicate(views) holds; False if the timeout came first."""

        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.views()))

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- engine --------------------------------------------------------------

    def _view(self, state: _HostState) -> HostView:
        driver_caps = type(state.driver).capabilities if state.driver else frozenset()
        return HostView(
            config=state.config,
            health=self._health_now(state),
            facts=state.facts,
            rows=state.rows,
            read_only=state.read_only,
            capabilities=driver_caps,
            attempts=state.attempts,
        )

    def _health_now(self, state: _HostState) -> HostHealth:
        health = state.health
        if health.status is HostStatus.UP:
            fresh_since = health.last_ok_at if health.last_ok_at is not None else health.since
            if fresh_since is None or self._clock() - fresh_since > 2 * state.config.poll_interval:
                return replace(health, status=HostStatus.STALE)
        return health

    async def _publish(self, state: _HostState) -> None:
        view = self._view(state)
        for sub in tuple(self._subscriptions):
            sub._offer(view)
        async with self._changed:
            self._changed.notify_all()

    async def _set_health(self, state: _HostState, **changes: object) -> None:
        if "status" in changes and changes["status"] is not state.health.status:
            changes["since"] = self._clock()
        state.health = replace(state.health, **changes)  # type: ignore[arg-type]
        await self._publish(state)

    async def _run_host(self, state: _HostState) -> None:
        config = state.config
        backoff = Backoff(base=self._backoff_base, cap=self._backoff_cap)
        while True:
            state.attempts += 1
            if state.health.status is not HostStatus.CONNECTING:
                await self._set_health(state, status=HostStatus.CONNECTING)
            driver: Driver | None = None
            try:
                driver = self._factory(config, state.read_only)
                state.facts = await asyncio.wait_for(driver.connect(), config.connect_timeout)
            except AuthFailed as exc:
                await self._connect_failed(state, driver, HostStatus.AUTH_FAILED, str(exc))
            except TimeoutError:
                await self._connect_failed(
                    state, driver, HostStatus.DOWN, f"{config.name}: no answer within {config.connect_timeout:g} s"
                )
            except VFleetError as exc:
                await self._connect_failed(state, driver, HostStatus.DOWN, str(exc))
            except Exception as exc:  # a driver bug must not kill the host's task
                log.exception("%s: unexpected error while connecting", config.name)
                await self._connect_failed(state, driver, HostStatus.DOWN, f"{config.name}: internal error: {exc!r}")
            else:
                assert driver is not None
                backoff.reset()
                await self._connected(state, driver)
            state.reconnect_requested = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.kick.wait(), backoff.next_delay())
            state.kick.clear()

    async def _connect_failed(self, state: _HostState, driver: Driver | None, status: HostStatus, error: str) -> None:
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.close()
        await self._set_health(state, status=status, last_error=error)

    async def _connected(self, state: _HostState, driver: Driver) -> None:
        state.driver = driver
        pump = (
            asyncio.create_task(self._pump_events(state, driver)) if Capability.EVENTS in driver.capabilities else None
        )
        try:
            await self._set_health(state, status=HostStatus.UP, last_error=None)
            await self._poll_loop(state, driver)
        except (HostUnreachable, AuthFailed) as exc:
            status = HostStatus.AUTH_FAILED if isinstance(exc, AuthFailed) else HostStatus.DOWN
            state.health = replace(state.health, status=status, last_error=str(exc), since=self._clock())
        finally:
            state.driver = None
            if pump is not None:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.shield(driver.close())
        await self._publish(state)

    async def _poll_loop(self, state: _HostState, driver: Driver) -> None:
        interval, timeout = state.config.poll_interval, state.config.call_timeout
        while True:
            started = self._clock()
            poll = asyncio.create_task(driver.poll())
            poll.add_done_callback(_retrieve)  # an abandoned poll's error must not be logged as lost
            try:
                while True:  # skip ticks (never queue them) while this poll is in flight
                    left = started + timeout - self._clock()
                    done, _ = await asyncio.wait({poll}, timeout=max(0.0, min(interval, left)))
                    if done or left <= interval:
                        break
                    await self._set_health(state, skipped_ticks=state.health.skipped_ticks + 1)
            finally:
                if not poll.done():
                    poll.cancel()
            await self._finish_poll(state, poll)
            state.wake.clear()
            pause = interval - (self._clock() - started) % interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), pause)
            if state.reconnect_requested:
                raise HostUnreachable(state.config.name, "reconnecting on request")

    async def _finish_poll(self, state: _HostState, poll: asyncio.Task[HostSnapshot]) -> None:
        await asyncio.wait({poll}, timeout=1.0)  # let a cancelled poll unwind
        name = state.config.name
        if not poll.done() or poll.cancelled():
            error = DriverTimeout(name, f"poll gave no answer within {state.config.call_timeout:g} s")
            await self._set_health(state, last_error=str(error))
            return
        exc = poll.exception()
        if isinstance(exc, (HostUnreachable, AuthFailed)):
            raise exc
        if isinstance(exc, DriverError):  # keep the connection; the data goes STALE
            await self._set_health(state, last_error=str(exc))
            return
        if exc is not None:
            log.error("%s: unexpected error while polling", name, exc_info=exc)
            await self._set_health(state, last_error=f"{name}: internal error: {exc!r}")
            return
        snapshot = poll.result()
        self._absorb(state, snapshot)
        await self._set_health(
            state, status=HostStatus.UP, last_error=None, last_ok_at=self._clock(), polls=state.health.polls + 1
        )

    def _absorb(self, state: _HostState, snapshot: HostSnapshot) -> None:
        if snapshot.facts is not None:
            state.facts = snapshot.facts
        host_cpus = state.facts.cpus if state.facts else None
        hypervisor = state.facts.hypervisor if state.facts else state.config.driver
        capacity = History.capacity_for(state.config.poll_interval)
        rows: list[DomainRow] = []
        seen: set[str] = set()
        for domain in snapshot.domains:
            key = domain.key
            seen.add(key)
            rates = compute_rates(
                state.counters.get(key), domain.counters, vcpus=domain.vcpus, host_cpus=host_cpus, gauges=domain.gauges
            )
            if domain.counters is not None:
                state.counters[key] = domain.counters
            history = state.history.get(key)
            if history is None:
                history = state.history[key] = History(capacity)
            history.append(HistoryPoint(snapshot.taken_at, rates, domain.memory_used_bytes))
            rows.append(DomainRow(state.config.name, hypervisor, domain, rates, state.config.tags, snapshot.taken_at))
        for gone in set(state.history) - seen:
            del state.history[gone]
            state.counters.pop(gone, None)
        state.rows = tuple(rows)

    async def _pump_events(self, state: _HostState, driver: Driver) -> None:
        try:
            async for event in driver.events():
                self.events.appendleft(event)
                for listener in self._event_listeners:
                    listener(event)
                state.wake.set()  # show the new state now, not at the next tick
        except VFleetError as exc:
            log.warning("%s: event stream ended: %s", state.config.name, exc)


def _retrieve(task: asyncio.Task[HostSnapshot]) -> None:
    if not task.cancelled():
        task.exception()

