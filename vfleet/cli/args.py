"""Arguments of the headless commands, cheap to import: building the parser loads no machinery.

`vfleet status` from cron must not pay for the action, audit or check machinery, so the
parser is built from here (argparse and a few constants only) and each command's handler
module is imported by main.py only when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# Literals, not imports: the modules that own them load YAML and the drivers' registry.
INVENTORY_ENV = "VFLEET_INVENTORY"
CONFIG_ENV = "VFLEET_CONFIG"
AUDIT_LOG_ENV = "VFLEET_AUDIT_LOG"
AUDIT_KEY_ENV = "VFLEET_AUDIT_KEY_FILE"
# Light copies of models' verb names (checked by a test): the lifecycle verbs `act` offers, and every verb.
VERBS = ("start", "shutdown", "reboot", "pause", "resume", "suspend", "force-off", "reset")
ALL_VERBS = (*VERBS, "snapshot-create", "snapshot-revert", "snapshot-delete", "migrate")


class _TerminalWidth:
    """argparse's width rule (COLUMNS, else the terminal, else 80) without its `import shutil`,
    which every parser pays for (shutil loads bz2, lzma and zlib) though only --help needs a width."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            width = _columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)  # type: ignore[call-arg]


def _columns() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (AttributeError, ValueError, OSError):
        return 80


class Help(_TerminalWidth, argparse.HelpFormatter):
    pass


class Parser(argparse.ArgumentParser):
    """The top-level parser: a usage error met after a command's own arguments is that command's error.

    (argparse reports unknown options from the top level; `check` must still exit 3.)
    """

    def error(self, message: str) -> NoReturn:
        if LazyParser.active is not None and LazyParser.active.on_error is not None:
            LazyParser.active.on_error(LazyParser.active, message)
        super().error(message)


