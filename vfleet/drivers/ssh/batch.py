"""Several shell commands in one SSH round trip, and their outputs cut apart again.

`join(["a", "b"])` gives `a; echo SEP $?; b; echo SEP $?`; `split_sections` turns the
output back into (exit status, text) per command, and calls a missing or garbled
separator what it is: a truncated or garbled answer, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vfleet.core.errors import GarbledOutput

SEPARATOR = "@@VFLEET@@"
_INT = re.compile(r"^\d+$")


def join(commands: Sequence[str]) -> str:
    return "; ".join(f"{command}; echo {SEPARATOR} $?" for command in commands)


def split_sections(text: str, count: int, host: str = "") -> list[tuple[int, str]]:
    """Cut `a; echo SEP $?; b; echo SEP $?` output into (exit status, text) per command."""
    sections: list[tuple[int, str]] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith(SEPARATOR):
            status = line[len(SEPARATOR) :].strip()
            if not _INT.match(status):
                raise GarbledOutput(host, f"poll output: bad separator line {line.strip()!r}")
            sections.append((int(status), "".join(current)))
            current = []
        else:
            current.append(line)
    if len(sections) < count:
        raise GarbledOutput(
            host, f"poll output has {len(sections)} of {count} sections: an output was cut short (no end marker)"
        )
    if len(sections) > count:
        raise GarbledOutput(host, f"poll output has {len(sections)} sections for {count} commands")
    if "".join(current).strip():
        raise GarbledOutput(host, "poll output: text after the last command's end marker")
    return sections
