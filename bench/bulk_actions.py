"""Bulk `vfleet act start` of 500 domains on 10 libvirt test-driver hosts, against a
`virsh start` loop over the same domains on the same hosts, in one run.

Prints both wall times and the ratio. Each virsh process opens its test:/// host
afresh, as a shell loop over virsh does on real hosts.
Run: .venv/bin/python bench/bulk_actions.py [--hosts 10] [--domains 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodexml import SHUTOFF, write_node


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--domains", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nodes, lines = [], ["hosts:"]
        for i in range(args.hosts):
            names = [f"h{i}-d{j:03d}" for j in range(args.domains)]
            node = write_node(Path(tmp) / f"n{i}.xml", [(n, SHUTOFF) for n in names])
            nodes.append((node, names))
            lines.append(f"  - {{name: h{i}, driver: libvirt, uri: 'test://{node}'}}")
        inventory = Path(tmp) / "fleet.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        env = {**os.environ, "VFLEET_AUDIT_LOG": str(Path(tmp) / "audit.jsonl")}

        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "vfleet", "-i", str(inventory), "act", "start", "state:off",
                              "--multiple", "--yes", "-o", "json"], capture_output=True, text=True, env=env)
        vfleet_s = time.perf_counter() - started
        results = json.loads(run.stdout)["results"] if run.stdout else []
        ok = sum(r["result"] == "ok" for r in results)
        if run.returncode != 0 or ok != args.hosts * args.domains:
            raise SystemExit(f"vfleet act failed ({run.returncode}, {ok} ok): {run.stderr.strip()}")

        started = time.perf_counter()
        for node, names in nodes:
            for name in names:
                subprocess.run(["virsh", "-q", "-c", f"test://{node}", "start", name], check=True,
                               capture_output=True)
        virsh_s = time.perf_counter() - started
    total = args.hosts * args.domains
    print(f"start {total} domains on {args.hosts} test-driver hosts (vfleet waits for each to be running)")
    print(f"  virsh loop (anchor)      {virsh_s:7.2f} s   1.00x")
    print(f"  vfleet act --multiple    {vfleet_s:7.2f} s   {vfleet_s / virsh_s:5.2f}x")


if __name__ == "__main__":
    main()
