"""esxtop batch CSV for esxi_ssh: the parser on a real capture (tests/fixtures/esxi/esxtop-batch.csv,
see its README), the host-side awk filter run on it, hostile and missing cases, and properties."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshhost import pipeline, run_filters
from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainGauges, PowerState
from vfleet.drivers.esxi.esxtop import (
    MEBI,
    NO_SAMPLE,
    RAGGED,
    EsxtopSample,
    apply_esxtop,
    command,
    parse_esxtop,
    plain_name,
)

FIXTURE = Path(__file__).parent / "fixtures" / "esxi" / "esxtop-batch.csv"
HOST = r"\\localhost.home"  # the capture's host part
VCLS = "vCLS-4c4c4544-0033-4b10 (1)"


def real() -> str:
    return FIXTURE.read_text()


def esxtop_csv(header: list[str], *rows: list[str]) -> str:
    """esxtop's layout: every field quoted, every line ending in a comma (an empty last column)."""
    out = io.StringIO()
    for row in (header, *rows):
        out.write(",".join('"' + field.replace('"', '""') + '"' for field in row) + ",\n")
    return out.getvalue()


def vm_columns(name: str, gid: int, world: int) -> list[str]:
    """One VM's columns, as the capture names them (object and counter names copied from it)."""
    return [
        rf"{HOST}\Group Cpu({gid}:{name})\% Ready",
        rf"{HOST}\Virtual Disk({name})\Reads/sec",
        rf"{HOST}\Virtual Disk({name})\Writes/sec",
        rf"{HOST}\Virtual Disk({name})\MBytes Read/sec",
        rf"{HOST}\Virtual Disk({name})\MBytes Written/sec",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\Packets Transmitted/sec",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\MBits Transmitted/sec",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\Average Packet Size  Transmitted (Bytes)",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\Packets Received/sec",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\MBits Received/sec",
        rf"{HOST}\Network Port(vSwitch0:{50331696 + gid % 1000}:{world}:{name})\Average Packet Size  Received (Bytes)",
    ]


VALUES = ["3.40", "4.00", "9.00", "0.50", "0.25", "10.00", "0.01", "100.00", "20.00", "0.02", "50.00"]


def running(name: str, vcpus: int = 2) -> Domain:
    return Domain(name=name, state=PowerState.RUNNING, raw_state="poweredOn", vcpus=vcpus,
                  gauges=DomainGauges(cpu_percent=12.5))


def filtered(text: str) -> tuple[int, str, str]:
    """The driver's host-side filter run on `text` as ESXi would: busybox awk where installed."""
    out, err, status = asyncio.run(run_filters(pipeline(command())[1:], text))
    return status, out, err


def test_real_capture_gives_the_last_sample_per_vm() -> None:
    sample = parse_esxtop(real())
    assert sample.ready["web01"] == 2.15  # the third (last) row; the first two were 3.39 and 2.53
    assert sample.ready[VCLS] == 0.52  # a name with spaces and parentheses
    assert sample.ready["system"] == 16.43  # the host's own groups are there too, and match no VM
    web = sample.disks["web01"]
    assert web is not None
    assert (web.read_iops, web.write_iops) == (4.02, 9.24)
    assert (web.read_bps, web.write_bps) == (0.32 * MEBI, 0.05 * MEBI)
    assert f"{VCLS}:scsi0:0" not in sample.disks  # per-device rows: the VM's total is enough
    # vCLS has two vNICs (vSwitch0 and "internal"): packets/s x average size, per port
    ports = sample.ports[2100003]
    assert [(p.name, p.tx_bps, p.rx_bps) for p in ports] == [
        (VCLS, pytest.approx(2.61 * 54), pytest.approx(3.61 * 102)),
        (VCLS, pytest.approx(25.50 * 335), pytest.approx(25.50 * 336)),
    ]
    assert 33554434 not in sample.ports and all(w > 1000 for w in sample.ports)  # uplinks and vmk name no world


def test_apply_fills_contention_disk_and_net_of_a_running_vm() -> None:
    sample = parse_esxtop(real())
    web = apply_esxtop(running("web01", vcpus=2), sample, world=2100001)
    assert web.gauges == DomainGauges(
        cpu_percent=12.5,  # kept from get.summary
        contention_percent=pytest.approx(2.15 / 2),  # per vCPU, like esxi_api's cpu.ready
        disk_read_bps=0.32 * MEBI, disk_write_bps=0.05 * MEBI, disk_read_iops=4.02, disk_write_iops=9.24,
        net_rx_bps=pytest.approx(10.44 * 174), net_tx_bps=pytest.approx(10.44 * 600),  # one vNIC
    )
    vcls = apply_esxtop(running(VCLS, vcpus=1), sample, world=2100003)
    assert vcls.gauges is not None
    assert vcls.gauges.net_tx_bps == pytest.approx(2.61 * 54 + 25.50 * 335)  # both vNICs


