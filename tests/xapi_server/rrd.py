"""/rrd_updates: metrics of the VMs resident on the host asked (and the host itself with
host=true), in rrdtool's xport layout, XML or JSON (metrics.md).

Values are a pure function of (object uuid, data source, sample time): asking twice for the
same window gives the same numbers, and they move as time passes. Busy VMs (web-01, the
hostile-name VM) run hot with contention; idle ones sit near zero. Units as xapi: cpuN and
runstate_* are fractions of time (0..1); memory, memory_target bytes; memory_internal_free
KiB; vbd_<dev>_read/write and vif_<n>_rx/tx bytes/s; vbd latencies ms; host memory_*_kib KiB.
Rows come newest first and values are written as xcp-rrdd writes them (%0.5g, NaN,
Infinity): XML, strict JSON (values as numbers, or as strings like current xapi with
`rrd_numbers_as_strings`), or the older unquoted-key JSON (`rrd_legacy_json`).
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from .pool import XapiPool

# seconds per row -> rows kept (5 s for 10 min, 1 min for 2 h, 1 h for a week, 1 day for a year)
ARCHIVES = {5: 120, 60: 120, 3600: 168, 86400: 366}


@dataclass(frozen=True)
class Profile:
    cpu: tuple[float, float]  # (low, high) of the fraction-of-time sources
    full_contention: tuple[float, float]
    partial_contention: tuple[float, float]
    io: float  # bytes/s scale of disk and network rates


PROFILES = {
    "busy": Profile(cpu=(0.55, 0.95), full_contention=(0.03, 0.09), partial_contention=(0.01, 0.04), io=4e6),
    "idle": Profile(cpu=(0.005, 0.03), full_contention=(0.0, 0.0004), partial_contention=(0.0, 0.0002), io=2e3),
}


@dataclass
class Query:
    start: int
    host: bool
    cf: str
    interval: int
    json: bool
    vm_uuids: list[str]


def _wave(key: str, t: int, low: float, high: float) -> float:
    """A smooth deterministic value in [low, high] for a source at time t."""
    phase = (zlib.crc32(key.encode()) % 1000) / 1000 * 2 * math.pi
    level = 0.5 + 0.35 * math.sin(2 * math.pi * t / 300 + phase) + 0.15 * math.sin(2 * math.pi * t / 37 + 2 * phase)
    return low + (high - low) * min(1.0, max(0.0, level))


def _vm_sources(pool: XapiPool, record: dict[str, Any]) -> list[tuple[str, Any]]:
    """(data source name, t -> value) of one resident VM; NaN for samples from before its
    domain started (its RRD did not exist yet), as xcp-rrdd writes them."""
    metrics = pool.store.objects.get("VM_metrics", {}).get(record["metrics"])
    started = metrics["start_time"].timestamp() if metrics else 0.0

    def since_start(fn: Any) -> Any:
        return lambda t: math.nan if t < started else fn(t)

    return [(name, since_start(fn)) for name, fn in _live_vm_sources(pool, record)]


def _live_vm_sources(pool: XapiPool, record: dict[str, Any]) -> list[tuple[str, Any]]:
    uuid = record["uuid"]
    profile = PROFILES[pool.seeded.load.get(uuid, "idle")]
    paused = record["power_state"] != "Running"
    vcpus = int(record["VCPUs_at_startup"])
    memory = float(record["memory_dynamic_max"])

    def frac(name: str, bounds: tuple[float, float]) -> Any:
        return lambda t: 0.0 if paused else _wave(f"{uuid}:{name}", t, *bounds)

    def rate(name: str, scale: float) -> Any:
        return lambda t: 0.0 if paused else round(_wave(f"{uuid}:{name}", t, 0.1, 1.0) * scale)

    sources: list[tuple[str, Any]] = [(f"cpu{i}", frac(f"cpu{i}", profile.cpu)) for i in range(vcpus)]
    sources += [
        ("memory", lambda t: memory),
        ("memory_target", lambda t: memory),
    ]
    if record["guest_metrics"] != "OpaqueRef:NULL":
        sources.append(("memory_internal_free", lambda t: round(memory / 1024 * _wave(f"{uuid}:free", t, 0.3, 0.6))))
    io = profile.io
    sources += [
        ("vbd_xvda_read", rate("vbd_read", io)),
        ("vbd_xvda_write", rate("vbd_write", io / 2)),
        ("vbd_xvda_read_latency", frac("vbd_read_latency", (0.2, 2.0))),
        ("vbd_xvda_write_latency", frac("vbd_write_latency", (0.3, 3.0))),
        ("vbd_xvda_iops_read", rate("iops_read", io / 4096)),
        ("vbd_xvda_iops_write", rate("iops_write", io / 8192)),
        ("vif_0_rx", rate("vif_rx", io / 3)),
        ("vif_0_tx", rate("vif_tx", io / 5)),
        ("runstate_fullrun", frac("fullrun", profile.cpu)),
        ("runstate_full_contention", frac("full_contention", profile.full_contention)),
        ("runstate_concurrency_hazard", frac("hazard", (0.0, 0.001))),
        ("runstate_blocked", lambda t: 0.0 if paused else 1.0 - _wave(f"{uuid}:fullrun", t, *profile.cpu)),
        ("runstate_partial_run", frac("partial_run", (0.0, 0.05))),
        ("runstate_partial_contention", frac("partial_contention", profile.partial_contention)),
    ]
    return sources


def _host_sources(pool: XapiPool, host: dict[str, Any]) -> list[tuple[str, Any]]:
    uuid = host["uuid"]
    cpus = int(host["cpu_info"].get("cpu_count", "1"))
    metrics = pool.store.get("host_metrics", host["metrics"])
    total_kib = metrics["memory_total"] / 1024
    sources: list[tuple[str, Any]] = [(f"cpu{i}", lambda t, i=i: _wave(f"{uuid}:cpu{i}", t, 0.05, 0.6)) for i in range(cpus)]
    sources += [
        ("cpu_avg", lambda t: _wave(f"{uuid}:cpu_avg", t, 0.05, 0.6)),
        ("loadavg", lambda t: _wave(f"{uuid}:loadavg", t, 0.1, 3.0)),
        ("memory_total_kib", lambda t: total_kib),
        ("memory_free_kib", lambda t: round(total_kib * _wave(f"{uuid}:free", t, 0.4, 0.6))),
        ("pif_eth0_rx", lambda t: round(_wave(f"{uuid}:rx", t, 1e4, 1e6))),
        ("pif_eth0_tx", lambda t: round(_wave(f"{uuid}:tx", t, 1e4, 1e6))),
    ]
    return sources


def parse_query(params: dict[str, list[str]], accept: str) -> Query:
    """Query parameters of /rrd_updates; ValueError names the bad one."""

    def one(name: str, default: str | None = None) -> str:
        values = params.get(name)
        if not values:
            if default is None:
                raise ValueError(f"missing parameter {name}")
            return default
        return values[0]

    try:
        start = int(float(one("start")))
        interval = int(one("interval", "5"))
    except ValueError as error:
        raise ValueError(f"bad number in rrd_updates query: {error}") from None
    cf = one("cf", "AVERAGE")
    if cf not in {"AVERAGE", "MIN", "MAX", "LAST"}:
        raise ValueError(f"bad cf {cf!r}")
    wants_json = "json" in params and one("json", "true").lower() not in {"false", "0"}
    if "json" not in params and "application/json" in accept:
        wants_json = True
    return Query(start, one("host", "false").lower() == "true", cf, interval, wants_json, params.get("vm_uuid", []))


def updates(pool: XapiPool, host_index: int, query: Query) -> tuple[str, bytes]:
    """(content type, body) of one /rrd_updates answer, laid out as xcp-rrdd's
    Rrd_updates: rows from the latest sample back to `start` (inclusive; a negative start
    counts back from now), at most the archive's row count; meta.start is the first
    sample slot after start, as xapi computes it."""
    step = min(ARCHIVES, key=lambda s: (s < query.interval, abs(s - query.interval)))
    now = int(pool.clock())
    start = query.start + now if query.start < 0 else query.start
    end = now - now % step
    times = [t for t in (end - i * step for i in range(ARCHIVES[step])) if t >= start]
    store = pool.store
    columns: list[tuple[str, Any]] = []
    with store.lock:
        host = store.record("host", pool.hosts[host_index])
        if query.host:
            columns += [(f"{query.cf}:host:{host['uuid']}:{name}", fn) for name, fn in _host_sources(pool, host)]
        for vm_ref in host["resident_VMs"]:
            vm = store.record("VM", vm_ref)
            if query.vm_uuids and vm["uuid"] not in query.vm_uuids:
                continue
            columns += [(f"{query.cf}:vm:{vm['uuid']}:{name}", fn) for name, fn in _vm_sources(pool, vm)]
    rows = [(t, [f_to_s(float(fn(t))) for _, fn in columns]) for t in times]
    meta = {
        "start": start - start % step + step,
        "step": step,
        "end": end,
        "rows": len(rows),
        "columns": len(columns),
        "legend": [name for name, _ in columns],
    }
    if not query.json:
        return "text/xml", _xml(meta, rows)
    if pool.rrd_legacy_json:
        return "application/json", _legacy_json(meta, rows)
    return "application/json", _json(meta, rows, pool.rrd_numbers_as_strings)


def f_to_s(v: float) -> str:
    """xcp-rrdd's float text (Rrd_utils.f_to_s): %0.5g, NaN, Infinity, 0.0."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return "0.0" if v == 0 else f"{v:.5g}"


