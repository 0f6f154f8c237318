"""Unchanged domains take the short path (issue 12) and still say exactly what the long one would.

The libvirt driver hands back last poll's Domain object for a record whose name, id
and stats did not change; the engine then skips the sample checks and the rate
arithmetic, and `top` reuses the domain's JSON record. Each test here pins down a
case where the short path could say something stale.
"""

from __future__ import annotations

import gc
import json

import pytest

from vfleet.core.engine import HostView
from vfleet.core.errors import GarbledOutput
from vfleet.core.gctune import tune_for_long_run
from vfleet.core.models import Domain, HostConfig, HostFacts, HostHealth, HostSnapshot, HostStatus, PowerState
from vfleet.core.output import LARGE_DOCUMENT, as_json
from vfleet.core.report import RecordCache, build_report, domain_record
from vfleet.core.samples import HostData
from vfleet.core.selector import Selector
from vfleet.drivers.libvirt.parse import SMALL_RECORD, domain_from_stats
from vfleet.drivers.libvirt.parse import RecordCache as StatsCache

FACTS = HostFacts("kvm", cpus=8)
RUNNING = {"state.state": 1, "cpu.time": 1_000_000_000, "vcpu.current": 1, "balloon.maximum": 1024}


def record(stats: dict[str, object], name: str = "web1", domain_id: int = 3, at: float = 0.0) -> tuple:
    return (name, "uuid-1", domain_id, stats, at)


def test_stats_cache_returns_the_same_domain_only_while_nothing_changed() -> None:
    cache = StatsCache()
    (first,) = cache.domains([record(dict(RUNNING), at=1.0)])
    (same,) = cache.domains([record(dict(RUNNING), at=3.0)])  # equal stats, new dict, later poll
    assert same is first
    (moved,) = cache.domains([record({**RUNNING, "cpu.time": 2_000_000_000}, at=5.0)])
    assert moved is not first and moved.counters is not None and moved.counters.cpu_time_ns == 2_000_000_000
    (renamed,) = cache.domains([record({**RUNNING, "cpu.time": 2_000_000_000}, name="web2")])
    assert renamed is not moved and renamed.name == "web2"
    (paused,) = cache.domains([record({**RUNNING, "cpu.time": 2_000_000_000, "state.state": 3}, name="web2")])
    assert paused.state is PowerState.PAUSED
    (restarted,) = cache.domains([record({**RUNNING, "cpu.time": 2_000_000_000, "state.state": 3}, "web2", 4)])
    assert restarted is not paused and restarted.domain_id == 4


def test_stats_cache_keeps_no_large_records() -> None:
    big = {**RUNNING, **{f"block.0.x{i}": i for i in range(SMALL_RECORD)}}
    cache = StatsCache()
    (first,) = cache.domains([record(big)])
    (again,) = cache.domains([record(dict(big))])
    assert again is not first and again == first  # parsed again, same content


class Handle:
    """A virDomain's three accessors, counting the uuid and id reads."""

    def __init__(self, name: str, uuid: str, domain_id: int) -> None:
        self._name, self._uuid, self._id, self.reads = name, uuid, domain_id, 0

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:
        self.reads += 1
        return self._uuid

    def ID(self) -> int:
        self.reads += 1
        return self._id


def test_bulk_reads_uuid_and_id_once_while_events_vouch_for_the_name() -> None:
    cache = StatsCache()
    web = Handle("web1", "uuid-1", 3)
    off = {"state.state": 5, "state.reason": 1}
    db = Handle("db1", "uuid-2", -1)

    def poll(trust: bool = True, state: int = 1) -> dict[str, Domain]:
        raw = [(web, {**RUNNING, "state.state": state}), (db, dict(off))]
        return {d.name: d for d in cache.from_bulk(raw, 1.0, trust_names=trust)}

    first = poll()
    assert (web.reads, db.reads) == (2, 1)  # uuid and id; an off domain has no id to read
    again = poll()
    assert (web.reads, db.reads) == (2, 1) and again["web1"] is first["web1"]
    cache.forget("web1")  # a lifecycle event for it
    poll()
    assert (web.reads, db.reads) == (4, 1)
    paused = poll(state=3)  # a state change reads them again, event or not
    assert web.reads == 6 and paused["web1"].state is PowerState.PAUSED and paused["web1"].uuid == "uuid-1"
    poll(trust=False, state=3)  # no events: every poll reads them
    poll(trust=False, state=3)
    assert (web.reads, db.reads) == (10, 3)
    web._uuid = "uuid-9"  # redefined under the same name, seen without events
    assert poll(trust=False, state=3)["web1"].uuid == "uuid-9"


