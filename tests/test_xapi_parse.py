"""The xapi driver's pure parsers: records -> Domain, rrd_updates (JSON, old bare-key JSON,
XML) -> values, numbers and datetimes in every spelling xapi uses. Fixtures come from xapi's
own SDK component-test data (tests/fixtures/xapi, vendored) and the xport layout of metrics.md."""

from __future__ import annotations

import json
import math
import os
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfleet.core.models import MemorySource, NodeFacts, PowerState, Verb
from vfleet.drivers.xapi import rrd
from vfleet.drivers.xapi.events import changes, resync
from vfleet.drivers.xapi.records import (
    blocked_reason,
    domain_from_records,
    facts_from_pool,
    gauges_from_rrd,
    is_guest,
    node_capacity,
    not_allowed,
    operation_for,
    power_state,
    snapshot_facts,
    timestamp,
)

# as the test server finds it: $VFLEET_XAPI_REFERENCE, else the vendored copy (tests/fixtures/xapi)
SPEC = Path(os.environ.get("VFLEET_XAPI_REFERENCE", Path(__file__).resolve().parent / "fixtures" / "xapi"),
            "sdk-component-test", "spec", "xapi-24")
UUID = "ecd8d7a0-1be3-4d91-bd0e-4888c0e30ab3"
HOST = "b3f1c0de-0000-4000-8000-000000000001"
GIB = 1 << 30


def _spec(name: str, method: str) -> Any:
    path = SPEC / f"{name}.json"
    if not path.exists():
        pytest.skip(f"xapi reference data not on this machine ({path})")
    case = next(iter(json.loads(path.read_text()).values()))
    return case["expected_result"][method]["result"]


def _json_doc(legend: list[str], rows: list[tuple[int, list[object]]], *, end: int = 1_700_000_010) -> str:
    return json.dumps({
        "meta": {"start": end - 10, "step": 5, "end": end, "rows": len(rows), "columns": len(legend), "legend": legend},
        "data": [{"t": t, "values": values} for t, values in rows],
    })


# -- rrd_updates ------------------------------------------------------------------

def test_xml_xport_as_metrics_md_shows_it() -> None:
    doc = f"""<xport><meta><start>1213578000</start><step>3600</step><end>1213617600</end><rows>2</rows>
    <columns>4</columns><legend><entry>AVERAGE:vm:{UUID}:cpu1</entry><entry>AVERAGE:vm:{UUID}:cpu0</entry>
    <entry>MAX:vm:{UUID}:cpu0</entry><entry>AVERAGE:host:{HOST}:memory_total_kib</entry></legend></meta>
    <data><row><t>1213617600</t><v>0.0</v><v>0.0282</v><v>0.9</v><v>2070172.0000</v></row>
    <row><t>1213614000</t><v>0.5</v><v>0.1</v><v>0.9</v><v>1.0</v></row></data></xport>"""
    update = rrd.parse(doc)
    assert update.end == 1213617600 and update.step == 3600
    assert update.vms == {UUID: {"cpu1": 0.0, "cpu0": 0.0282}}  # the newest row, AVERAGE over MAX
    assert update.hosts == {HOST: {"memory_total_kib": 2070172.0}}


def test_json_numbers_as_strings_nan_and_row_order() -> None:
    legend = [f"AVERAGE:vm:{UUID}:cpu0", f"AVERAGE:vm:{UUID}:memory", f"AVERAGE:vm:{UUID}:vbd_xvda_read"]
    rows = [(100, ["0.25", "1073741824", "NaN"]), (105, ["0.5", "1073741824.0000", "nan"]), (95, [0.1, 1, 512])]
    update = rrd.parse(_json_doc(legend, rows))
    # newest finite value per column, whatever the row order; NaN is missing, not 0
    assert update.vms[UUID] == {"cpu0": 0.5, "memory": 1073741824.0, "vbd_xvda_read": 512.0}


def test_old_xapi_json_with_bare_keys_and_nan_tokens() -> None:
    text = ("{meta: {start: 10, step: 5, end: 20, rows: 1, columns: 2, legend: "
            f'["AVERAGE:vm:{UUID}:cpu0", "AVERAGE:vm:{UUID}:memory_internal_free"]}}, '
            "data: [{t: 20, values: [0.75, NaN]}]}")
    update = rrd.parse(text)
    assert update.end == 20 and update.vms == {UUID: {"cpu0": 0.75}}


