"""Per-domain history: compact rings sized by the interval, kept only where a face draws it."""

from __future__ import annotations

import io
import math
import time
from typing import Any

import pytest

from vfleet.cli.main import main
from vfleet.core import samples
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import ExitCode
from vfleet.core.history import SERIES, History, HostHistory, capacity_for
from vfleet.core.models import Domain, DomainCounters, DomainGauges, HostConfig, HostSnapshot, PowerState
from vfleet.core.samples import HostData
from vfleet.drivers.sim import SimDriver

KIB = 1024


def test_capacity_is_ten_minutes_at_the_poll_interval() -> None:
    assert capacity_for(2.0) == 300
    assert capacity_for(1.0) == 600
    assert capacity_for(7.0) == 86  # rounded up: never less than ten minutes
    assert capacity_for(3600.0) == 2


def test_the_ring_wraps_keeping_the_newest_oldest_first() -> None:
    history = History(capacity_for(2.0))
    for i in range(history.capacity + 50):
        history.record(float(i), float(10 * i), None, None)
    assert len(history) == 300
    cpu = history.series("cpu_percent")
    assert len(cpu) == 300 and cpu[0] == 50.0 and cpu[-1] == 349.0
    assert cpu == [float(i) for i in range(50, 350)]
    assert history.series("memory_used_bytes", last=3) == [3470.0, 3480.0, 3490.0]
    assert history.series("cpu_percent", last=0) == []


def test_a_ring_that_is_not_full_yet_holds_what_it_got() -> None:
    history = History(5)
    history.record(1.0, None, None, None)
    history.record(2.0, None, None, None)
    assert len(history) == 2 and history.series("cpu_percent") == [1.0, 2.0]
    assert history.series("cpu_percent", last=8) == [1.0, 2.0]


def test_unknown_stays_apart_from_zero_in_every_series() -> None:
    history = History(4)
    history.record(None, 0, None, 0.0)
    history.record(0.0, None, 0.0, None)
    assert history.series("cpu_percent") == [None, 0.0]
    assert history.series("memory_used_bytes") == [0.0, None]
    assert history.series("disk_bps") == [None, 0.0]
    assert history.series("net_bps") == [0.0, None]


def test_each_series_keeps_its_own_values() -> None:
    history = History(3)
    for i in range(5):  # wraps once
        history.record(1.0 + i, 2_000_000.0 + i, 3000.0 + i, 4000.0 + i)
    assert history.series("cpu_percent") == [3.0, 4.0, 5.0]
    assert history.series("memory_used_bytes") == [2_000_002.0, 2_000_003.0, 2_000_004.0]
    assert history.series("disk_bps") == [3002.0, 3003.0, 3004.0]
    assert history.series("net_bps") == [4002.0, 4003.0, 4004.0]
    with pytest.raises(KeyError):
        history.series("contention_percent")  # not drawn, so not kept


def test_a_value_past_float_range_is_clamped_not_raised() -> None:
    history = History(2)
    history.record(1.0, 10**400, None, None)
    assert history.series("memory_used_bytes") == [math.inf] and history.series("cpu_percent") == [1.0]


def test_ten_minutes_fit_in_ten_kib_at_one_and_two_seconds() -> None:
    for interval in (1.0, 2.0):
        history = History(capacity_for(interval))
        for i in range(history.capacity + 7):  # full, wrapped: the steady state
            history.record(float(i % 100), 1e9 + i, 1e6 * i, None)
        assert history.nbytes <= 10 * KIB, (interval, history.nbytes)
        # 4 float32 per sample: the buffer is exact once full
        assert history.nbytes < 4 * 4 * history.capacity + 200


def test_resizing_keeps_the_newest_samples() -> None:
    history = History(10)
    for i in range(12):
        history.record(float(i), None, None, None)
    assert history.resized(4).series("cpu_percent") == [8.0, 9.0, 10.0, 11.0]
    wider = history.resized(20)
    assert wider.capacity == 20 and wider.series("cpu_percent") == [float(i) for i in range(2, 12)]


def _snapshot(taken_at: float, names: list[str], step: int) -> HostSnapshot:
    domains = tuple(
        Domain(
            name=n, state=PowerState.RUNNING, raw_state="running", uuid=f"u-{n}", vcpus=1, memory_used_bytes=256 << 20,
            counters=DomainCounters(taken_at, cpu_time_ns=step * 500_000_000, disk_read_bytes=step * 1000,
                                    disk_write_bytes=step * 3000),
            gauges=DomainGauges(net_rx_bps=5.0) if n == "a" else None,
        )
        for n in names
    )
    return HostSnapshot("h", taken_at, domains)


