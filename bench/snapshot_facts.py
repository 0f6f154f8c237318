"""What reading snapshot facts (count, oldest) of every domain costs, next to a poll.

A poll of a libvirt host is one getAllDomainStats call; snapshot facts have no bulk
call: snapshotNum is one call per domain, listAllSnapshots one per domain plus one
getXMLDesc per snapshot (for its creation time). Measured on a 1,000-domain test-driver
host (in-process: no RPC) and, for the RPC cost, on the real libvirtd of the testbed
(qemu:///system, one guest, calls repeated). Prints each as a ratio of the poll (the anchor).
This sets SNAPSHOT_FACTS_EVERY in vfleet/drivers/libvirt/driver.py.
Run: .venv/bin/python bench/snapshot_facts.py [--domains 1000] [--uri qemu:///system]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import libvirt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodexml import many, write_node


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args()
    libvirt.registerErrorHandler(lambda *_a: None, None)
    with tempfile.TemporaryDirectory() as tmp:
        conn = libvirt.open(f"test://{write_node(Path(tmp) / 'node.xml', many('vm', args.domains))}")
        doms = conn.listAllDomains(0)
        poll = best(lambda: conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0))
        num = best(lambda: [d.snapshotNum(0) for d in doms])
        listed = best(lambda: [[s.getXMLDesc(0) for s in d.listAllSnapshots(0)] for d in doms])
        conn.close()
    print(f"test driver, {args.domains} domains (in-process):")
    print(f"  anchor: one poll (getAllDomainStats)       {poll * 1e3:8.2f} ms  1.0x")
    print(f"  snapshotNum of every domain               {num * 1e3:8.2f} ms  {num / poll:5.1f}x")
    print(f"  listAllSnapshots + XML of every domain     {listed * 1e3:8.2f} ms  {listed / poll:5.1f}x")
    try:
        real = libvirt.open(args.uri)
    except libvirt.libvirtError as exc:
        print(f"{args.uri}: not reachable ({exc.get_error_message()}): RPC cost not measured")
        return
    dom = real.listAllDomains(0)[0]
    calls = 200
    rpc_poll = best(lambda: real.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0))
    rpc_num = best(lambda: [dom.snapshotNum(0) for _ in range(calls)]) / calls
    rpc_list = best(lambda: [dom.listAllSnapshots(0) for _ in range(calls)]) / calls
    real.close()
    per_poll = rpc_num * args.domains
    print(f"{args.uri} (RPC), per call:")
    print(f"  anchor: one poll (getAllDomainStats, all domains)      "
          f"{rpc_poll * 1e3:8.3f} ms  1.0x")
    print(f"  snapshotNum, one domain                   {rpc_num * 1e3:8.3f} ms  {rpc_num / rpc_poll:5.2f}x")
    print(f"  listAllSnapshots, one domain              {rpc_list * 1e3:8.3f} ms  {rpc_list / rpc_poll:5.2f}x")
    print(f"  => snapshotNum of {args.domains} domains over RPC: about {per_poll * 1e3:.0f} ms a round")


if __name__ == "__main__":
    main()
