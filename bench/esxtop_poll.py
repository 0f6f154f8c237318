"""What esxtop costs the esxi_ssh driver: the host-side filter, and poll latency with esxtop beside the polls.

1. The host-side filter (tr and awk; busybox's, as on ESXi, when installed) on the real capture
   (tests/fixtures/esxi/esxtop-batch.csv) and on a host of N VMs built from its columns
   (each VM: the capture's VM columns and as many Vcpu/Group Memory-like unused ones as a
   real row carries): bytes in, bytes out, seconds.
2. polls of an esxi_ssh driver against the SSH test host whose esxtop takes `--esxtop-s`
   (a real `-n 2 -d 2` run takes about 2 s plus start-up): each poll's latency and
   whether it carried the esxtop figures, polled every `--interval` s like the engine.
Run: .venv/bin/python bench/esxtop_poll.py [--vms 300] [--polls 8] [--interval 2] [--esxtop-s 2.3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from sshhost import ESXI_FIXTURES, EsxiHost, Keys, SshTestServer, pipeline, run_filters  # noqa: E402
from vfleet.drivers.esxi.esxtop import command, parse_esxtop  # noqa: E402
from vfleet.drivers.esxi.ssh import EsxiSshDriver  # noqa: E402


def big_host(vms: int) -> tuple[str, int]:
    """A host of `vms` VMs from the capture: web01's columns (its Group Cpu, Group Memory, Vcpu
    worlds, disks, port) once per VM under a new name and world id, and the host's own
    columns 20 times (a real host has thousands: system worlds, devices, paths, interrupts)."""
    lines = (ESXI_FIXTURES / "esxtop-batch.csv").read_text().splitlines()
    header, rows = lines[0].split('","'), [line.split('","') for line in lines[1:]]
    cells = range(1, len(header) - 1)  # not the timestamp, not the last (it carries the closing `",`)
    own = [i for i in cells if "web01" in header[i] or "1423953:" in header[i]]
    host = [i for i in cells if i not in own]
    wide_header, wide_rows = [header[0]], [[r[0]] for r in rows]
    for copy in range(20):
        wide_header += [header[i].replace("(", f"({copy}", 1) for i in host]
        for wide, row in zip(wide_rows, rows, strict=True):
            wide += [row[i] for i in host]
    for vm in range(vms):
        wide_header += [header[i].replace("web01", f"vm{vm:04d}").replace("2100001", str(3000000 + vm)) for i in own]
        for wide, row in zip(wide_rows, rows, strict=True):
            wide += [row[i] for i in own]
    text = "\n".join('","'.join([*r, header[-1]]) for r in [wide_header]) + "\n"
    text += "".join('","'.join([*r, row[-1]]) + "\n" for r, row in zip(wide_rows, rows, strict=True))
    return text, len(wide_header) + 1


def filter_cost(text: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    out, err, status = asyncio.run(run_filters(pipeline(command())[1:], text))
    seconds = time.perf_counter() - started
    assert status == 0, err
    parse_esxtop(out)
    return len(text.encode()), len(out.encode()), seconds


async def polls(count: int, interval: float, esxtop_s: float) -> list[tuple[float, bool]]:
    esx = EsxiHost(delays={"TERM=xterm esxtop": esxtop_s})
    with tempfile.TemporaryDirectory() as tmp:
        server = await SshTestServer(esx, Keys.generate(), Path(tmp)).start()
        driver = EsxiSshDriver(server.config(name="esx1", driver="esxi_ssh"))
        try:
            await driver.connect()
            results = []
            for _ in range(count):
                started = time.monotonic()
                snapshot = await driver.poll()
                took = time.monotonic() - started
                web = next(d for d in snapshot.domains if d.name == "web01")
                results.append((took, web.gauges is not None and web.gauges.net_rx_bps is not None))
                await asyncio.sleep(max(0.0, interval - took))  # the engine's tick
            return results
        finally:
            await driver.close()
            await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=300)
    parser.add_argument("--polls", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--esxtop-s", type=float, default=2.3)
    args = parser.parse_args()
    print(f"filter tools: {'busybox' if shutil.which('busybox') else 'the system tr and awk'}")
    real = (ESXI_FIXTURES / "esxtop-batch.csv").read_text()
    big, columns = big_host(args.vms)
    for label, text in (("the real capture (314 columns)", real), (f"{args.vms} VMs ({columns:,} columns)", big)):
        size, kept, seconds = filter_cost(text)
        print(f"filter, {label}: {size:,} -> {kept:,} bytes in {seconds:.3f} s")
    results = asyncio.run(polls(args.polls, args.interval, args.esxtop_s))
    for number, (took, filled) in enumerate(results, 1):
        print(f"poll {number}: {took:.3f} s, esxtop figures {'yes' if filled else 'no'}")


if __name__ == "__main__":
    main()
