"""A scripted fleet for the TUI tests, and tests of the TUI's pure helpers.

The fake hosts report fixed gauges (no counters, no clock in any number), so every
screen is deterministic; a test can take a host down, bring it back, and read which
verbs reached which domain.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from textual.pilot import Pilot

from vfleet.app import VFleetApp
from vfleet.core.audit import AuditLog
from vfleet.core.config import Config
from vfleet.core.engine import Fleet
from vfleet.core.errors import ActionFailed, GarbledOutput, HostUnreachable
from vfleet.core.models import (
    ActionResult,
    Domain,
    DomainGauges,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MemorySource,
    PowerState,
    Verb,
)
from vfleet.core.operations import Target
from vfleet.core.policy import TARGET_STATE
from vfleet.core.thresholds import Threshold, Thresholds
from vfleet.drivers.base import LIFECYCLE, Driver
from vfleet.screens.commands import Command, parse_command
from vfleet.widgets.columns import memory_cell, sparkline

GIB = 1 << 30
QUIET_AGE = Thresholds(age=Threshold(1e9, 1e9))
_AFTER = TARGET_STATE  # the state each verb leads to


@dataclass
class FakeHost:
    name: str
    hypervisor: str
    domains: list[Domain]
    down: bool = False
    garbled: bool = False  # connected, but every poll fails
    refuse: str = ""  # every action fails with this message
    performed: list[tuple[Verb, str]] = field(default_factory=list)


class FakeDriver(Driver):
    kind = "fake"
    capabilities = LIFECYCLE

    def __init__(self, config: HostConfig, host: FakeHost, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self.fake = host

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        if self.fake.down:
            raise HostUnreachable(self.host, "connection refused (test)")
        return HostFacts(
            self.fake.hypervisor, version="1.0", hostname=f"{self.host}.test", cpus=16, memory_bytes=64 * GIB
        )

    async def close(self) -> None:
        return None

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        if self.fake.down:
            raise HostUnreachable(self.host, "connection reset (test)")
        if self.fake.garbled:
            raise GarbledOutput(self.host, "unexpected header (test)")
        return HostSnapshot(self.host, time.monotonic(), tuple(self.fake.domains))

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        domain = target.name
        self.fake.performed.append((verb, domain))
        if self.fake.refuse:
            raise ActionFailed(self.host, self.fake.refuse)
        index = next(i for i, d in enumerate(self.fake.domains) if d.key == target.key)
        self.fake.domains[index] = replace(self.fake.domains[index], state=_AFTER[verb])
        return ActionResult(self.host, domain, verb, ok=True, state_after=_AFTER[verb])


def domain(name: str, state: PowerState = PowerState.RUNNING, cpu: float = 10.0, vcpus: int = 2) -> Domain:
    running = state is PowerState.RUNNING
    return Domain(
        name=name,
        state=state,
        raw_state=state.value,
        uuid=f"uuid-{name}",
        vcpus=vcpus,
        memory_max_bytes=4 * GIB,
        memory_current_bytes=4 * GIB,
        memory_used_bytes=GIB if running else None,
        memory_used_source=MemorySource.GUEST if running else None,
        uptime_s=3600.0 if running else None,
        gauges=DomainGauges(
            cpu_percent=cpu, disk_read_bps=1024.0, disk_write_bps=2048.0, net_rx_bps=512.0, net_tx_bps=256.0
        )
        if running
        else None,
    )


def standard_world() -> dict[str, FakeHost]:
    return {
        "kvm1": FakeHost(
            "kvm1",
            "kvm",
            [
                domain("web-1", cpu=95.0),
                domain("web-2", cpu=20.0),
                domain("db-1", vcpus=8, cpu=50.0),
                domain("build-1", PowerState.OFF),
            ],
        ),
        "xen1": FakeHost("xen1", "xen", [domain("mail-1", cpu=5.0), domain("dns-1", PowerState.PAUSED)]),
        "esx1": FakeHost("esx1", "esxi", [domain("web-3", cpu=85.0), domain("ci-1", cpu=1.0, vcpus=4)]),
    }


TAGS = {"kvm1": frozenset({"prod"}), "xen1": frozenset({"lab"}), "esx1": frozenset({"prod"})}


def make_app(
    world: dict[str, FakeHost] | None = None,
    *,
    read_only: bool = False,
    interval: float = 3600.0,
    demo: bool = False,
    config: Config | None = None,
) -> tuple[VFleetApp, dict[str, FakeHost]]:
    """An app over fake hosts; the default interval polls exactly once (deterministic screens).

    The default config leaves data age out of the thresholds: a host polled once an hour
    is minutes old by design, and a slow test must not see its markers come and go.
    """
    world = world if world is not None else standard_world()
    configs = [
        HostConfig(
            name=name,
            driver="fake",
            tags=TAGS.get(name, frozenset()),
            groups=("g-" + name,),
            poll_interval=interval,
            connect_timeout=2.0,
            call_timeout=2.0,
            read_only=read_only,
        )
        for name in world
    ]
    fleet = Fleet(
        configs,
        read_only=read_only,
        driver_factory=lambda c, ro: FakeDriver(c, world[c.name], read_only=ro),
        backoff_cap=0.1,
    )
    audit = AuditLog(Path(tempfile.mkdtemp(prefix="vfleet-tui-audit-")) / "audit.jsonl")
    config = config if config is not None else Config(thresholds=QUIET_AGE)
    return VFleetApp(fleet, audit=audit, demo=demo, read_only=read_only, config=config), world


def rows_of(app: VFleetApp, host: str, state: PowerState | None = None) -> list[Target]:
    """The fleet table's shown rows of HOST (in STATE), as the targets an operator would aim at."""
    table = app.fleet_screen.table
    rows = [table.rows_by_key[k] for k in table.shown_keys()]
    return [Target(r.host, r.domain.name, r.domain.key) for r in rows
            if r.host == host and (state is None or r.domain.state is state)]


