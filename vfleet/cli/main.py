"""Headless commands. stdout carries data only; diagnostics go to stderr.

This module must not import textual (directly or through anything it imports):
cron jobs start it and a test checks sys.modules.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vfleet import __version__
from vfleet.cli import args as cli_args
from vfleet.cli.args import (
    CONFIG_ENV,
    INVENTORY_ENV,
    Help,
    LazyParser,
    Parser,
    add_filters,
    add_view,
    fleet_parser,
)
from vfleet.core.errors import ExitCode, UsageError, VFleetError, host_line
from vfleet.core.sanitize import PrintableFormatter, printable

# Everything below loads in the command that uses it (cron pays only for what it runs).
if TYPE_CHECKING:
    from vfleet.core.config import Config, View
    from vfleet.core.engine import DriverFactory
    from vfleet.core.inventory import Inventory
    from vfleet.core.models import HostConfig
    from vfleet.core.report import Report
    from vfleet.core.selector import Selector

LOCAL_LIBVIRT_SOCKET = Path("/var/run/libvirt/libvirt-sock")
log = logging.getLogger("vfleet")


def build_parser() -> argparse.ArgumentParser:
    LazyParser.active = None
    parser = Parser(prog="vfleet", description="One console for KVM, Xen and ESXi fleets.", formatter_class=Help)
    parser.add_argument("--version", action="version", version=f"vfleet {__version__}")
    parser.add_argument(
        "-i",
        "--inventory",
        metavar="FILE",
        help=f"inventory file (default: ${INVENTORY_ENV} or ~/.config/vfleet/inventory.yaml)",
    )
    parser.add_argument("--demo", action="store_true", help="use the built-in simulated fleet")
    parser.add_argument(
        "--read-only", action="store_true", help="refuse every mutating action (also VFLEET_READ_ONLY=1)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"console config file: theme, columns, thresholds, views (default: ${CONFIG_ENV} "
        "or ~/.config/vfleet/config.yaml)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics on stderr")
    cli_args.add_source_options(parser)
    # A command's arguments are added when that command runs (LazyParser's setup=), or eagerly.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=LazyParser)
    fleet_parser(commands, "status", "one snapshot of the whole fleet", setup=_status_arguments)
    fleet_parser(commands, "top", "stream fleet metrics like `xentop -b`", setup=_top_arguments)
    commands.add_parser("inventory", help="inventory tools", setup=_inventory_arguments)
    commands.add_parser("config", help="console config file tools", setup=_config_arguments)
    commands.add_parser("demo", help="the console on the built-in simulated fleet")
    # One line per command: cli_args.command(commands, NAME, HELP) for vfleet/cli/NAME.py with
    # add_arguments(parser) and cmd_NAME(args, out), imported only when NAME runs. (act and
    # audit keep their arguments in args.py; their handlers load the same way.)
    cli_args.add_act(commands)
    cli_args.add_audit(commands)
    cli_args.command(commands, "check", "a monitoring plugin: health, states, thresholds; exit 0-3", filters=True)
    cli_args.command(
        commands, "events", "the fleet's events as NDJSON: lifecycle, state changes, host health, actions", filters=True
    )
    cli_args.command(
        commands,
        "export",
        "serve the fleet's metrics to Prometheus (OpenMetrics endpoint or node_exporter textfile)",
        filters=True,
    )
    cli_args.command(commands, "snapshot", "list, create, revert and delete snapshots of domains")
    cli_args.command(commands, "console", "attach this terminal to a domain's serial console (Ctrl+] leaves)")
    cli_args.command(commands, "migrate", "move domains to another host (live), or evacuate a host with --multiple")
    cli_args.command(commands, "debug", "tools for bug reports: `debug record HOST --out DIR`")
    return parser


def _status_arguments(status: argparse.ArgumentParser) -> None:
    status.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table")
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between the two polls that give rates (0: one poll, no rates)",
    )
    status.add_argument("--timeout", type=float, metavar="SECONDS", help="give up on hosts after this long")
    cli_args.add_source_options(status, sub=True)
    add_view(status)
    add_filters(status)


def _top_arguments(top: argparse.ArgumentParser) -> None:
    top.add_argument("-b", "--batch", action="store_true", help="headless stream (the interactive view is the TUI)")
    top.add_argument("-d", "--delay", type=float, default=2.0, metavar="SECONDS", help="seconds between frames")
    top.add_argument(
        "-n", "--iterations", type=int, metavar="COUNT", help="stop after COUNT frames (default: run until Ctrl-C)"
    )
    top.add_argument("-o", "--output", choices=("ndjson", "table"), default="ndjson")
    cli_args.add_source_options(top, sub=True)
    add_view(top)
    add_filters(top)


def _inventory_arguments(inv: argparse.ArgumentParser) -> None:
    inv_commands = inv.add_subparsers(dest="inventory_command", metavar="SUBCOMMAND", required=True)
    check = inv_commands.add_parser(
        "check", help="validate an inventory, summarise it, and check what its hosts need here (no network)"
    )
    check.add_argument("file", nargs="?", help="inventory file (default: the -i/--inventory one)")
    keys = inv_commands.add_parser("keys", help="every inventory key with its type, default and meaning")
    keys.add_argument("driver", nargs="?", help="only this driver's keys")
    keys.add_argument("--markdown", action="store_true", help="the README's Markdown tables")


def _config_arguments(conf: argparse.ArgumentParser) -> None:
    conf_commands = conf.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    conf_check = conf_commands.add_parser("check", help="validate a config file and summarise it")
    conf_check.add_argument("file", nargs="?", help="config file (default: the --config one, or the default)")


_add_filters, _add_view = add_filters, add_view  # the names other commands' modules were given


def _view(args: argparse.Namespace) -> View | None:
    """The --view asked for, from the config file (read only then: a console setting never breaks cron)."""
    if not args.view:
        return None
    from vfleet.core import config as console_config

    return console_config.resolve(args.config).view(args.view)


def _in_view(records: list[dict[str, Any]], view: View | None) -> list[dict[str, Any]]:
    if view is None or view.sort is None:
        return records
    from vfleet.core import fields

    return fields.sort_records(records, view.sort.column, view.sort.descending)


def _selector(args: argparse.Namespace, view: View | None = None) -> Selector:
    from vfleet.core.selector import Selector

    terms = [f"group:{g}" for g in args.group] + [f"tag:{t}" for t in args.tag]
    if view is not None:
        terms += view.filter.split()
    if args.host:  # repeated --host: any of them
        terms.append("|".join(f"host:{h}" for h in args.host))
    if args.state:
        terms.append(f"state:{args.state}")
    if args.name:
        terms.append(f"name:{args.name}")
    return Selector.parse([*terms, *args.filter.split()])


def _hosts_for(inv: Inventory, args: argparse.Namespace, selector: Selector) -> list[HostConfig]:
    from vfleet.core.selector import glob_matcher
    from vfleet.drivers.registry import check_available

    for pattern in args.host:
        if not any(glob_matcher(pattern)(h.name) for h in inv.hosts):
            raise UsageError(f"{inv.path}: no host matches {pattern!r}")
    for group in args.group:
        if not any(glob_matcher(group)(g) for g in inv.groups):
            raise UsageError(f"{inv.path}: no group named {group!r}")
    hosts = [h for h in inv.hosts if selector.host_may_match(h)]
    check_available({h.driver for h in hosts})
    return hosts


def resolve_inventory(args: argparse.Namespace) -> Inventory:
    """--demo, -i FILE, $VFLEET_INVENTORY, the XDG default, else local libvirt."""
    from vfleet.core import inventory
    from vfleet.core.inventory import Inventory
    from vfleet.core.models import HostConfig

    if args.demo:
        from vfleet.core.demo import demo_inventory

        inv = demo_inventory()
    elif args.inventory:
        inv = inventory.load(args.inventory)
    elif (default := inventory.default_path()).exists() or os.environ.get(inventory.ENV_VAR):
        inv = inventory.load(default)
    elif LOCAL_LIBVIRT_SOCKET.exists():
        inv = Inventory("<local libvirt>", (HostConfig(name="localhost", driver="libvirt", uri="qemu:///system"),))
    else:
        raise UsageError(
            "no inventory: pass -i FILE, set VFLEET_INVENTORY, create ~/.config/vfleet/inventory.yaml, or try --demo"
        )
    read_only = args.read_only or os.environ.get("VFLEET_READ_ONLY", "") not in ("", "0")
    return inv.with_read_only() if read_only else inv


def _source_factory(args: argparse.Namespace, hosts: Sequence[HostConfig]) -> DriverFactory | None:
    """The engine's driver factory for --source (loaded only then), or None to poll the hosts."""
    if getattr(args, "source", None) is None:
        return None
    from vfleet.cli.source import driver_factory

    return driver_factory(args, hosts)


