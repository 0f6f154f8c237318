"""A small per-host thread pool for blocking client libraries (libvirt-python, pyVmomi).

Each host has two lanes of daemon threads: CONTROL (connect, poll, close: one thread,
so they run in order) and ACTION (size - 1 threads). libvirtd serves 5 calls at once
per connection, so 4 actions and a poll fit side by side: an action never blocks a
poll, and a bulk action uses the host's concurrency instead of a queue.

Every call runs by a deadline. A call that is still running when its caller gives up
(timeout or cancellation) is stuck: it keeps its thread until it returns, and a lane
whose threads are all stuck answers DriverBusy instead of starting more. So a hung
host costs at most `size` threads, however often it is retried: pools belong to the
host, not to one driver instance, and the engine makes a new instance per reconnect.
Work that must happen (logout, close) is never refused nor cancelled: it queues behind
a stuck call and runs when that returns. Idle threads exit after IDLE_EXIT seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from vfleet.core.errors import DriverBusy, DriverError, DriverTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")
Translate = Callable[[Exception, str], DriverError | None]
IDLE_EXIT = 30.0
DEFAULT_SIZE = 5  # libvirtd's max_client_requests; pyVmomi's connection pool size


class Lane(Enum):
    CONTROL = "control"
    ACTION = "action"


@dataclass(eq=False)
class _Job:
    what: str
    fn: Callable[[], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


@dataclass(eq=False)
class _LaneState:
    size: int
    cond: threading.Condition  # on the pool's lock; wakes this lane's idle threads only
    jobs: deque[_Job] = field(default_factory=deque)
    threads: int = 0
    idle: int = 0
    running: dict[concurrent.futures.Future[Any], str] = field(default_factory=dict)
    stuck: set[concurrent.futures.Future[Any]] = field(default_factory=set)


class BlockingPool:
    """The threads of one host; get it with pool_for()."""

    def __init__(self, host: str, endpoint: str, size: int = DEFAULT_SIZE) -> None:
        self.host = host
        self.endpoint = endpoint  # named in timeout messages: "no answer from ENDPOINT"
        self._lock = threading.Lock()
        self._lanes = {
            Lane.CONTROL: _LaneState(1, threading.Condition(self._lock)),
            Lane.ACTION: _LaneState(max(1, size - 1), threading.Condition(self._lock)),
        }
        self.recording: list[tuple[str, Any]] | None = None  # (what, result) of each call, while recording

    @contextlib.contextmanager
    def recorded(self) -> Iterator[list[tuple[str, Any]]]:
        """What each call that succeeds inside the block returned, by its `what` (the recording hook of
        `vfleet debug record`: the raw answers a poll read, before any parsing)."""
        calls: list[tuple[str, Any]] = []
        self.recording = calls
        try:
            yield calls
        finally:
            self.recording = None

    # -- what tests and diagnostics look at ----------------------------------------

    def threads(self) -> int:
        with self._lock:
            return sum(lane.threads for lane in self._lanes.values())

    def stuck(self, lane: Lane | None = None) -> list[str]:
        """What each stuck call was doing."""
        with self._lock:
            lanes = [self._lanes[lane]] if lane else list(self._lanes.values())
            return [doing for state in lanes for f, doing in state.running.items() if f in state.stuck and not f.done()]

    def stuck_futures(self) -> list[concurrent.futures.Future[Any]]:
        """The stuck calls themselves: wait on them to know when a hung host has let go."""
        with self._lock:
            return [f for state in self._lanes.values() for f in state.stuck if not f.done()]

    def running(self, lane: Lane) -> int:
        with self._lock:
            return len(self._lanes[lane].running)

    # -- calls ------------------------------------------------------------------------

    async def finally_run(self, what: str, fn: Callable[[], object], *, wait: float, translate: Translate) -> None:
        """Run a closing call (logout, close) on the control lane: queued behind a stuck call,
        never skipped (a session left open leaks on the server); waited for at most `wait` s."""
        with contextlib.suppress(DriverError, asyncio.CancelledError):
            await self.call(
                Lane.CONTROL, what, fn, deadline=time.monotonic() + wait, translate=translate, always=True
            )

    async def call(
        self,
        lane: Lane,
        what: str,
        fn: Callable[[], T],
        *,
        deadline: float,
        translate: Translate,
        on_abandon: Callable[[], object] | None = None,
        discard: Callable[[T], None] | None = None,
        always: bool = False,
    ) -> T:
        """Run fn on one of the lane's threads by `deadline` (a time.monotonic() value).

        Backend exceptions go through `translate` (None: re-raise as is). If the caller gives
        up while fn runs, `on_abandon` runs at once (e.g. to kill what fn waits for) and
        `discard` later receives fn's result, if any (e.g. a connection nobody will use).
        `always`: never refused, never cancelled; the caller only stops waiting at the deadline.
        """
        budget = deadline - time.monotonic()
        if budget <= 0 and not always:
            raise DriverTimeout(self.host, f"{what}: no time left (the deadline passed before it started)")
        job = self._submit(lane, what, fn, always=always)
        waiter = asyncio.wrap_future(job.future)
        try:
            if always:
                done, _ = await asyncio.wait({waiter}, timeout=max(0.0, budget))
                if not done:
                    raise TimeoutError
            else:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(max(0.0, budget)):
                    await waiter
            result = job.future.result()
            if self.recording is not None:
                self.recording.append((what, result))
            return result  # type: ignore[no-any-return]
        except TimeoutError:
            started = self._give_up(lane, job, on_abandon, discard, cancel=not always)
            if started or always:
                raise DriverTimeout(
                    self.host, f"{what}: no answer from {self.endpoint} within {budget:.3g} s"
                ) from None
            busy = ", ".join(self._running_now(lane)) or "other calls"
            raise DriverTimeout(
                self.host, f"{what}: no free thread for {self.endpoint} within {budget:.3g} s (busy with {busy})"
            ) from None
        except asyncio.CancelledError:
            self._give_up(lane, job, on_abandon, discard, cancel=not always)
            raise
        except DriverError:
            raise
        except Exception as exc:
            translated = translate(exc, what)
            if translated is None:
                raise
            raise translated from exc
        finally:
            if always and not waiter.done():  # an asyncio future nobody awaits must not log its error
                waiter.add_done_callback(_retrieve)

    def _submit(self, lane: Lane, what: str, fn: Callable[[], Any], *, always: bool) -> _Job:
        with self._lock:
            state = self._lanes[lane]
            stuck = [doing for f, doing in state.running.items() if f in state.stuck and not f.done()]
            if not always and len(stuck) >= state.size:
                raise DriverBusy(
                    self.host, f"{what}: an earlier call ({', '.join(stuck)}) is still running; waiting for it"
                )
            job = _Job(what, fn)
            state.jobs.append(job)
            if state.idle < len(state.jobs) and state.threads < state.size:
                state.threads += 1
                name = f"vfleet:{self.host}:{lane.value}"
                threading.Thread(target=self._work, args=(state,), name=name, daemon=True).start()
            state.cond.notify()
            return job

    def _give_up(
        self,
        lane: Lane,
        job: _Job,
        on_abandon: Callable[[], object] | None,
        discard: Callable[[Any], None] | None,
        *,
        cancel: bool,
    ) -> bool:
        """The caller stopped waiting: cancel the job if it has not started, else mark it stuck.

        Returns whether it had started."""
        if cancel and job.future.cancel():
            return False
        with self._lock:
            state = self._lanes[lane]
            started = job.future in state.running
            if started:
                state.stuck.add(job.future)
        if started and on_abandon is not None:
            try:
                on_abandon()
            except Exception:  # cleanup must not hide the timeout it follows
                log.debug("%s: cleanup after abandoning %s failed", self.host, job.what, exc_info=True)
        if discard is not None:
            job.future.add_done_callback(lambda f: self._discard(lane, job.what, f, discard))
        return started or job.future.done()

    def _discard(
        self, lane: Lane, what: str, future: concurrent.futures.Future[Any], discard: Callable[[Any], None]
    ) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        self._submit(lane, f"discard {what}", lambda: discard(result), always=True)

    def _running_now(self, lane: Lane) -> list[str]:
        with self._lock:
            return list(self._lanes[lane].running.values())

    def _work(self, state: _LaneState) -> None:
        with state.cond:
            while True:
                idle_until = time.monotonic() + IDLE_EXIT
                while not state.jobs:
                    left = idle_until - time.monotonic()
                    if left <= 0:
                        state.threads -= 1
                        return
                    state.idle += 1
                    state.cond.wait(left)
                    state.idle -= 1
                job = state.jobs.popleft()
                if not job.future.set_running_or_notify_cancel():
                    continue  # its caller gave up before it started
                future = job.future
                state.running[future] = job.what
                state.cond.release()
                try:
                    _run(job)
                finally:
                    # Hold nothing of a finished job while idle: a libvirt connection is freed
                    # (and its event-loop handles released) only when its last reference goes.
                    del job
                    state.cond.acquire()
                    del state.running[future]
                    state.stuck.discard(future)
                    del future


def _run(job: _Job) -> None:
    try:
        result = job.fn()
    except BaseException as exc:
        job.future.set_exception(exc)
    else:
        job.future.set_result(result)


_pools: dict[tuple[str, str], BlockingPool] = {}
_pools_lock = threading.Lock()


def pool_for(host: str, endpoint: str, size: int = DEFAULT_SIZE) -> BlockingPool:
    """The pool of the host at `endpoint`, shared by every driver instance of that host."""
    with _pools_lock:
        pool = _pools.get((host, endpoint))
        if pool is None:
            pool = _pools[(host, endpoint)] = BlockingPool(host, endpoint, size)
        return pool


def _retrieve(future: asyncio.Future[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()
