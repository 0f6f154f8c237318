"""Host screen: facts, connection state and last error, the host's aggregates, its domains, reconnect."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from vfleet.core.aggregates import (
    HostSummary,
    has_nodes,
    memory_text,
    node_lines,
    pct_text,
    ratio_text,
    states_text,
    summarize_host,
    summarize_nodes,
)
from vfleet.core.engine import Fleet, HostView
from vfleet.core.models import PowerState
from vfleet.core.output import human_bytes
from vfleet.core.sanitize import printable
from vfleet.widgets.columns import memory_cell
from vfleet.widgets.panes import health_text

# (key, label, width or None to fit the content, right-aligned). Numbers get the width
# of their widest value up front: a column sized by its first values cut 100.0 to "100.".
_Column = tuple[str, str, int | None, bool]
_COLUMNS: tuple[_Column, ...] = (
    ("name", "NAME", None, False),
    ("node", "NODE", None, False),  # only for a pool or cluster
    ("state", "STATE", 13, False),
    ("vcpus", "VCPU", 4, True),
    ("cpu", "CPU%", 5, True),
    ("host_cpu", "HOST%", 5, True),
    ("mem", "MEM used/alloc", None, True),
    ("cont", "CONT%", 5, True),
)


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
        self._columns = _COLUMNS  # without NODE until the host turns out to be a pool or cluster

    def compose(self) -> ComposeResult:
        yield Static("", id="host-facts", markup=False)
        yield DataTable[Text](id="host-domains", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self._render_view(self.fleet.view(self.host))
        self.query_one("#host-domains", DataTable).focus()

    def _lay_out(self, view: HostView) -> DataTable[Text]:
        """The domain table's columns: NODE only for a pool or cluster (set up again if that changes)."""
        table: DataTable[Text] = self.query_one("#host-domains", DataTable)
        columns = _COLUMNS if has_nodes(view) else tuple(c for c in _COLUMNS if c[0] != "node")
        if columns != self._columns or not table.columns:
            self._columns = columns
            self._shown.clear()
            table.clear(columns=True)
            for key, label, width, right in columns:
                table.add_column(Text(label, justify="right" if right else "left"), width=width, key=key)
        return table

    def host_updated(self, view: HostView) -> None:
        """Called by the app whenever this host has a new view."""
        if self.is_mounted:  # a view can arrive between push and compose; on_mount reads the latest
            self._render_view(view)

    def _render_view(self, view: HostView) -> None:
        facts, health = view.facts, view.health
        now = _now()
        self.title = printable(f"host {self.host}")
        # every field on its own: printable() would also escape the line breaks between them
        target = view.config.uri or view.config.address or ""
        tags, groups = " ".join(sorted(view.config.tags)) or "-", " ".join(view.config.groups) or "-"
        lines = [
            printable(f"host        {view.name}   driver {view.config.driver}   {target}"),
            f"connection  {health_text(view, now)}   data age {_age(health.data_age(now))}   polls {health.polls},"
            f" skipped ticks {health.skipped_ticks}, attempts {view.attempts}",
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
                    + (f"   in {len(facts.nodes)} servers" if facts.nodes else "")
                )
            )
        else:
            lines.append("hypervisor  (not connected yet)")
        lines += summary_lines(summarize_host(view, now))
        nodes = summarize_nodes(view, now)
        lines += [f"{'nodes' if i == 0 else '':<12}{line}" for i, line in enumerate(node_lines(nodes))]
        self.query_one("#host-facts", Static).update(Text("\n".join(lines)))
        table = self._lay_out(view)
        with_node = any(c[0] == "node" for c in self._columns)
        seen = set()
        for row in view.rows:
            key = row.domain.key
            seen.add(key)
            r = row.rates
            texts = (
                printable(row.domain.name),
                *((printable(row.domain.node or "-"),) if with_node else ()),
                row.domain.state.value,
                str(row.domain.vcpus or "-"),
                pct_text(r.cpu_percent),
                pct_text(r.cpu_host_percent),
                memory_cell(row),
                pct_text(r.contention_percent),
            )
            old = self._shown.get(key)
            # Text, not str: DataTable reads a str cell as markup, and a name may hold `[red]`
            if old is None:
                table.add_row(*(_cell(column, t) for column, t in zip(self._columns, texts, strict=True)), key=key)
            elif old != texts:
                for column, new, before in zip(self._columns, texts, old, strict=True):
                    if new != before:  # a longer name or memory text widens its column
                        table.update_cell(key, column[0], _cell(column, new), update_width=column[2] is None)
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


def _age(age: float | None) -> str:
    return "- (no poll answered yet)" if age is None else f"{age:.1f}s"


def _cell(column: _Column, text: str) -> Text:
    return Text(text, justify="right" if column[3] else "left", no_wrap=True, end="")


def summary_lines(s: HostSummary) -> list[str]:
    """The host's aggregates, as virt-top's header says them, None shown as "-" (never as 0)."""
    if s.domains is None:
        return ["domains     unknown: no poll answered yet"]
    cpus = f" of {s.cpus} CPUs" if s.cpus else " (CPU count unknown)"
    running = s.count(PowerState.RUNNING)
    cpu_known = f", {s.cpu_reporting} of {running} running report it" if s.cpu_reporting < running else ""
    vcpus = "-" if s.vcpus is None else str(s.vcpus)
    contention = (
        "- (no running domain reports it)"
        if s.contention_max_pct is None
        else f"max {s.contention_max_pct:.1f}%  avg {pct_text(s.contention_avg_pct)}%"
        f"  ({s.contention_reporting} domains)"
    )
    return [
        f"domains     {s.domains}: {states_text(s)}",
        f"cpu         {pct_text(s.cpu_pct)}%{cpus}{cpu_known}"
        f"   vCPU {vcpus} running: commit {ratio_text(s.vcpu_ratio)}",
        f"memory      {memory_text(s)} used/allocated/total   ({s.mem_used_reporting} domains report used memory)",
        f"contention  {contention}",
    ]