def test_a_vm_missing_from_esxtop_keeps_none() -> None:
    sample = parse_esxtop(real())
    new = running("started after the sample")
    assert apply_esxtop(new, sample, world=2100099) is new  # nothing found: the domain as it was
    off = Domain(name="web01", state=PowerState.OFF, raw_state="poweredOff", vcpus=2)
    assert apply_esxtop(off, sample, world=None) is off  # esxtop's numbers are for running VMs only


def test_names_two_vms_share_match_nothing_but_the_world_id_still_matches_the_nics() -> None:
    sample = parse_esxtop(real())
    twin = apply_esxtop(running("web01"), sample, world=2100001, shared_names=["web01"])
    assert twin.gauges is not None
    assert (twin.gauges.contention_percent, twin.gauges.disk_read_bps) == (None, None)
    assert twin.gauges.net_tx_bps == pytest.approx(10.44 * 600)
    # two groups with one name in esxtop itself: no contention for either
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns("twin", 1001, 1), *vm_columns("twin", 1002, 2)]
    doubled = parse_esxtop(esxtop_csv(header, ["04/26/2018 14:06:27", *VALUES, *VALUES]))
    assert doubled.ready == {"twin": None} and doubled.disks == {"twin": None}
    assert set(doubled.ports) == {1, 2}


def test_missing_columns_leave_their_fields_none() -> None:
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns("web01", 1423953, 2100001)]
    keep = [0, 1, 6, 7, 9, 10]  # no Virtual Disk at all, no average packet sizes
    text = esxtop_csv([header[i] for i in keep], [(["04/26/2018 14:06:27", *VALUES])[i] for i in keep])
    web = apply_esxtop(running("web01"), parse_esxtop(text), world=2100001)
    assert web.gauges is not None
    assert web.gauges.contention_percent == pytest.approx(1.7)
    assert (web.gauges.disk_read_bps, web.gauges.disk_write_iops) == (None, None)
    # without the packet size, the MBits column (binary mega, like esxtop's MBytes)
    assert (web.gauges.net_tx_bps, web.gauges.net_rx_bps) == (0.01 * MEBI / 8, 0.02 * MEBI / 8)


def test_empty_and_non_numeric_values_are_unknown_not_zero() -> None:
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns("web01", 1423953, 2100001)]
    values = ["04/26/2018 14:06:27", "", *VALUES[1:5], "n/a", *VALUES[6:]]
    web = apply_esxtop(running("web01"), parse_esxtop(esxtop_csv(header, values)), world=2100001)
    assert web.gauges is not None
    assert web.gauges.contention_percent is None and web.gauges.net_tx_bps == pytest.approx(0.01 * MEBI / 8)


@pytest.mark.parametrize("name", [
    r"evil)\Group Cpu(1:system",  # the column separators inside a name
    "\x1b]0;owned\x07\x1b[2J",  # terminal escapes
    "a,b;c|d $(reboot) `x`",
    "\u202eexe.txt",
    "db: primary:1:2",  # colons, like the instance's own separators
])
def test_hostile_names_parse_whole(name: str) -> None:
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns(name, 77, 2100077)]
    sample = parse_esxtop(esxtop_csv(header, ["04/26/2018 14:06:27", *VALUES]))
    assert sample.ready == {name: 3.40}
    assert set(sample.disks) == {name} and [p.name for p in sample.ports[2100077]] == [name]
    vm = apply_esxtop(running(name), sample, world=None)  # by name when no world id is known
    assert vm.gauges is not None and vm.gauges.net_rx_bps == 20.0 * 50.0


def test_percent_escaped_names_match_either_spelling() -> None:
    assert plain_name("a%2fb%5Cc%25d") == "a/b\\c%d"
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns("web/01", 1, 2100001)]
    sample = parse_esxtop(esxtop_csv(header, ["04/26/2018 14:06:27", *VALUES]))
    vm = apply_esxtop(running("web%2f01"), sample, world=None)  # vSphere's config.name spelling
    assert vm.gauges is not None and vm.gauges.contention_percent == pytest.approx(1.7)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty output"),
    (real()[:5000], "truncated"),
    ('"Vmid","Name"\n"1","web01"\n', "not a batch CSV"),
    (real().splitlines(keepends=True)[0], "a header but no sample"),
    (real() + '"04/26/2018 14:06:33","1.00",\n', r"the sample has 3 columns, its header 314"),
    ('"(PDH-CSV 4.0) (UTC)(0)","a"b",\n', "not CSV"),
])
def test_garbled_output_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(GarbledOutput, match=message):
        parse_esxtop(text, "esx1")


