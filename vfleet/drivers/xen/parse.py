"""Pure parsers for the xl toolstack's text output (no I/O here).

Formats follow Xen's own printf formats (tools/xl/xl_info.c, tools/xentop/xentop.c)
and the real Xen 4.17 captures in the fixtures. Columns are read from the right,
because names are free text: longer than the column, with spaces, `#` or `(null)`.
Anything that does not fit the format is GarbledOutput: never guess a number.

Identity: xl gives a domain a new UUID at every `xl create` (unless its config pins one),
so the key is the name, which also names the config file of a domain that is off; the UUID
(`xl list -v`) is shown. A domain xl prints as `(null)` (torn down: its name is gone from
xenstore) is keyed by name and domain id, and so is an older domain that shares a name.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import Domain, DomainCounters, DomainGauges, HostFacts, PowerState

KIB = 1024
MIB = 1024 * 1024
SECTOR = 512  # xentop VBD_RSECT/VBD_WSECT count 512-byte sectors
XENTOP_NAME_WIDTH = 10  # xentop prints "%10.10s": longer names are cut (but "%10s" with -f)
NOT_RUNNING = "(not running)"  # raw state of a configured domain that xl does not list
NAMELESS = "(null)"  # what xl prints (printf of a NULL name) for a domain being torn down

XL_LIST_HEADER = ("Name", "ID", "Mem", "VCPUs", "State", "Time(s)")
XL_LIST_VERBOSE = ("UUID", "Reason-Code", "Security", "Label")  # `xl list -v` adds these
_XL_COLUMNS = (
    r"\s+(?P<id>\d+)\s+(?P<mem>\d+)\s+(?P<vcpus>\d+)\s+"
    r"(?P<state>[r-][b-][p-][s-][-rscwS?][d-])\s+(?P<time>\d+\.\d)"
)
_XL_ROW = re.compile(r"^(?P<name>.*?)" + _XL_COLUMNS + r"\s*$")
# -v: " UUID", the shutdown reason (" %8x", or "-"), the XSM label (" %16s", "-" without XSM)
_XL_ROW_VERBOSE = re.compile(
    r"^(?P<name>.*)" + _XL_COLUMNS + r"\s+(?P<uuid>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})"
    r"\s+(?:-|[0-9a-f]+)(?:\s+\S+)?\s*$"
)
# tools/xl: "%-33s %4d %s" with "%d days, %2d:%02d:%02d" (or "1 day, ...", or just "%2d:%02d:%02d")
_UPTIME_ROW = re.compile(
    r"^(?P<name>.*?)\s+(?P<id>\d+)\s+(?:(?P<days>\d+) days?,\s+)?(?P<h>\d+):(?P<m>[0-5]\d):(?P<s>[0-5]\d)\s*$"
)
UPTIME_HEADER = ("Name", "ID", "Uptime")
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # strcasecmp, C locale
_FULL_NAME_OPTION = re.compile(r"^\s*-f, --full-name\b", re.M)  # tools/xentop usage()
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
    uuid: str | None = None  # `xl list -v` only


@dataclass(frozen=True, slots=True)
class XentopRow:
    name: str  # cut to 10 characters by xentop, unless it was asked for full names (-f)
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
    nets: int | None = None  # how many vifs / vbds the domain has; None: column absent
    vbds: int | None = None


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
    """`xl list`, or `xl list -v` (which adds each domain's UUID)."""
    lines = _lines(text, "xl list", host)
    header = tuple(lines[0].split())
    if header not in (XL_LIST_HEADER, XL_LIST_HEADER + XL_LIST_VERBOSE):
        raise GarbledOutput(host, f"xl list: unexpected header {lines[0].strip()[:80]!r}")
    pattern = _XL_ROW_VERBOSE if header != XL_LIST_HEADER else _XL_ROW
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        match = pattern.match(line)
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
                uuid=match.group("uuid").lower() if pattern is _XL_ROW_VERBOSE else None,
            )
        )
    return rows


