"""Columns of the fleet table: how each cell of a DomainRow is shown, coloured and laid out.

What a column is (its key, how it sorts) is the core's (vfleet.core.fields); here is
how it looks: labels, alignment, which text may be cut with an ellipsis (names) and
which never (numbers with their units: a column that does not fit is left out
whole), and the order in which columns give way on a narrow terminal. `layout()`
turns the terminal's width and the content's widths into column widths.

Cells past a warn/crit threshold carry a marker (`!` warn, `!!` crit) as well as the
theme's $warning/$error colour, so they read the same without colour (NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from vfleet.core import fields
from vfleet.core.metrics import DomainRow
from vfleet.core.models import MemorySource, PowerState
from vfleet.core.output import human_bytes, human_duration
from vfleet.core.sanitize import display_width, printable
from vfleet.core.thresholds import DEFAULT_THRESHOLDS, METRICS, Level, Thresholds, memory_used_percent

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
MARKERS = {Level.OK: "", Level.WARN: "!", Level.CRIT: "!!"}
LEVEL_COLOURS = {Level.WARN: "warning", Level.CRIT: "error"}
PADDING = 2  # DataTable's cell padding, one cell on each side
SORT_ARROWS = {True: "▼", False: "▲"}  # descending, ascending


class KeyedText(Text):
    """A cell that remembers its row key, so DataTable.sort can sort on our model."""

    row_key: str = ""


class CutText(KeyedText):
    """A name cut in the middle to the width it is drawn at: a column that narrows or widens
    re-cuts its names as it draws them, without rebuilding 10,000 cells."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterable[Segment]:
        width = options.max_width
        if self.cell_len <= width:
            yield from super().__rich_console__(console, options)
            return
        cut = Text(cut_middle(self.plain, width), style=self.style, justify=self.justify, no_wrap=True, end="")
        yield from cut.__rich_console__(console, options)


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
    short: str  # the label when the column is narrower than `label`
    right: bool
    shrink_to: int | None  # text that may be cut (with an ellipsis) down to this width; None: never cut
    priority: int  # which columns give way first on a narrow terminal (highest first); 0: never
    metric: str | None = None  # the threshold that colours it

    @property
    def sortable(self) -> bool:
        return self.key in fields.BY_KEY and fields.BY_KEY[self.key].sortable

    def label_for(self, width: int, sort: bool | None) -> str:
        """The header: the long label when it fits, and the sort direction's arrow on the sorted column."""
        arrow = "" if sort is None else SORT_ARROWS[sort]
        label = self.label if len(self.label) + len(arrow) <= width else self.short
        return label + arrow


# Screen order. Priorities: at 80 columns the mark, host, name, state, CPU%, memory and
# vCPUs fit with typical names; each wider terminal adds the next ones.
COLUMNS: tuple[Column, ...] = (
    Column("mark", " ", " ", False, None, 0),
    Column("host", "HOST", "HOST", False, 8, 1, "age"),
    # The server inside a pool or cluster: laid out only when some domain has one (AUTO_COLUMNS).
    Column("node", "NODE", "NODE", False, 8, 5),
    Column("hv", "HV", "HV", False, None, 12),
    Column("name", "NAME", "NAME", False, 12, 0),
    Column("state", "STATE", "STATE", False, None, 0),
    Column("cpu", "CPU%", "CPU%", True, None, 2, "cpu"),
    Column("spark", "CPU", "CPU", False, None, 13),
    Column("vcpus", "VCPU", "VCPU", True, None, 4),
    Column("mem", "MEM used/alloc", "MEM", True, None, 3, "memory"),
    Column("mem_pct", "MEM%", "MEM%", True, None, 11, "memory"),
    Column("disk", "DISK r/w", "DISK", True, None, 8),
    Column("iops", "IOPS r/w", "IOPS", True, None, 14),
    Column("net", "NET rx/tx", "NET", True, None, 7),
    Column("cont", "CONT%", "CONT%", True, None, 6, "contention"),
    Column("uptime", "UPTIME", "UP", True, None, 10),
    Column("tags", "TAGS", "TAGS", False, 6, 15),
    # Last to find room: snapshot facts matter before patching, not while watching load.
    Column("snaps", "SNAPS", "SNAP", True, None, 16),
    Column("snap_age", "SNAP AGE", "SNAP AGE", True, None, 17),
)
ESSENTIAL = 3  # priorities up to this one are placed before names get their comfortable width
COMFORTABLE = {"name": 32, "host": 16}  # names this wide tell domains apart; wider only if room is left
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
# Not shown unless chosen (`c`, `:columns +snaps`, a view): the table is full without them.
OFF_BY_DEFAULT = frozenset({"snaps", "snap_age"})
# Chosen, but laid out only while some domain has a value for them: a fleet without pools or
# clusters gets no column of dashes.
AUTO_COLUMNS = frozenset({"node"})
DEFAULT_COLUMNS = tuple(k for k in COLUMN_KEYS if k not in OFF_BY_DEFAULT)
CHOOSABLE = tuple(k for k in COLUMN_KEYS if k != "mark")  # the mark column is the marks' only sign
SORTABLE = tuple(c.key for c in COLUMNS if c.sortable)
BY_KEY = {c.key: c for c in COLUMNS}
INDEX = {c.key: i for i, c in enumerate(COLUMNS)}
assert set(CHOOSABLE) == set(fields.KEYS), "widgets/columns.py and core/fields.py must name the same columns"


