"""The fleet table: every domain of every host, filtered, sorted and marked, updated in place.

The model (latest DomainRow per key, the cell texts on screen) lives here; each
HostView is diffed against it and only the cells that changed are written to the
table. Filter changes rebuild the table once (a user action, not a tick).

Columns follow the terminal: their widths come from the table's width and the
widest text each column holds (columns.layout). Widths only grow between layouts,
so a number that gets one digit longer never shifts the table back and forth; a
resize, a filter or a column choice measures again from scratch. A layout that
keeps the same columns only changes their widths; one that adds or drops a column
rebuilds the rows (both are rare: they are not ticks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widgets.data_table import ColumnKey

from vfleet.core import fields
from vfleet.core.engine import HostView
from vfleet.core.history import History
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostConfig, HostStatus
from vfleet.core.operations import Target
from vfleet.core.sanitize import printable
from vfleet.core.selector import Selector
from vfleet.core.thresholds import DEFAULT_THRESHOLDS, Level, Thresholds
from vfleet.widgets.columns import (
    AUTO_COLUMNS,
    BY_KEY,
    COLUMN_KEYS,
    COLUMNS,
    DEFAULT_COLUMNS,
    INDEX,
    MARKERS,
    SPARK_POINTS,
    Column,
    KeyedText,
    layout,
    row_texts,
    sparkline,
    styled_cell,
    text_width,
)
from vfleet.widgets.live_table import LiveTable, after_keys

HistoryLookup = Callable[[str, str], History | None]
_STABLE_SORTS = frozenset({"host", "hv", "name", "tags"})  # values that do not move between ticks
AGE_TICK = 1.0  # seconds between checks of each host's data age against the thresholds
# Rows whose data-age mark changed are redrawn this many at a time, keys in between: a whole
# fleet going stale at once (10,000 rows) would otherwise hold the keys for a second.
AGE_SLICE_ROWS = 250


def row_key(host: str, domain_key: str) -> str:
    return f"{host}/{domain_key}"


class FleetTable(LiveTable[KeyedText]):
    def __init__(
        self,
        history: HistoryLookup,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        columns: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: object,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._history = history
        self._clock = clock
        self.thresholds = thresholds
        self.rows_by_key: dict[str, DomainRow] = {}
        self._configs: dict[str, HostConfig] = {}
        self._host_keys: dict[str, list[str]] = {}
        self._stale_hosts: set[str] = set()
        self._last_ok: dict[str, float | None] = {}
        self._ages: dict[str, Level] = {}  # each host's data age level, as its rows show it
        self._age_queue: dict[str, None] = {}  # row keys whose host cell waits for its new age mark
        self._texts: dict[str, tuple[str, ...]] = {}  # shown rows only: what is on screen now
        self.selector = Selector.parse("")
        self.sort_column = "host"
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.frozen = False  # htop's Z: rows keep their places while the operator aims
        self.colours: dict[str, Style] = {}
        self.chosen: tuple[str, ...] = _visible(columns)  # what the operator chose
        self.laid_out: list[tuple[Column, int]] = []  # what is in the table now, and how wide
        self._widths: dict[str, int] = {}
        self._natural = [0] * len(COLUMNS)  # widest text per column since the last full measure
        self._grew = False
        self._node_hosts: set[str] = set()  # hosts with a domain on a node: the NODE column is laid out

    def on_mount(self) -> None:
        self._set_columns(self._layout())
        self.set_interval(AGE_TICK, self._check_ages)

    # -- layout ----------------------------------------------------------------

    @property
    def shown_columns(self) -> list[str]:
        """Column keys in the table now, in screen order."""
        return [c.key for c, _ in self.laid_out]

    def dropped_columns(self) -> list[str]:
        """Chosen columns left out for lack of room (not those with nothing to show)."""
        shown, empty = set(self.shown_columns), self._empty_columns()
        return [k for k in self.chosen if k not in shown and k not in empty]

    def _empty_columns(self) -> frozenset[str]:
        return frozenset() if self._node_hosts else AUTO_COLUMNS

    def _width(self) -> int:
        return self.scrollable_content_region.width

    def _layout(self) -> list[tuple[Column, int]]:
        natural = {c.key: self._natural[i] for i, c in enumerate(COLUMNS)}
        empty = self._empty_columns()
        chosen = [BY_KEY[k] for k in self.chosen if k not in empty]
        return layout(chosen, natural, self._width(), (self.sort_column, self.sort_reverse))

    def _set_columns(self, plan: list[tuple[Column, int]]) -> None:
        """Make the table's columns `plan`: only widths and labels if the same columns stay.

        Cut names re-cut themselves as they are drawn (CutText): a width that changes never
        rebuilds the rows (10,000 of them would hold the keys for a quarter of a second).
        """
        if [c.key for c, _ in plan] == self.shown_columns and self.columns:
            self._lay(plan)
            for column, width in plan:
                table_column = self.columns[ColumnKey(column.key)]
                table_column.width = width
                table_column.label = Text(column.label_for(width, self._arrow(column.key)), end="")
            self._clear_caches()
            self._require_update_dimensions = True
            self._update_count += 1
            self.refresh()
            return
        self._lay(plan)
        cursor = self.row_key_at_cursor()
        self.clear(columns=True)
        for column, width in plan:
            self.add_column(Text(column.label_for(width, self._arrow(column.key)), end=""), width=width, key=column.key)
        for key in self._texts:
            row = self.rows_by_key[key]
            self.add_row(*self._cells(key, row, self._texts[key]), key=key)
        self._sort()
        self._restore_cursor(cursor)

    def _lay(self, plan: list[tuple[Column, int]]) -> None:
        self.laid_out = plan
        self._widths = {c.key: w for c, w in plan}

    def _arrow(self, key: str) -> bool | None:
        return self.sort_reverse if key == self.sort_column else None

    def _relayout_if_grown(self) -> None:
        if self._grew:
            self.relayout()

    def relayout(self) -> None:
        self._grew = False
        plan = self._layout()
        if plan != self.laid_out:
            self._set_columns(plan)

    def _measure(self, texts: tuple[str, ...], old: tuple[str, ...] | None = None) -> None:
        natural = self._natural
        for i, text in enumerate(texts):
            if old is not None and old[i] == text:
                continue
            width = text_width(text)
            if width > natural[i]:
                natural[i] = width
                self._grew = True

    def on_resize(self, event: events.Resize) -> None:
        self.relayout()

    def set_columns(self, keys: Iterable[str]) -> None:
        """Show these columns (name and state always); the layout leaves out what does not fit."""
        self.chosen = _visible(list(keys))
        self.relayout()

    # -- live updates ----------------------------------------------------------

    def apply(self, views: Iterable[HostView]) -> None:
        """Diff each host's latest view against what is shown; touch only what changed."""
        resort = False
        cursor = self.row_key_at_cursor()
        with self.updating_rows():
            for view in views:
                resort |= self._apply_host(view)
            if resort and not self.frozen:
                self._sort()
        self._relayout_if_grown()
        # The cursor belongs to a domain, not to a line: it follows its row through
        # re-sorts, insertions and removals above it.
        if cursor is not None and cursor != self.row_key_at_cursor():
            self._restore_cursor(cursor)

    def _apply_host(self, view: HostView) -> bool:
        host = view.name
        self._configs[host] = view.config
        stale = view.health.status is not HostStatus.UP
        self._last_ok[host] = view.health.last_ok_at
        age = self._age_level(host)
        restyle = stale != (host in self._stale_hosts) or age is not self._ages.get(host, Level.OK)
        self._ages[host] = age
        if stale:
            self._stale_hosts.add(host)
        else:
            self._stale_hosts.discard(host)
        keys: list[str] = []
        moved = on_nodes = False
        for row in view.rows:
            on_nodes = on_nodes or row.domain.node is not None
            key = row_key(host, row.domain.key)
            keys.append(key)
            previous = self.rows_by_key.get(key)
            if previous is row and not restyle:
                continue
            self.rows_by_key[key] = row
            moved |= self._show(key, row, view.config)
        current = set(keys)
        for gone in set(self._host_keys.get(host, ())) - current:
            self.rows_by_key.pop(gone, None)
            self.marked.discard(gone)
            if gone in self._texts:
                del self._texts[gone]
                self.remove_row(gone)
        self._host_keys[host] = keys
        if on_nodes != (host in self._node_hosts):  # the first pool or cluster brings the NODE column
            (self._node_hosts.add if on_nodes else self._node_hosts.discard)(host)
            self._grew = True
        return moved

    def _show(self, key: str, row: DomainRow, config: HostConfig) -> bool:
        """Bring one row up to date; True when the order may have changed."""
        shown = key in self._texts
        if not self.selector.matches(row, config):
            if shown:
                del self._texts[key]
                self.remove_row(key)
            return False
        texts = self._row_texts(key, row)
        if not shown:
            self._texts[key] = texts
            self._measure(texts)
            self.add_row(*self._cells(key, row, texts), key=key)
            return True
        old = self._texts[key]
        if old == texts:
            return False
        self._texts[key] = texts
        self._measure(texts, old)
        changed = {
            column.key: self._cell(column.key, key, row, texts)
            for column, _ in self.laid_out
            if old[INDEX[column.key]] != texts[INDEX[column.key]]
        }
        if changed:
            self.set_cells(key, changed)
        return self.sort_column not in _STABLE_SORTS

    def _row_texts(self, key: str, row: DomainRow) -> tuple[str, ...]:
        history = self._history(row.host, row.domain.key)
        spark = sparkline(history.series("cpu_percent", SPARK_POINTS)) if history is not None else ""
        stale = row.host in self._stale_hosts
        return row_texts(
            row,
            stale=stale,
            marked=key in self.marked,
            spark=spark,
            thresholds=self.thresholds,
            age=self._ages.get(row.host, Level.OK),
        )

    def _cell(self, column: str, key: str, row: DomainRow, texts: tuple[str, ...]) -> KeyedText:
        return styled_cell(
            column,
            texts[INDEX[column]],
            row,
            key,
            stale=row.host in self._stale_hosts,
            colours=self.colours,
            thresholds=self.thresholds,
            age=self._ages.get(row.host, Level.OK),
            width=self._widths.get(column),
        )

    def _cells(self, key: str, row: DomainRow, texts: tuple[str, ...]) -> list[KeyedText]:
        return [self._cell(column.key, key, row, texts) for column, _ in self.laid_out]

    # -- data age ----------------------------------------------------------------

    def _age_level(self, host: str) -> Level:
        last_ok = self._last_ok.get(host)
        return Level.OK if last_ok is None else self.thresholds.age.level(self._clock() - last_ok)

    def _check_ages(self) -> None:
        """A host that stopped answering publishes nothing: its data ages all the same.

        The age shows only in the host cell (its mark and colour): only that cell is redrawn,
        for the rows the filter shows, a slice at a time (see AGE_SLICE_ROWS).
        """
        changed = [h for h in self._host_keys if self._age_level(h) is not self._ages.get(h, Level.OK)]
        if not changed:
            return
        start = not self._age_queue
        for host in changed:
            self._ages[host] = self._age_level(host)
            self._age_queue.update(dict.fromkeys(k for k in self._host_keys[host] if k in self._texts))
        if start:
            self._redraw_ages()

    def _redraw_ages(self) -> None:
        queue = self._age_queue
        column = INDEX["host"]
        with self.updating_rows():
            for _ in range(min(AGE_SLICE_ROWS, len(queue))):
                key = next(iter(queue))
                del queue[key]
                row, old = self.rows_by_key.get(key), self._texts.get(key)
                if row is None or old is None:
                    continue  # gone or filtered out meanwhile
                text = MARKERS[self._ages.get(row.host, Level.OK)] + printable(row.host)
                if old[column] == text:
                    continue  # a newer view of its host redrew it already
                self._texts[key] = texts = (*old[:column], text, *old[column + 1 :])
                self._measure(texts, old)
                if "host" in self._widths:
                    self.set_cells(key, {"host": self._cell("host", key, row, texts)})
        self._relayout_if_grown()
        if queue:
            after_keys(self, self._redraw_ages)

    # -- filter, sort, marks ----------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Raises UsageError for a bad term; the table is left as it was."""
        selector = Selector.parse(text)
        self.selector = selector
        self.rebuild()

    def rebuild(self) -> None:
        """Every row again, and the columns measured from scratch (a filter, a theme, a view)."""
        self._texts.clear()
        self._natural = [0] * len(COLUMNS)
        for key, row in self.rows_by_key.items():
            if self.selector.matches(row, self._configs[row.host]):
                texts = self._row_texts(key, row)
                self._texts[key] = texts
                self._measure(texts)
        self._grew = False
        plan = self._layout()
        self._lay([])  # force a full rebuild of the table
        self._set_columns(plan)

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by a column; a new column starts descending for numbers, ascending for text; again flips it."""
        if not fields.BY_KEY[column].sortable:
            raise ValueError(f"column {column!r} is not sortable")
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else fields.starts_descending(column)
        self.sort_column, self.sort_reverse = column, reverse
        cursor = self.row_key_at_cursor()
        self._sort()
        self.relayout()
        self._relabel()
        self._restore_cursor(cursor)

    def _relabel(self) -> None:
        for column, width in self.laid_out:
            label = column.label_for(width, self._arrow(column.key))
            table_column = self.columns[ColumnKey(column.key)]
            if table_column.label.plain != label:
                table_column.label = Text(label, end="")
                self._clear_caches()
                self.refresh()

    def _sort(self) -> None:
        field = fields.BY_KEY[self.sort_column]
        get, numeric = field.row_value, field.numeric
        assert get is not None
        rows = self.rows_by_key

        def key(cell: KeyedText) -> object:
            row = rows[cell.row_key]
            return (fields.sort_value(get(row), numeric), row.host, row.domain.name)

        if self.row_count:
            self.sort("name", key=key, reverse=self.sort_reverse)

    def _restore_cursor(self, key: str | None) -> None:
        if key is not None and key in self._texts:
            self.move_cursor(row=self.get_row_index(key))

    def freeze(self, on: bool) -> None:
        """Stop (or resume) re-sorting on live updates; resuming sorts once, cursor kept."""
        self.frozen = on
        if not on:
            cursor = self.row_key_at_cursor()
            self._sort()
            self._restore_cursor(cursor)

    def toggle_mark(self) -> None:
        key = self.row_key_at_cursor()
        if key is None:
            return
        self._set_marks({key}, key not in self.marked)
        self.action_cursor_down()

    def mark_shown(self) -> int:
        """Mark every row the filter lets through; returns how many were newly marked."""
        new = set(self._texts) - self.marked
        self._set_marks(new, True)
        return len(new)

    def clear_marks(self) -> None:
        self._set_marks(set(self.marked), False)

    def _set_marks(self, keys: set[str], on: bool) -> None:
        with self.updating_rows():
            for key in keys:
                if on:
                    self.marked.add(key)
                else:
                    self.marked.discard(key)
                row = self.rows_by_key.get(key)
                if key in self._texts and row is not None:
                    self._texts[key] = texts = self._row_texts(key, row)
                    self.set_cells(key, {"mark": self._cell("mark", key, row, texts)})

    def refresh_styles(self) -> None:
        """The theme changed: restyle every shown row."""
        self.rebuild()

    # -- what the screens ask ---------------------------------------------------

    @property
    def shown_count(self) -> int:
        return len(self._texts)

    def shown_keys(self) -> list[str]:
        """Row keys in screen order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def row_at_cursor(self) -> DomainRow | None:
        key = self.row_key_at_cursor()
        return self.rows_by_key.get(key) if key else None

    def targets(self) -> tuple[list[Target], int]:
        """The marked domains (else the one under the cursor), and how many of them the filter hides."""
        keys = [k for k in self.marked if k in self.rows_by_key] or [
            k for k in (self.row_key_at_cursor(),) if k is not None
        ]
        rows = sorted((self.rows_by_key[k] for k in keys), key=lambda r: (r.host, r.domain.name))
        hidden = sum(k not in self._texts for k in keys)
        return [Target(r.host, r.domain.name, r.domain.key) for r in rows], hidden

    def header_key(self, column: ColumnKey) -> str:
        return str(column.value)


def _visible(columns: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen columns in screen order, with the mark, name and state always in."""
    if columns is None:
        return DEFAULT_COLUMNS
    chosen = set(columns) | set(fields.ALWAYS_SHOWN) | {"mark"}
    return tuple(k for k in COLUMN_KEYS if k in chosen)