def parse_xl_uptime(text: str, host: str = "") -> dict[int, tuple[str, int]]:
    """`xl uptime`: domain id -> (name, seconds up)."""
    lines = _lines(text, "xl uptime", host)
    if tuple(lines[0].split()) != UPTIME_HEADER:
        raise GarbledOutput(host, f"xl uptime: unexpected header {lines[0].strip()[:80]!r}")
    uptimes = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _UPTIME_ROW.match(line)
        name = match.group("name").strip() if match else ""
        if match is None or not name:
            raise GarbledOutput(host, f"xl uptime: line {number} is not 'NAME ID UPTIME': {line.strip()[:80]!r}")
        days = int(match.group("days") or 0)
        seconds = ((days * 24 + int(match.group("h"))) * 60 + int(match.group("m"))) * 60 + int(match.group("s"))
        uptimes[int(match.group("id"))] = (name, seconds)
    return uptimes


def xentop_has_full_names(help_text: str) -> bool:
    """Whether `xentop -h` offers -f (full names; Xen 4.3 and later): older ones cut names to 10."""
    return _FULL_NAME_OPTION.search(help_text) is not None


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
        nets=_optional_int(values, "NETS", number, host),
        vbds=_optional_int(values, "VBDS", number, host),
    )


def parse_xentop(text: str, host: str = "", iterations: int = 2) -> list[XentopRow]:
    """The LAST block of `xentop -b -i N`: the first one's CPU(%) is always 0.0.

    Some builds (and `-r`) print the header before every domain: then an iteration starts
    where the first domain (Domain-0: xentop sorts by domain id) comes round again."""
    lines = _lines(text, "xentop", host)
    blocks = _xentop_blocks(lines, host)
    if len(blocks) > iterations and all(len(rows) == 1 for _, rows in blocks):
        blocks = _iterations_of_repeated_headers(blocks, iterations, host)
    if len(blocks) != iterations:
        raise GarbledOutput(host, f"xentop: {len(blocks)} blocks where {iterations} were asked for (truncated?)")
    header, rows = blocks[-1]
    return [_xentop_row(_split_xentop_row(line, header[1:], number, host), number, host) for number, line in rows]


_Block = tuple[list[str], list[tuple[int, str]]]  # a header's columns, then its (line number, row) pairs


def _iterations_of_repeated_headers(blocks: list[_Block], iterations: int, host: str) -> list[_Block]:
    names = [_split_xentop_row(rows[0][1], header[1:], rows[0][0], host)["NAME"] for header, rows in blocks]
    first = names[0]
    starts = [i for i, name in enumerate(names) if name == first]
    if len(starts) != iterations:
        raise GarbledOutput(
            host,
            f"xentop: a header before every domain, and {first!r:.40} {len(starts)} times in {iterations} "
            "iterations: cannot tell the iterations apart",
        )
    bounds = [*starts, len(blocks)]
    return [(blocks[a][0], [row for _, rows in blocks[a:b] for row in rows]) for a, b in itertools.pairwise(bounds)]


def _xentop_blocks(lines: list[str], host: str) -> list[_Block]:
    blocks: list[_Block] = []
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
    return blocks


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


def shown_name(name: str, full_names: bool) -> str:
    """The name as xentop prints it: whole with -f, else its first 10 characters."""
    return name.strip() if full_names else name[:XENTOP_NAME_WIDTH].strip()


def _xentop_orders(rows: Sequence[XlListRow]) -> list[tuple[list[int], set[int]]]:
    """The orders xentop may list `rows` in, each with the rows whose place in it is unsure:
    xentop sorts by full name (compare_name), with strcmp or with ASCII case folded
    (strcasecmp), and rows whose names tie may come in any order."""
    orders = []
    for key in (str, lambda name: name.translate(_ASCII_FOLD)):
        keys = [key(row.name) for row in rows]
        counts = Counter(keys)
        order = sorted(range(len(rows)), key=keys.__getitem__)
        orders.append((order, {i for i in order if counts[keys[i]] > 1}))
    return orders


