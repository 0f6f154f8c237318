"""vim-cmd / esxcli parsers over the hand-written ESXi outputs (tests/fixtures/esxi,
see its README) and generated ones: arbitrary VM names round-trip, truncation gives
either the right values or GarbledOutput."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshhost import ESXI_FIXTURES
from vfleet.core.errors import GarbledOutput
from vfleet.drivers.esxi.parse import (
    VmSummary,
    parse_fault,
    parse_getallvms,
    parse_summary,
    world_ids,
)

HEADER = ("Vmid              Name                                          File                                       "
          "Guest OS          Version              Annotation\n")


def fixture(name: str) -> str:
    return (ESXI_FIXTURES / name).read_text()


def test_getallvms_with_spaces_parentheses_empty_datastore_and_annotations() -> None:
    assert parse_getallvms(fixture("getallvms.txt")) == [1, 2, 3, 4]


def test_getallvms_garbled() -> None:
    with pytest.raises(GarbledOutput, match="header"):
        parse_getallvms("1  web01  [ds] web01/web01.vmx  otherGuest  vmx-19\n")
    with pytest.raises(GarbledOutput, match="truncated"):
        parse_getallvms(fixture("getallvms.txt").rstrip("\n"))


def test_summary_prefix_unset_and_units() -> None:
    web = parse_summary(fixture("summary-1.txt"), 1)
    assert web == VmSummary(1, "web01", "poweredOn", "524d2a1c-91b5-8e3f-07a2-5c0e1f3b6d21", 2, 4096, 523, 4788,
                            409, 86400)
    off = parse_summary(fixture("summary-2.txt"), 2)
    assert (off.name, off.power, off.uptime_s) == ("db server (primary)", "poweredOff", None)


def test_unknown_vm_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        parse_summary(fixture("unknown-vm.txt"), 99)


def test_summary_with_a_non_number_is_garbled() -> None:
    text = fixture("summary-1.txt").replace("overallCpuUsage = 523", "overallCpuUsage = 5x3")
    with pytest.raises(GarbledOutput, match="overallCpuUsage is '5x3', not a number"):
        parse_summary(text, 1)


def test_fault_blocks() -> None:
    assert parse_fault(fixture("power-on-fault.txt")) == "power on failed: GenericVmConfigFault: Failed to lock the file"
    assert parse_fault("Powering on VM:\n") is None


def test_world_ids() -> None:
    assert world_ids(fixture("process-list.txt")) == {"web01": 2101234, "vCLS-4c4c4544-0033-4b10 (1)": 2099876}
    with pytest.raises(GarbledOutput):
        world_ids("web01\n   World ID: 21x\n   Display Name: web01\n")


name_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"),
                           exclude_characters='\t\n\r\x0b\x0c\x85"\\')
names = st.text(name_chars, min_size=1, max_size=50).map(str.strip).filter(bool) | st.sampled_from(
    ["db server (primary)", "win #2", "vCLS-4c4c (1)", "a [b] c", "x" * 80])
rows = st.lists(st.tuples(st.integers(1, 99999), names, st.sampled_from(["[datastore1]", "[]", "[ssd 2]"]),
                          st.sampled_from(["", "notes", "two\nlines"])), max_size=6, unique_by=lambda r: r[0])


def render_getallvms(items: list[tuple[int, str, str, str]]) -> str:
    lines = [HEADER]
    for vmid, name, datastore, annotation in items:
        lines.append(f"{vmid:<6} {name:<36} {datastore} {name}/{name}.vmx   otherGuest   vmx-19    {annotation}   \n")
    return "".join(lines)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_getallvms_round_trip(items: list[tuple[int, str, str, str]]) -> None:
    assert parse_getallvms(render_getallvms(items)) == [vmid for vmid, *_ in items]


@settings(max_examples=200, deadline=None)
@given(rows.filter(bool), st.data())
def test_getallvms_truncation(items: list[tuple[int, str, str, str]], data: st.DataObject) -> None:
    text = render_getallvms(items)
    cut = data.draw(st.integers(0, len(text) - 1))
    try:
        ids = parse_getallvms(text[:cut])
    except GarbledOutput:
        return
    assert ids == [vmid for vmid, *_ in items][: len(ids)]


summaries = st.builds(VmSummary, st.integers(1, 10**6), names, st.sampled_from(["poweredOn", "poweredOff", "suspended"]),
                      st.none() | st.uuids().map(str), st.none() | st.integers(1, 768),
                      st.none() | st.integers(4, 6 * 2**20), st.none() | st.integers(0, 10**6),
                      st.none() | st.integers(0, 10**6), st.none() | st.integers(0, 6 * 2**20),
                      st.none() | st.integers(0, 2**31))


def render_summary(s: VmSummary) -> str:
    text = fixture("summary-1.txt")

    def put(key: str, value: int | str | None) -> None:
        nonlocal text
        shown = "<unset>" if value is None else (f'"{value}"' if isinstance(value, str) else str(value))
        text = re.sub(rf"^(\s+{key} = ).*?(,?)$", lambda m: f"{m.group(1)}{shown}{m.group(2)}", text, count=1,
                      flags=re.M)

    put("powerState", s.power)
    put("maxCpuUsage", s.max_cpu_mhz)
    put("name", s.name)
    put("memorySizeMB", s.memory_mib)
    put("numCpu", s.vcpus)
    put("instanceUuid", s.uuid)
    put("uuid", s.uuid)
    put("overallCpuUsage", s.cpu_mhz)
    put("guestMemoryUsage", s.guest_memory_mib)
    put("uptimeSeconds", s.uptime_s)
    return text


@settings(max_examples=150, deadline=None)
@given(summaries)
def test_summary_round_trip(s: VmSummary) -> None:
    assert parse_summary(render_summary(s), s.vmid) == s


@settings(max_examples=150, deadline=None)
@given(summaries, st.data())
def test_summary_truncation_is_garbled_never_a_wrong_number(s: VmSummary, data: st.DataObject) -> None:
    text = render_summary(s)
    cut = data.draw(st.integers(0, len(text) - 1))
    try:
        parsed = parse_summary(text[:cut], s.vmid)
    except GarbledOutput:
        return
    assert parsed == s


def test_snapshot_tree_parses_depth_parents_and_current() -> None:
    from datetime import UTC, datetime

    from vfleet.drivers.esxi.sshsnap import parse_snapshot_get

    fixtures = ESXI_FIXTURES
    tree = parse_snapshot_get((fixtures / "snapshot-get.txt").read_text(),
                              (fixtures / "get-snapshotinfo.txt").read_text())
    by_name = {s.info.name: s for s in tree}
    assert [s.info.name for s in tree] == ["before patch (2024)", "snap02", "snap03", "snap04"]
    assert [(s.id, s.info.parent) for s in tree] == [(1, None), (2, "before patch (2024)"), (3, "snap02"),
                                                     (4, "before patch (2024)")]
    assert [s.info.name for s in tree if s.info.current] == ["snap03"]
    root = by_name["before patch (2024)"].info
    assert (root.memory, root.state, root.description, root.key) == (True, "powered on", "taken by ops", "1")
    assert root.created == datetime(2015, 2, 23, 18, 12, 50, tzinfo=UTC).timestamp()
    assert by_name["snap03"].info.created == datetime(2015, 2, 23, 18, 14, 7, tzinfo=UTC).timestamp()
    assert by_name["snap02"].info.memory is False
    assert parse_snapshot_get("Get Snapshot:\n", "(vim.vm.SnapshotInfo) null\n") == []


def test_snapshot_tree_garbled() -> None:
    from vfleet.drivers.esxi.sshsnap import parse_snapshot_get

    with pytest.raises(GarbledOutput, match="no `Get Snapshot:` header"):
        parse_snapshot_get("Unable to find snapshot\n")
    with pytest.raises(GarbledOutput, match="has no id"):
        parse_snapshot_get("Get Snapshot:\n|-ROOT\n--Snapshot Name        : cut\n")