def test_the_host_side_filter_keeps_exactly_what_the_parser_reads() -> None:
    status, out, err = filtered(real())
    assert (status, err) == (0, "")
    assert len(out) < len(real()) / 3
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith('"04/26/2018 14:06:37"')  # the last sample only
    assert parse_esxtop(out) == parse_esxtop(real())
    kept = next(csv.reader(io.StringIO(out)))
    assert not [c for c in kept if "Memory" in c or "Physical Cpu" in c or ":scsi0:0" in c or "% Used" in c]


def test_a_capture_with_unquoted_scraps_reads_the_same_filtered_or_not() -> None:
    """The other real capture (esxtop-scraps.csv): esxtop wrote unquoted `   -` / `    73.1` into
    the header and every row, before a PCPU Power State column and after the trailing comma."""
    text = (FIXTURE.parent / "esxtop-scraps.csv").read_text()
    status, out, err = filtered(text)
    assert (status, err) == (0, "")
    assert parse_esxtop(out) == parse_esxtop(text)
    web = apply_esxtop(running("web01"), parse_esxtop(out), world=2100001)
    assert web.gauges is not None
    assert web.gauges.contention_percent == pytest.approx(2.75 / 2)
    assert (web.gauges.disk_write_iops, web.gauges.net_tx_bps) == (4.62, pytest.approx(9.24 * 262))


def test_the_filter_keeps_the_last_column_and_hostile_names_whole() -> None:
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns("a,b (c) ;|", 7, 2100007)]  # a wanted column last
    text = esxtop_csv(header, ["04/26/2018 14:06:27", *VALUES], ["04/26/2018 14:06:29", *reversed(VALUES)])
    status, out, _err = filtered(text)
    assert status == 0 and parse_esxtop(out) == parse_esxtop(text)
    assert parse_esxtop(out).ports[2100007][0].rx_bps == pytest.approx(9.00 * 3.40)  # the last sample, its last column


def test_the_command_is_one_line() -> None:
    """Recordings (`vfleet debug record`) hold one line per command; the awk program is written for it."""
    assert "\n" not in command() and command().startswith("TERM=xterm esxtop -b -n 2 -d 2 | awk '")


def test_the_filter_says_what_went_wrong() -> None:
    assert filtered("")[0] == NO_SAMPLE  # esxtop printed nothing (missing, or killed)
    assert filtered(real().splitlines(keepends=True)[0])[0] == NO_SAMPLE
    # a name with `","` in it shifts every later column of the header: caught, never misread
    header = ["(PDH-CSV 4.0) (UTC)(0)", *vm_columns('bad","name', 5, 6)]
    text = esxtop_csv(header, ["04/26/2018 14:06:27", *VALUES]).replace('""', '"')
    assert filtered(text)[0] == RAGGED


names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)
numbers = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.2f}")


@settings(max_examples=150, deadline=None)
@given(vms=st.dictionaries(names.filter(lambda n: plain_name(n) == n), st.lists(numbers, min_size=11, max_size=11),
                           min_size=1, max_size=5))
def test_every_vm_reads_back_its_own_values(vms: dict[str, list[str]]) -> None:
    header, row = ["(PDH-CSV 4.0) (UTC)(0)"], ["04/26/2018 14:06:27"]
    for index, (name, values) in enumerate(vms.items()):
        header += vm_columns(name, 1000 + index, 2100000 + index)
        row += values
    sample = parse_esxtop(esxtop_csv(header, row))
    for index, (name, values) in enumerate(vms.items()):
        vm = apply_esxtop(running(name, vcpus=4), sample, world=2100000 + index)
        assert vm.gauges is not None
        assert vm.gauges.contention_percent == pytest.approx(min(100.0, float(values[0]) / 4))
        assert vm.gauges.disk_read_iops == float(values[1])
        assert vm.gauges.disk_write_bps == pytest.approx(float(values[4]) * MEBI)
        assert vm.gauges.net_tx_bps == pytest.approx(float(values[5]) * float(values[7]))
        assert 0 <= vm.gauges.contention_percent <= 100


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_or_is_garbled(text: str) -> None:
    try:
        sample = parse_esxtop(text)
    except GarbledOutput:
        return
    assert isinstance(sample, EsxtopSample)
