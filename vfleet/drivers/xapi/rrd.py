"""Pure parsing of xapi's /rrd_updates (rrdtool xport, JSON or XML) into per-object values.

One answer covers the VMs resident on the host asked (and the host itself with
`host=true`). Its legend names each column `CF:kind:uuid:data_source`
(`AVERAGE:vm:<uuid>:cpu0`); its rows hold one value per column, newest row first
in xapi's output but we never rely on the order: for each column we keep the value
of the newest row where it is a finite number.

Numbers come as JSON numbers, as strings ("0.0282", "NaN": newer xapi quotes them),
or as XML text. Old xapi wrote its JSON with bare keys (`{meta: {start: 1, ...}}`),
which we accept too. A value that is not a finite number is missing, never 0.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Consolidation functions, best first: the average is what a rate column means.
_CF_RANK = {"AVERAGE": 0, "LAST": 1, "MAX": 2, "MIN": 3}
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)")


class RrdFormatError(ValueError):
    """The answer is not an rrd_updates document we can read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class RrdUpdate:
    """One /rrd_updates answer: the newest finite value of each data source, by object."""

    end: int | None  # the server's time of the last row (seconds since the epoch): the next `start`
    step: int | None
    vms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # VM uuid -> data source -> value
    hosts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # host uuid -> data source -> value


def number(value: object) -> float | None:
    """A finite float from a JSON number, a numeric string or XML text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def whole(value: object) -> int | None:
    """An integer from an int, an integral float or a numeric string ("4294967296", "4.0"); else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    as_float = number(value)
    if as_float is None or not as_float.is_integer():
        return None
    return int(as_float)


def parse(text: str | bytes) -> RrdUpdate:
    """An rrd_updates document, JSON or XML (sniffed from its first character)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return parse_xml(stripped)
    if stripped.startswith("{"):
        return parse_json(stripped)
    raise RrdFormatError(f"rrd_updates: expected JSON or XML, got {stripped[:40]!r}")


def parse_json(text: str) -> RrdUpdate:
    try:
        doc = json.loads(text)
    except ValueError:
        try:  # old xapi: keys without quotes
            doc = json.loads(_BARE_KEY.sub(r'\1"\2"\3', text))
        except ValueError as exc:
            raise RrdFormatError(f"rrd_updates: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict):
        raise RrdFormatError("rrd_updates: no meta object in the JSON answer")
    meta = doc["meta"]
    legend = meta.get("legend")
    if not isinstance(legend, list):
        raise RrdFormatError("rrd_updates: meta.legend is not a list")
    rows: list[tuple[float, Sequence[object]]] = []
    for row in doc.get("data") or ():
        if not isinstance(row, dict):
            raise RrdFormatError("rrd_updates: a data row is not an object")
        values = row.get("values")
        when = number(row.get("t"))
        if not isinstance(values, list) or when is None:
            raise RrdFormatError("rrd_updates: a data row lacks t or values")
        rows.append((when, values))
    return _collect([str(entry) for entry in legend], rows, whole(meta.get("end")), whole(meta.get("step")))


def parse_xml(text: str) -> RrdUpdate:
    try:
        root = ElementTree.fromstring(text)  # expat: no external entities, no DTD fetches
    except ElementTree.ParseError as exc:
        raise RrdFormatError(f"rrd_updates: not XML: {exc}") from None
    meta = root.find("meta")
    if root.tag != "xport" or meta is None:
        raise RrdFormatError(f"rrd_updates: expected <xport><meta>, got <{root.tag}>")
    legend = [entry.text or "" for entry in meta.iterfind("legend/entry")]
    rows: list[tuple[float, Sequence[object]]] = []
    for row in root.iterfind("data/row"):
        when = number(row.findtext("t"))
        if when is None:
            raise RrdFormatError("rrd_updates: a data row lacks <t>")
        rows.append((when, [v.text for v in row.iterfind("v")]))
    return _collect(legend, rows, whole(meta.findtext("end")), whole(meta.findtext("step")))


def _collect(legend: list[str], rows: Iterable[tuple[float, Sequence[object]]], end: int | None,
             step: int | None) -> RrdUpdate:
    columns: list[tuple[int, str, str, str] | None] = []  # (cf rank, kind, uuid, data source)
    for entry in legend:
        parts = entry.split(":", 3)
        if len(parts) != 4 or parts[1] not in ("vm", "host"):
            columns.append(None)  # SR or unknown classes: not ours
            continue
        cf, kind, uuid, source = parts
        columns.append((_CF_RANK.get(cf, len(_CF_RANK)), kind, uuid, source))
    best: dict[tuple[str, str, str], tuple[int, float, float]] = {}  # key -> (cf rank, -time, value)
    for when, values in rows:
        if len(values) != len(columns):
            raise RrdFormatError(f"rrd_updates: a row has {len(values)} values for {len(columns)} legend entries")
        for column, raw in zip(columns, values, strict=True):
            value = number(raw)
            if column is None or value is None:
                continue
            rank, kind, uuid, source = column
            key = (kind, uuid, source)
            candidate = (rank, -when, value)
            known = best.get(key)
            if known is None or candidate[:2] < known[:2]:
                best[key] = candidate
    vms: dict[str, dict[str, float]] = {}
    hosts: dict[str, dict[str, float]] = {}
    for (kind, uuid, source), (_rank, _when, value) in best.items():
        (vms if kind == "vm" else hosts).setdefault(uuid, {})[source] = value
    return RrdUpdate(end, step, vms, hosts)


def merge(updates: Iterable[RrdUpdate]) -> dict[str, Mapping[str, float]]:
    """The VM values of several hosts' answers (a VM is resident on one host at a time)."""
    merged: dict[str, Mapping[str, float]] = {}
    for update in updates:
        merged.update(update.vms)
    return merged

