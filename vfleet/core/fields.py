"""The columns of the domain table as data: their keys, what they show, how they sort.

The console's table (widgets/columns.py draws them), the config file (`columns`,
`sort`, views) and `status`/`top --view` all name columns by these keys, so a view
means the same thing in every face. Numeric columns sort descending first (the
busiest on top, as top does); text columns ascending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vfleet.core.metrics import DomainRow
from vfleet.core.models import Value

Record = dict[str, Any]  # one domain record of vfleet.core.report


def _memory_used_percent(row: DomainRow) -> float | None:
    from vfleet.core.thresholds import memory_used_percent  # here: `status` loads no thresholds

    return memory_used_percent(row.domain)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Field(Value):
    key: str
    doc: str
    numeric: bool
    row_value: Callable[[DomainRow], Any] | None = None  # the sort value; None: not sortable
    record_value: Callable[[Record], Any] | None = None  # the same value from a report record

    @property
    def sortable(self) -> bool:
        return self.row_value is not None


def _total(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _record_total(a: str, b: str) -> Callable[[Record], float | None]:
    return lambda r: _total(r.get(a), r.get(b))


def _record_mem_pct(record: Record) -> float | None:
    used, most = record.get("mem_used_bytes"), record.get("mem_max_bytes")
    return None if used is None or not most else 100.0 * used / most


FIELDS: tuple[Field, ...] = (
    Field("host", "host name", False, lambda r: r.host, lambda r: r["host"]),
    Field("hv", "hypervisor (kvm, xen, esxi ...)", False, lambda r: r.hypervisor, lambda r: r["hypervisor"]),
    Field(
        "node",
        "the server it runs on in a pool or cluster (shown when a domain has one)",
        False,
        lambda r: r.domain.node,
        lambda r: r.get("node"),
    ),
    Field("name", "domain name (always shown)", False, lambda r: r.domain.name.lower(), lambda r: r["name"].lower()),
    Field("state", "power state (always shown)", False, lambda r: r.domain.state.value, lambda r: r["state"]),
    Field("cpu", "CPU % of the domain's vCPUs", True, lambda r: r.rates.cpu_percent, lambda r: r["cpu_pct"]),
    Field("spark", "CPU % history (sparkline)", False),
    Field("vcpus", "virtual CPUs", True, lambda r: r.domain.vcpus, lambda r: r["vcpus"]),
    Field(
        "mem",
        "memory used (g guest, r host RSS, h hypervisor) / allocated",
        True,
        lambda r: r.domain.memory_used_bytes,
        lambda r: r["mem_used_bytes"],
    ),
    Field("mem_pct", "memory used, % of the maximum", True, _memory_used_percent, _record_mem_pct),
    Field(
        "disk",
        "disk read/write bytes/s",
        True,
        lambda r: _total(r.rates.disk_read_bps, r.rates.disk_write_bps),
        _record_total("disk_read_bps", "disk_write_bps"),
    ),
    Field(
        "iops",
        "disk read/write operations/s",
        True,
        lambda r: _total(r.rates.disk_read_iops, r.rates.disk_write_iops),
        _record_total("disk_read_iops", "disk_write_iops"),
    ),
    Field(
        "net",
        "network receive/transmit bytes/s",
        True,
        lambda r: _total(r.rates.net_rx_bps, r.rates.net_tx_bps),
        _record_total("net_rx_bps", "net_tx_bps"),
    ),
    Field(
        "cont",
        "contention: % of time vCPUs waited for a physical CPU",
        True,
        lambda r: r.rates.contention_percent,
        lambda r: r["contention_pct"],
    ),
    Field("uptime", "time since the domain started", True, lambda r: r.domain.uptime_s, lambda r: r["uptime_s"]),
    Field("snaps", "how many snapshots the domain has", True, lambda r: r.domain.snapshot_count,
          lambda r: r["snapshots"]),
    Field("snap_age", "age of the domain's oldest snapshot", True, lambda r: r.domain.snapshot_age(),
          lambda r: r["oldest_snapshot_age_s"]),
    Field("tags", "the host's tags", False, lambda r: " ".join(sorted(r.tags)), lambda r: " ".join(r["tags"])),
)
BY_KEY = {f.key: f for f in FIELDS}
KEYS = tuple(BY_KEY)
SORTABLE = tuple(f.key for f in FIELDS if f.sortable)
ALWAYS_SHOWN = ("name", "state")  # a row means nothing without them: never hidden, never dropped


def starts_descending(key: str) -> bool:
    """The direction a first sort on this column takes: numbers biggest first, text A to Z."""
    return BY_KEY[key].numeric


def sort_value(value: Any, numeric: bool) -> tuple[int, Any]:
    # Unknown values sort below every known one: at the bottom of a descending sort.
    if value is None:
        return (0, 0.0 if numeric else "")
    return (1, float(value) if numeric else value)


def sort_records(records: list[Record], key: str, descending: bool) -> list[Record]:
    """Report records in a view's order; ties keep host, then name order."""
    field = BY_KEY[key]
    get = field.record_value
    if get is None:
        raise ValueError(f"column {key!r} is not sortable")
    ordered = sorted(records, key=lambda r: (r["host"], r["name"].lower()))
    return sorted(ordered, key=lambda r: sort_value(get(r), field.numeric), reverse=descending)
