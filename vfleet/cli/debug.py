"""Headless `debug` command: `debug record HOST --out DIR` turns one poll of a host into a scrubbed recording."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from vfleet.core.errors import ExitCode
from vfleet.core.sanitize import printable


def add_arguments(debug: argparse.ArgumentParser) -> None:
    commands = debug.add_subparsers(dest="debug_command", metavar="SUBCOMMAND", required=True)
    record = commands.add_parser(
        "record",
        help="record the raw answers of one poll of HOST, scrubbed, into DIR (attach DIR to a bug report)",
    )
    record.add_argument("host", metavar="HOST", help="the inventory name of the host")
    record.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new or empty directory")
    record.add_argument(
        "-i", "--inventory", metavar="FILE", default=argparse.SUPPRESS, help="inventory file (as vfleet -i)"
    )
    record.add_argument("--force", action="store_true", help="write into a non-empty DIR (replaces a recording)")
    record.add_argument(
        "--scrub-names", action="store_true", help="replace domain names too (domain-01, ...; the same in every file)"
    )
    record.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="for the whole recording")


def cmd_debug(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import resolve_inventory
    from vfleet.core.record import check_output, find_host, record_host, summary, write_recording

    check_output(args.out, force=args.force)  # before any connection: nothing to lose yet
    inv = resolve_inventory(args)
    host = find_host(inv.hosts, args.host, inv.path)
    started = time.monotonic()
    recording = asyncio.run(
        record_host(host, inv.hosts, scrub_names=args.scrub_names, timeout=args.timeout)
    )
    write_recording(recording, args.out, force=args.force)
    out.write(f"{printable(str(args.out))}\n")
    out.flush()
    print(printable(summary(host.name, recording, args.out, time.monotonic() - started)), file=sys.stderr)
    return int(ExitCode.OK)