def text_width(text: str) -> int:
    return len(text) if text.isascii() else display_width(text)


def cut_middle(text: str, width: int) -> str:
    """`text` in `width` cells, its middle replaced by `…`: names that share a prefix
    (`web-frontend-prod-01`, `-02`) stay apart by the ends they differ in."""
    if text_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    keep = width - 1
    tail_width = keep // 2
    head_width = keep - tail_width
    if text.isascii():
        return text[:head_width] + "…" + (text[-tail_width:] if tail_width else "")
    head, used = [], 0
    for char in text:
        if used + cell_len(char) > head_width:
            break
        head.append(char)
        used += cell_len(char)
    tail, used = [], 0
    for char in reversed(text):
        if used + cell_len(char) > tail_width:
            break
        tail.append(char)
        used += cell_len(char)
    return "".join(head) + "…" + "".join(reversed(tail))


def layout(
    columns: Sequence[Column], natural: Mapping[str, int], width: int, sort: tuple[str, bool] | None = None
) -> list[tuple[Column, int]]:
    """Which of `columns` to show and how wide, in screen order, to fit `width` terminal cells.

    `natural` is each column's widest content. In turn, while they fit: the essential
    columns at their smallest (numbers whole, names cut down to `shrink_to`); names
    widened to a comfortable width; the other columns by priority; names in full;
    labels in their long form. Columns that never give way are in even when they do
    not fit (the table then scrolls sideways).
    """

    def label_need(c: Column) -> int:
        return len(c.short) + (1 if sort is not None and sort[0] == c.key else 0)

    full = {c.key: max(natural.get(c.key, 0), label_need(c)) for c in columns}
    widths = {
        c.key: full[c.key] if c.shrink_to is None else min(full[c.key], max(c.shrink_to, label_need(c)))
        for c in columns
    }
    by_priority = sorted(columns, key=lambda c: c.priority)
    chosen = {c.key for c in columns if c.priority == 0}
    left = width - sum(widths[k] + PADDING for k in chosen)

    def add(candidates: Iterable[Column]) -> None:
        nonlocal left
        for c in candidates:
            if c.key not in chosen and widths[c.key] + PADDING <= left:
                chosen.add(c.key)
                left -= widths[c.key] + PADDING

    def grow(limit: Callable[[Column], int]) -> None:
        nonlocal left
        for c in by_priority:
            if c.key in chosen and c.shrink_to is not None:
                more = max(0, min(left, limit(c) - widths[c.key]))
                widths[c.key] += more
                left -= more

    add(c for c in by_priority if c.priority <= ESSENTIAL)
    grow(lambda c: min(full[c.key], COMFORTABLE.get(c.key, c.shrink_to or 0)))
    add(by_priority)
    grow(lambda c: full[c.key])
    for c in columns:
        arrow = 1 if sort is not None and sort[0] == c.key else 0
        extra = len(c.label) + arrow - widths[c.key]
        if c.key in chosen and 0 < extra <= left:
            widths[c.key] += extra
            left -= extra
    return [(c, widths[c.key]) for c in columns if c.key in chosen]


def _marked(level: Level, text: str) -> str:
    return MARKERS[level] + text if text != "-" else text


