"""`:` command mode: a tiny line language over the same actions as the keys."""

from __future__ import annotations

from dataclasses import dataclass

from vfleet.core.models import Verb
from vfleet.widgets.columns import SORTABLE

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
}
_VERBS = {v.value: v for v in Verb}

# What `?` lists for `:` (usage, meaning). A new command adds its line here: a test
# checks that every command is listed.
COMMAND_HELP: tuple[tuple[str, str], ...] = (
    ("filter TERMS", "set the filter (the / terms above); f for short"),
    ("sort COLUMN [asc|desc]", "sort by " + " ".join(SORTABLE)),
    ("host NAME", "open a host's screen"),
    ("theme NAME", "change the colours (ctrl+p lists the themes)"),
    ("VERB", f"{' '.join(_VERBS)}: on the marked rows (else the cursor row), confirmed as with a"),
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
        return Command("sort", args[:1] + (("desc",) if args[1:] == ("desc",) else ()))
    if name in ("host", "theme") and len(args) != 1:
        raise ValueError(f"usage: {name} NAME")
    return Command(name, args)
