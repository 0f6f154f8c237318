"""`vfleet export`: the fleet's latest snapshot as an OpenMetrics/Prometheus endpoint or textfile.

Scrapes read the engine's views and never call a host: the engine polls on its own
schedule, a scrape only formats what it last saw. prometheus-client loads here, in
the command, so no other command pays for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vfleet.core.errors import ExitCode, MissingDependency, UsageError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from vfleet.core.engine import Fleet, HostView
    from vfleet.core.exposition import Exposition

DEFAULT_PORT = 9708  # vfleet.core.exposition.DEFAULT_PORT, here so --help needs no import of it


def add_arguments(export: argparse.ArgumentParser) -> None:
    from vfleet.cli.args import add_filters

    export.description = "Poll the fleet and serve its latest snapshot: scrapes never call a host."
    export.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"serve /metrics here (default 127.0.0.1:{DEFAULT_PORT} unless --textfile is given)",
    )
    export.add_argument(
        "--textfile", metavar="PATH", help="write PATH every interval (atomic rename), for node_exporter"
    )
    export.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between polls (2)")
    export.add_argument(
        "--shard", metavar="K/N", help="export only shard K of N (hosts split by a stable hash of their name)"
    )
    export.add_argument(
        "--max-tag-labels",
        type=int,
        default=20,
        metavar="N",
        help="at most N group_<name>/tag_<name> labels on the info series (20; 0: none)",
    )
    add_filters(export)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    cli = importlib.import_module("vfleet.cli.main")  # the package's `main` attribute is the function
    from vfleet.core import exposition

    if not args.interval > 0:
        raise UsageError("--interval must be greater than 0")
    if args.max_tag_labels < 0:
        raise UsageError("--max-tag-labels must be 0 or more")
    listen = parse_listen(args.listen) if args.listen else None if args.textfile else ("127.0.0.1", DEFAULT_PORT)
    shard = exposition.parse_shard(args.shard) if args.shard else None
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise MissingDependency("vfleet export needs prometheus-client: pip install 'vfleet[export]'") from exc
    inv = cli.resolve_inventory(args)
    selector = cli._selector(args)
    every = cli._hosts_for(inv, args, selector)
    hosts = [replace(h, poll_interval=args.interval) for h in exposition.in_shard(every, shard)]
    if not hosts:
        print(f"vfleet: export: shard {args.shard} has no host of {len(every)}", file=sys.stderr)
    builder = exposition.Exposition(
        allowed_labels=exposition.membership_labels(inv.hosts, args.max_tag_labels),
        selector=selector,
        shard=shard,
        interval=lambda _host: float(args.interval),
    )
    textfile = Path(args.textfile) if args.textfile else None
    return asyncio.run(_serve(hosts, builder, listen, textfile, args.interval))


class _Snapshot:
    """A prometheus-client collector over the latest views, which the event loop replaces as a whole."""

    def __init__(self, builder: Exposition) -> None:
        self.builder = builder
        self.views: Sequence[HostView] = ()

    def collect(self) -> Iterator[Metric]:
        from vfleet.core.exposition import to_prometheus

        yield from to_prometheus(self.builder.families(self.views))

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the families depend on the fleet


async def _serve(
    hosts: list[Any], builder: Exposition, listen: tuple[str, int] | None, textfile: Path | None, interval: float
) -> int:
    from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    from vfleet.core.engine import Fleet

    snapshot = _Snapshot(builder)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    textfile_registry = CollectorRegistry(auto_describe=False)  # no process metrics: they describe a writer
    textfile_registry.register(snapshot)
    for extra in (ProcessCollector, PlatformCollector, GCCollector):
        extra(registry=registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    async with Fleet(hosts) as fleet:
        snapshot.views = fleet.views()
        if listen is not None:
            try:
                server, _thread = start_http_server(listen[1], listen[0], registry)
            except OSError as exc:
                print(f"vfleet: export: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}", file=sys.stderr)
                return int(ExitCode.FAILED)
            print(f"vfleet: export: serving http://{listen[0]}:{server.server_port}/metrics", file=sys.stderr)
        try:
            await _refresh(fleet, snapshot, stop, textfile, textfile_registry, write_to_textfile, interval)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
    return int(ExitCode.OK)


async def _refresh(
    fleet: Fleet,
    snapshot: _Snapshot,
    stop: asyncio.Event,
    textfile: Path | None,
    registry: Any,
    write: Any,
    interval: float,
) -> None:
    """Keep the snapshot current: on every change, and at least each second (staleness is derived on read)."""
    subscription = fleet.subscribe()
    next_write = time.monotonic()
    try:
        while not stop.is_set():
            snapshot.views = fleet.views()
            if textfile is not None and time.monotonic() >= next_write:
                await asyncio.to_thread(write, str(textfile), registry)
                next_write += interval
            wait = min(1.0, max(0.05, next_write - time.monotonic())) if textfile else 1.0
            batch = asyncio.ensure_future(subscription.next_batch())
            stopping = asyncio.ensure_future(stop.wait())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait({batch, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            batch.cancel()
            stopping.cancel()
    finally:
        subscription.close()