def _match_xentop(rows: Sequence[XlListRow], top: Sequence[XentopRow], full_names: bool) -> dict[int, XentopRow]:
    """xl list row index -> its xentop row.

    xentop prints no domain id and lists domains by name (measured on Xen 4.17), cut or not.
    When its names are the xl rows' names in that order, the i-th of them is that domain, even
    where cut names are alike. If a domain came or went between the two commands, only names
    unique on both sides match. Rows that cannot be told apart get no numbers, not wrong ones."""
    shown = [shown_name(row.name, full_names) for row in rows]
    names = [item.name for item in top]
    fitting = [(order, unsure) for order, unsure in _xentop_orders(rows) if [shown[i] for i in order] == names]
    matched: dict[int, XentopRow] = {}
    if fitting:
        for position, item in enumerate(top):
            places = {None if order[position] in unsure else order[position] for order, unsure in fitting}
            index = places.pop() if len(places) == 1 else None
            if index is not None:
                matched[index] = item
        return matched
    by_shown: dict[str, list[int]] = {}
    for index, name in enumerate(shown):
        by_shown.setdefault(name, []).append(index)
    top_by_name: dict[str, list[XentopRow]] = {}
    for item in top:
        top_by_name.setdefault(item.name, []).append(item)
    for name, indices in by_shown.items():
        candidates = top_by_name.get(name, [])
        if len(indices) == 1 and len(candidates) == 1 and name != NAMELESS:  # `(null)` is no name to match by
            matched[indices[0]] = candidates[0]
    return matched


def _identities(rows: Sequence[XlListRow]) -> list[str]:
    """The key of each row: its name; NAME#ID for a nameless one and for all but the newest of a name."""
    newest: dict[str, int] = {}
    for row in rows:
        newest[row.name] = max(row.domid, newest.get(row.name, -1))
    return [
        row.name if row.name != NAMELESS and newest[row.name] == row.domid else f"{row.name}#{row.domid}"
        for row in rows
    ]


def build_domains(
    rows: Sequence[XlListRow],
    top: Sequence[XentopRow],
    configured: Iterable[str],
    taken_at: float,
    *,
    full_names: bool = False,
    uptimes: Mapping[int, tuple[str, int]] | None = None,
) -> tuple[Domain, ...]:
    """Domains from xl list (states, ids, UUIDs), xentop (counters; names cut unless `full_names`),
    `xl uptime` (by domain id and name) and the config files (domains that are off)."""
    matched = _match_xentop(rows, top, full_names)
    uptimes = uptimes or {}
    domains = []
    for index, (row, identity) in enumerate(zip(rows, _identities(rows), strict=True)):
        stats = matched.get(index)
        gauges = None
        if stats is not None and row.vcpus > 0:
            # xentop's CPU(%) is of one physical CPU; ours is of the domain's own vCPUs.
            gauges = DomainGauges(cpu_percent=min(100.0, stats.cpu_percent / row.vcpus))
        net = stats if stats is not None and stats.nets != 0 else None  # no vif: no counters, not zeros
        disk = stats if stats is not None and stats.vbds != 0 else None
        counters = DomainCounters(
            taken_at=taken_at,
            cpu_time_ns=row.cpu_time_ns,  # xl list has 0.1 s resolution, xentop only whole seconds
            disk_read_bytes=_times(disk.vbd_rsect, SECTOR) if disk else None,
            disk_write_bytes=_times(disk.vbd_wsect, SECTOR) if disk else None,
            disk_read_reqs=disk.vbd_rd if disk else None,
            disk_write_reqs=disk.vbd_wr if disk else None,
            net_rx_bytes=_times(net.net_rx_kib, KIB) if net else None,
            net_tx_bytes=_times(net.net_tx_kib, KIB) if net else None,
        )
        up = uptimes.get(row.domid)
        domains.append(
            Domain(
                name=row.name,
                state=xl_power_state(row.flags),
                raw_state=row.flags,
                uuid=row.uuid,
                identity=identity,
                domain_id=row.domid,
                vcpus=row.vcpus,
                memory_max_bytes=_times(stats.maxmem_kib, KIB) if stats else None,
                # Xen reports allocation only: never pass it off as usage (memory_used stays None).
                memory_current_bytes=stats.mem_kib * KIB if stats else row.mem_mib * MIB,
                uptime_s=float(up[1]) if up is not None and up[0] == row.name else None,
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