def goto(app: VFleetApp, target: Target) -> None:
    """Put the fleet table's cursor on TARGET's row."""
    table = app.fleet_screen.table
    key = next(k for k in table.shown_keys() if table.rows_by_key[k].domain.key == target.key)
    table.move_cursor(row=table.get_row_index(key))


async def until(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Let the app work until the condition holds; fail (never hang) after the timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.01)


async def loaded(pilot: Pilot[object], app: VFleetApp, rows: int = 8) -> None:
    await until(pilot, lambda: app.fleet_screen.table.row_count == rows, what=f"{rows} rows in the table")


# -- the pure helpers -----------------------------------------------------------------


def test_sparkline_scales_to_the_block_characters_and_keeps_gaps() -> None:
    assert sparkline([0.0, 50.0, 100.0, None], points=4) == "▁▅█ "
    assert sparkline([100.0] * 20, points=8) == "█" * 8
    assert sparkline([], points=3) == "   "


def test_memory_cell_names_the_source_and_never_shows_allocation_as_usage() -> None:
    from vfleet.core.metrics import DomainRow
    from vfleet.core.models import DomainRates

    used = DomainRow("h", "kvm", domain("a"), DomainRates(), frozenset(), 0.0)
    assert memory_cell(used) == "1.0G(g)/4.0G"
    unknown = DomainRow(
        "h",
        "xen",
        replace(domain("b"), memory_used_bytes=None, memory_used_source=None),
        DomainRates(),
        frozenset(),
        0.0,
    )
    assert memory_cell(unknown) == "-/4.0G"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (":q", Command("quit")),
        ("sort cpu desc", Command("sort", ("cpu", "desc"))),
        ("sort name", Command("sort", ("name",))),
        ("force-off", Command("verb", ("force-off",))),
        ("filter host:kvm* cpu>5", Command("filter", ("host:kvm*", "cpu>5"))),
        ("   ", None),
    ],
)
def test_commands_parse(line: str, expected: Command | None) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize("line", ["frobnicate", "sort nope", "sort cpu sideways", "host", "theme a b"])
def test_bad_commands_say_why(line: str) -> None:
    with pytest.raises(ValueError, match=r"unknown|usage"):
        parse_command(line)
