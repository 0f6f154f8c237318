"""The column chooser (`c`): tick the columns the table shows; the table follows at once."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from vfleet.core import fields
from vfleet.widgets.columns import BY_KEY, CHOOSABLE
from vfleet.widgets.fleet_table import FleetTable


class ColumnChooser(ModalScreen[None]):
    BINDINGS = [Binding("escape,c", "close", "Close")]

    def __init__(self, table: FleetTable) -> None:
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        width = max(len(BY_KEY[k].label) for k in CHOOSABLE)
        choices = [
            Selection(
                f"{BY_KEY[key].label.ljust(width)}  {fields.BY_KEY[key].doc}",
                key,
                key in self.table.chosen,
                id=key,
                disabled=key in fields.ALWAYS_SHOWN,
            )
            for key in CHOOSABLE
        ]
        with Vertical(id="chooser", classes="dialog"):
            yield Label("Columns", classes="dialog-title")
            yield SelectionList[str](*choices, id="chooser-list")
            yield Label("", id="chooser-dropped", classes="warning", markup=False)
            yield Label("space or enter toggles, escape closes  (:columns a,b,c does the same)", classes="dialog-hint")

    def on_mount(self) -> None:
        self._show_dropped()

    @on(SelectionList.SelectedChanged, "#chooser-list")
    def _changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self.table.set_columns(event.selection_list.selected)
        self._show_dropped()

    def _show_dropped(self) -> None:
        dropped = [k for k in self.table.dropped_columns() if k != "mark"]
        label = self.query_one("#chooser-dropped", Label)
        label.update(f"no room at this width for: {', '.join(dropped)}" if dropped else "")
        label.display = bool(dropped)

    def action_close(self) -> None:
        self.dismiss(None)
