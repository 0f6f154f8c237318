"""Audit log append cost for a 500-target operation: one durable append per result
record (write + fsync, then the checkpoint: temp file + fsync + rename + directory
fsync), against append_many() of the same 500 records in one batch.

Prints the median and 95th percentile of one append, the total for 500, and the batch.
Run: .venv/bin/python bench/audit_append.py [--records 500] [--key] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from vfleet.core.audit import AuditLog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--key", action="store_true", help="with an HMAC key (records and checkpoint MACed)")
    parser.add_argument("--dir", help="where to put the log (default: the temp dir; fsync cost depends on it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        key_file = None
        if args.key:
            key_file = Path(tmp) / "key"
            key_file.write_text(os.urandom(32).hex())
            key_file.chmod(0o600)
        log = AuditLog(Path(tmp) / "audit.jsonl", key_file=key_file)
        events = [
            {"kind": "result", "op": "0123456789ab", "host": "kvm1", "domain": f"web-{i:03}",
             "key": f"{i:08x}-0000-0000-0000-000000000000", "result": "ok", "state_after": "off", "error": None}
            for i in range(args.records)
        ]
        times = []
        for event in events:
            start = time.perf_counter()
            log.append(event)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        log.append_many(events)
        batch = time.perf_counter() - start
    ms = sorted(t * 1000 for t in times)
    print(
        f"append: median {statistics.median(ms):.2f} ms, p95 {ms[int(len(ms) * 0.95)]:.2f} ms, "
        f"{args.records} appends {sum(ms) / 1000:.2f} s; append_many({args.records}) {batch * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