class LazyParser(argparse.ArgumentParser):
    """A command's parser that adds its arguments (`setup`) only when that command is parsed or helped.

    argparse spends most of its start-up on arguments; a run parses one command, not all.
    """

    active: LazyParser | None = None  # the command being parsed

    def __init__(
        self,
        *args: Any,
        setup: Callable[[argparse.ArgumentParser], None] | None = None,
        on_error: Callable[[argparse.ArgumentParser, str], NoReturn] | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("formatter_class", Help)
        super().__init__(*args, **kw)
        self._setup = setup
        self.on_error = on_error  # a command's own way to report a usage error (check: exit 3)

    def error(self, message: str) -> NoReturn:
        if self.on_error is not None:
            self.on_error(self, message)
        super().error(message)

    def _ready(self) -> None:
        if self._setup is not None:
            setup, self._setup = self._setup, None
            setup(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._ready()
        LazyParser.active = self
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ready()
        return super().format_help()

    def format_usage(self) -> str:
        self._ready()
        return super().format_usage()


class FilterHelp(_TerminalWidth, argparse.RawDescriptionHelpFormatter):
    """Appends the filter grammar to a command's help only when help is printed (it lives in the selector)."""

    def add_text(self, text: str | None) -> None:
        if text is FILTER_EPILOG:
            from vfleet.core.selector import GRAMMAR

            width = max(len(example) for example, _ in GRAMMAR)
            text = "filter terms (globs and keys ignore case):\n" + "\n".join(
                f"  {example:<{width}}  {meaning}" for example, meaning in GRAMMAR
            )
        super().add_text(text)


FILTER_EPILOG = "<the filter grammar>"  # a marker FilterHelp replaces (compared by identity)


def command(commands: Any, name: str, help: str, *, filters: bool = False, **kw: Any) -> None:
    """Register `vfleet NAME`, whose arguments and handler live in vfleet/cli/NAME.py.

    That module has `add_arguments(parser)` and `cmd_NAME(args, out)`; it is imported only
    when NAME is parsed (the command runs, or its --help), never at start-up. `filters`:
    the help ends with the filter grammar (for commands that take add_filters()).
    """

    def setup(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(f"vfleet.cli.{name}").add_arguments(parser)

    if filters:
        kw.update(epilog=FILTER_EPILOG, formatter_class=FilterHelp)
    commands.add_parser(name, help=help, setup=setup, **kw)


def fleet_parser(
    commands: Any,
    name: str,
    help: str,
    setup: Callable[[argparse.ArgumentParser], None] | None = None,
    **kw: Any,
) -> argparse.ArgumentParser:
    """A command that reads the fleet: the filter grammar in its help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, epilog=FILTER_EPILOG, formatter_class=FilterHelp, setup=setup, **kw
    )
    return parser


def add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (all must match)")
    group.add_argument("--host", action="append", default=[], metavar="GLOB", help="host name (repeatable: any)")
    group.add_argument("--group", action="append", default=[], help="inventory group")
    group.add_argument("--tag", action="append", default=[], help="host tag")
    group.add_argument("--state", help="power state: running, off, paused, ...")
    group.add_argument("--name", help="domain name glob, e.g. 'web-*'")
    group.add_argument(
        "--filter", default="", metavar="TERMS", help="the console's filter terms, e.g. 'hv:xen !state:off cpu>80'"
    )


def add_view(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--view",
        metavar="NAME",
        help="a view of the config file: its filter (with any below), sort and, for tables, columns",
    )


def add_act(commands: Any) -> None:
    commands.add_parser("act", help="run a lifecycle verb on the domains a selector names", setup=_act_arguments)


def _act_arguments(act: argparse.ArgumentParser) -> None:
    act.add_argument("verb", choices=VERBS)
    act.add_argument("selector", nargs="+", help="domain name or glob, and filter terms (host:, tag:, state: ...)")
    add_operation_options(act)
    act.add_argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=True,
        help="wait until each domain reaches the verb's end state (default)",
    )
    act.add_argument("--no-wait", dest="wait", action="store_false", help="return once the verb was sent")


def add_operation_options(parser: argparse.ArgumentParser) -> None:
    """The options every face of an operation shares (act, snapshot, later migrate)."""
    parser.add_argument("--host", action="append", default=[], metavar="GLOB", help="only domains of these hosts")
    parser.add_argument("--multiple", action="store_true", help="allow a selector that matches several domains")
    parser.add_argument("--max-targets", type=int, metavar="N", help="refuse if more than N domains match")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and do nothing")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation (required without a TTY)")
    parser.add_argument(
        "--override-protection",
        action="store_true",
        help="allow destructive verbs on protected domains (recorded in the audit log)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="per-target limit (default 120)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--audit-log", type=Path, metavar="FILE", help=f"default: ${AUDIT_LOG_ENV} or XDG state dir")


def add_audit(commands: Any) -> None:
    commands.add_parser("audit", help="the tamper-evident log of every action", setup=_audit_arguments)


def _audit_arguments(audit: argparse.ArgumentParser) -> None:
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    log_help = f"default: ${AUDIT_LOG_ENV}, else ~/.local/state/vfleet/audit.jsonl"
    check = audit_commands.add_parser(
        "verify", help="check the hash chain, the checkpoint and (with a key) the MACs; name the first bad record"
    )
    check.add_argument("--audit-log", type=Path, metavar="FILE", help=log_help)
    check.add_argument(
        "--audit-key-file",
        type=Path,
        metavar="FILE",
        help=f"HMAC key file, readable by its owner only (default: ${AUDIT_KEY_ENV})",
    )
    show = audit_commands.add_parser("show", help="one entry per operation: plan, results, outcome; newest last")
    show.add_argument("--audit-log", type=Path, metavar="FILE", help=log_help)
    show.add_argument("--host", metavar="GLOB", help="only operations touching this host")
    show.add_argument("--verb", choices=ALL_VERBS)
    show.add_argument("--user")
    show.add_argument("-n", "--last", type=int, metavar="N", help="only the last N operations")
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")


def add_source_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """On the top-level parser (the console) and on `status`/`top`; a subcommand's value wins."""
    default = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--source",
        metavar="prometheus=URL",
        default=default,
        help="read metrics from a Prometheus-API server (Prometheus, VictoriaMetrics, Thanos, Mimir) "
        "that scrapes `vfleet export`; actions still go to the hosts",
    )
    parser.add_argument(
        "--source-max-age",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS if sub else 30.0,
        help="with --source: a host whose newest sample is older is stale (default 30)",
    )
