"""Serial console over the host's libvirt connection: virDomain.openConsole on a non-blocking virStream.

Output arrives through the libvirt event loop the driver already runs on our asyncio
loop (libvirtaio): the stream callback reads what is there without blocking. Calls that
are round trips (open, abort) run on the driver's worker pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import libvirt

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import ActionFailed, DriverError, HostUnreachable, NoConsole, PolicyRefused, VFleetError

WATCH = libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP
CHUNK = 64 * 1024
SEND_RETRY = 0.01  # seconds between tries while the stream's send buffer is full

Blocking = Callable[[str, Callable[[], Any]], Awaitable[Any]]


def console_flags(*, force: bool, safe: bool) -> int:
    return (libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0) | (libvirt.VIR_DOMAIN_CONSOLE_SAFE if safe else 0)


def open_error(host: str, domain: str, exc: libvirt.libvirtError) -> VFleetError | None:
    """What an openConsole failure means to the operator; None: the driver's usual translation."""
    message = " ".join((exc.get_error_message() or str(exc)).split())
    lowered = message.lower()
    if "not using a pty" in lowered or "cannot find character device" in lowered or "no console" in lowered:
        return NoConsole(host, f"{domain}: no serial console on a pty to attach to ({message})")
    if "active console session" in lowered:
        return ActionFailed(host, f"{domain}: the console is in use by another session; --force takes it over")
    if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED:
        return PolicyRefused(f"{host}: {domain}: libvirt refuses consoles on this connection ({message})")
    if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
        return ActionFailed(host, f"{domain}: no console: {message}")
    return None


class LibvirtConsole(ConsoleStream):
    def __init__(self, host: str, domain: str, stream: libvirt.virStream, blocking: Blocking) -> None:
        self._host, self._domain = host, domain
        self._stream = stream
        self._blocking = blocking
        self._queue: asyncio.Queue[bytes | DriverError] = asyncio.Queue()
        self._ended = False
        self._closed = False
        stream.eventAddCallback(WATCH, self._on_event, None)

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque: object) -> None:
        """On the event loop's thread: take what is readable now, never wait."""
        if self._ended:
            return
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = stream.recv(CHUNK)
                except libvirt.libvirtError as exc:
                    self._finish(HostUnreachable(self._host, f"console of {self._domain}: {exc}"))
                    return
                if data == -2:  # nothing more for now
                    break
                if not data:
                    self._finish(b"")
                    return
                self._queue.put_nowait(bytes(data))
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self._finish(b"")

    def _finish(self, last: bytes | DriverError) -> None:
        self._ended = True
        self._queue.put_nowait(last)
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()

    async def read(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, DriverError):
            self._queue.put_nowait(item)  # every later read sees the same end
            raise item
        if not item:
            self._queue.put_nowait(item)
        return item

    async def write(self, data: bytes) -> None:
        while data and not self._ended:
            try:
                sent = self._stream.send(data)
            except libvirt.libvirtError as exc:
                raise HostUnreachable(self._host, f"console of {self._domain}: {exc}") from exc
            if sent == -2:
                await asyncio.sleep(SEND_RETRY)
                continue
            data = data[sent:]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._ended:
            self._ended = True
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.eventRemoveCallback()
        with contextlib.suppress(Exception):  # a dead connection cannot abort: nothing left to release
            await self._blocking("console abort", self._stream.abort)