def _json(meta: dict[str, Any], rows: list[tuple[int, list[str]]], as_strings: bool) -> bytes:
    """Strict JSON. Current xapi (Yojson) writes each value as a string; as_strings=False
    writes them as JSON numbers instead (NaN as Python's json does, bare)."""

    def value(text: str) -> Any:
        return text if as_strings else float(text)

    body = {"meta": meta, "data": [{"t": t, "values": [value(v) for v in values]} for t, values in rows]}
    return json.dumps(body).encode()


def _legacy_json(meta: dict[str, Any], rows: list[tuple[int, list[str]]]) -> bytes:
    """xapi before the Yojson rewrite: a JavaScript object literal, keys unquoted, values
    bare (NaN and Infinity included), e.g. {meta: {start:1,...,legend:["..."]},data:[{t:..,values:[..]}]}."""
    legend = ",".join(json.dumps(name) for name in meta["legend"])
    head = ",".join(f"{k}:{meta[k]}" for k in ("start", "step", "end", "rows", "columns"))
    data = ",".join(f"{{t:{t},values:[{','.join(values)}]}}" for t, values in rows)
    return f"{{meta: {{{head},legend:[{legend}]}},data:[{data}]}}".encode()


def _xml(meta: dict[str, Any], rows: list[tuple[int, list[str]]]) -> bytes:
    legend = "".join(f"<entry>{escape(name)}</entry>" for name in meta["legend"])
    head = "".join(f"<{k}>{meta[k]}</{k}>" for k in ("start", "step", "end", "rows", "columns"))
    data = "".join(f"<row><t>{t}</t>{''.join(f'<v>{v}</v>' for v in values)}</row>" for t, values in rows)
    return f'<?xml version="1.0" encoding="UTF-8"?><xport><meta>{head}<legend>{legend}</legend></meta><data>{data}</data></xport>'.encode()


