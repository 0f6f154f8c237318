"""Domain detail: identity, history sparklines from the core's ring buffer, recent events."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Sparkline, Static

from vfleet.core.engine import Fleet, HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.output import human_bytes, human_duration
from vfleet.core.sanitize import printable
from vfleet.widgets.columns import memory_cell
from vfleet.widgets.panes import event_line

# (widget id, title, how to read one history point)
_SERIES = (
    ("cpu", "cpu % of its vCPUs"),
    ("mem", "memory used"),
    ("disk", "disk bytes/s (read + write)"),
    ("net", "net bytes/s (rx + tx)"),
)
# widget id -> the history series it draws (disk and net are summed by the core)
_NAMES = {"cpu": "cpu_percent", "mem": "memory_used_bytes", "disk": "disk_bps", "net": "net_bps"}


class DomainScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("h", "open_host", "Host"),
        Binding("s", "snapshots", "Snapshots"),
    ]

    def __init__(self, fleet: Fleet, host: str, key: str) -> None:
        super().__init__()
        self.fleet = fleet
        self.host = host
        self.key = key

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static("", id="identity", markup=False)
            for series_id, title in _SERIES:
                with Vertical(classes="series"):
                    yield Label(title, id=f"{series_id}-title", markup=False)
                    spark = Sparkline([], id=f"{series_id}-spark")
                    spark.display = False  # until there is something to draw
                    yield spark
                    # A sparkline of nothing draws a flat ▁▁▁ that reads as "0": say so instead.
                    yield Label("no data", id=f"{series_id}-none", classes="no-data", markup=False)
            yield Label("recent events", classes="section")
            yield Static("", id="domain-events", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._render_view(self.fleet.view(self.host))

    def _row(self, view: HostView) -> DomainRow | None:
        return next((r for r in view.rows if r.domain.key == self.key), None)

    def host_updated(self, view: HostView) -> None:
        """Called by the app whenever this host has a new view."""
        if self.is_mounted:  # a view can arrive between push and compose; on_mount reads the latest
            self._render_view(view)

    def _render_view(self, view: HostView) -> None:
        row = self._row(view)
        if row is None:
            self.query_one("#identity", Static).update(printable(f"{self.key} is gone from {self.host}"))
            return
        d = row.domain
        self.title = printable(f"{d.name} on {self.host}")
        # every field on its own: printable() would also escape the line breaks between them
        lines = [
            f"name      {printable(d.name)}",
            f"uuid      {printable(d.uuid or '-')}",
            f"host      {printable(self.host)}  ({view.config.driver} driver, {printable(row.hypervisor)})"
            f"  health: {view.health.status.value}"
            + (f"  server {printable(d.node)}" if d.node else ""),
            f"state     {d.state.value}  (raw: '{printable(d.raw_state)}')"
            f"  id {d.domain_id if d.domain_id is not None else '-'}",
            f"vcpus     {d.vcpus if d.vcpus is not None else '-'}   uptime {human_duration(d.uptime_s)}",
            f"memory    {memory_cell(row)} used/alloc, max {human_bytes(d.memory_max_bytes)}"
            + (f", used from {d.memory_used_source.value}" if d.memory_used_source else ", guest usage unknown"),
            f"tags      {printable(' '.join(sorted(row.tags))) or '-'}" + ("   PROTECTED" if d.protected else ""),
        ]
        self.query_one("#identity", Static).update(Text("\n".join(lines)))
        self._plot(row)
        events = [e for e in self.fleet.events if e.host == self.host and (e.domain == d.name or e.uuid == d.uuid)]
        self.query_one("#domain-events", Static).update(
            Text("\n".join(event_line(e) for e in events[:20]) or "no events for this domain yet")
        )

    def _plot(self, row: DomainRow) -> None:
        history = self.fleet.history(self.host, self.key)
        series = {series_id: history.series(name) if history is not None else [] for series_id, name in _NAMES.items()}
        count = len(history) if history is not None else 0
        for series_id, title in _SERIES:
            values = [v for v in series[series_id] if v is not None]
            last = values[-1] if values else None
            shown = "-" if last is None else f"{last:.1f}" if series_id == "cpu" else human_bytes(last)
            peak = "-" if not values else f"{max(values):.1f}" if series_id == "cpu" else human_bytes(max(values))
            samples = f"{count} sample{'s' if count != 1 else ''}"
            if values:
                known = samples if len(values) == count else f"{len(values)} of {samples} known"
                self.query_one(f"#{series_id}-title", Label).update(f"{title}: now {shown}, max {peak} ({known})")
            else:
                self.query_one(f"#{series_id}-title", Label).update(title)
                self.query_one(f"#{series_id}-none", Label).update(f"no data ({samples}, none with a value)")
            spark = self.query_one(f"#{series_id}-spark", Sparkline)
            spark.data = values
            spark.display = bool(values)
            self.query_one(f"#{series_id}-none", Label).display = not values

    def action_snapshots(self) -> None:
        from vfleet.core.operations import Target
        from vfleet.screens.snapshots import SnapshotsScreen

        row = self._row(self.fleet.view(self.host))
        if row is None:
            self.notify(printable(f"{self.key} is gone from {self.host}"), severity="warning", markup=False)
            return
        self.app.push_screen(SnapshotsScreen(self.fleet, Target(self.host, row.domain.name, self.key)))

    def action_open_host(self) -> None:
        from vfleet.screens.host import HostScreen

        self.app.push_screen(HostScreen(self.fleet, self.host))