@pytest.mark.parametrize("text, problem", [
    ("", "expected JSON or XML"),
    ("{meta: [", "not JSON"),
    ('{"data": []}', "no meta"),
    ('{"meta": {"legend": ["AVERAGE:vm:u:cpu0"]}, "data": [{"t": 1, "values": [1, 2]}]}', "2 values for 1"),
    ("<rrd><meta/></rrd>", "expected <xport>"),
    ("<xport><meta>", "not XML"),
])
def test_garbled_answers_are_one_line_errors(text: str, problem: str) -> None:
    with pytest.raises(rrd.RrdFormatError, match=problem) as caught:
        rrd.parse(text)
    assert "\n" not in str(caught.value)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.tuples(finite, st.booleans()), min_size=1, max_size=6),
    times=st.lists(st.integers(min_value=1, max_value=10**10), min_size=1, max_size=4, unique=True),
    as_xml=st.booleans(),
)
def test_any_rendering_of_the_same_numbers_parses_to_the_same_values(
    values: list[tuple[float, bool]], times: list[int], as_xml: bool
) -> None:
    """Numbers as JSON numbers or strings, rows in any order, JSON or XML: the newest row wins."""
    legend = [f"AVERAGE:vm:{UUID}:ds{i}" for i in range(len(values))]
    rows = [(t, [(repr(v) if quoted else v) if t == max(times) else -1.0 for v, quoted in values]) for t in times]
    if as_xml:
        body = "".join(f"<row><t>{t}</t>{''.join(f'<v>{v}</v>' for v in vs)}</row>" for t, vs in rows)
        entries = "".join(f"<entry>{e}</entry>" for e in legend)
        text = f"<xport><meta><end>{max(times)}</end><legend>{entries}</legend></meta><data>{body}</data></xport>"
    else:
        text = _json_doc(legend, rows, end=max(times))
    update = rrd.parse(text)
    assert update.vms[UUID] == {f"ds{i}": v for i, (v, _quoted) in enumerate(values)}
    assert update.end == max(times)


@given(st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.none(), st.booleans()))
def test_number_is_finite_or_none(raw: object) -> None:
    value = rrd.number(raw)
    assert value is None or math.isfinite(value)
    if isinstance(raw, int) and not isinstance(raw, bool):
        assert value == float(raw)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_64_bit_ints_survive_as_strings_and_numbers(n: int) -> None:
    assert rrd.whole(n) == rrd.whole(str(n)) == n


# -- records ----------------------------------------------------------------------

def test_a_record_from_xapis_sdk_data_becomes_a_domain() -> None:
    records = _spec("vm_get_all_records", "VM.get_all_records")
    ref, vm = next((r, v) for r, v in records.items() if v.get("name_label") == "win11-x64")
    metrics = {"VCPUs_number": "2", "memory_actual": str(4 * GIB), "start_time": "20240420T12:00:00Z"}
    values = {"cpu0": 0.5, "cpu1": 0.25, "memory": 4 * GIB, "memory_internal_free": 1024 * 1024,
              "runstate_full_contention": 0.02, "runstate_partial_contention": 0.01,
              "vbd_xvda_read": 100.0, "vbd_xvdb_read": 50.0, "vbd_xvda_write": 10.0,
              "vbd_xvda_read_latency": 999.0, "vif_0_rx": 7.0, "vif_1_rx": 3.0, "vif_0_tx": 1.0}
    now = timestamp("20240420T13:00:00Z")
    assert now is not None
    dom = domain_from_records(vm, metrics, values, node="host0", now=now, snapshots=(0, None))
    assert (dom.name, dom.state, dom.raw_state, dom.uuid) == ("win11-x64", PowerState.RUNNING, "Running", vm["uuid"])
    assert dom.domain_id == 50 and dom.vcpus == 2 and dom.node == "host0" and not dom.protected
    assert dom.memory_max_bytes == 8 * GIB and dom.memory_current_bytes == 4 * GIB
    assert dom.memory_used_bytes == 3 * GIB and dom.memory_used_source is MemorySource.GUEST  # 1 GiB free of 4
    assert dom.uptime_s == 3600.0
    g = dom.gauges
    assert g is not None and g.cpu_percent == pytest.approx(37.5)
    assert g.contention_percent == pytest.approx(3.0)  # (0.02 + 0.01) of the time, as a percent
    assert (g.disk_read_bps, g.disk_write_bps, g.net_rx_bps, g.net_tx_bps) == (150.0, 10.0, 10.0, 1.0)
    assert ref and is_guest(vm)


def test_off_vm_has_no_measurements_and_strings_read_as_numbers() -> None:
    vm = {"name_label": "db", "uuid": "u1", "power_state": "Halted", "domid": "-1", "VCPUs_at_startup": "4",
          "memory_static_max": "4294967296", "blocked_operations": {"destroy": "keep me"}}
    dom = domain_from_records(vm, {"start_time": "20240420T12:00:00Z"}, {"cpu0": 0.5}, node=None, now=1e9)
    assert dom.state is PowerState.OFF and dom.domain_id is None and dom.vcpus == 4
    assert dom.memory_max_bytes == 4 * GIB and dom.memory_current_bytes is None
    assert dom.gauges is None and dom.counters is None and dom.uptime_s is None and dom.memory_used_bytes is None
    assert dom.protected  # a blocked operation is the pool's protection flag