def test_parse_sums_devices_and_vcpu_delays_by_count() -> None:
    stats = {
        **RUNNING,
        "vcpu.maximum": 3,
        "vcpu.0.delay": 10,
        "vcpu.2.delay": 5,  # vCPU 1 offline: no delay reported, not counted as 0
        "block.count": 3,
        "block.0.rd.bytes": 100,
        "block.2.rd.bytes": 1,
        "block.1.wr.reqs": 7,
        "net.count": 2,
        "net.1.tx.bytes": 9,
        "net.5.tx.bytes": 1000,  # past net.count: not a device
    }
    c = domain_from_stats("d", "u", 1, stats, 1.0).counters
    assert c is not None
    assert (c.vcpu_wait_ns, c.disk_read_bytes, c.disk_write_reqs, c.disk_write_bytes) == (15, 101, 7, None)
    assert (c.net_tx_bytes, c.net_rx_bytes) == (9, None)
    garbled = domain_from_stats("d", "u", 1, {**RUNNING, "block.count": "2", "net.count": -1}, 1.0).counters
    assert garbled is not None and garbled.disk_read_bytes is None and garbled.net_rx_bytes is None


def _domain(cpu_ns: int, at: float, *, state: int = 1, name: str = "web1", uuid: str = "uuid-1") -> Domain:
    return domain_from_stats(name, uuid, 3, {**RUNNING, "cpu.time": cpu_ns, "state.state": state}, at)


def _absorb(data: HostData, at: float, *domains: Domain) -> None:
    data.absorb(HostSnapshot("h", at, domains, FACTS))


def test_a_domain_standing_still_shows_zero_then_the_next_change_over_its_own_interval() -> None:
    data = HostData(HostConfig(name="h", driver="libvirt"))
    cache = StatsCache()
    cpu = {**RUNNING}

    def poll(at: float, cpu_ns: int) -> None:
        (domain,) = cache.domains([record({**cpu, "cpu.time": cpu_ns}, at=at)])
        _absorb(data, at, domain)

    poll(0.0, 0)
    poll(2.0, 1_000_000_000)  # 1 s of CPU in 2 s over 1 vCPU
    assert data.rows[0].rates.cpu_percent == 50.0
    poll(4.0, 1_000_000_000)  # unchanged: the driver hands back the same Domain
    assert data.rows[0].rates.cpu_percent == 0.0, "a stand-still is 0 %, not the last change's rate"
    still = data.rows[0]
    assert still.taken_at == 4.0 and data.taken_at == 4.0
    poll(6.0, 1_000_000_000)
    assert data.rows[0] is still, "standing still again: the same row (no new object per poll)"
    assert data.rows[0].rates.cpu_percent == 0.0 and data.taken_at == 6.0
    poll(8.0, 1_500_000_000)  # 0.5 s of CPU since the values were last known current (6.0)
    assert data.rows[0].rates.cpu_percent == 25.0, "over the last interval (2 s), not since the values first appeared"


def test_a_changed_state_or_name_makes_a_new_row() -> None:
    data = HostData(HostConfig(name="h", driver="libvirt"))
    first = _domain(0, 0.0)
    _absorb(data, 0.0, first)
    _absorb(data, 2.0, first)
    paused = _domain(0, 4.0, state=3)
    _absorb(data, 4.0, paused)
    assert data.rows[0].domain.state is PowerState.PAUSED
    renamed = _domain(0, 6.0, name="web-renamed")
    _absorb(data, 6.0, renamed)
    assert data.rows[0].domain.name == "web-renamed"


