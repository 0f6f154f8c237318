"""One worker thread per host for blocking client libraries (libvirt-python, pyVmomi).

Every call runs on the host's own daemon thread, in order, with a timeout. A call
that timed out keeps running in its thread: until it returns the host answers
DriverBusy instead of piling more calls onto it. Daemon threads, so a hung call
never blocks the process from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vfleet.core.errors import DriverBusy, DriverError, DriverTimeout

T = TypeVar("T")
Translate = Callable[[Exception, str], DriverError | None]


class BlockingWorker:
    def __init__(self, host: str, endpoint: str) -> None:
        self.host = host
        self.endpoint = endpoint  # named in timeout messages: "no answer from ENDPOINT"
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._stuck: concurrent.futures.Future[Any] | None = None
        self._stuck_what = ""
        threading.Thread(target=self._run, name=f"worker:{host}", daemon=True).start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)

    @property
    def busy(self) -> bool:
        return self._stuck is not None and not self._stuck.done()

    async def call(self, what: str, fn: Callable[[], T], timeout: float, translate: Translate) -> T:
        """Run fn on the host's thread; backend exceptions go through `translate` (None: re-raise)."""
        if self.busy:
            raise DriverBusy(self.host, f"an earlier call ({self._stuck_what}) is still running; waiting for it")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            self._stuck, self._stuck_what = future, what
            raise DriverTimeout(self.host, f"{what}: no answer from {self.endpoint} within {timeout:g} s") from None
        except asyncio.CancelledError:
            if not future.done():
                self._stuck, self._stuck_what = future, what
            raise
        except DriverError:
            raise
        except Exception as exc:
            translated = translate(exc, what)
            if translated is None:
                raise
            raise translated from exc

    def stop(self) -> None:
        self._jobs.put(None)
