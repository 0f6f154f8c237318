"""Host screen: facts, connection state and last error, its domains, reconnect."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from vfleet.core.engine import Fleet, HostView
from vfleet.core.output import human_bytes
from vfleet.core.sanitize import printable
from vfleet.widgets.columns import memory_cell
from vfleet.widgets.panes import health_text

_COLUMNS = (("name", "NAME"), ("state", "STATE"), ("vcpus", "VCPU"), ("cpu", "CPU%"), ("mem", "MEM used/alloc"))


class HostScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "reconnect", "Reconnect"),
    ]

    def __init__(self, fleet: Fleet, host: str) -> None:
        super().__init__()
        self.fleet = fleet
        self.host = host
        self._shown: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="host-facts", markup=False)
        yield DataTable[Text](id="host-domains", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#host-domains", DataTable)
        for key, label in _COLUMNS:
            table.add_column(label, key=key)
        self._render_view(self.fleet.view(self.host))
        table.focus()

    def host_updated(self, view: HostView) -> None:
        """Called by the app whenever this host has a new view."""
        if self.is_mounted:  # a view can arrive between push and compose; on_mount reads the latest
            self._render_view(view)

    def _render_view(self, view: HostView) -> None:
        facts, health = view.facts, view.health
        self.title = printable(f"host {self.host}")
        # every field on its own: printable() would also escape the line breaks between them
        target = view.config.uri or view.config.address or ""
        tags, groups = " ".join(sorted(view.config.tags)) or "-", " ".join(view.config.groups) or "-"
        lines = [
            printable(f"host        {view.name}   driver {view.config.driver}   {target}"),
            f"connection  {health_text(view, _now())}   polls {health.polls}, skipped ticks {health.skipped_ticks},"
            f" attempts {view.attempts}",
            printable(f"last error  {health.last_error or '-'}"),
            f"policy      {'read-only' if view.read_only else 'read-write'}"
            + ("  protected" if view.config.protected else "")
            + printable(f"   tags {tags}   groups {groups}"),
        ]
        if facts is not None:
            lines.append(
                printable(
                    f"hypervisor  {facts.hypervisor} {facts.version or ''}   hostname {facts.hostname or '-'}"
                    f"   cpus {facts.cpus or '-'} {facts.cpu_model or ''}   memory {human_bytes(facts.memory_bytes)}"
                )
            )
        else:
            lines.append("hypervisor  (not connected yet)")
        self.query_one("#host-facts", Static).update(Text("\n".join(lines)))
        table = self.query_one("#host-domains", DataTable)
        seen = set()
        for row in view.rows:
            key = row.domain.key
            seen.add(key)
            cpu = "-" if row.rates.cpu_percent is None else f"{row.rates.cpu_percent:.1f}"
            name = printable(row.domain.name)
            texts = (name, row.domain.state.value, str(row.domain.vcpus or "-"), cpu, memory_cell(row))
            old = self._shown.get(key)
            # Text, not str: DataTable reads a str cell as markup, and a name may hold `[red]`
            if old is None:
                table.add_row(*(Text(t) for t in texts), key=key)
            elif old != texts:
                for column, new, before in zip((k for k, _ in _COLUMNS), texts, old, strict=True):
                    if new != before:
                        table.update_cell(key, column, Text(new))
            self._shown[key] = texts
        for gone in set(self._shown) - seen:
            table.remove_row(gone)
            del self._shown[gone]

    @on(DataTable.RowSelected, "#host-domains")
    def _open_domain(self, event: DataTable.RowSelected) -> None:
        from vfleet.screens.domain import DomainScreen

        self.app.push_screen(DomainScreen(self.fleet, self.host, str(event.row_key.value)))

    def action_reconnect(self) -> None:
        self.fleet.reconnect(self.host)  # drops a live connection, or cuts a DOWN host's backoff
        self.notify(printable(f"{self.host}: reconnecting"), markup=False)


def _now() -> float:
    import time

    return time.monotonic()
