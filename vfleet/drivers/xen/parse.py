"""Pure parsers for the xl toolstack's text output (no I/O here).

Formats follow Xen's own printf formats (tools/xl/xl_info.c, tools/xentop/xentop.c)
and the real Xen 4.17 captures in the fixtures. Columns are read from the right,
because names are free text: longer than the column, with spaces, `#` or `(null)`.
Anything that does not fit the format is GarbledOutput: never guess a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainCounters, DomainGauges, HostFacts, PowerState

KIB = 1024
MIB = 1024 * 1024
SECTOR = 512  # xentop VBD_RSECT/VBD_WSECT count 512-byte sectors
XENTOP_NAME_WIDTH = 10  # xentop prints "%10.10s": longer names are cut
NOT_RUNNING = "(not running)"  # raw state of a configured domain that xl does not list

XL_LIST_HEADER = ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")
_XL_ROW = re.compile(
    r"^(?P<name>.*?)\s+(?P<id>\d+)\s+(?P<mem>\d+)\s+(?P<vcpus>\d+)\s+"
    r"(?P<state>[r-][b-][p-][s-][-rscwS?][d-])\s+(?P<time>\d+\.\d)\s*$"
)
_XENTOP_STATE = re.compile(r"^[d-][s-][b-][c-][p-][r-]$")
_INT = re.compile(r"^\d+$")
_DECIMAL = re.compile(r"^\d+(?:\.\d+)?$")
_INFO_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_]+)\s*: ?(?P<value>.*)$")
XENTOP_REQUIRED = ("NAME", "STATE", "CPU(sec)", "CPU(%)", "MEM(k)", "MAXMEM(k)", "VCPUS")

# The fifth xl flag is the shutdown reason letter ("-rscwS", '?' if unknown to xl).
_SHUTDOWN_REASON: Mapping[str, PowerState] = {
    "-": PowerState.SHUTTING_DOWN,  # poweroff: torn down next
    "r": PowerState.SHUTTING_DOWN,  # reboot: a new domain replaces it
    "s": PowerState.SUSPENDED,  # suspend (save/migrate)
    "c": PowerState.CRASHED,
    "w": PowerState.CRASHED,  # watchdog fired
    "S": PowerState.SHUTTING_DOWN,  # soft reset in progress
    "?": PowerState.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class XlListRow:
    name: str
    domid: int
    mem_mib: int
    vcpus: int
    flags: str
    cpu_time_ns: int


@dataclass(frozen=True, slots=True)
class XentopRow:
    name: str  # cut to 10 characters by xentop
    state: str
    cpu_seconds: int
    cpu_percent: float
    mem_kib: int
    maxmem_kib: int | None  # None: "no limit"
    vcpus: int
    net_tx_kib: int | None
    net_rx_kib: int | None
    vbd_rd: int | None
    vbd_wr: int | None
    vbd_rsect: int | None  # absent in older xentop
    vbd_wsect: int | None


def _lines(text: str, what: str, host: str) -> list[str]:
    if not text.strip():
        raise GarbledOutput(host, f"{what}: empty output")
    if not text.endswith("\n"):  # every real line ends with a newline; a cut one must not pass as a number
        raise GarbledOutput(host, f"{what}: output ends in the middle of a line (truncated)")
    return [line for line in text.splitlines() if line.strip()]


def xl_power_state(flags: str) -> PowerState:
    """Map xl list's six flags (r b p s REASON d) explicitly; precedence: dying, shutdown, paused."""
    if len(flags) != 6:
        return PowerState.UNKNOWN
    paused, shutdown, reason, dying = flags[2], flags[3], flags[4], flags[5]
    if dying == "d":
        return PowerState.SHUTTING_DOWN
    if shutdown == "s":
        return _SHUTDOWN_REASON.get(reason, PowerState.UNKNOWN)
    if reason != "-":  # a reason without the shutdown flag is not something xl prints
        return PowerState.UNKNOWN
    if paused == "p":
        return PowerState.PAUSED
    return PowerState.RUNNING  # r, b, or "------": runnable and waiting for a CPU


