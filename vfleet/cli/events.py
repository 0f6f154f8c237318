"""Headless `vfleet events`: the fleet's events as NDJSON (schema vfleet.event/1).

Without --follow it prints what is known now (a `snapshot` record per host and per
domain) and exits, like `kubectl get`; with --follow it prints each change as it
happens until Ctrl-C, -n COUNT or --timeout, like `virsh event --loop` or `tail -f`.
Every line is flushed as it is written; a reader that goes away (`| head -3`) or
SIGINT/SIGTERM end the stream cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from vfleet.core.errors import ExitCode, UsageError
from vfleet.core.models import DomainEvent, HostConfig, HostStatus
from vfleet.core.selector import Selector

TICK = 0.2  # seconds between looks at the fleet, the event queue and the audit log
_SETTLED = (HostStatus.DOWN, HostStatus.AUTH_FAILED, HostStatus.DEGRADED)


def add_arguments(events: argparse.ArgumentParser) -> None:
    from vfleet.cli.args import add_filters

    events.add_argument(
        "-f", "--follow", action="store_true", help="print events as they happen (default: the state now, then exit)"
    )
    events.add_argument("--snapshot", action="store_true", help="with --follow: print the current state first")
    events.add_argument("-n", "--count", type=int, metavar="COUNT", help="stop after COUNT events")
    events.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop following after this long; without --follow: give up on hosts after this long",
    )
    events.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="the audit log to follow for actions (default: $VFLEET_AUDIT_LOG, else ~/.local/state/vfleet/audit.jsonl)",
    )
    add_filters(events)


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import _hosts_for, _selector, resolve_inventory

    if args.count is not None and args.count < 1:
        raise UsageError("-n/--count must be 1 or more")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be greater than 0")
    if args.snapshot and not args.follow:
        raise UsageError("--snapshot goes with --follow (without it the current state is all that is printed)")
    inv = resolve_inventory(args)
    selector = _selector(args)
    hosts = _hosts_for(inv, args, selector)
    writer = _Writer(out, args.count)
    try:
        code = asyncio.run(_events(args, list(inv.hosts), hosts, selector, writer))
    finally:
        if writer.gone and out is sys.stdout:
            _silence_stdout()
    return code


async def _events(
    args: argparse.Namespace, known: list[HostConfig], hosts: list[HostConfig], selector: Selector, writer: _Writer
) -> int:
    from vfleet.core.audit import default_path
    from vfleet.core.engine import Fleet
    from vfleet.core.events import AuditTail, EventStream

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stream = EventStream(known, selector)
    if not args.follow:
        return await _snapshot(hosts, stream, writer, args.timeout, stop)
    tail = AuditTail(args.audit_log or default_path())  # from its end now: only what happens from here
    announced: list[DomainEvent] = []
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    async with Fleet(hosts, read_only=True) as fleet:  # no history: sparklines are the console's
        fleet.on_event(announced.append)
        if args.snapshot:
            await fleet.wait_until(_all_settled, _settle_time(hosts))
            writer.write(stream.snapshot(fleet.views(), time.time()))
        while not (stop.is_set() or writer.done):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await stop.wait()
            now, wall = time.monotonic(), time.time()
            events: list[dict[str, Any]] = []
            while announced:  # before the views: the poll an event woke is then no change
                events += stream.lifecycle(announced.pop(0), now)
            events += stream.observe(fleet.views(), now, wall)
            for record in tail.read():
                events += stream.action(record)
            writer.write(events)
            writer.check_reader()
            if deadline is not None and now >= deadline:
                break
    return int(ExitCode.OK)


async def _snapshot(
    hosts: list[HostConfig], stream: Any, writer: _Writer, timeout: float | None, stop: asyncio.Event
) -> int:
    from vfleet.cli.main import _warn_hosts
    from vfleet.core.report import build_report, collect

    task = asyncio.create_task(collect(hosts, interval=0, read_only=True, timeout=timeout))
    await asyncio.wait({task, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():  # Ctrl-C: nothing complete to print
        task.cancel()
        await asyncio.wait({task})
        return int(ExitCode.OK)
    views = task.result()
    writer.write(stream.snapshot(views, time.time()))
    return _warn_hosts(build_report(views, stream.selector))


def _all_settled(views: list[Any]) -> bool:
    return all(v.health.polls >= 1 or (v.attempts >= 1 and v.health.status in _SETTLED) for v in views)


def _settle_time(hosts: list[HostConfig]) -> float:
    return max((h.connect_timeout + h.call_timeout for h in hosts), default=1.0)


class _Writer:
    """One flushed line per event; done after COUNT events or once the reader has gone."""

    def __init__(self, out: TextIO, count: int | None) -> None:
        from vfleet.core.events import dumps

        self._out, self._left, self._dumps = out, count, dumps
        self.gone = False
        self._pipe = _pipe_fd(out)

    @property
    def done(self) -> bool:
        return self.gone or self._left == 0

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if self.done:
                return
            try:
                self._out.write(self._dumps(event) + "\n")
                self._out.flush()  # cron and monitoring pipes read line by line
            except BrokenPipeError:
                self.gone = True
                return
            if self._left is not None:
                self._left -= 1

    def check_reader(self) -> None:
        """A pipe whose reader left shows POLLERR: stop now, not at the next event (that may never come)."""
        if self._pipe is None:
            return
        poller = select.poll()
        poller.register(self._pipe, 0)
        if any(flags & (select.POLLERR | select.POLLHUP) for _, flags in poller.poll(0)):
            self.gone = True


def _pipe_fd(out: TextIO) -> int | None:
    try:
        fd = out.fileno()
        return fd if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (OSError, ValueError, AttributeError):
        return None


def _silence_stdout() -> None:
    """The reader left: what is still buffered would fail again at exit, with a message."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