def _unit(name: str) -> str:
    if name.startswith(("cpu", "runstate_")):
        return "(fraction)"
    if name == "memory_internal_free" or name.endswith("_kib"):
        return "KiB"
    if name.startswith("memory"):
        return "B"
    if name.endswith("_latency"):
        return "ms"
    if "_iops_" in name:
        return "requests/s"
    return "" if name == "loadavg" else "B/s"


def _sources_of(pool: XapiPool, cls: str, ref: str) -> list[tuple[str, Any]]:
    store = pool.store
    with store.lock:
        record = store.record(cls, ref)
        if cls == "host":
            return _host_sources(pool, record)
        if record["power_state"] not in {"Running", "Paused"}:
            return []  # xcp-rrdd keeps no live sources for a VM that is not resident
        return _vm_sources(pool, record)


# xcp-rrdd's descriptions of the sources clients look up by description
DESCRIPTIONS = {
    "memory": "Memory currently allocated to VM",
    "memory_target": "Target of VM balloon driver",
    "memory_internal_free": "Memory used as reported by the guest agent",
}


def data_sources(pool: XapiPool, cls: str, ref: str) -> list[dict[str, Any]]:
    """VM.get_data_sources / host.get_data_sources: data_source records at the latest sample."""
    t = int(pool.clock())
    t -= t % 5
    out = []
    for name, fn in _sources_of(pool, cls, ref):
        unit = _unit(name)
        out.append({
            "name_label": name,
            "name_description": DESCRIPTIONS.get(name) or (f"CPU{name[3:]} usage" if name[3:].isdigit() else name), "enabled": True, "standard": True, "units": unit,
            "min": 0.0, "max": 1.0 if unit == "(fraction)" else math.inf, "value": float(fn(t)),
        })
    return out


def query_data_source(pool: XapiPool, cls: str, ref: str, name: str) -> float:
    """The latest value of one source; NaN when the object has no such source (yet)."""
    t = int(pool.clock())
    for source, fn in _sources_of(pool, cls, ref):
        if source == name:
            return float(fn(t - t % 5))
    return math.nan
