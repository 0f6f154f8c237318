"""The fleet engine: one supervised task per host that connects, polls and reconnects.

Each host runs on its own asyncio task, so a slow, hung or dead host never delays
another. That task is a supervisor: it runs sessions (connect, then poll until the
connection is lost) and nothing a driver, a sample or a listener does ends it; an
unexpected error is logged, shown as the host's error and retried with backoff.
A tick that comes while the previous poll is still in flight is skipped, not
queued. Every change is published as an immutable HostView; subscribers receive
only the latest view per host, so a slow consumer collapses old snapshots instead
of queueing them.

Python 3.11's asyncio.wait_for() drops a cancellation that arrives just as the
awaited thing completes. The engine never uses it (asyncio.timeout() and
asyncio.wait() do not have that bug), and stop() cancels until each task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from vfleet.core.errors import AuthFailed, DataStale, GarbledOutput, HostUnreachable, VFleetError
from vfleet.core.history import History, HostHistory, capacity_for
from vfleet.core.metrics import DomainRow
from vfleet.core.models import DomainEvent, HostConfig, HostFacts, HostHealth, HostSnapshot, HostStatus, Value
from vfleet.core.samples import HostData, check_facts
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.registry import create_driver

log = logging.getLogger(__name__)
T = TypeVar("T")

DriverFactory = Callable[[HostConfig, bool], Driver]
EVENT_LOG_SIZE = 500
STOP_GRACE = 5.0  # seconds stop() waits for every task (and driver close) before abandoning them
CALL_GRACE = 1.0  # the engine's own bound waits this long past a driver's deadline: the driver's error says more
UNWIND_WAIT = 1.0  # seconds a cancelled poll or event stream gets to unwind
CLOSE_WAIT = 5.0  # seconds a session waits for its driver's close() before it moves on


def default_driver_factory(config: HostConfig, read_only: bool) -> Driver:
    return create_driver(config, read_only=read_only)


class Backoff:
    """Exponential backoff with jitter: base * 2**n, capped, times a random 0.5..1."""

    def __init__(self, base: float = 1.0, cap: float = 8.0, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.failures = base, cap, 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2 ** min(self.failures, 64))
        self.failures += 1
        return float(delay * self._rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostView(Value):
    """Everything the faces know about one host at one moment."""

    config: HostConfig
    health: HostHealth
    facts: HostFacts | None
    rows: tuple[DomainRow, ...]
    read_only: bool
    capabilities: frozenset[Capability]
    attempts: int  # connection attempts so far; lets callers tell "not tried yet"
    unsupported: Mapping[Capability, str] = field(default_factory=dict)  # why the driver lacks a capability
    polled_at: float | None = None  # the driver's time of the last poll absorbed (rows keep their own)

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
    """Mutable per-host state, touched only from the host's own tasks."""

    def __init__(self, config: HostConfig, read_only: bool) -> None:
        self.config = config
        self.read_only = read_only
        self.health = HostHealth(HostStatus.CONNECTING)
        self.data = HostData(config)
        self.driver: Driver | None = None
        self.connected_at: float | None = None  # engine clock; set while a connection is open
        self.connected_once = False  # the current or last session got connected
        self.attempts = 0
        self.wake = asyncio.Event()  # set by request_poll() or an event: poll now
        self.kick = asyncio.Event()  # set by reconnect() between sessions: skip the backoff
        self.supervisor: asyncio.Task[None] | None = None
        self.session: asyncio.Task[None] | None = None


