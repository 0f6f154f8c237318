"""A DataTable that repaints only the rows that changed.

Stock DataTable.update_cell repaints the whole widget: every visible line goes to
the terminal again on every tick, which is what makes a live table heavy over SSH.
Here cell updates are batched; the batch repaints just the screen lines of the
rows it touched (and nothing when they are scrolled out of view).

Stock DataTable is also O(all rows) on its hot paths once anything changed: every cell
update bumps one counter that keys every render cache, and finding a row's place on
screen (each frame, each cursor move) rebuilds lists of all rows. With 10,000 rows that
kept a key waiting for tens of ms per update. Every row here is one line high, so a
row's place is its index; and a cell's drawing is cached by the cell object itself,
so a repaint redraws only the cells that were replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from textual.coordinate import Coordinate
from textual.geometry import Region, Spacing
from textual.message_pump import MessagePump
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

DRAWN_CELLS = 4096  # cells whose drawing is kept: a few screens of a wide table
DRAWN_LINES = 512  # lines kept likewise
# How long the event loop runs other work before a sliced job takes its next slice.
KEYS_GAP = 0.001


def after_keys(pump: MessagePump, callback: Callable[[], object], delay: float = KEYS_GAP) -> None:
    """Run `callback` on `pump` after the keys typed meanwhile: the next slice of a long job.

    A chain of call_later never lets the event loop run (Textual takes the next message
    without yielding), so a key from the terminal's input thread could not even reach the
    queue before the whole job was done. A loop timer lets it in first; a closed pump
    (the app quitting) simply drops the callback.
    """
    asyncio.get_running_loop().call_later(max(delay, KEYS_GAP), pump.call_later, callback)


K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """A bounded map, least recently used out first, whose set() replaces a key's value
    (textual.cache.LRUCache keeps the first value set for a key)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._items.pop(key, None)
        if value is not None:
            self._items[key] = value  # the most recent last
        return value

    def set(self, key: K, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        if len(self._items) > self._size:
            del self._items[next(iter(self._items))]

    def clear(self) -> None:
        self._items.clear()


class LiveTable(DataTable[CellType]):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._touched: set[RowKey] = set()
        self._in_batch = False
        # (row index, column index) -> the cell drawn there, how, and its lines.
        self._drawn: Kept[tuple[int, int], tuple[object, tuple[object, ...], list[list[Segment]]]] = Kept(DRAWN_CELLS)
        # row index -> its cells, how the line was drawn, and the line (a scroll redraws none).
        self._lines: Kept[int, tuple[tuple[object, ...], tuple[object, ...], Strip]] = Kept(DRAWN_LINES)

    # -- every row is one line: a row's place on screen is its index -------------------

    def add_row(self, *cells: CellType, height: int | None = 1, key: str | None = None, label: object = None) -> RowKey:
        if height != 1:
            raise ValueError("LiveTable rows are one line high")
        return super().add_row(*cells, height=1, key=key, label=label)  # type: ignore[arg-type]

    def _get_offsets(self, y: int) -> tuple[RowKey, int]:
        if self.show_header:
            if y < self.header_height:
                return self._header_row_key, y
            y -= self.header_height
        key = self._row_locations.get_key(y) if 0 <= y < self.row_count else None
        if key is None:
            raise LookupError(f"no row at line {y}")
        return key, 0

    @property
    def _total_row_height(self) -> int:
        return self.row_count

    def _get_row_region(self, row_index: int) -> Region:
        if not self.is_valid_row_index(row_index):
            return Region(0, 0, 0, 0)
        width = sum(column.get_render_width(self) for column in self.columns.values()) + self._row_label_column_width
        top = self.header_height if self.show_header else 0
        return Region(0, top + row_index, max(self.size.width, width), 1)

    def _get_cell_region(self, coordinate: Coordinate) -> Region:
        if not self.is_valid_coordinate(coordinate):
            return Region(0, 0, 0, 0)
        row_index, column_index = coordinate
        columns = self.ordered_columns
        x = sum(c.get_render_width(self) for c in columns[:column_index]) + self._row_label_column_width
        top = self.header_height if self.show_header else 0
        return Region(x, top + row_index, columns[column_index].get_render_width(self), 1)

    def _get_fixed_offset(self) -> Spacing:
        top = (self.header_height if self.show_header else 0) + min(self.fixed_rows, self.row_count)
        left = sum(c.get_render_width(self) for c in self.ordered_columns[: self.fixed_columns])
        return Spacing(top, 0, 0, left + self._row_label_column_width)

    # -- cells drawn again only when replaced ---------------------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        if row_index < 0 or column_index < 0:  # the header, row labels: few, drawn as usual
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self._data[row_key][column_key]
        how = (base_style, width, cursor, hover, self._show_hover_cursor, self._pseudo_class_state)
        drawn = self._drawn.get((row_index, column_index))
        if drawn is not None and drawn[0] is cell and drawn[1] == how:
            return drawn[2]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._drawn.set((row_index, column_index), (cell, how, lines))
        return lines

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # Stock DataTable keys each line by where the cursor is: every key press that scrolls
        # redraws every line. Only the cursor's own line depends on it (a row cursor).
        header = self.header_height if self.show_header else 0
        index = y - header
        if self.cursor_type != "row" or not 0 <= index < self.row_count:
            return super()._render_line(y, x1, x2, base_style)
        row_key = self._row_locations.get_key(index)
        if row_key is None:
            return super()._render_line(y, x1, x2, base_style)
        cells = tuple(self._data[row_key].values())
        how = (
            x1,
            x2,
            self.size.width,
            base_style,
            self.show_cursor and self.cursor_coordinate.row == index,
            self._show_hover_cursor and self.hover_coordinate.row == index,
            self._pseudo_class_state,
            tuple(column.get_render_width(self) for column in self.ordered_columns),  # auto widths grow
        )
        drawn = self._lines.get(index)
        if (
            drawn is not None
            and drawn[1] == how
            and len(drawn[0]) == len(cells)
            and all(a is b for a, b in zip(drawn[0], cells, strict=False))
        ):
            return drawn[2]
        strip = super()._render_line(y, x1, x2, base_style)
        self._lines.set(index, (cells, how, strip))
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()  # a theme or CSS change: stock clears its own caches here
        self._forget_drawn()

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_drawn()  # a width, a label, the cursor shown or not: draw everything afresh

    def _forget_drawn(self) -> None:
        for cache in (getattr(self, "_drawn", None), getattr(self, "_lines", None)):  # None: in __init__
            if cache is not None:
                cache.clear()

    @contextmanager
    def updating_rows(self) -> Iterator[None]:
        """Collect set_cells() calls; repaint only the touched rows at the end."""
        self._in_batch = True
        self._touched.clear()
        try:
            yield
        finally:
            self._in_batch = False
            self._repaint_rows()

    def set_cells(self, row_key: str, values: dict[str, CellType]) -> None:
        """update_cell() without its full repaint: the same data change, then one line."""
        key = RowKey(row_key)
        if key not in self._row_locations:
            raise KeyError(row_key)
        row = self._data[key]
        for column, value in values.items():
            row[ColumnKey(column)] = value
        self._update_count += 1  # invalidates DataTable's render caches, as update_cell does
        self._touched.add(key)
        if not self._in_batch:
            self._repaint_rows()

    def _repaint_rows(self) -> None:
        if not self._touched:
            return
        header = self.header_height if self.show_header else 0
        top = self.scroll_offset.y
        visible = range(top, top + max(0, self.size.height - header))
        width = self.size.width
        for key in self._touched:
            if key not in self._row_locations:
                continue  # removed meanwhile
            index = self.get_row_index(key)  # every row is one line high
            if index in visible:
                self.refresh(Region(0, header + index - top, width, 1))
        self._touched.clear()

    def row_key_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor sits outside the (just shrunk) table
            return None
