"""Columns of the fleet table: how each cell of a DomainRow is shown and sorted.

Widths are fixed so that a changed value never re-measures a column of 10,000 rows
(and the table does not jitter while numbers move).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text

from vfleet.core.metrics import DomainRow
from vfleet.core.models import MemorySource, PowerState
from vfleet.core.output import human_bytes, human_duration
from vfleet.core.sanitize import printable

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 8
_SOURCE_LETTER = {MemorySource.GUEST: "g", MemorySource.HOST_RSS: "r", MemorySource.HYPERVISOR: "h"}
# Theme variable that colours each state (resolved against the running theme).
STATE_COLOURS = {
    PowerState.RUNNING: "success",
    PowerState.PAUSED: "warning",
    PowerState.SUSPENDED: "warning",
    PowerState.SHUTTING_DOWN: "warning",
    PowerState.CRASHED: "error",
}
STALE = Style(dim=True, italic=True)


class KeyedText(Text):
    """A cell that remembers its row key, so DataTable.sort can sort on our model."""

    row_key: str = ""


def _total(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _pair(a: float | None, b: float | None) -> str:
    return "-" if a is None and b is None else f"{human_bytes(a)}/{human_bytes(b)}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def memory_cell(row: DomainRow) -> str:
    """Used (with where the number came from) / allocated; allocation never poses as usage."""
    d = row.domain
    used = "-"
    if d.memory_used_bytes is not None:
        letter = _SOURCE_LETTER.get(d.memory_used_source, "?") if d.memory_used_source else "?"
        used = f"{human_bytes(d.memory_used_bytes)}({letter})"
    return f"{used}/{human_bytes(d.memory_current_bytes)}"


def sparkline(values: Sequence[float | None], points: int = SPARK_POINTS, top: float = 100.0) -> str:
    recent = list(values)[-points:]
    out = []
    for value in recent:
        if value is None:
            out.append(" ")
        else:
            level = int(min(max(value, 0.0), top) / top * (len(SPARK_BLOCKS) - 1) + 0.5)
            out.append(SPARK_BLOCKS[level])
    return "".join(out).rjust(points)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    right: bool
    sort_key: Callable[[DomainRow], Any] | None  # None: not sortable


def _num(value: float | int | None) -> tuple[int, float]:
    # Unknown values sort below every known one, whatever the direction.
    return (0, 0.0) if value is None else (1, float(value))


COLUMNS: tuple[Column, ...] = (  # the first ~75 columns are what an 80-column terminal shows
    Column("mark", " ", 1, False, None),
    Column("host", "HOST", 12, False, lambda r: r.host),
    Column("hv", "HV", 4, False, lambda r: r.hypervisor),
    Column("name", "NAME", 22, False, lambda r: r.domain.name.lower()),
    Column("state", "STATE", 9, False, lambda r: r.domain.state.value),
    Column("cpu", "CPU%", 5, True, lambda r: _num(r.rates.cpu_percent)),
    Column("spark", "CPU", SPARK_POINTS, False, None),
    Column("vcpus", "VCPU", 4, True, lambda r: _num(r.domain.vcpus)),
    Column("mem", "MEM used/alloc", 14, True, lambda r: _num(r.domain.memory_used_bytes)),
    Column("disk", "DISK r/w", 13, True, lambda r: _num(_total(r.rates.disk_read_bps, r.rates.disk_write_bps))),
    Column("net", "NET rx/tx", 13, True, lambda r: _num(_total(r.rates.net_rx_bps, r.rates.net_tx_bps))),
    Column("cont", "CONT%", 5, True, lambda r: _num(r.rates.contention_percent)),
    Column("uptime", "UPTIME", 6, True, lambda r: _num(r.domain.uptime_s)),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
SORTABLE = tuple(c.key for c in COLUMNS if c.sort_key is not None)
BY_KEY = {c.key: c for c in COLUMNS}


def row_texts(row: DomainRow, *, stale: bool, marked: bool, spark: str) -> tuple[str, ...]:
    """The plain text of every cell, in COLUMNS order: cheap to compare between ticks.

    Remote text is escaped here: Rich keeps ESC in a Text, and a name's
    `\\x1b]0;...` would retitle the operator's terminal.
    """
    d, r = row.domain, row.rates
    return (
        "●" if marked else " ",
        printable(row.host),
        printable(row.hypervisor),
        printable(d.name),
        d.state.value + ("?" if stale else ""),
        _pct(r.cpu_percent),
        spark,
        "-" if d.vcpus is None else str(d.vcpus),
        memory_cell(row),
        _pair(r.disk_read_bps, r.disk_write_bps),
        _pair(r.net_rx_bps, r.net_tx_bps),
        _pct(r.contention_percent),
        human_duration(d.uptime_s),
    )


def styled_cell(
    index: int, text: str, row: DomainRow, row_key: str, *, stale: bool, colours: dict[str, Style]
) -> KeyedText:
    """One cell as Rich Text: right-aligned numbers, state colours, dim when stale."""
    column = COLUMNS[index]
    style: Style | str = ""
    if stale:
        style = STALE
    elif column.key == "state":
        colour = STATE_COLOURS.get(row.domain.state)
        style = colours.get(colour, "") if colour else Style(dim=True)
    elif column.key == "mark":
        style = colours.get("accent", "")
    cell = KeyedText(text, style=style, justify="right" if column.right else "left", no_wrap=True, end="")
    if column.key == "name":
        cell.row_key = row_key
    return cell


def styled(
    texts: Sequence[str], row: DomainRow, row_key: str, *, stale: bool, colours: dict[str, Style]
) -> list[KeyedText]:
    return [styled_cell(i, t, row, row_key, stale=stale, colours=colours) for i, t in enumerate(texts)]
