"""Headless `snapshot` command: create, revert and delete are operations (as `act`), list is a read."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TextIO

from vfleet.cli.act import Resolve, connected, print_table, run_verb, selector_of
from vfleet.cli.args import add_operation_options
from vfleet.core.errors import ExitCode, UsageError
from vfleet.core.models import HostConfig, SnapshotInfo, SnapshotParams, Verb
from vfleet.core.output import as_json
from vfleet.core.sanitize import printable
from vfleet.core.selector import Selector

LIST_SCHEMA = "vfleet.snapshots/1"
_VERBS = {"create": Verb.SNAPSHOT_CREATE, "revert": Verb.SNAPSHOT_REVERT, "delete": Verb.SNAPSHOT_DELETE}


def add_arguments(snapshot: argparse.ArgumentParser) -> None:
    actions = snapshot.add_subparsers(dest="snapshot_command", metavar="SUBCOMMAND", required=True)
    listing = actions.add_parser("list", help="the snapshots of the domains a selector names (default: all)")
    listing.add_argument("selector", nargs="*", help="domain name or glob, and filter terms (host:, tag: ...)")
    listing.add_argument("--host", action="append", default=[], metavar="GLOB", help="only domains of these hosts")
    listing.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per-domain limit")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    helps = {
        "create": "snapshot the domains a selector names ({date} and {time} in NAME expand once)",
        "revert": "revert the domains to their snapshot NAME (destructive: the present state is lost)",
        "delete": "delete the snapshot NAME of the domains (destructive)",
    }
    for word, text in helps.items():
        action = actions.add_parser(word, help=text)
        action.add_argument("selector", nargs="+", help="domain name or glob, and filter terms")
        action.add_argument("--name", required=True, help="the snapshot's name")
        if word == "create":
            action.add_argument("--memory", action="store_true", help="include a running guest's memory state")
            action.add_argument("--description", default="", help="a note stored with the snapshot")
        add_operation_options(action)


def cmd_snapshot(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import resolve_inventory as resolve

    if args.snapshot_command == "list":
        return _list(args, out, resolve)
    params = SnapshotParams(args.name, getattr(args, "memory", False), getattr(args, "description", ""))
    return run_verb(args, out, resolve, _VERBS[args.snapshot_command], params)


def _list(args: argparse.Namespace, out: TextIO, resolve: Resolve) -> int:
    inv = resolve(args)
    selector = selector_of(args.selector or ["*"], args.host)
    hosts = [h for h in inv.hosts if selector.host_may_match(h)]
    if not hosts:
        raise UsageError(f"{inv.path}: no host matches the selector")
    return asyncio.run(_read(hosts, selector, args, out))


async def _read(hosts: list[HostConfig], selector: Selector, args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.core.operations import read_snapshots

    async with connected(hosts, selector) as (fleet, targets, settled):
        listings = await read_snapshots(fleet, targets, timeout=args.timeout)
    rows = [(item.target, snap) for item in listings for snap in item.snapshots]
    if args.output == "json":
        out.write(
            as_json(
                {
                    "schema": LIST_SCHEMA,
                    "snapshots": [{"host": t.host, "domain": t.domain, "key": t.key, **_record(s)} for t, s in rows],
                    "errors": [
                        {"host": i.target.host, "domain": i.target.domain, "error": i.error}
                        for i in listings
                        if i.error is not None
                    ],
                }
            )
        )
    else:
        print_table(
            out,
            ("HOST", "DOMAIN", "SNAPSHOT", "CREATED", "PARENT", "CURRENT", "MEMORY", "STATE"),
            [
                (
                    t.host,
                    t.domain,
                    s.name,
                    _when(s.created),
                    s.parent or "-",
                    "yes" if s.current else "",
                    {True: "yes", False: "no", None: "?"}[s.memory],
                    s.state or "-",
                )
                for t, s in rows
            ],
        )
    errors = [i.error for i in listings if i.error is not None]
    for error in errors:
        print(printable(f"vfleet: {error}"), file=sys.stderr)
    if errors:
        return int(ExitCode.FAILED if len(errors) == len(listings) else ExitCode.PARTIAL)
    return int(ExitCode.OK if settled else ExitCode.UNREACHABLE)


def _record(s: SnapshotInfo) -> dict[str, object]:
    return {
        "snapshot": s.name,
        "created": s.created,
        "parent": s.parent,
        "current": s.current,
        "memory": s.memory,
        "state": s.state or None,
        "description": s.description or None,
    }


def _when(created: float | None) -> str:
    return "-" if created is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