def parse_xl_list(text: str, host: str = "") -> list[XlListRow]:
    lines = _lines(text, "xl list", host)
    if tuple(lines[0].split()) != XL_LIST_HEADER:
        raise GarbledOutput(host, f"xl list: unexpected header {lines[0].strip()[:80]!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        match = _XL_ROW.match(line)
        name = match.group("name").strip() if match else ""
        if match is None or not name:
            raise GarbledOutput(host, f"xl list: line {number} does not look like a domain: {line.strip()[:80]!r}")
        rows.append(
            XlListRow(
                name=name,
                domid=int(match.group("id")),
                mem_mib=int(match.group("mem")),
                vcpus=int(match.group("vcpus")),
                flags=match.group("state"),
                cpu_time_ns=int(Decimal(match.group("time")) * 1_000_000_000),
            )
        )
    return rows


def _split_xentop_row(line: str, columns: Sequence[str], number: int, host: str) -> dict[str, str | None]:
    """Take the columns after NAME from the right; what is left is the name."""
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", line)]
    values: dict[str, str | None] = {}
    for column in reversed(columns):
        if not tokens:
            raise GarbledOutput(host, f"xentop: line {number} has too few columns")
        _, token = tokens.pop()
        if column == "MAXMEM(k)" and token == "limit" and tokens and tokens[-1][1] == "no":
            tokens.pop()
            values[column] = None
        else:
            values[column] = token
    name = line[: tokens[-1][0] + len(tokens[-1][1])].strip() if tokens else ""
    if not name:
        raise GarbledOutput(host, f"xentop: line {number} has no domain name")
    values["NAME"] = name
    return values


def _number(values: Mapping[str, str | None], column: str, pattern: re.Pattern[str], number: int, host: str) -> str:
    value = values.get(column)
    if value is None or not pattern.match(value):
        raise GarbledOutput(host, f"xentop: line {number}: {column} is {value!r}, not a number")
    return value


def _optional_int(values: Mapping[str, str | None], column: str, number: int, host: str) -> int | None:
    if column not in values:
        return None
    return int(_number(values, column, _INT, number, host))


def _xentop_row(values: Mapping[str, str | None], number: int, host: str) -> XentopRow:
    state = values.get("STATE") or ""
    if not _XENTOP_STATE.match(state):
        raise GarbledOutput(host, f"xentop: line {number}: bad state {state!r}")
    maxmem = values.get("MAXMEM(k)", "")
    if values.get("MAXMEM(k)") is None:
        if values.get("MAXMEM(%)") not in (None, "n/a"):
            raise GarbledOutput(host, f"xentop: line {number}: 'no limit' with a MAXMEM(%) of {values['MAXMEM(%)']!r}")
        maxmem_kib = None
    elif maxmem is not None and _INT.match(maxmem):
        maxmem_kib = int(maxmem)
    else:
        raise GarbledOutput(host, f"xentop: line {number}: MAXMEM(k) is {maxmem!r}, not a number")
    for percent in ("MEM(%)", "MAXMEM(%)"):
        value = values.get(percent)
        if percent in values and value != "n/a" and (value is None or not _DECIMAL.match(value)):
            raise GarbledOutput(host, f"xentop: line {number}: {percent} is {value!r}, not a number")
    return XentopRow(
        name=str(values["NAME"]),
        state=state,
        cpu_seconds=int(_number(values, "CPU(sec)", _INT, number, host)),
        cpu_percent=float(_number(values, "CPU(%)", _DECIMAL, number, host)),
        mem_kib=int(_number(values, "MEM(k)", _INT, number, host)),
        maxmem_kib=maxmem_kib,
        vcpus=int(_number(values, "VCPUS", _INT, number, host)),
        net_tx_kib=_optional_int(values, "NETTX(k)", number, host),
        net_rx_kib=_optional_int(values, "NETRX(k)", number, host),
        vbd_rd=_optional_int(values, "VBD_RD", number, host),
        vbd_wr=_optional_int(values, "VBD_WR", number, host),
        vbd_rsect=_optional_int(values, "VBD_RSECT", number, host),
        vbd_wsect=_optional_int(values, "VBD_WSECT", number, host),
    )


def parse_xentop(text: str, host: str = "", iterations: int = 2) -> list[XentopRow]:
    """The LAST block of `xentop -b -i N`: the first one's CPU(%) is always 0.0."""
    lines = _lines(text, "xentop", host)
    blocks: list[tuple[list[str], list[tuple[int, str]]]] = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if tokens[:2] == ["NAME", "STATE"]:
            missing = [c for c in XENTOP_REQUIRED if c not in tokens]
            if missing or len(set(tokens)) != len(tokens):
                raise GarbledOutput(host, f"xentop: header on line {number} lacks {', '.join(missing) or 'unique'}")
            blocks.append((tokens, []))
        elif not blocks:
            raise GarbledOutput(host, f"xentop: line {number} comes before any header: {line.strip()[:80]!r}")
        else:
            blocks[-1][1].append((number, line))
    if len(blocks) != iterations:
        raise GarbledOutput(host, f"xentop: {len(blocks)} blocks where {iterations} were asked for (truncated?)")
    header, rows = blocks[-1]
    return [_xentop_row(_split_xentop_row(line, header[1:], number, host), number, host) for number, line in rows]


def parse_xl_info(text: str, host: str = "") -> HostFacts:
    values: dict[str, str] = {}
    for number, line in enumerate(_lines(text, "xl info", host), start=1):
        match = _INFO_LINE.match(line)
        if match is None:
            raise GarbledOutput(host, f"xl info: line {number} is not 'key : value': {line.strip()[:80]!r}")
        values[match.group("key")] = match.group("value").strip()
    if "xen_version" not in values and "xen_major" not in values:
        raise GarbledOutput(host, "xl info: no xen_version: is this the output of `xl info`?")

    def integer(key: str) -> int | None:
        value = values.get(key)
        if value is None:
            return None
        if not _INT.match(value):
            raise GarbledOutput(host, f"xl info: {key} is {value!r}, not a number")
        return int(value)

    memory_mib = integer("total_memory")
    version = values.get("xen_version")
    if not version and all(k in values for k in ("xen_major", "xen_minor", "xen_extra")):  # older xl
        version = f"{values['xen_major']}.{values['xen_minor']}{values['xen_extra']}"
    return HostFacts(
        hypervisor="xen",
        version=version or None,
        hostname=values.get("host") or None,
        cpus=integer("nr_cpus"),
        memory_bytes=memory_mib * MIB if memory_mib is not None else None,
    )


def config_names(text: str) -> list[str]:
    """Domain names from `ls -1 CONFIG_DIR`: every NAME.cfg there can be started."""
    return sorted(line[: -len(".cfg")] for line in text.splitlines() if line.endswith(".cfg") and len(line) > 4)


def _match_xentop(rows: Sequence[XlListRow], top: Iterable[XentopRow]) -> dict[int, XentopRow]:
    """xl list row index -> its xentop row; ambiguous cut names match nothing (no wrong numbers)."""
    by_cut: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_cut.setdefault(row.name[:XENTOP_NAME_WIDTH].strip(), []).append(index)
    top_by_name: dict[str, list[XentopRow]] = {}
    for item in top:
        top_by_name.setdefault(item.name, []).append(item)
    matched = {}
    for name, indices in by_cut.items():
        candidates = top_by_name.get(name, [])
        if len(indices) == 1 and len(candidates) == 1:
            matched[indices[0]] = candidates[0]
    return matched


def build_domains(
    rows: Sequence[XlListRow], top: Sequence[XentopRow], configured: Iterable[str], taken_at: float
) -> tuple[Domain, ...]:
    matched = _match_xentop(rows, top)
    domains = []
    for index, row in enumerate(rows):
        stats = matched.get(index)
        gauges = None
        if stats is not None and row.vcpus > 0:
            # xentop's CPU(%) is of one physical CPU; ours is of the domain's own vCPUs.
            gauges = DomainGauges(cpu_percent=min(100.0, stats.cpu_percent / row.vcpus))
        counters = DomainCounters(
            taken_at=taken_at,
            cpu_time_ns=row.cpu_time_ns,  # xl list has 0.1 s resolution, xentop only whole seconds
            disk_read_bytes=_times(stats.vbd_rsect, SECTOR) if stats else None,
            disk_write_bytes=_times(stats.vbd_wsect, SECTOR) if stats else None,
            disk_read_reqs=stats.vbd_rd if stats else None,
            disk_write_reqs=stats.vbd_wr if stats else None,
            net_rx_bytes=_times(stats.net_rx_kib, KIB) if stats else None,
            net_tx_bytes=_times(stats.net_tx_kib, KIB) if stats else None,
        )
        domains.append(
            Domain(
                name=row.name,
                state=xl_power_state(row.flags),
                raw_state=row.flags,
                domain_id=row.domid,
                vcpus=row.vcpus,
                memory_max_bytes=_times(stats.maxmem_kib, KIB) if stats else None,
                # Xen reports allocation only: never pass it off as usage (memory_used stays None).
                memory_current_bytes=stats.mem_kib * KIB if stats else row.mem_mib * MIB,
                counters=counters,
                gauges=gauges,
                protected=row.domid == 0,  # Domain-0 is the host itself
            )
        )
    running = {row.name for row in rows}
    for name in configured:
        if name not in running:
            domains.append(Domain(name=name, state=PowerState.OFF, raw_state=NOT_RUNNING))
    return tuple(domains)


def _times(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor
