"""esxtop batch mode for esxi_ssh: per-VM ready time, disk and network rates (pure: no I/O here).

`esxtop -b` prints a PDH-CSV table: a header row of `\\\\host\\Object(instance)\\Counter`
names (the first column the timestamp, `(PDH-CSV 4.0) (UTC)(0)`), then one row per
sample; every field is quoted and every line ends with a comma. A full row has tens
of thousands of columns (every world, device and port of the host), so the command
below cuts it down on the host with awk (busybox's, on ESXi) to the few counters
read here and the last sample (esxtop's first sample of a run is discarded).
esxtop's `-c` configuration file and `-import-entity` list could trim it at the
source, but their field letters and entity lists differ between ESXi releases and
the entities change as VMs power on and off; the awk filter depends only on the
counter names, which are the ones this module reads anyway.

Units, as esxtop prints them: `% Ready` is summed over the worlds of the VM's
group (one per vCPU plus a few helpers), so up to 100 per vCPU; contention is it
per vCPU, as esxi_api's cpu.ready, without `% CoStop` (vSphere counts co-stop
apart, as cpu.costop, and KVM's vcpu delay has none); `MBytes .../sec`
and `MBits .../sec` are binary mega (2**20, like esxtop's memory MBytes); network
bytes come from packets/s times the average packet size, which keeps the rate of
a quiet NIC (a MBits column with two decimals rounds anything under 1.3 KB/s to 0).

Matching: `Group Cpu(GID:NAME)` and `Virtual Disk(NAME)` carry the VM's display
name, `Network Port(SWITCH:PORT:WORLD:NAME)` the world id that `esxcli vm process
list` reports. A name that two VMs share matches nothing (no wrong numbers).
"""

from __future__ import annotations

import csv
import io
import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainGauges, PowerState

DELAY_S = 2  # esxtop's smallest -d: it raises anything shorter to 2 s
MEBI = 1024 * 1024
GROUP, DISK, PORT = "Group Cpu", "Virtual Disk", "Network Port"
READY = "% Ready"
READS, WRITES, READ_MB, WRITE_MB = "Reads/sec", "Writes/sec", "MBytes Read/sec", "MBytes Written/sec"
TX_PACKETS, TX_MBITS, TX_SIZE = (
    "Packets Transmitted/sec",
    "MBits Transmitted/sec",
    "Average Packet Size  Transmitted (Bytes)",  # two spaces, as esxtop writes it
)
RX_PACKETS, RX_MBITS, RX_SIZE = "Packets Received/sec", "MBits Received/sec", "Average Packet Size  Received (Bytes)"
WANTED = {
    GROUP: (READY,),
    DISK: (READS, WRITES, READ_MB, WRITE_MB),
    PORT: (TX_PACKETS, TX_MBITS, TX_SIZE, RX_PACKETS, RX_MBITS, RX_SIZE),
}
# Exit statuses of the awk filter (esxtop's own status is lost in the pipe).
NO_SAMPLE, RAGGED = 3, 4

_COLUMN = re.compile(r"^\\\\[^\\]*\\(?P<object>[^\\(]+)\((?P<instance>.*)\)\\(?P<counter>[^\\]+)$", re.S)
_GROUP = re.compile(r"^(?P<gid>\d+):(?P<name>.+)$", re.S)
_VM_PORT = re.compile(r"^(?P<switch>[^:]*):(?P<port>\d+):(?P<world>\d+):(?P<name>.+)$", re.S)
_DEVICE = re.compile(r":(scsi|sata|ide|nvme)\d+:\d+$")  # one virtual disk of a VM (NAME:scsi0:0): the total is enough
_ESCAPED = re.compile(r"%(25|2f|5c)", re.I)  # how vSphere writes % / \ in entity names

