"""A serial console session on the operator's terminal (no textual: the CLI and the TUI share it).

The driver gives a ConsoleStream (bytes both ways); `attach` puts the operator's tty
in raw mode and pumps bytes until the escape key (Ctrl+], as virsh and xl use), the
remote end closes, an error, a cancel or SIGTERM. The tty is restored in every case.
Remote output goes to the terminal as is (it is a terminal session); our own lines
go through printable().
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import termios
import tty
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from vfleet.core.errors import VFleetError
from vfleet.core.sanitize import printable

ESCAPE = b"\x1d"  # Ctrl+]
ESCAPE_NAME = "Ctrl+]"


class ConsoleStream(ABC):
    """One open console: what a driver's open_console returns."""

    ended: Ended | None = None  # how the session on it ended: set by attach, read for the audit record

    @abstractmethod
    async def read(self) -> bytes:
        """The next output of the domain; b"" once the console closed. Raises a VFleetError if it broke."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send keystrokes to the domain."""

    @abstractmethod
    async def close(self) -> None:
        """Release the console; must not raise and must be safe to call twice."""


@dataclass(frozen=True, slots=True)
class Ended:
    """How a session ended: by the escape key, the remote end, or an error (its one line)."""

    how: str  # escape, closed, error, terminated, input-closed
    message: str = ""


def banner(domain: str, host: str, *, view_only: bool) -> str:
    line = f"Connected to {domain} on {host}. Escape: {ESCAPE_NAME}"
    if view_only:
        line += " (view-only: read-only host, keystrokes are not sent)"
    return printable(line)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on `fd` if it is a terminal; the saved settings come back whatever happens."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


async def attach(
    stream: ConsoleStream,
    *,
    view_only: bool = False,
    stdin: int = 0,
    stdout: int = 1,
) -> Ended:
    """Pump bytes between the operator's fds and `stream` until one side ends; the stream is closed after."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Ended] = loop.create_future()

    def end(ended: Ended) -> None:
        if not done.done():
            done.set_result(ended)

    pending: list[bytes] = []  # keystrokes in order, sent by one writer task
    wake = asyncio.Event()

    def on_input() -> None:
        try:
            data = os.read(stdin, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            end(Ended("input-closed", f"terminal read failed: {exc.strerror}"))
            return
        if not data:
            end(Ended("input-closed", "end of input"))
            return
        before, escape, _after = data.partition(ESCAPE)
        if before and not view_only:
            pending.append(before)
            wake.set()
        if escape:
            end(Ended("escape"))

    async def pump_out() -> None:
        while True:
            try:
                data = await stream.read()
            except VFleetError as exc:
                end(Ended("error", str(exc)))
                return
            if not data:
                end(Ended("closed", "the console was closed by the host"))
                return
            _write_all(stdout, data)

    async def pump_in() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while pending:
                try:
                    await stream.write(pending.pop(0))
                except VFleetError as exc:
                    end(Ended("error", str(exc)))
                    return

    with raw_terminal(stdin):
        tasks = [asyncio.create_task(pump_out()), asyncio.create_task(pump_in())]
        loop.add_reader(stdin, on_input)
        terminated = _on_sigterm(loop, lambda: end(Ended("terminated", "terminated by SIGTERM")))
        try:
            stream.ended = await done
            return stream.ended
        finally:
            loop.remove_reader(stdin)
            if terminated:
                loop.remove_signal_handler(signal.SIGTERM)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stream.close()


def _on_sigterm(loop: asyncio.AbstractEventLoop, handler: object) -> bool:
    """End the session (and so restore the tty) on SIGTERM; only possible in the main thread."""
    try:
        loop.add_signal_handler(signal.SIGTERM, handler)  # type: ignore[arg-type]
    except (RuntimeError, ValueError, NotImplementedError):
        return False
    return True


def farewell(ended: Ended, domain: str) -> str:
    """The line printed once the terminal is back."""
    if ended.how == "escape":
        return printable(f"Disconnected from {domain}.")
    return printable(f"Disconnected from {domain}: {ended.message}")
