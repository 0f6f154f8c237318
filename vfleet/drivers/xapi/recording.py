"""Record mode for the xapi driver: one poll's answers as files, and those files read back.

A recording holds the five get_all_records answers (as JSON: XML-RPC's DateTime values
become their strings, which records.timestamp() reads back), each node's /rrd_updates
text as the node sent it, and poll.json with the wall time of the poll (for uptimes).
replay() gives the snapshot the poll gave, through the same pure functions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from vfleet.core.errors import GarbledOutput
from vfleet.core.models import HostSnapshot
from vfleet.drivers.xapi import rrd
from vfleet.drivers.xapi.records import assemble

RECORD_SETS = ("VM", "VM_metrics", "host", "host_metrics", "pool")
POLL_FILE = "poll.json"
_RRD_PREFIX = "rrd_updates."
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def records_file(name: str) -> str:
    return f"{name}.get_all_records.json"


def rrd_file(host_ref: str) -> str:
    """A plain file name for one node's answer (references are remote text: keep it safe)."""
    return f"{_RRD_PREFIX}{_UNSAFE.sub('_', host_ref.removeprefix('OpaqueRef:'))[:80]}.json"


def poll_text(now: float) -> str:
    return json.dumps({"now": now})


def replay(host: str, files: Mapping[str, str]) -> HostSnapshot:
    """The snapshot a poll gave, from its recording."""
    raw: dict[str, Any] = {}
    for name in RECORD_SETS:
        text = files.get(records_file(name))
        if text is None:
            raise GarbledOutput(host, f"the recording has no {records_file(name)} (a recording of another driver?)")
        try:
            raw[name] = json.loads(text)
        except ValueError as exc:
            raise GarbledOutput(host, f"{records_file(name)}: not JSON: {exc}") from None
    try:
        now = float(json.loads(files.get(POLL_FILE, "{}")).get("now", time.time()))
    except (ValueError, AttributeError, TypeError):
        now = time.time()
    values: dict[str, Mapping[str, float]] = {}
    for name, text in sorted(files.items()):
        if name.startswith(_RRD_PREFIX):
            try:
                values.update(rrd.parse(text).vms)
            except rrd.RrdFormatError as exc:
                raise GarbledOutput(host, f"{name}: {exc}") from None
    pairs, facts = assemble(raw, values, now)
    return HostSnapshot(host, time.monotonic(), tuple(d for _ref, d in pairs), facts)
