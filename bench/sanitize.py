"""What escaping remote text costs the biggest table: 50,000 domains.

Prints, per call, printable() on ordinary ASCII names, printable non-ASCII names
and hostile names, and the time of `table()` (the `status -o table` renderer,
which escapes every text cell) for 50,000 records against an anchor measured in
the same run: the same padding and joining of already-escaped cells with plain
str.ljust/rjust (target: <= 1.5x).
Run: .venv/bin/python bench/sanitize.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vfleet.core.output import _RIGHT, _TABLE_COLUMNS, _cell, table
from vfleet.core.sanitize import printable
from vfleet.drivers.sim import HOSTILE_NAMES


def records(rows: int) -> list[dict[str, Any]]:
    """Mostly ASCII names, 1% non-ASCII, 0.1% hostile: a big fleet on a bad day."""
    names = [
        HOSTILE_NAMES[0] if i % 1000 == 500 else "数据库" if i % 100 == 50 else f"web-{i:05d}" for i in range(rows)
    ]
    return [
        {"host": f"host{i % 100:02d}", "hypervisor": "kvm", "name": name, "state": "running", "vcpus": 4,
         "cpu_pct": 12.5, "mem_used_bytes": 1 << 30, "mem_used_source": "guest", "mem_current_bytes": 4 << 30,
         "disk_read_bps": 1024.0, "disk_write_bps": 2048.0, "net_rx_bps": 512.0, "net_tx_bps": 256.0,
         "contention_pct": 0.5, "uptime_s": 86400.0, "stale": False}
        for i, name in enumerate(names)
    ]


def anchor(records: list[dict[str, Any]]) -> str:
    """The table renderer as it was before escaping: no printable(), len() for widths."""
    rows = [[_raw_cell(r, key) for _, key in _TABLE_COLUMNS] for r in records]
    headers = [title for title, _ in _TABLE_COLUMNS]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if key in _RIGHT else c.ljust(w)
            for c, w, (_, key) in zip(cells, widths, _TABLE_COLUMNS, strict=False)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def _raw_cell(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if key in ("host", "hypervisor", "name", "state") and isinstance(value, str):
        return value  # what _cell() did before: str(value), unescaped
    return _cell(record, key)


def per_call(texts: list[str], number: int) -> float:
    return timeit.timeit(lambda: [printable(t) for t in texts], number=number) / (number * len(texts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    ascii_names = [f"kvm-ams-1-web{i:02d}" for i in range(100)]
    wide = ["Wébserver", "数据库", "сервер-01", "🚀-launch"] * 25
    hostile = list(HOSTILE_NAMES) * 11
    for label, texts in (("ascii", ascii_names), ("non-ascii printable", wide), ("hostile", hostile)):
        print(f"printable() {label:<20} {per_call(texts, 2000) * 1e9:7.0f} ns/call")
    rows = records(args.rows)
    base = min(timeit.repeat(lambda: anchor(rows), number=1, repeat=3))
    ours = min(timeit.repeat(lambda: table(rows), number=1, repeat=3))
    print(f"table() of {args.rows} rows: {ours * 1000:.0f} ms, anchor (no escaping) {base * 1000:.0f} ms, "
          f"ratio {ours / base:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