def test_running_vm_without_rrd_has_none_not_zero() -> None:
    vm = {"name_label": "x", "uuid": "u", "power_state": "Running", "domid": 3, "VCPUs_at_startup": 1}
    dom = domain_from_records(vm, None, None, node="n", now=0.0)
    assert dom.gauges is None and dom.memory_used_bytes is None
    only_cpu = gauges_from_rrd({"cpu0": 0.1}, 1)
    assert only_cpu is not None and only_cpu.contention_percent is None and only_cpu.disk_read_bps is None


def test_contention_caps_at_100_and_extra_vcpu_columns_are_ignored() -> None:
    g = gauges_from_rrd({"cpu0": 1.0, "cpu1": 1.0, "cpu7": 0.0, "runstate_full_contention": 0.9,
                         "runstate_partial_contention": 0.5}, vcpus=2)
    assert g is not None and g.cpu_percent == 100.0 and g.contention_percent == 100.0


@pytest.mark.parametrize("record, state", [
    ({"power_state": "Running"}, PowerState.RUNNING),
    ({"power_state": "Halted"}, PowerState.OFF),
    ({"power_state": "Paused"}, PowerState.PAUSED),
    ({"power_state": "Suspended"}, PowerState.SUSPENDED),
    ({"power_state": "Crashed"}, PowerState.UNKNOWN),
    ({"power_state": "Running", "current_operations": {"t1": "clean_shutdown"}}, PowerState.SHUTTING_DOWN),
])
def test_power_states(record: dict[str, Any], state: PowerState) -> None:
    assert power_state(record)[0] is state


@pytest.mark.parametrize("flags", [
    {"is_a_template": True}, {"is_a_snapshot": True}, {"is_control_domain": True}, {"is_control_domain": "true"},
])
def test_templates_snapshots_and_control_domains_are_not_guests(flags: dict[str, object]) -> None:
    assert not is_guest({"name_label": "x", **flags})


@pytest.mark.parametrize("raw, expected", [
    ("20240420T12:00:00Z", 1713614400.0),
    ("2024-04-20T12:00:00Z", 1713614400.0),
    ("20240420T12:00:00", 1713614400.0),
    ("1627478400.", 1627478400.0),
    (xmlrpc.client.DateTime("20240420T12:00:00Z"), 1713614400.0),
    ("19700101T00:00:00Z", None),
    ("not a time", None),
    (None, None),
])
def test_datetimes_in_every_spelling(raw: object, expected: float | None) -> None:
    assert timestamp(raw) == expected


def test_special_values_of_xapis_sdk_data() -> None:
    records = _spec("vm_special_value", "VM.get_all_records")
    times = {timestamp(r["snapshot_time"]) for r in records.values()}
    assert times == {1627478400.0, 1713614400.0}


def test_operations_blocked_and_allowed() -> None:
    vm = {"blocked_operations": {"hard_shutdown": "prod database"}, "allowed_operations": ["clean_shutdown", "pause"]}
    assert blocked_reason(vm, "hard_shutdown") == "prod database" and blocked_reason(vm, "pause") is None
    assert not_allowed(vm, "hard_reboot") and not not_allowed(vm, "pause")
    assert not not_allowed({}, "start")  # no list: xapi decides
    assert operation_for(Verb.RESUME, PowerState.SUSPENDED) == "resume"
    assert operation_for(Verb.RESUME, PowerState.PAUSED) == "unpause"
    assert operation_for(Verb.FORCE_OFF, PowerState.RUNNING) == "hard_shutdown"


