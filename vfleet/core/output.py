"""Renderers for headless output: table, JSON, CSV and NDJSON. stdout only gets data.

Table and CSV text is escaped with printable() (remote names must not drive the
terminal they are printed on); JSON keeps every string exact, and with
ensure_ascii it escapes every non-ASCII character too (C1 controls, bidi), so a
JSON document is also safe on a terminal.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from vfleet.core.aggregates import SUMMARY_COLUMNS, fleet_lines, hypervisor_family, node_rows, summary_cells
from vfleet.core.fields import ALWAYS_SHOWN, KEYS
from vfleet.core.report import DOMAIN_FIELDS, Report
from vfleet.core.sanitize import display_width, pad, printable

_TABLE_COLUMNS = (
    ("HOST", "host"),
    ("NODE", "node"),  # only when some domain has one (a pool or a vCenter)
    ("HV", "hypervisor"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("VCPU", "vcpus"),
    ("CPU%", "cpu_pct"),
    ("MEM USED", "mem_used"),
    ("MEM ALLOC", "mem_current_bytes"),
    ("DISK R/s", "disk_read_bps"),
    ("DISK W/s", "disk_write_bps"),
    ("NET RX/s", "net_rx_bps"),
    ("NET TX/s", "net_tx_bps"),
    ("CONT%", "contention_pct"),
    ("UPTIME", "uptime_s"),
)
# Shown only when a view asks for them (`status --view`).
_EXTRA_COLUMNS = (
    ("MEM%", "mem_pct"),
    ("IOPS R", "disk_read_iops"),
    ("IOPS W", "disk_write_iops"),
    ("TAGS", "tags"),
    ("SNAPS", "snapshots"),
    ("SNAP AGE", "oldest_snapshot_age_s"),
)
# The console's column keys (vfleet.core.fields) -> this table's columns.
_FIELD_COLUMNS = {
    "host": ("host",),
    "hv": ("hypervisor",),
    "node": ("node",),
    "name": ("name",),
    "state": ("state",),
    "cpu": ("cpu_pct",),
    "spark": (),  # a history: the console has one, a snapshot does not
    "vcpus": ("vcpus",),
    "mem": ("mem_used", "mem_current_bytes"),
    "mem_pct": ("mem_pct",),
    "disk": ("disk_read_bps", "disk_write_bps"),
    "iops": ("disk_read_iops", "disk_write_iops"),
    "net": ("net_rx_bps", "net_tx_bps"),
    "cont": ("contention_pct",),
    "uptime": ("uptime_s",),
    "tags": ("tags",),
    "snaps": ("snapshots",),
    "snap_age": ("oldest_snapshot_age_s",),
}
assert set(_FIELD_COLUMNS) == set(KEYS)
_TITLES = dict((key, title) for title, key in (*_TABLE_COLUMNS, *_EXTRA_COLUMNS))
_RIGHT = {
    "vcpus",
    "cpu_pct",
    "mem_used",
    "mem_current_bytes",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
    "contention_pct",
    "uptime_s",
    "mem_pct",
    "disk_read_iops",
    "disk_write_iops",
    "snapshots",
    "oldest_snapshot_age_s",
}


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _cell(record: dict[str, Any], key: str) -> str:
    if key == "mem_pct":
        used, most = record["mem_used_bytes"], record["mem_max_bytes"]
        return "-" if used is None or not most else f"{100.0 * used / most:.1f}"
    if key == "tags":
        return printable(",".join(record["tags"])) or "-"
    if key.endswith("_iops"):
        return "-" if record.get(key) is None else f"{record[key]:.0f}"
    if key == "mem_used":
        used, source = record["mem_used_bytes"], record["mem_used_source"]
        return "-" if used is None else f"{human_bytes(used)}({source[0]})"
    value = record.get(key)
    if value is None:
        return "-"
    if key.endswith("_bps") or key.endswith("_bytes"):
        return human_bytes(value)
    if key in ("uptime_s", "oldest_snapshot_age_s"):
        return human_duration(value)
    if key == "state" and record.get("stale"):
        return f"{value}?"
    return printable(str(value))


def table(records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """The records as text; `columns` (the console's column keys, as a view names them) picks which."""
    if columns is None:
        with_node = any(r.get("node") is not None for r in records)
        keys = [key for _, key in _TABLE_COLUMNS if key != "node" or with_node]
    else:
        wanted = {*columns, *ALWAYS_SHOWN}
        keys = [key for field in KEYS if field in wanted for key in _FIELD_COLUMNS[field]]
    rows = [[_cell(r, key) for key in keys] for r in records]
    headers = [_TITLES[key] for key in keys]
    right = [key in _RIGHT for key in keys]
    return grid(headers, rows, right)


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Aligned columns of already printable cells, two spaces apart."""
    # Widths in terminal cells, not code points (a CJK name is twice as wide as its
    # len()); ASCII cells, nearly all of them, take the plain str methods.
    widths = [
        max([len(h)] + [len(c) if c.isascii() else display_width(c) for c in (row[i] for row in rows)])
        for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        out = [
            (c.rjust(w) if r else c.ljust(w)) if c.isascii() else pad(c, w, right=r)
            for c, w, r in zip(cells, widths, right, strict=False)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def as_json(document: dict[str, Any], *, indent: int | None = 2) -> str:
    """The document as JSON, ASCII only: exact after parsing, and never raw on a terminal.

    orjson encodes a large `top` frame about 10x faster than json; it has no
    ensure_ascii, so a document with non-ASCII text (or anything orjson refuses:
    integers past 64 bits, an indent other than 2) takes json's escaping path.
    """
    if indent in (None, 2) and _large(document):
        import orjson  # here, and only for large documents: loading it costs more than a small one
        try:
            encoded = orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0)
        except orjson.JSONEncodeError:
            pass
        else:
            if encoded.isascii():
                return encoded.decode("ascii") + "\n"
    return json.dumps(document, indent=indent, sort_keys=False, ensure_ascii=True) + "\n"


LARGE_DOCUMENT = 500  # records: below this, json is done before orjson would have loaded (3 ms)


def _large(document: Any) -> bool:
    records = document.get("domains") if isinstance(document, dict) else None
    return isinstance(records, list) and len(records) >= LARGE_DOCUMENT


def as_csv(records: Sequence[dict[str, Any]]) -> str:
    import csv  # here: status -o json and table need not load it

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=DOMAIN_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {key: printable(value) if isinstance(value, str) else value for key, value in record.items()}
        writer.writerow({**row, "tags": printable(" ".join(record["tags"]))})
    return buffer.getvalue()


def hosts_table(report: Report) -> str:
    """One line per host with its aggregates, and one per server of a pool or cluster (`top -o table`)."""
    headers = ["HOST", "STATUS", *(title for _, title in SUMMARY_COLUMNS), "HV", "AGE", "PROBLEM"]
    rows = []
    for record, summary in zip(report.hosts, report.host_summaries, strict=True):
        age = record["data_age_s"]
        rows.append(
            [
                printable(record["name"]),
                record["status"],
                *summary_cells(summary),
                printable(record["hypervisor"] or hypervisor_family(record["driver"])),
                "-" if age is None else f"{age:.1f}s",
                printable(report.problems.get(record["name"], "")),
            ]
        )
        # a pool's or cluster's servers, each on a line under it
        rows.extend(
            [f" └ {name}", "", *cells, "", "", ""]
            for name, *cells in node_rows(report.node_summaries.get(record["name"], ()))
        )
    right = [False, False, *(True for _ in SUMMARY_COLUMNS), False, True, False]
    return grid(headers, rows, right)


def top_frame(report: Report, iteration: int, clock: str, columns: Sequence[str] | None = None) -> str:
    """A frame of `top -o table`: the fleet's header, its hosts, then its domains (a view's columns)."""
    lines = [f"vfleet top · frame {iteration} · {clock}", *fleet_lines(report.summary)]
    return "\n".join(lines) + "\n\n" + hosts_table(report) + "\n" + table(report.domains, columns)