class Fleet:
    def __init__(
        self,
        hosts: Sequence[HostConfig],
        *,
        read_only: bool = False,
        driver_factory: DriverFactory = default_driver_factory,
        clock: Callable[[], float] = time.monotonic,
        backoff_cap: float | None = None,
        backoff_base: float = 1.0,
        stop_grace: float = STOP_GRACE,
        history: bool = False,
    ) -> None:
        """`clock` stamps health (tests move it by hand); `backoff_cap` overrides every host's reconnect_max.

        `history`: keep ten minutes of sparkline data per domain (the TUI); off, none is kept.
        """
        self._clock = clock
        self._factory = driver_factory
        self._backoff_cap = backoff_cap
        self._backoff_base = backoff_base
        self._stop_grace = stop_grace
        self._states = {h.name: _HostState(h, read_only or h.read_only) for h in hosts}
        self._interval: float | None = None  # set_interval(): overrides every host's poll_interval
        self._tasks: set[asyncio.Task[Any]] = set()  # every task of the engine: stop() ends them all
        self._closing: set[asyncio.Task[None]] = set()  # driver closes: waited for, never cancelled
        self._running = False
        self._subscriptions: set[Subscription] = set()
        self._changed = asyncio.Event()  # replaced on every publish; waiters hold the old one
        self.events: deque[DomainEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._event_listeners: list[Callable[[DomainEvent], None]] = []
        if history:
            self.keep_history()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        for state in self._states.values():
            self._supervise_host(state)

    async def stop(self) -> None:
        """Cancel every task and wait until each is done, cancelling again while one is not.

        A cancellation can be swallowed (Python 3.11's wait_for, a driver's own
        code); cancelling once and waiting for ever hung `vfleet act`. After
        stop_grace seconds what is left is logged and abandoned.
        """
        self._running = False
        loop = asyncio.get_running_loop()
        grace = self._stop_grace
        deadline = loop.time() + grace
        pause = 0.02
        while pending := {t for t in self._tasks if not t.done()}:
            left = deadline - loop.time()
            if left <= 0:
                names = ", ".join(sorted(t.get_name() for t in pending))
                log.warning("engine: %d tasks did not stop within %g s, abandoned: %s", len(pending), grace, names)
                return
            for task in pending - self._closing:
                task.cancel()
            await asyncio.wait(pending, timeout=min(pause, left))
            pause = min(2 * pause, 0.5)

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- reading and asking --------------------------------------------------

    def view(self, host: str) -> HostView:
        return self._view(self._states[host])

    def views(self) -> list[HostView]:
        return [self._view(s) for s in self._states.values()]

    def keep_history(self) -> None:
        """From now on keep each domain's recent history (for a face that draws it)."""
        for name, state in self._states.items():
            if state.data.history is None:
                state.data.history = HostHistory(capacity_for(self.interval(name)))

    def history(self, host: str, key: str) -> History | None:
        """A domain's recent history; None if unknown or if history is not kept."""
        state = self._states.get(host)
        data = state.data if state else None
        return data.history.get(key) if data and data.history is not None else None

    def driver(self, host: str) -> Driver | None:
        """The connected driver of a host, or None while it is not connected."""
        return self._states[host].driver

    def set_interval(self, seconds: float | None) -> None:
        """Poll every host each `seconds` from now on (None: each host's own poll_interval).

        Each host loop reads the interval at every tick; hosts are polled once now, so
        the new cadence starts at once instead of after the old (perhaps long) wait.
        """
        if seconds is not None and not seconds > 0:
            raise ValueError(f"poll interval must be greater than 0, got {seconds}")
        self._interval = seconds
        for name, state in self._states.items():
            if state.data.history is not None:  # still ten minutes at the new cadence
                state.data.history.resize(capacity_for(self.interval(name)))
            state.wake.set()

    def interval(self, host: str) -> float:
        """The seconds between polls of this host now."""
        return self._interval if self._interval is not None else self._states[host].config.poll_interval

    def request_poll(self, host: str) -> None:
        """Poll this host as soon as its current poll (if any) is done."""
        self._states[host].wake.set()

    def reconnect(self, host: str) -> None:
        """Drop the host's connection or connection attempt and connect again now, skipping any backoff."""
        state = self._states[host]
        if not self._running:
            return
        if state.supervisor is None or state.supervisor.done():
            self._supervise_host(state)  # supervisors do not end by themselves: a safety net only
        elif state.session is not None and not state.session.done():
            state.session.cancel()  # mid-connect or mid-poll: the supervisor starts a new session at once
        else:
            state.kick.set()  # in a backoff pause

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
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.views()):
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    # -- health --------------------------------------------------------------

    def _view(self, state: _HostState) -> HostView:
        driver_caps = type(state.driver).capabilities if state.driver else frozenset()
        return HostView(
            config=state.config,
            health=self._health_now(state),
            facts=state.data.facts,
            rows=state.data.rows,
            read_only=state.read_only,
            capabilities=driver_caps,
            attempts=state.attempts,
            unsupported=type(state.driver).unsupported if state.driver else {},
            polled_at=state.data.taken_at,
        )

    def _health_now(self, state: _HostState) -> HostHealth:
        """STALE is derived: an UP host whose data is old, or a connected host whose first poll is late."""
        health = state.health
        if health.status is HostStatus.UP:
            fresh_since = health.last_ok_at
        elif health.status is HostStatus.CONNECTING:
            fresh_since = state.connected_at
        else:
            return health
        if fresh_since is not None and self._clock() - fresh_since > 2 * self.interval(state.config.name):
            return replace(health, status=HostStatus.STALE)
        return health

    def _publish(self, state: _HostState) -> None:
        view = self._view(state)
        for sub in tuple(self._subscriptions):
            sub._offer(view)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _set_health(self, state: _HostState, *, publish: bool = True, **changes: Any) -> None:
        if "status" in changes and changes["status"] is not state.health.status:
            changes["since"] = self._clock()
        state.health = replace(state.health, **changes)
        if publish:
            self._publish(state)

    def _failed(
        self,
        state: _HostState,
        status: HostStatus,
        error: str,
        *,
        exc: BaseException | None = None,
        bug: bool = False,
        publish: bool = True,
    ) -> None:
        """Record a failure: one log line when the error is new, the traceback at DEBUG.

        A backend's failure (a VFleetError) is logged at INFO: the faces show it.
        A bug (an unexpected exception, a malformed sample) is a WARNING.
        """
        if exc is not None:
            log.debug("%s", error, exc_info=exc)
        if error != state.health.last_error:
            hint = " (-vv shows the traceback)" if exc is not None else ""
            log.log(logging.WARNING if bug or exc is not None else logging.INFO, "%s%s", error, hint)
        self._set_health(state, publish=publish, status=status, last_error=error, last_error_at=self._clock())

    # -- supervision -----------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _supervise_host(self, state: _HostState) -> None:
        state.supervisor = self._spawn(self._supervise(state), f"host:{state.config.name}")

    def _backoff(self, state: _HostState) -> Backoff:
        cap = self._backoff_cap if self._backoff_cap is not None else state.config.reconnect_max
        return Backoff(base=min(self._backoff_base, cap), cap=cap)

    async def _supervise(self, state: _HostState) -> None:
        """The host's task: runs sessions until stop(); an unexpected error is shown and retried."""
        backoff = self._backoff(state)
        name = state.config.name
        while self._running:
            began = time.monotonic()
            state.attempts += 1
            session = state.session = self._spawn(self._session(state, backoff), f"session:{name}")
            try:
                await asyncio.wait({session})
            except asyncio.CancelledError:
                session.cancel()
                raise
            if session.cancelled():
                continue  # reconnect(): start again at once
            exc = session.exception()
            if exc is not None:
                self._failed(state, HostStatus.DOWN, f"{name}: internal error: {exc!r}", exc=exc)
            # A failed connect counts toward the wait (one that timed out has waited
            # already), so a host that returns is UP within about reconnect_max.
            waited = 0.0 if state.connected_once else time.monotonic() - began
            await self._pause(state, backoff.next_delay() - waited)

    async def _pause(self, state: _HostState, seconds: float) -> None:
        if seconds > 0 and not state.kick.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await state.kick.wait()
        state.kick.clear()

    async def _session(self, state: _HostState, backoff: Backoff) -> None:
        """One connection: connect, then poll until it is lost. Unexpected errors reach the supervisor."""
        state.connected_once = False
        if state.health.status is not HostStatus.CONNECTING:
            self._set_health(state, status=HostStatus.CONNECTING)
        driver: Driver | None = None
        pump: asyncio.Task[None] | None = None
        connected = False
        try:
            driver = self._factory(state.config, state.read_only)
            facts = await self._connect(state, driver)
            if facts is None:
                return
            state.driver, state.connected_at, state.data.facts = driver, self._clock(), facts
            state.connected_once = connected = True
            if Capability.EVENTS in driver.capabilities:
                pump = self._spawn(self._pump_events(state, driver), f"events:{state.config.name}")
            self._publish(state)
            await self._poll_loop(state, driver, backoff)
        except (HostUnreachable, AuthFailed) as exc:  # the connection was lost mid-poll
            status = HostStatus.AUTH_FAILED if isinstance(exc, AuthFailed) else HostStatus.DOWN
            self._failed(state, status, str(exc), publish=not connected)  # else published once closed
        finally:
            state.driver = state.connected_at = None
            if pump is not None:
                pump.cancel()
                await asyncio.wait({pump}, timeout=UNWIND_WAIT)
            if driver is not None:
                await self._close(driver)
            if connected:
                self._publish(state)  # the host lost its driver and capabilities

    async def _connect(self, state: _HostState, driver: Driver) -> HostFacts | None:
        config = state.config
        try:
            # The driver honours the deadline; asyncio.timeout is the engine's own safety net.
            async with asyncio.timeout(config.connect_timeout + CALL_GRACE):
                facts = await driver.connect(deadline=time.monotonic() + config.connect_timeout)
            check_facts(config.name, facts)
        except AuthFailed as exc:
            self._failed(state, HostStatus.AUTH_FAILED, str(exc))
        except TimeoutError:
            self._failed(state, HostStatus.DOWN, f"{config.name}: no answer within {config.connect_timeout:g} s")
        except VFleetError as exc:
            self._failed(state, HostStatus.DOWN, str(exc))
        else:
            return facts
        return None

    async def _close(self, driver: Driver) -> None:
        closing = self._spawn(_close_quietly(driver), f"close:{driver.host}")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.wait({closing}, timeout=CLOSE_WAIT)

    # -- polling ---------------------------------------------------------------

    async def _poll_loop(self, state: _HostState, driver: Driver, backoff: Backoff) -> None:
        timeout = state.config.call_timeout
        while True:
            interval = self.interval(state.config.name)  # set_interval() takes effect at the next tick
            state.wake.clear()  # a request made during this poll asks for the next one
            started = time.monotonic()
            poll = self._spawn(driver.poll(deadline=started + timeout), f"poll:{state.config.name}")
            poll.add_done_callback(_retrieve)  # an abandoned poll's error must not be logged as lost
            try:
                while True:  # skip ticks (never queue them) while this poll is in flight
                    left = started + timeout + CALL_GRACE - time.monotonic()
                    done, _ = await asyncio.wait({poll}, timeout=max(0.0, min(interval, left)))
                    if done or left <= interval:
                        break
                    self._set_health(state, skipped_ticks=state.health.skipped_ticks + 1)
            finally:
                if not poll.done():
                    poll.cancel()
            await self._finish_poll(state, poll, backoff)
            if not state.wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval - (time.monotonic() - started) % interval):
                        await state.wake.wait()

    async def _finish_poll(self, state: _HostState, poll: asyncio.Task[HostSnapshot], backoff: Backoff) -> None:
        name, timeout = state.config.name, state.config.call_timeout
        if not poll.done():  # cancelled by the engine's bound: let it unwind
            await asyncio.wait({poll}, timeout=UNWIND_WAIT)
        exc = None if not poll.done() or poll.cancelled() else poll.exception()
        if not poll.done() or poll.cancelled() or isinstance(exc, TimeoutError):
            self._failed(state, HostStatus.DEGRADED, f"{name}: poll gave no answer within {timeout:g} s")
        elif isinstance(exc, (HostUnreachable, AuthFailed)):
            raise exc
        elif isinstance(exc, DataStale):  # a relay answered, but has nothing fresh for this host
            self._failed(state, HostStatus.STALE, str(exc))
        elif isinstance(exc, VFleetError):  # keep the connection: garbled output, a failed command ...
            self._failed(state, HostStatus.DEGRADED, str(exc))
        elif exc is not None:
            self._failed(state, HostStatus.DEGRADED, f"{name}: internal error while polling: {exc!r}", exc=exc)
        else:
            snapshot = poll.result()
            try:
                state.data.absorb(snapshot)
            except GarbledOutput as bad:  # a driver handed over a value of the wrong type
                self._failed(state, HostStatus.DEGRADED, str(bad), bug=True)
            except Exception as bug:
                self._failed(state, HostStatus.DEGRADED, f"{name}: internal error in a sample: {bug!r}", exc=bug)
            else:
                backoff.reset()
                self._set_health(
                    state,
                    status=HostStatus.UP,
                    last_error=None,
                    last_ok_at=self._clock(),
                    lag=snapshot.lag,
                    polls=state.health.polls + 1,
                )

    # -- events ----------------------------------------------------------------

    async def _pump_events(self, state: _HostState, driver: Driver) -> None:
        """Deliver a driver's events; a stream that fails or ends is restarted with backoff."""
        name = state.config.name
        backoff = self._backoff(state)
        previous: str | None = None  # the last failure, so a stream failing again and again logs once
        while True:
            error, exc = f"{name}: the event stream ended", None
            try:
                async for event in driver.events():
                    self._deliver(state, event)
                    backoff.reset()
                    previous = None
            except VFleetError as failure:
                error = str(failure)
            except Exception as bug:
                error, exc = f"{name}: internal error in the event stream: {bug!r}", bug
            if exc is not None:
                log.debug("%s", error, exc_info=exc)
            level = logging.WARNING if exc is not None else logging.INFO
            log.log(level if error != previous else logging.DEBUG, "%s (restarting the event stream)", error)
            previous = error
            if state.health.last_error is None:  # never hide why polls fail; a good poll clears this one
                self._set_health(state, last_error=f"{error} (event stream)", last_error_at=self._clock())
            await asyncio.sleep(backoff.next_delay())

    def _deliver(self, state: _HostState, event: DomainEvent) -> None:
        self.events.appendleft(event)
        for listener in tuple(self._event_listeners):
            try:
                listener(event)
            except Exception as exc:  # a face's bug must not end the stream for everyone
                log.debug("%s: event listener %r failed", state.config.name, listener, exc_info=exc)
                log.warning("%s: an event listener failed: %r (-vv shows the traceback)", state.config.name, exc)
        state.wake.set()  # show the new state now, not at the next tick


async def _close_quietly(driver: Driver) -> None:
    try:
        await driver.close()
    except Exception as exc:  # close() must not raise; if it does, the connection is gone anyway
        log.debug("%s: close failed: %r", driver.host, exc, exc_info=exc)


def _retrieve(task: asyncio.Task[HostSnapshot]) -> None:
    if not task.cancelled():
        task.exception()