def test_absorb_keeps_no_history_unless_asked() -> None:
    data = HostData(HostConfig(name="h", driver="sim", poll_interval=2.0))
    for step in range(3):
        data.absorb(_snapshot(2.0 * step, ["a", "b"], step))
    assert data.history is None and len(data.rows) == 2 and data.rows[0].rates.cpu_percent == 25.0


def test_absorb_records_what_the_faces_draw_and_forgets_departed_domains() -> None:
    data = HostData(HostConfig(name="h", driver="sim", poll_interval=2.0))
    data.history = HostHistory(capacity_for(2.0))
    for step in range(3):
        data.absorb(_snapshot(2.0 * step, ["a", "b"], step))
    a = data.history.get("u-a")
    assert a is not None and len(a) == 3
    assert a.series("cpu_percent") == [None, 25.0, 25.0]  # 0.5 s of CPU per 2 s on 1 vCPU
    assert a.series("memory_used_bytes") == [256 << 20] * 3
    assert a.series("disk_bps") == [None, 2000.0, 2000.0]  # read + write
    assert a.series("net_bps") == [5.0, 5.0, 5.0]  # from the gauge
    b = data.history.get("u-b")
    assert b is not None and b.series("net_bps") == [None, None, None]
    data.absorb(_snapshot(6.0, ["b"], 3))
    assert data.history.get("u-a") is None and set(data.history.rings) == {"u-b"} and set(data.counters) == {"u-b"}


def _sim(name: str, interval: float) -> HostConfig:
    return HostConfig(name=name, driver="sim", poll_interval=interval, options={"domains": 3, "seed": 1})


def _polled(n: int) -> Any:
    return lambda views: all(v.health.polls >= n for v in views)


async def test_the_engine_keeps_no_history_by_default() -> None:
    fleet = Fleet([_sim("s1", 0.05)], driver_factory=lambda c, ro: SimDriver(c, read_only=ro))
    async with fleet:
        assert await fleet.wait_until(_polled(3), timeout=20)
        view: HostView = fleet.view("s1")
        assert view.rows and all(fleet.history("s1", r.domain.key) is None for r in view.rows)
        assert all(state.data.history is None for state in fleet._states.values())


async def test_the_engine_keeps_history_when_asked_and_resizes_it_with_the_interval() -> None:
    fleet = Fleet([_sim("s1", 0.5)], driver_factory=lambda c, ro: SimDriver(c, read_only=ro), history=True)
    async with fleet:
        assert await fleet.wait_until(_polled(1), timeout=20)
        key = fleet.view("s1").rows[0].domain.key
        history = fleet.history("s1", key)
        assert history is not None and history.capacity == 1200 and len(history) >= 1
        fleet.set_interval(2.0)
        resized = fleet.history("s1", key)
        assert resized is not None and resized.capacity == 300
        assert resized.series("cpu_percent")[-1:] == history.series("cpu_percent")[-1:]
    assert set(SERIES) == {"cpu_percent", "memory_used_bytes", "disk_bps", "net_bps"}


@pytest.mark.parametrize("command", [["status", "--interval", "0.2"], ["top", "--batch", "-d", "0.2", "-n", "2"]])
def test_status_and_top_keep_no_history(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[object] = []
    absorb = samples.HostData.absorb

    def watching(self: HostData, snapshot: HostSnapshot) -> None:
        absorb(self, snapshot)
        kept.append(self.history)

    monkeypatch.setattr(samples.HostData, "absorb", watching)
    out = io.StringIO()
    started = time.monotonic()
    rc = main(["--demo", *command, "-o", "json" if command[0] == "status" else "ndjson"], out=out)
    assert rc in (ExitCode.OK, ExitCode.UNREACHABLE), out.getvalue()[-500:]  # the demo has a dead host by design
    assert len(kept) >= 2 and time.monotonic() - started < 60  # the engine did poll
    assert all(h is None for h in kept)


async def test_the_console_keeps_history_and_draws_the_cpu_sparkline() -> None:
    from test_tui_support import loaded, make_app, until

    from vfleet.widgets.fleet_table import row_key

    app, _ = make_app(interval=0.2)  # the app asks for history; the Fleet it was given kept none
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot, app)
        table = app.fleet_screen.table
        web = row_key("kvm1", "uuid-web-1")  # 95 % busy: full blocks

        def spark() -> str:
            return str(table.get_cell(web, "spark"))

        await until(pilot, lambda: spark().count("█") >= 3, timeout=30, what="three samples in the sparkline")
        history = app.fleet.history("kvm1", "uuid-web-1")
        assert history is not None and history.capacity == capacity_for(0.2) and len(history) >= 3
        assert history.series("cpu_percent", 3) == [95.0] * 3 and history.series("disk_bps", 1) == [3072.0]
        assert len(spark().rstrip()) <= 8 and set(spark().strip()) == {"█"}