def row_texts(
    row: DomainRow,
    *,
    stale: bool,
    marked: bool,
    spark: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    age: Level = Level.OK,
) -> tuple[str, ...]:
    """The plain text of every cell, in COLUMNS order: cheap to compare between ticks.

    Threshold markers are part of the text, so a level that changes is a changed cell.
    Remote text is escaped here: Rich keeps ESC in a Text, and a name's
    `\\x1b]0;...` would retitle the operator's terminal.
    """
    d, r = row.domain, row.rates
    memory = thresholds.memory.level(memory_used_percent(d))
    mem_pct = memory_used_percent(d)
    return (
        "●" if marked else " ",
        MARKERS[age] + printable(row.host),
        "-" if d.node is None else printable(d.node),
        printable(row.hypervisor),
        printable(d.name),
        d.state.value + ("?" if stale else ""),
        _marked(thresholds.cpu.level(r.cpu_percent), _pct(r.cpu_percent)),
        spark,
        "-" if d.vcpus is None else str(d.vcpus),
        _marked(memory, memory_cell(row)),
        _marked(memory, _pct(mem_pct)),
        _pair(r.disk_read_bps, r.disk_write_bps),
        _iops(r.disk_read_iops, r.disk_write_iops),
        _pair(r.net_rx_bps, r.net_tx_bps),
        _marked(thresholds.contention.level(r.contention_percent), _pct(r.contention_percent)),
        human_duration(d.uptime_s),
        printable(",".join(sorted(row.tags))),
        "-" if d.snapshot_count is None else str(d.snapshot_count),
        human_duration(d.snapshot_age()) if d.snapshot_count else "-",
    )


def _iops(a: float | None, b: float | None) -> str:
    return "-" if a is None and b is None else f"{_count(a)}/{_count(b)}"


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value < 10_000 else f"{value / 1000:.0f}k"


def cell_level(key: str, row: DomainRow, thresholds: Thresholds, age: Level) -> Level:
    column = BY_KEY[key]
    if column.metric is None:
        return Level.OK
    if column.metric == "age":
        return age
    if column.metric == "memory":
        return thresholds.memory.level(memory_used_percent(row.domain))
    if column.metric == "cpu":
        return thresholds.cpu.level(row.rates.cpu_percent)
    return thresholds.contention.level(row.rates.contention_percent)


def styled_cell(
    key: str,
    text: str,
    row: DomainRow,
    row_key: str,
    *,
    stale: bool,
    colours: Mapping[str, Style],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    age: Level = Level.OK,
    width: int | None = None,
) -> KeyedText:
    """One cell as Rich Text: right-aligned numbers, state and threshold colours, dim when stale.

    Text that may be cut is cut in the middle to `width`; numbers never are (the layout
    makes their columns wide enough or leaves them out).
    """
    column = BY_KEY[key]
    style: Style | str = ""
    level = cell_level(key, row, thresholds, age) if column.metric else Level.OK
    if level is not Level.OK and (not stale or column.metric == "age"):
        style = colours.get(LEVEL_COLOURS[level], Style()) + Style(bold=level is Level.CRIT)
    elif stale:
        style = STALE
    elif key == "state":
        colour = STATE_COLOURS.get(row.domain.state)
        style = colours.get(colour, "") if colour else Style(dim=True)
    elif key == "mark":
        style = colours.get("accent", "")
    cell = (CutText if column.shrink_to is not None else KeyedText)(
        text, style=style, justify="right" if column.right else "left", no_wrap=True, overflow="ellipsis", end=""
    )
    if key == "name":
        cell.row_key = row_key
    return cell


def threshold_legend(thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[tuple[str, str]]:
    """Help lines (marker, meaning) for the threshold colours, from the thresholds in force."""

    def levels(which: str) -> str:
        parts = []
        for metric in METRICS:
            limit = getattr(thresholds.get(metric.name), which)
            name = "data age" if metric.name == "age" else metric.label
            parts.append(f"{name} >= {limit:g}{metric.unit}")
        return ", ".join(parts)

    return [
        (MARKERS[Level.WARN], f"warning (in $warning colour): {levels('warn')}"),
        (MARKERS[Level.CRIT], f"critical (in $error colour, bold): {levels('crit')}"),
    ]


THRESHOLD_LEGEND = threshold_legend()
