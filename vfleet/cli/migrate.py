"""Headless `migrate` command: move domains to another host, an operation like `act` (policy, pre-flight, audit).

`--to HOST` names an inventory host; `--to HOST/SERVER` a server inside a vCenter (the domain
stays under the same inventory host, its node changes). Evacuating a host is a selector:
`vfleet migrate 'host:kvm-1' --multiple --to kvm-2`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from vfleet.cli.act import run_verb
from vfleet.cli.args import add_operation_options
from vfleet.core.errors import UsageError
from vfleet.core.models import ActionResult, MigrateParams, Verb
from vfleet.core.operations import Operation
from vfleet.core.sanitize import printable


def add_arguments(migrate: argparse.ArgumentParser) -> None:
    migrate.add_argument("selector", nargs="+", help="domain name or glob, and filter terms (host:, tag: ...)")
    migrate.add_argument(
        "--to", required=True, metavar="HOST[/SERVER]", help="the inventory host, or HOST/SERVER inside a vCenter"
    )
    migrate.add_argument(
        "--offline",
        action="store_true",
        help="move only domains that are off (running ones are refused, never shut down for you)",
    )
    migrate.add_argument(
        "--copy-storage", action="store_true", help="copy the disks too (libvirt --copy-storage-all): no shared storage"
    )
    add_operation_options(migrate)


def params_of(args: argparse.Namespace) -> MigrateParams:
    host, _, node = str(args.to).partition("/")
    if not host or (args.to.count("/") and not node):
        raise UsageError(f"--to {args.to!r}: expected HOST or HOST/SERVER")
    return MigrateParams(host, node or None, live=not args.offline, copy_storage=args.copy_storage)


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import resolve_inventory

    params = params_of(args)
    progress = StderrProgress()
    return run_verb(args, out, resolve_inventory, Verb.MIGRATE, params, progress=progress, also=[params.to_host])


class StderrProgress:
    """Each target's result on stderr as it completes (stdout keeps the table); on a terminal one counter line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = self.done = self.failed = 0

    def start(self, operation: Operation) -> None:
        self.total = len(operation.plan.decisions)

    def result(self, result: ActionResult) -> None:
        self.done += 1
        self.failed += result.outcome not in ("ok", "no-op")
        where = f"{result.host}/{result.domain}"
        if self.tty:
            line = f"migrate: {self.done}/{self.total} done, {self.failed} not moved; last {where}"
            self.stream.write("\r\x1b[2K" + printable(line))  # back to the line's start, erase it
            if self.done == self.total:
                self.stream.write("\n")
        else:
            detail = result.message if result.message else ""
            text = f"vfleet: migrate [{self.done}/{self.total}] {where}: {result.outcome}" + (
                f" ({detail})" if detail else ""
            )
            self.stream.write(printable(text) + "\n")
        self.stream.flush()
