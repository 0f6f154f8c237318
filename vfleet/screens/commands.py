"""`:` command mode: a tiny line language over the same actions as the keys."""

from __future__ import annotations

from dataclasses import dataclass

from vfleet.core.config import MIN_INTERVAL
from vfleet.core.models import LIFECYCLE_VERBS
from vfleet.widgets.columns import CHOOSABLE, SORTABLE

_ALIASES = {
    "q": "quit",
    "quit": "quit",
    "exit": "quit",
    "f": "filter",
    "filter": "filter",
    "sort": "sort",
    "host": "host",
    "theme": "theme",
    "help": "help",
    "?": "help",
    "columns": "columns",
    "cols": "columns",
    "view": "view",
    "interval": "interval",
    "console": "console",
    "migrate": "migrate",
}
_VERBS = {v.value: v for v in LIFECYCLE_VERBS}

# What `?` lists for `:` (usage, meaning). A new command adds its line here: a test
# checks that every command is listed.
COMMAND_HELP: tuple[tuple[str, str], ...] = (
    ("filter TERMS", "set the filter (the / terms above); f for short"),
    ("sort COLUMN [asc|desc]", "sort by " + " ".join(SORTABLE)),
    ("host NAME", "open a host's screen"),
    ("theme NAME", "change the colours (ctrl+p lists the themes)"),
    ("VERB", f"{' '.join(_VERBS)}: on the marked rows (else the cursor row), confirmed as with a"),
    ("columns [all|a,b,c|+a -b]", "choose the columns (no argument: the chooser, as c)"),
    ("view [NAME]", "apply a view of the config file: its filter, sort and columns (no NAME: list them)"),
    ("interval [SECONDS|default]", "seconds between polls of every host, from now"),
    ("migrate [HOST]", "move the marked rows (else the cursor row) to HOST; no HOST: the picker, as in a"),
    ("console", "the cursor row's serial console in this terminal (as o; leave with Ctrl+])"),
    ("help", "this help; ? for short"),
    ("quit", "quit; q or exit for short"),
)


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


def parse_command(line: str) -> Command | None:
    """None for an empty line; ValueError with a helpful message for a bad one."""
    words = line.strip().lstrip(":").split()
    if not words:
        return None
    head, args = words[0].lower(), tuple(words[1:])
    if head in _VERBS:
        return Command("verb", (head,))
    name = _ALIASES.get(head)
    if name is None:
        known = ", ".join(sorted({*_ALIASES.values(), *_VERBS}))
        raise ValueError(f"unknown command {head!r} (known: {known})")
    if name == "sort":
        if not args or args[0] not in SORTABLE or (len(args) > 1 and args[1] not in ("asc", "desc")):
            raise ValueError(f"usage: sort COLUMN [asc|desc] with COLUMN one of: {' '.join(SORTABLE)}")
        return Command("sort", args[:2])  # no direction: the column's own (numbers descending)
    if name in ("host", "theme") and len(args) != 1:
        raise ValueError(f"usage: {name} NAME")
    if name == "columns":
        return Command("columns", _columns(args))
    if name == "migrate" and len(args) > 1:
        raise ValueError("usage: migrate [HOST] (no HOST: choose it in the picker)")
    if name == "view" and len(args) > 1:
        raise ValueError("usage: view [NAME] (no NAME: list the views)")
    if name == "interval":
        return Command("interval", _interval(args))
    return Command(name, args)


def _columns(args: tuple[str, ...]) -> tuple[str, ...]:
    """`columns` (the chooser), `columns all`, `columns a,b,c` (these), `columns +a -b` (add, remove)."""
    words = tuple(w for arg in args for w in arg.replace(",", " ").split())
    if words in ((), ("all",)):
        return words
    usage = f"usage: columns [all | COL,COL,... | +COL -COL] with COL one of: {' '.join(CHOOSABLE)}"
    signed = [w[0] in "+-" for w in words]
    if any(signed) and not all(signed):
        raise ValueError(usage)
    for word in words:
        if word.lstrip("+-") not in CHOOSABLE:
            raise ValueError(f"unknown column {word.lstrip('+-')!r}; {usage}")
    return words


def _interval(args: tuple[str, ...]) -> tuple[str, ...]:
    """`interval` (say it), `interval SECONDS`, `interval default` (each host's own)."""
    if args in ((), ("default",)):
        return args
    usage = f"usage: interval [SECONDS | default] with SECONDS at least {MIN_INTERVAL:g}"
    if len(args) != 1:
        raise ValueError(usage)
    try:
        seconds = float(args[0])
    except ValueError:
        raise ValueError(usage) from None
    if not MIN_INTERVAL <= seconds < float("inf"):
        raise ValueError(usage)
    return (f"{seconds:g}",)
