"""`vfleet status` over a 10-host x 500-domain fleet of libvirt test-driver hosts.

Prints the wall time of `vfleet status` against an anchor measured in the same run:
a bare Python process that opens the same 10 hosts and reads every domain's stats
with one getAllDomainStats call each (the least work that gives the same data).
Run: .venv/bin/python bench/status_scale.py [--hosts 10] [--domains 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodexml import many, write_node

ANCHOR = """
import sys, libvirt
libvirt.registerErrorHandler(lambda *a: None, None)
total = 0
for uri in sys.argv[1:]:
    conn = libvirt.open(uri)
    total += len(conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0))
    conn.close()
print(total)
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({run.returncode}): {run.stderr.strip()}")
    return elapsed, run.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uris, lines = [], ["hosts:"]
        for i in range(args.hosts):
            node = write_node(Path(tmp) / f"node{i}.xml", many(f"h{i}-vm", args.domains))
            uris.append(f"test://{node}")
            lines.append(f"  - {{name: host{i:02d}, driver: libvirt, uri: 'test://{node}'}}")
        inventory = Path(tmp) / "inventory.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        expected = args.hosts * args.domains
        runs = {
            "anchor: bare getAllDomainStats": [sys.executable, "-c", ANCHOR, *uris],
            "vfleet status --interval 0 -o json": [sys.executable, "-m", "vfleet", "-i", str(inventory), "status",
                                                   "--interval", "0", "-o", "json"],
            "vfleet status -o json (2 polls, 1 s apart)": [sys.executable, "-m", "vfleet", "-i", str(inventory),
                                                           "status", "-o", "json"],
            "vfleet status (table)": [sys.executable, "-m", "vfleet", "-i", str(inventory), "status"],
        }
        results: dict[str, float] = {}
        for label, cmd in runs.items():
            times = []
            for _ in range(args.repeat):
                elapsed, out = timed(cmd)
                times.append(elapsed)
            if label.startswith("anchor"):
                assert int(out) == expected, out
            results[label] = statistics.median(times)
        anchor = results["anchor: bare getAllDomainStats"]
        print(f"{args.hosts} hosts x {args.domains} domains = {expected} domains, median of {args.repeat} runs")
        for label, seconds in results.items():
            print(f"  {label:<45} {seconds:7.3f} s   {seconds / anchor:5.2f}x anchor")


if __name__ == "__main__":
    main()
