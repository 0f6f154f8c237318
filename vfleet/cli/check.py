"""Headless `check`: a monitoring plugin over the core's check (vfleet/core/check.py).

Registered by args.command(): this module loads only when `check` runs (keep its top
light). Whatever goes wrong, the plugin prints one status line and exits 0-3: a usage
error, an unreadable inventory or config file and a timeout are UNKNOWN (3), as the
Monitoring Plugins say.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO

from vfleet.core.errors import UsageError, VFleetError

if TYPE_CHECKING:
    from vfleet.core.check import Limits, Spec

UNKNOWN = 3  # also the plugins' exit code for a usage error (vfleet's own is 2)
RATE_DEFAULT_INTERVAL = 1.0
METRICS = ("cpu", "memory", "contention", "disk", "net", "age")  # core.check.METRICS, checked by a test


def add_arguments(check: argparse.ArgumentParser) -> None:
    from vfleet.cli.args import LazyParser, add_filters, add_view

    if isinstance(check, LazyParser):
        check.on_error = _usage_error
    check.description = (
        "Checks host health and data age, domains not in the --expect'ed state, and metrics against "
        "-w/-c ranges (N, N:, ~:N, N:M, @N:M: alert outside the range, with @ inside). A metric with "
        "no -w/-c takes the config file's thresholds (cpu, memory, contention, age). Exit codes: "
        "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for bad options and timeouts)."
    )
    check.add_argument(
        "--expect", action="append", default=[], metavar="STATE", help="domains must be in this state (repeatable)"
    )
    check.add_argument(
        "-m", "--metric", action="append", default=[], choices=METRICS, help="check this metric (repeatable)"
    )
    check.add_argument(
        "-w", "--warning", action="append", default=[], metavar="[METRIC=]RANGE", help="warning range (repeatable)"
    )
    check.add_argument(
        "-c", "--critical", action="append", default=[], metavar="[METRIC=]RANGE", help="critical range (repeatable)"
    )
    check.add_argument(
        "--per",
        choices=("host", "node", "domain"),
        default="host",
        help="metrics of each host (aggregates, default), each server of a pool or cluster (a single host: itself),"
        " or each domain",
    )
    check.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds between the two polls that give rates (default: 1 when a rate is checked, else 0)",
    )
    check.add_argument(
        "-t", "--timeout", type=float, default=10.0, metavar="SECONDS", help="UNKNOWN after this long (default 10)"
    )
    check.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_view(check)
    add_filters(check)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """A plugin's usage error: a status line on stdout (the monitoring system shows it), exit 3."""
    print(f"VFLEET UNKNOWN - usage: {message}")
    parser.print_usage(sys.stderr)
    parser.exit(UNKNOWN, f"{parser.prog}: error: {message}\n")


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    armed = _hard_timeout(args.timeout, args.output, out)
    try:
        return _check(args, out)
    except VFleetError as exc:
        return _unknown(out, args.output, str(exc))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a plugin must still say UNKNOWN, never leave the monitor guessing
        return _unknown(out, args.output, f"internal error: {exc!r}")
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import _hosts_for, _selector, _view, resolve_inventory
    from vfleet.core import check
    from vfleet.core.output import as_json

    if args.timeout <= 0:
        raise UsageError("-t/--timeout must be greater than 0")
    spec = _spec(args)
    rates = any(check.METRICS[m].rate for m in spec.limits)
    interval = args.interval if args.interval is not None else RATE_DEFAULT_INTERVAL if rates else 0.0
    if interval < 0:
        raise UsageError("--interval must be 0 or more")
    if rates and interval == 0:
        raise UsageError("rates (cpu, contention, disk, net) need two polls: --interval must be more than 0")
    view = _view(args)
    inv = resolve_inventory(args)
    selector = _selector(args, view)
    hosts = _hosts_for(inv, args, selector)
    # Leave time to close connections and print before the hard limit.
    soft = max(args.timeout - 1.0, args.timeout * 0.7)
    views, late = check.run_gather(hosts, interval=interval, timeout=soft)
    outcome = check.evaluate(views, selector, spec, late=late)
    if args.output == "json":
        out.write(as_json(outcome.document()))
    else:
        out.write(outcome.plugin_output())
    return int(outcome.state)


def _spec(args: argparse.Namespace) -> Spec:
    from vfleet.core import check, ranges
    from vfleet.core.selector import parse_state

    given: dict[str, dict[str, ranges.Range]] = {}
    for level, items in (("warn", args.warning), ("crit", args.critical)):
        for item in items:
            metric, _, text = item.rpartition("=")
            metrics = [metric] if metric else args.metric
            if metric and metric not in check.METRICS:
                raise UsageError(f"-w/-c {item!r}: no metric {metric!r} (one of {', '.join(check.METRICS)})")
            if not metrics:
                raise UsageError(f"-w/-c {item!r}: say which metric: -m METRIC, or METRIC=RANGE")
            parsed = ranges.parse(text)
            for name in metrics:
                given.setdefault(name, {})[level] = parsed
    chosen = list(dict.fromkeys([*args.metric, *given]))
    if not chosen:
        chosen = ["cpu", "memory", "contention"]  # the console's coloured columns
    limits: dict[str, check.Limits] = {}
    missing = [m for m in [*chosen, "age"] if m not in given]
    configured = _configured(args, missing) if missing else {}
    for metric in [*chosen, "age"]:
        if metric in given:
            limits[metric] = check.Limits(given[metric].get("warn"), given[metric].get("crit"))
        else:
            limits[metric] = configured[metric]
    expect = frozenset(parse_state(word) for item in args.expect for word in item.replace(",", "|").split("|") if word)
    return check.Spec(limits, args.per, expect)


def _configured(args: argparse.Namespace, metrics: list[str]) -> dict[str, Limits]:
    """The config file's warn/crit for the metrics it has (at or above is an alert); none for the others."""
    from vfleet.core import check, ranges
    from vfleet.core import config as console_config

    thresholds = console_config.resolve(args.config).thresholds
    limits: dict[str, Limits] = {}
    for metric in metrics:
        t = thresholds.get(metric) if hasattr(thresholds, metric) else None
        limits[metric] = check.Limits(ranges.above(t.warn), ranges.above(t.crit)) if t else check.Limits()
    return limits


def _unknown(out: TextIO, output: str, message: str) -> int:
    from vfleet.core.check import Outcome, State
    from vfleet.core.sanitize import printable

    print(printable(f"vfleet: {message}"), file=sys.stderr)
    outcome = Outcome(State.UNKNOWN, message, [], [])
    if output == "json":
        from vfleet.core.output import as_json

        out.write(as_json(outcome.document()))
    else:
        out.write(outcome.plugin_output())
    return UNKNOWN


def _hard_timeout(seconds: float, output: str, out: TextIO) -> bool:
    """Past --timeout, whatever is still running (a hung close, a slow import), say UNKNOWN and leave."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return False

    def expire(signum: int, frame: FrameType | None) -> None:
        _unknown(out, output, f"no result within {seconds:g} s (-t/--timeout)")
        out.flush()
        os._exit(UNKNOWN)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return True