# awk reads one field per record (RS=","): splitting the 43,000-column line on `","` took
# busybox awk 7.5 s, busybox sed 4 s; records take 1 s (bench/esxtop_poll.py). A row ends
# in the record holding the newline, after its trailing comma; the program joins back a
# quoted field that had commas in it, skips the unquoted scraps some captures carry
# (`",   73.9` at a row's end, `   -"...` before a field), and keeps the timestamp and
# the WANTED columns of the header and of the last sample; per-device Virtual Disk rows
# (NAME:scsi0:0) are dropped, the VM's total stays.
_AWK = r"""function whole(s) { return length(s) > 1 && substr(s, 1, 1) == "\"" && substr(s, length(s)) == "\""; }
function end_row() {
  if (row == 0) { width = col; print ","; } else if (col != width) ragged = 1;
  row++;
  col = 0;
}
BEGIN {
  RS = ",";
  n = split("@WANTED@", w, ";");
  for (i = 1; i <= n; i++) want[w[i]] = 1;
}
{
  f = $0;
  if (open == "" && (nl = index(f, "\n")) > 0) {
    end_row();
    f = substr(f, nl + 1);
    if (f == "") next;
  }
  if (open != "") {
    open = open "," f;
    if (!whole(open)) next;
    f = open;
    open = "";
  } else if (substr(f, 1, 1) != "\"" && index(f, "\"") > 0) f = substr(f, index(f, "\""));
  if (substr(f, 1, 1) == "\"" && !whole(f)) {
    open = f;
    next;
  }
  col++;
  if (whole(f)) f = substr(f, 2, length(f) - 2);
  if (row > 0) {
    if (col in keep) value[col] = f;
    next;
  }
  if (col > 1 && match(f, /^\\\\[^\\]*\\/)) {
    rest = substr(f, RLENGTH + 1);
    match(rest, /^[^\\(]*/);
    object = substr(rest, 1, RLENGTH);
    match(f, /[^\\]*$/);
    if (!((object "|" substr(f, RSTART)) in want) || f ~ /:(scsi|sata|ide|nvme)[0-9]+:[0-9]+\)\\[^\\]*$/) next;
  } else if (col > 1) next;
  keep[col] = 1;
  printf "%s\"%s\"", (col > 1 ? "," : ""), f;
}
END {
  if (row < 2) exit @NO_SAMPLE@;
  if (ragged || col != 0 || open != "") exit @RAGGED@;
  for (i = 1; i <= width; i++) if (i in keep) printf "%s\"%s\"", (i > 1 ? "," : ""), value[i];
  print ",";
}
"""


def command(delay: int = DELAY_S) -> str:
    """One esxtop run, two samples `delay` s apart, cut down on the host to what parse_esxtop reads."""
    wanted = ";".join(f"{obj}|{counter}" for obj, counters in WANTED.items() for counter in counters)
    program = _AWK.replace("@WANTED@", wanted).replace("@NO_SAMPLE@", str(NO_SAMPLE)).replace("@RAGGED@", str(RAGGED))
    program = " ".join(line.strip() for line in program.splitlines())  # one line: recordings hold one per command
    # TERM: without a terminal type esxtop prints a termcap complaint into its output.
    return f"TERM=xterm esxtop -b -n 2 -d {int(delay)} | awk {shlex.quote(program)}"


def why_failed(status: int, stderr: str) -> str:
    """The filter's exit status in words."""
    if status == NO_SAMPLE:
        return "esxtop printed no sample"
    if status == RAGGED:
        return "esxtop's sample has a different column count from its header (a VM name with a quote?)"
    return f"the esxtop filter exited with status {status}"


@dataclass(frozen=True, slots=True)
class DiskRates:
    read_bps: float | None
    write_bps: float | None
    read_iops: float | None
    write_iops: float | None


@dataclass(frozen=True, slots=True)
class PortRates:
    name: str
    rx_bps: float | None
    tx_bps: float | None


@dataclass(frozen=True, slots=True)
class EsxtopSample:
    """The last sample of one run, per VM; a name or world seen twice maps to None (ambiguous)."""

    ready: Mapping[str, float | None]  # display name (unescaped) -> the group's % Ready
    disks: Mapping[str, DiskRates | None]  # display name (unescaped) -> its Virtual Disk total
    ports: Mapping[int, list[PortRates]]  # world id -> the VM's ports (one per vNIC)


def plain_name(name: str) -> str:
    """A display name with vSphere's %25/%2f/%5c escapes undone, so both spellings match."""
    return _ESCAPED.sub(lambda m: {"25": "%", "2f": "/", "5c": "\\"}[m.group(1).lower()], name)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # esxtop leaves a counter empty where it has no value: unknown, not 0
    return value if math.isfinite(value) and value >= 0 else None


def _rows(text: str, host: str) -> tuple[list[str], list[str]]:
    if not text.strip():
        raise GarbledOutput(host, "esxtop: empty output")
    if not text.endswith("\n"):
        raise GarbledOutput(host, "esxtop: output ends in the middle of a line (truncated)")
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    except csv.Error as exc:
        raise GarbledOutput(host, f"esxtop: not CSV: {exc}") from None
    header = rows[0]
    if not header[0].startswith("(PDH-CSV"):
        raise GarbledOutput(host, f"esxtop: not a batch CSV (first field {header[0][:40]!r})")
    if len(rows) < 2:
        raise GarbledOutput(host, "esxtop: a header but no sample")
    last = rows[-1]
    if len(last) != len(header):
        raise GarbledOutput(host, f"esxtop: the sample has {len(last)} columns, its header {len(header)}")
    return header, last