def test_a_malformed_new_sample_still_changes_nothing() -> None:
    data = HostData(HostConfig(name="h", driver="libvirt"))
    good = _domain(0, 0.0)
    _absorb(data, 0.0, good)
    rows, seen = data.rows, dict(data.seen)
    bad = Domain(name="web1", state=PowerState.RUNNING, raw_state="running", uuid="uuid-1", vcpus="2")  # type: ignore[arg-type]
    with pytest.raises(GarbledOutput, match="vcpus"):
        _absorb(data, 2.0, good, bad)
    assert data.rows is rows and data.seen == seen


def _view(data: HostData, status: HostStatus = HostStatus.UP) -> HostView:
    return HostView(data.config, HostHealth(status, last_ok_at=0.0), data.facts, data.rows, False, frozenset(), 1)


def test_top_reuses_a_record_only_while_its_domain_rates_and_staleness_are_unchanged() -> None:
    data = HostData(HostConfig(name="h", driver="libvirt"))
    steady = _domain(0, 0.0, name="steady")
    cache = RecordCache()
    everything = Selector.parse("")

    def frame(at: float, busy_cpu_ns: int, status: HostStatus = HostStatus.UP) -> list[dict[str, object]]:
        _absorb(data, at, steady, _domain(busy_cpu_ns, at, name="busy", uuid="uuid-2"))
        return build_report([_view(data, status)], everything, now=at, cache=cache).domains

    first = frame(0.0, 0)
    second = frame(2.0, 1_000_000_000)
    assert second[0] is not first[0], "steady stood still for the first time: its rates went from unknown to 0"
    third = frame(4.0, 3_000_000_000)
    assert third[0] is second[0], "steady: same Domain, same rates: the same record"
    assert third[1] is not second[1] and third[1]["cpu_pct"] == 100.0, "busy moved: a new record"
    stale = frame(6.0, 3_000_000_000, HostStatus.STALE)
    assert stale[0] is not third[0] and stale[0]["stale"] is True
    assert stale == [domain_record(row, True) for row in data.rows], "a reused record says what a new one would"


def test_an_empty_selector_evaluates_nothing_per_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    data = HostData(HostConfig(name="h", driver="libvirt"))
    _absorb(data, 0.0, _domain(0, 0.0))

    def boom(*_: object) -> bool:
        raise AssertionError("matches() called for an empty selector")

    monkeypatch.setattr(Selector, "matches", boom)
    assert len(build_report([_view(data)], Selector.parse(""), now=0.0).domains) == 1
    with pytest.raises(AssertionError):
        build_report([_view(data)], Selector.parse("web"), now=0.0)


@pytest.mark.parametrize("indent", [None, 2])
def test_json_is_ascii_and_exact_whichever_encoder(indent: int | None) -> None:
    document = {
        "name": "caf\u00e9 \u202e evil",  # non-ASCII: escaped, never raw on a terminal
        "big": 2**70,  # past 64 bits: orjson refuses, json does not
        "cpu": 12.5,
        "none": None,
        "tags": ["a"],
    }
    text = as_json(document, indent=indent)
    assert text.isascii() and text.endswith("\n") and "\\u202e" in text
    assert json.loads(text) == document
    # large enough for orjson (small documents stay with json: orjson's load costs more)
    plain = {"domains": [{"name": f"web{i}", "cpu_pct": 0.1, "id": None, "stale": False} for i in range(LARGE_DOCUMENT)]}
    assert json.loads(as_json(plain, indent=indent)) == plain
    assert ("\n  " in as_json(plain, indent=indent)) is (indent == 2)


def test_long_run_gc_tuning_freezes_start_up_objects() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults: an earlier test may have tuned them already
    try:
        tune_for_long_run()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] > 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_large_documents_go_through_orjson_small_ones_through_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import vfleet.core.output as output

    def refuse(*_: object, **__: object) -> str:
        raise AssertionError("json.dumps")

    monkeypatch.setattr(output.json, "dumps", refuse)
    large = {"domains": [{"name": f"d{i}"} for i in range(LARGE_DOCUMENT)]}
    assert json.loads(as_json(large)) == large  # orjson did it: json is refused
    with pytest.raises(AssertionError, match=r"json\.dumps"):
        as_json({"domains": [{"name": "d1"}]})  # small: json, not worth loading orjson
