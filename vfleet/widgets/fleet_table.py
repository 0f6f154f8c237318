"""The fleet table: every domain of every host, filtered, sorted and marked, updated in place.

The model (latest DomainRow per key, the cell texts on screen) lives here; each
HostView is diffed against it and only the cells that changed are written to the
table. Filter changes rebuild the table once (a user action, not a tick).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.style import Style
from textual.widgets.data_table import ColumnKey

from vfleet.core.engine import HostView
from vfleet.core.metrics import DomainRow, History
from vfleet.core.models import HostConfig, HostStatus, PowerState
from vfleet.core.operations import Target
from vfleet.core.selector import Selector
from vfleet.widgets.columns import BY_KEY, COLUMNS, KeyedText, row_texts, sparkline, styled, styled_cell
from vfleet.widgets.live_table import LiveTable

HistoryLookup = Callable[[str, str], History | None]
_STABLE_SORTS = frozenset({"host", "hv", "name"})  # values that do not move between ticks


def row_key(host: str, domain_key: str) -> str:
    return f"{host}/{domain_key}"


@dataclass
class HostTotals:
    domains: int = 0
    running: int = 0
    vcpus: int = 0
    mem_alloc: int = 0
    mem_used: int = 0


class FleetTable(LiveTable[KeyedText]):
    def __init__(self, history: HistoryLookup, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._history = history
        self.rows_by_key: dict[str, DomainRow] = {}
        self._configs: dict[str, HostConfig] = {}
        self._host_keys: dict[str, list[str]] = {}
        self._stale_hosts: set[str] = set()
        self._texts: dict[str, tuple[str, ...]] = {}  # shown rows only: what is on screen now
        self.selector = Selector.parse("")
        self.sort_column = "host"
        self.sort_reverse = False
        self.marked: set[str] = set()
        self.frozen = False  # htop's Z: rows keep their places while the operator aims
        self.totals: dict[str, HostTotals] = {}
        self.colours: dict[str, Style] = {}

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, width=column.width, key=column.key)

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
        # The cursor belongs to a domain, not to a line: it follows its row through
        # re-sorts, insertions and removals above it.
        if cursor is not None and cursor != self.row_key_at_cursor():
            self._restore_cursor(cursor)

    def _apply_host(self, view: HostView) -> bool:
        host = view.name
        self._configs[host] = view.config
        stale = view.health.status is not HostStatus.UP
        stale_changed = stale != (host in self._stale_hosts)
        if stale:
            self._stale_hosts.add(host)
        else:
            self._stale_hosts.discard(host)
        keys: list[str] = []
        moved = False
        totals = HostTotals()
        for row in view.rows:
            key = row_key(host, row.domain.key)
            keys.append(key)
            _add_totals(totals, row)
            previous = self.rows_by_key.get(key)
            if previous is row and not stale_changed:
                continue
            self.rows_by_key[key] = row
            moved |= self._show(key, row, view.config)
        self.totals[host] = totals
        current = set(keys)
        for gone in set(self._host_keys.get(host, ())) - current:
            self.rows_by_key.pop(gone, None)
            self.marked.discard(gone)
            if gone in self._texts:
                del self._texts[gone]
                self.remove_row(gone)
        self._host_keys[host] = keys
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
            self.add_row(*self._cells(key, row, texts), key=key)
            return True
        old = self._texts[key]
        if old == texts:
            return False
        self._texts[key] = texts
        stale = row.host in self._stale_hosts
        self.set_cells(
            key,
            {
                COLUMNS[i].key: styled_cell(i, text, row, key, stale=stale, colours=self.colours)
                for i, text in enumerate(texts)
                if old[i] != text
            },
        )
        return self.sort_column not in _STABLE_SORTS

    def _row_texts(self, key: str, row: DomainRow) -> tuple[str, ...]:
        history = self._history(row.host, row.domain.key)
        spark = sparkline(history.series("cpu_percent")) if history is not None else ""
        stale = row.host in self._stale_hosts
        return row_texts(row, stale=stale, marked=key in self.marked, spark=spark)

    def _cells(self, key: str, row: DomainRow, texts: tuple[str, ...]) -> list[KeyedText]:
        return styled(texts, row, key, stale=row.host in self._stale_hosts, colours=self.colours)

    # -- filter, sort, marks ----------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Raises UsageError for a bad term; the table is left as it was."""
        selector = Selector.parse(text)
        self.selector = selector
        self.rebuild()

    def rebuild(self) -> None:
        cursor = self.row_key_at_cursor()
        self.clear()
        self._texts.clear()
        for key, row in self.rows_by_key.items():
            config = self._configs[row.host]
            if self.selector.matches(row, config):
                texts = self._row_texts(key, row)
                self._texts[key] = texts
                self.add_row(*self._cells(key, row, texts), key=key)
        self._sort()
        self._restore_cursor(cursor)

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        if BY_KEY[column].sort_key is None:
            raise ValueError(f"column {column!r} is not sortable")
        if reverse is None:  # choosing the current column again flips it
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column, self.sort_reverse = column, reverse
        cursor = self.row_key_at_cursor()
        self._sort()
        self._restore_cursor(cursor)

    def _sort(self) -> None:
        get = BY_KEY[self.sort_column].sort_key
        assert get is not None
        rows = self.rows_by_key

        def key(cell: KeyedText) -> object:
            row = rows[cell.row_key]
            return (get(row), row.host, row.domain.name)

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
                    stale = row.host in self._stale_hosts
                    self.set_cells(key, {"mark": styled_cell(0, texts[0], row, key, stale=stale, colours=self.colours)})

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


def _add_totals(totals: HostTotals, row: DomainRow) -> None:
    d = row.domain
    totals.domains += 1
    if d.state is PowerState.RUNNING:
        totals.running += 1
        totals.vcpus += d.vcpus or 0
    totals.mem_alloc += d.memory_current_bytes or 0
    totals.mem_used += d.memory_used_bytes or 0
