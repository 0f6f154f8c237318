"""Headless `console` command: attach this terminal to one domain's serial console."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from vfleet.core.errors import ExitCode, HostUnreachable, NoConsole, UsageError, host_line
from vfleet.core.models import HostConfig, HostStatus
from vfleet.core.sanitize import printable
from vfleet.core.selector import glob_matcher

ENDED_EXIT = {
    "escape": ExitCode.OK,
    "closed": ExitCode.OK,
    "input-closed": ExitCode.OK,
    "terminated": ExitCode.INTERRUPTED,
}


def add_arguments(console: argparse.ArgumentParser) -> None:
    console.add_argument("domain", metavar="DOMAIN", help="domain name, HOST:NAME, or key (UUID)")
    console.add_argument("--host", action="append", default=[], metavar="GLOB", help="only domains of these hosts")
    console.add_argument("--force", action="store_true", help="take over a console another session holds")
    console.add_argument("--safe", action="store_true", help="only where the host can guarantee exclusive access")
    console.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="to connect and open")
    console.add_argument("--audit-log", type=Path, metavar="FILE", help="default: $VFLEET_AUDIT_LOG or XDG state dir")


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import resolve_inventory

    inv = resolve_inventory(args)
    host_part, _, name = args.domain.rpartition(":")
    named_host = host_part if host_part and any(h.name == host_part for h in inv.hosts) else None
    if named_host is None:
        name = args.domain
    hosts = [
        h
        for h in inv.hosts
        if (named_host is None or h.name == named_host)
        and (not args.host or any(glob_matcher(g)(h.name) for g in args.host))
    ]
    if not hosts:
        raise UsageError(f"{inv.path}: no host matches {args.domain!r} and --host")
    return asyncio.run(_console(hosts, name, args, out))


async def _console(hosts: list[HostConfig], word: str, args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.core.audit import AuditLog
    from vfleet.core.engine import Fleet
    from vfleet.core.operations import Operations, Target

    audit = AuditLog(args.audit_log) if args.audit_log else AuditLog()
    async with Fleet(hosts) as fleet:
        deadline = min(args.timeout, max(h.connect_timeout + h.call_timeout for h in hosts))
        await fleet.wait_until(lambda vs: all(_settled(v) for v in vs), deadline)
        views = fleet.views()
        found = [
            (v, r.domain)
            for v in views
            for r in v.rows
            if r.domain.name == word or (r.domain.key and r.domain.key == word)
        ]
        down = [v for v in views if v.health.polls == 0]
        if not found:
            for view in down:
                error = host_line(view.name, view.health.last_error or "no data")
                print(printable(f"vfleet: {error}"), file=sys.stderr)
            if down:
                where = down[0].name if len(down) == 1 else f"{len(down)} hosts"
                raise HostUnreachable(where, f"no domain {word!r} on the hosts that answered")
            raise UsageError(f"console: no domain named {word!r}")
        if len(found) > 1:
            names = ", ".join(f"{v.name}:{d.name}" for v, d in found)
            raise UsageError(f"console: {word!r} is ambiguous ({names}): name it as HOST:NAME or by key")
        view, domain = found[0]
        target = Target(view.name, domain.name, domain.key)
        operations = Operations(fleet, audit, face="cli")
        try:
            return await _attach(operations, target, view.read_only, args)
        except NoConsole as exc:  # where a console is instead: data, on stdout
            out.write("".join(f"{printable(link)}\n" for link in exc.links))
            out.flush()
            raise


async def _attach(operations: Any, target: Any, view_only: bool, args: argparse.Namespace) -> int:
    from vfleet.core.console import attach, banner, farewell

    async with operations.console(
        target, view_only=view_only, force=args.force, safe=args.safe, timeout=args.timeout
    ) as stream:
        print(banner(target.domain, target.host, view_only=view_only), file=sys.stderr, flush=True)
        ended = await attach(stream, view_only=view_only)
    print("\r\n" + farewell(ended, target.domain), file=sys.stderr, flush=True)
    return int(ENDED_EXIT.get(ended.how, ExitCode.FAILED))


def _settled(view: Any) -> bool:
    return bool(
        view.health.polls >= 1
        or (view.attempts >= 1 and view.health.status in (HostStatus.DOWN, HostStatus.AUTH_FAILED, HostStatus.DEGRADED))
    )