def _columns(header: list[str], row: list[str]) -> dict[tuple[str, str], dict[str, float | None] | None]:
    """(object, instance) -> counter -> value, for the WANTED counters; None for an instance whose
    columns come twice (two VMs of one name: which numbers are whose is unknowable)."""
    found: dict[tuple[str, str], dict[str, float | None] | None] = {}
    for name, value in zip(header[1:], row[1:], strict=True):
        match = _COLUMN.match(name)
        if match is None or match.group("counter") not in WANTED.get(match.group("object"), ()):
            continue
        key, counter = (match.group("object"), match.group("instance")), match.group("counter")
        counters = found.setdefault(key, {})
        if counters is not None and counter in counters:
            found[key] = None
        elif counters is not None:
            counters[counter] = _number(value)
    return found


def _product(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a * b


def _bytes_per_s(packets: float | None, size: float | None, mbits: float | None) -> float | None:
    by_packets = _product(packets, size)
    if by_packets is not None:
        return by_packets
    return None if mbits is None else mbits * MEBI / 8


def _add(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total + part


def parse_esxtop(text: str, host: str = "") -> EsxtopSample:
    """The last sample of `esxtop -b` (whole or cut down by command()'s filter), per VM."""
    header, row = _rows(text, host)
    ready: dict[str, float | None] = {}
    disks: dict[str, DiskRates | None] = {}
    ports: dict[int, list[PortRates]] = {}
    for (obj, instance), counters in _columns(header, row).items():
        if obj == GROUP:
            group = _GROUP.match(instance)
            if group is not None:
                name = plain_name(group.group("name"))
                ready[name] = None if name in ready or counters is None else counters.get(READY)
        elif obj == DISK and not _DEVICE.search(instance):
            name = plain_name(instance)
            if counters is None or name in disks:
                disks[name] = None
                continue
            rates = DiskRates(
                read_bps=None if (mb := counters.get(READ_MB)) is None else mb * MEBI,
                write_bps=None if (mb := counters.get(WRITE_MB)) is None else mb * MEBI,
                read_iops=counters.get(READS),
                write_iops=counters.get(WRITES),
            )
            disks[name] = rates
        elif obj == PORT and counters is not None:
            port = _VM_PORT.match(instance)
            if port is not None:  # the host's own ports (uplinks, vmkernel NICs) name no world
                ports.setdefault(int(port.group("world")), []).append(
                    PortRates(
                        name=plain_name(port.group("name")),
                        rx_bps=_bytes_per_s(counters.get(RX_PACKETS), counters.get(RX_SIZE), counters.get(RX_MBITS)),
                        tx_bps=_bytes_per_s(counters.get(TX_PACKETS), counters.get(TX_SIZE), counters.get(TX_MBITS)),
                    )
                )
    return EsxtopSample(ready=ready, disks=disks, ports=ports)


def _vm_ports(sample: EsxtopSample, name: str, world: int | None) -> list[PortRates] | None:
    if world is not None:
        return sample.ports.get(world)
    worlds = [w for w, ports in sample.ports.items() if any(p.name == name for p in ports)]
    return sample.ports[worlds[0]] if len(worlds) == 1 else None


def apply_esxtop(domain: Domain, sample: EsxtopSample, world: int | None, shared_names: Iterable[str] = ()) -> Domain:
    """`domain` with the esxtop rates merged into its gauges (running VMs only; what esxtop lacks stays None)."""
    if domain.state is not PowerState.RUNNING:
        return domain
    name = plain_name(domain.name)
    by_name = name not in {plain_name(n) for n in shared_names}
    ready = sample.ready.get(name) if by_name else None
    disk = sample.disks.get(name) if by_name else None
    ports = _vm_ports(sample, name, world)
    contention = None
    if ready is not None and domain.vcpus:
        # Per-vCPU share of the interval, like esxi_api's cpu.ready / (interval * vCPUs).
        contention = min(100.0, ready / domain.vcpus)
    rx = tx = None
    if ports:
        rx, tx = 0.0, 0.0
        for port in ports:
            rx, tx = _add(rx, port.rx_bps), _add(tx, port.tx_bps)
    found = DomainGauges(
        contention_percent=contention,
        disk_read_bps=disk.read_bps if disk else None,
        disk_write_bps=disk.write_bps if disk else None,
        disk_read_iops=disk.read_iops if disk else None,
        disk_write_iops=disk.write_iops if disk else None,
        net_rx_bps=rx,
        net_tx_bps=tx,
    )
    if found == DomainGauges():
        return domain
    base = domain.gauges or DomainGauges()
    return replace(domain, gauges=replace(found, cpu_percent=base.cpu_percent))