def test_snapshot_facts_and_pool_facts() -> None:
    vms = {
        "vm": {"is_a_snapshot": False},
        "s1": {"is_a_snapshot": True, "snapshot_of": "vm", "snapshot_time": "20240420T12:00:00Z"},
        "s2": {"is_a_snapshot": "true", "snapshot_of": "vm", "snapshot_time": "20240421T12:00:00Z"},
    }
    assert snapshot_facts(vms) == {"vm": (2, 1713614400.0)}
    hosts = {
        "h1": {"name_label": "xcp-a", "cpu_info": {"cpu_count": "8", "modelname": "EPYC"},
               "software_version": {"product_brand": "XCP-ng", "product_version": "8.3.0"}},
        "h2": {"name_label": "xcp-b", "cpu_info": {"cpu_count": 4}},
    }
    metrics = {"m1": {"memory_total": "68719476736"}, "m2": {"memory_total": 34359738368}}
    hosts["h1"]["metrics"], hosts["h2"]["metrics"] = "m1", "m2"
    assert node_capacity(hosts, metrics) == [("xcp-a", 8, 64 * GIB), ("xcp-b", 4, 32 * GIB)]
    facts = facts_from_pool(hosts, metrics, "h1", "pool-1")
    assert (facts.hypervisor, facts.version, facts.hostname, facts.cpus) == ("xen", "XCP-ng 8.3.0", "pool-1", 12)
    assert facts.memory_bytes == 96 * GIB and facts.cpu_model == "EPYC"
    assert facts.nodes == (NodeFacts("xcp-a", 8, 64 * GIB), NodeFacts("xcp-b", 4, 32 * GIB))  # per-node capacity


# -- event.from -------------------------------------------------------------------

def test_event_batches_become_domain_events_and_resync_finds_what_was_missed() -> None:
    vm = {"name_label": "web", "uuid": "u1", "power_state": "Halted"}
    known: dict[str, Any] = {}
    assert changes("p", known, [{"class": "vm", "operation": "mod", "ref": "r1", "snapshot": vm}], 0.0) == []
    started = changes("p", known, [{"class": "vm", "operation": "mod", "ref": "r1",
                                    "snapshot": {**vm, "power_state": "Running"}}], 1.0)
    assert [(e.domain, e.kind, e.uuid) for e in started] == [("web", "started", "u1")]
    template = {"name_label": "t", "is_a_template": True, "power_state": "Halted"}
    assert changes("p", known, [{"class": "vm", "operation": "add", "ref": "t", "snapshot": template}], 2.0) == []
    missed = resync("p", known, {"r2": {"name_label": "new", "uuid": "u2", "power_state": "Running"}}, 3.0)
    assert sorted((e.domain, e.kind) for e in missed) == [("new", "defined"), ("web", "undefined")]


def _stringified(value: object) -> object:
    """A value as XML-RPC carries xapi's 64-bit ints (decimal strings); maps and lists deep."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringified(v) for v in value]
    return value


@settings(max_examples=100, deadline=None)
@given(
    state=st.sampled_from(["Running", "Halted", "Paused", "Suspended"]),
    vcpus=st.integers(min_value=1, max_value=256),
    memory=st.integers(min_value=1, max_value=2**50),
    domid=st.integers(min_value=-1, max_value=2**31),
    free_kib=st.integers(min_value=0, max_value=2**40),
    values=st.dictionaries(st.sampled_from(["cpu0", "cpu1", "runstate_full_contention", "vbd_xvda_read", "vif_0_tx"]),
                           st.floats(min_value=0, max_value=1e12, allow_nan=False)),
)
def test_a_record_reads_the_same_with_ints_as_strings(
    state: str, vcpus: int, memory: int, domid: int, free_kib: int, values: dict[str, float]
) -> None:
    vm = {"name_label": "v", "uuid": "u", "power_state": state, "domid": domid, "VCPUs_at_startup": vcpus,
          "memory_static_max": memory, "blocked_operations": {}}
    metrics = {"VCPUs_number": vcpus, "memory_actual": memory, "start_time": "20240420T12:00:00Z"}
    rrd_values = {**values, "memory": float(memory), "memory_internal_free": float(free_kib)}
    as_ints = domain_from_records(vm, metrics, rrd_values, node="n", now=1.8e9)
    # (rrd values arrive parsed: test_any_rendering_of_the_same_numbers... covers their strings)
    as_strings = domain_from_records(_stringified(vm), _stringified(metrics),  # type: ignore[arg-type]
                                     rrd_values, node="n", now=1.8e9)
    assert as_ints == as_strings
    assert as_ints.memory_used_bytes is None or 0 <= as_ints.memory_used_bytes <= memory
    gauges = as_ints.gauges
    assert gauges is None or all(p is None or 0 <= p <= 100 for p in (gauges.cpu_percent, gauges.contention_percent))


def test_allocation_falls_back_to_the_balloon_target_then_vm_metrics() -> None:
    vm = {"name_label": "x", "uuid": "u", "power_state": "Running", "domid": 3, "VCPUs_at_startup": 1}
    assert domain_from_records(vm, None, {"memory_target": GIB}, node=None, now=0).memory_current_bytes == GIB
    metrics = {"memory_actual": str(2 * GIB)}
    assert domain_from_records(vm, metrics, {"cpu0": 0.1}, node=None, now=0).memory_current_bytes == 2 * GIB
    assert domain_from_records(vm, metrics, {"memory": 3 * GIB}, node=None, now=0).memory_current_bytes == 3 * GIB