def _warn_hosts(report: Report) -> int:
    """One stderr line per host whose data cannot be trusted; the exit code says whether there was one."""
    for name in report.unreachable:
        error = host_line(name, report.problems.get(name) or "not reachable")
        print(printable(f"vfleet: {error}"), file=sys.stderr)
    return ExitCode.UNREACHABLE if report.unreachable else ExitCode.OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    # A snapshot: it polls once or twice and exits. The collector's passes over what
    # start-up builds (modules, classes, the inventory) find nothing to free and cost
    # ~5 % of a one-host run; reference counting still frees what each poll drops.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _status(args, out)
    finally:
        if enabled:  # main() may run in a longer-lived process (tests, scripts)
            gc.enable()


def _status(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio
    from dataclasses import replace

    from vfleet.core.output import as_csv, as_json, table
    from vfleet.core.report import build_report, collect

    view = _view(args)
    inv = resolve_inventory(args)
    selector = _selector(args, view)
    hosts = _hosts_for(inv, args, selector)
    if args.interval < 0:
        raise UsageError("--interval must be 0 or more")
    from vfleet.core.engine import default_driver_factory

    factory = _source_factory(args, hosts)  # the server's rates need no second poll
    interval = 0.0 if factory else args.interval
    poll = factory or default_driver_factory
    views = asyncio.run(collect(hosts, interval=interval, timeout=args.timeout, driver_factory=poll))
    report = build_report(views, selector)
    report = replace(report, domains=_in_view(report.domains, view))
    if args.output == "json":
        out.write(as_json(report.document(inventory=inv.path)))
    elif args.output == "csv":
        out.write(as_csv(report.domains))
    else:
        out.write(table(report.domains, view.columns if view else None))
    return _warn_hosts(report)


def cmd_top(args: argparse.Namespace, out: TextIO) -> int:
    if not args.batch:
        raise UsageError("the interactive view is the TUI (run `vfleet`); use `vfleet top --batch` for a stream")
    if args.delay <= 0:
        raise UsageError("-d/--delay must be greater than 0")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError("-n/--iterations must be 1 or more")
    view = _view(args)
    inv = resolve_inventory(args)
    selector = _selector(args, view)
    from dataclasses import replace

    hosts = [replace(h, poll_interval=args.delay) for h in _hosts_for(inv, args, selector)]
    import asyncio

    return asyncio.run(_top(hosts, selector, args, out, view))


async def _top(
    hosts: list[HostConfig], selector: Selector, args: argparse.Namespace, out: TextIO, view: View | None = None
) -> int:
    from dataclasses import replace

    from vfleet.core.engine import Fleet, default_driver_factory
    from vfleet.core.gctune import tune_for_long_run
    from vfleet.core.output import as_json, top_frame
    from vfleet.core.report import TOP_SCHEMA, RecordCache, Report, build_report, sleep_until, wait_for_rates

    report = Report([], [], [])
    async with Fleet(hosts, driver_factory=_source_factory(args, hosts) or default_driver_factory) as fleet:
        # Rates need two samples: the first frame waits for them, so `-n 1` is worth running.
        await wait_for_rates(fleet, hosts, interval=args.delay)
        tune_for_long_run()  # start-up is over: what it built lives for the whole run
        records = RecordCache()
        start = time.monotonic()
        iteration = 0
        while args.iterations is None or iteration < args.iterations:
            iteration += 1
            await sleep_until(start + (iteration - 1) * args.delay)
            report = build_report(fleet.views(), selector, cache=records)
            report = replace(report, domains=_in_view(report.domains, view))
            if args.output == "ndjson":
                out.write(as_json(report.document(TOP_SCHEMA, iteration=iteration), indent=None))
            else:
                frame = top_frame(report, iteration, time.strftime("%H:%M:%S"), view.columns if view else None)
                out.write(("\n" if iteration > 1 else "") + frame)
            out.flush()
    return _warn_hosts(report)


def cmd_inventory(args: argparse.Namespace, out: TextIO) -> int:
    if args.inventory_command == "keys":
        from vfleet.core import keyref

        if args.markdown and args.driver:
            raise UsageError("inventory keys: --markdown prints every key; drop DRIVER")
        out.write(keyref.markdown() if args.markdown else keyref.text(args.driver))
        return ExitCode.OK
    return cmd_inventory_check(args, out)


def cmd_inventory_check(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 0: valid and every host has what it needs here; 1: some host lacks something; 2: invalid."""
    from collections import Counter

    from vfleet.core import inventory
    from vfleet.core.preflight import local_problems

    path = args.file or args.inventory or str(inventory.default_path())
    inv = inventory.load(path)
    problems = local_problems(inv)
    drivers = Counter(h.driver for h in inv.hosts)
    read_only = [h.name for h in inv.hosts if h.read_only]
    verdict = "OK" if not problems else f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    out.write(
        f"{inv.path}: {verdict}: {len(inv.hosts)} host{'s' if len(inv.hosts) > 1 else ''} ("
        + ", ".join(f"{name} {count}" for name, count in sorted(drivers.items()))
        + f"), {len(inv.groups)} groups"
        + (f", read-only: {', '.join(read_only)}" if read_only else "")
        + "\n"
    )
    for host in inv.hosts:
        target = (
            host.uri
            or f"{host.user + '@' if host.user else ''}{host.address or ''}{':' + str(host.port) if host.port else ''}"
        )
        flags = [f for f, on in (("read-only", host.read_only), ("protected", host.protected)) if on]
        tags = f"  tags: {','.join(sorted(host.tags))}" if host.tags else ""
        out.write(
            f"  {host.name:<20} {host.driver:<9} {target or '-':<40} every {host.poll_interval:g}s"
            f"{'  ' + ' '.join(flags) if flags else ''}{tags}\n"
        )
    out.flush()
    for problem in problems:
        print(f"vfleet: {problem}", file=sys.stderr)
    return ExitCode.FAILED if problems else ExitCode.OK


def cmd_config(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 0: valid (the summary on stdout); 2: invalid (file:line on stderr)."""
    from vfleet.core import config as console_config

    path = args.file or args.config or str(console_config.default_path())
    config = console_config.load(path)
    out.write(f"{config.path}: OK\n" + "".join(f"  {line}\n" for line in console_config.summary(config)))
    return ExitCode.OK


def cmd_tui(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.core import config as console_config
    from vfleet.drivers.registry import check_available

    config: Config = console_config.resolve(args.config)  # a bad config stops here, with file:line
    inv = resolve_inventory(args)
    check_available({h.driver for h in inv.hosts})
    from vfleet.app import run_tui  # textual loads here only: headless commands never pay for it

    _log_to_file_while_the_tui_runs()
    factory = _source_factory(args, inv.hosts)
    return run_tui(inv, demo=args.demo, read_only=args.read_only, config=config, driver_factory=factory)


def _log_to_file_while_the_tui_runs() -> None:
    """Log lines written to stderr would be drawn over the console: send them to a private file."""
    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    path = state_home / "vfleet" / "console.log"
    handler: logging.Handler
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    except OSError:
        handler = logging.NullHandler()  # no place to write: quiet beats a torn screen
    root = logging.getLogger()
    handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
    root.handlers = [handler]


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    args.demo = True
    return cmd_tui(args, out)


Handler = Callable[[argparse.Namespace, TextIO], int]
BUILT_IN: dict[str, Handler] = {
    "status": cmd_status,
    "top": cmd_top,
    "demo": cmd_demo,
    "inventory": cmd_inventory,
    "config": cmd_config,
}


def handler(command: str | None) -> Handler:
    """No command: the TUI. Any other: `cmd_<command>` of vfleet/cli/<command>.py, loaded now, not at start-up."""
    if command is None:
        return cmd_tui
    if command in BUILT_IN:
        return BUILT_IN[command]
    function: Handler = getattr(importlib.import_module(f"vfleet.cli.{command}"), f"cmd_{command}")
    return function


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = out or sys.stdout
    stderr = logging.StreamHandler(sys.stderr)  # log records quote remote text: escape it
    stderr.setFormatter(PrintableFormatter("vfleet: %(levelname)s: %(name)s: %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
        handlers=[stderr],
    )
    try:
        return int(handler(args.command)(args, out))
    except VFleetError as exc:  # messages quote remote output and inventory text
        print(printable(f"vfleet: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `vfleet top -b | head`: the reader left, that is fine
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return int(ExitCode.OK)
    except Exception as exc:
        log.debug("traceback", exc_info=True)
        print(printable(f"vfleet: internal error: {exc!r} (run with -vv for the traceback)"), file=sys.stderr)
        return int(ExitCode.INTERNAL)
