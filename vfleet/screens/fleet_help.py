"""What `?` shows on the fleet screen: every key and command, grouped by what they act on.

Built from the screen's bindings, so a key added there shows up here even before it is
given a place and a longer text ("More keys").
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.binding import Binding

from vfleet.core.selector import GRAMMAR
from vfleet.screens.commands import COMMAND_HELP
from vfleet.screens.modals import HelpSection, key_label

# Section -> the actions it lists, in order.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Table", ("open_domain", "open_host", "sort_step(-1)", "sort_step(1)", "reverse_sort", "freeze")),
    ("Marks and actions", ("mark", "mark_filtered", "unmark", "actions", "snapshots")),
    ("Panes", ("toggle_pane('#hosts')", "toggle_pane('#events')", "toggle_pane('#jobs')", "job_detail")),
    ("Filter: / and the terms", ("filter", "clear_filter")),
    ("Command line: : and a command", ("command", "help", "app.quit")),
)
# Longer than the footer's one word.
LONG = {
    "open_domain": "the domain's detail: identity, state, history, events",
    "open_host": "the host of the cursor row (or the hosts pane's)",
    "sort_step(-1)": "sort by the previous column",
    "sort_step(1)": "sort by the next column",
    "reverse_sort": "reverse the sort",
    "freeze": "freeze the order while you aim; again: live",
    "mark": "mark or unmark the cursor row",
    "mark_filtered": "mark every row the filter shows",
    "unmark": "unmark every row",
    "actions": "act on the marked rows (else the cursor row); `snapshot` takes one of each",
    "snapshots": "the cursor row's snapshots: n new, r revert, d delete",
    "job_detail": "the selected (else the last) job in full: every target's result",
    "toggle_pane('#hosts')": "show or hide the hosts pane",
    "toggle_pane('#events')": "show or hide the events pane",
    "toggle_pane('#jobs')": "show or hide the jobs pane",
    "filter": "filter as you type; enter keeps it, escape cancels",
    "clear_filter": "on the table: clear the filter",
    "command": "command line (below); enter runs, escape cancels",
    "help": "this help",
    "app.quit": "quit",
}
EXTRA: dict[str, tuple[tuple[str, str], ...]] = {
    "Table": (
        ("up down pgup pgdn", "move the cursor (home, end too)"),
        ("click a header", "sort by that column; again: reverse"),
    ),
    "Panes": (
        ("tab", "move between the table and the panes"),
        ("enter", "on a job or an event: its full text"),
    ),
    "Command line: : and a command": (("ctrl+p", "the palette: themes and more"),),
}


def fleet_help(bindings: Iterable[Binding]) -> list[HelpSection]:
    keys: dict[str, list[tuple[str, str]]] = {}
    for binding in bindings:
        line = (key_label(binding.key), LONG.get(binding.action, binding.description))
        keys.setdefault(binding.action, []).append(line)
    sections: list[HelpSection] = []
    for heading, actions in SECTIONS:
        lines = [line for action in actions for line in keys.pop(action, [])]
        lines += EXTRA.get(heading, ())
        if heading.startswith("Filter"):
            lines += GRAMMAR
        if heading.startswith("Command"):
            lines += [(f":{usage}", meaning) for usage, meaning in COMMAND_HELP]
        sections.append((heading, lines))
    more = [line for lines in keys.values() for line in lines]
    if more:
        sections.insert(len(sections) - 2, ("More keys", more))
    return sections
