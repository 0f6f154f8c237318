"""A DataTable that repaints only the rows that changed.

Stock DataTable.update_cell repaints the whole widget: every visible line goes to
the terminal again on every tick, which is what makes a live table heavy over SSH.
Here cell updates are batched; the batch repaints just the screen lines of the
rows it touched (and nothing when they are scrolled out of view).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from textual.geometry import Region
from textual.message_pump import MessagePump
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

# How long the event loop runs other work before a sliced job takes its next slice.
KEYS_GAP = 0.001


def after_keys(pump: MessagePump, callback: Callable[[], object]) -> None:
    """Run `callback` on `pump` after the keys typed meanwhile: the next slice of a long job.

    A chain of call_later never lets the event loop run (Textual takes the next message
    without yielding), so a key from the terminal's input thread could not even reach the
    queue before the whole job was done. A loop timer lets it in first; a closed pump
    (the app quitting) simply drops the callback.
    """
    asyncio.get_running_loop().call_later(KEYS_GAP, pump.call_later, callback)


class LiveTable(DataTable[CellType]):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._touched: set[RowKey] = set()
        self._in_batch = False

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
