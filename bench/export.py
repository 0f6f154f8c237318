"""Scrape latency, CPU per scrape and bytes per domain of `vfleet export`.

Anchor, measured in the same run: Debian's prometheus-libvirt-exporter on the same
libvirtd (qemu:///system and its guests). It polls libvirt on every scrape; vfleet
serves the snapshot its engine already holds. Then vfleet alone over 10 libvirt
test-driver hosts x 1,000 domains (the Go exporter only talks to a real libvirtd).
Run: .venv/bin/python bench/export.py [--hosts 10] [--domains 1000] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodexml import many, write_node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        return bytes(answer.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


def wait_ready(port: int, proc: subprocess.Popen[bytes], needle: bytes, count: int, timeout: float = 180.0) -> None:
    """Until `needle` appears `count` times (every domain polled), so scrapes measure the full fleet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exporter exited with {proc.returncode}")
        try:
            if fetch(port).count(needle) >= count:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"exporter on {port} not ready within {timeout:g} s")


def measure(name: str, argv: list[str], port: int, needle: bytes, scrapes: int, domains: int) -> dict[str, float]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc, needle, domains)
        fetch(port)  # warm
        times, size = [], 0
        cpu_before = cpu_seconds(proc.pid)
        for _ in range(scrapes):
            started = time.perf_counter()
            size = len(fetch(port))
            times.append(time.perf_counter() - started)
        cpu = (cpu_seconds(proc.pid) - cpu_before) / scrapes
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"median_s": statistics.median(times), "cpu_s": cpu, "bytes": size, "per_domain": size / max(1, domains)}
    print(
        f"{name:<52} median {result['median_s'] * 1000:8.1f} ms  cpu/scrape {cpu * 1000:7.1f} ms"
        f"  {size:>10} B  {result['per_domain']:7.0f} B/domain"
    )
    return result


def guests(uri: str) -> int:
    run = subprocess.run(["virsh", "-c", uri, "list", "--all", "--name"], capture_output=True, text=True, check=True)
    return len([line for line in run.stdout.splitlines() if line.strip()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args()
    vfleet = [sys.executable, "-m", "vfleet"]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"same libvirtd ({args.uri}, {guests(args.uri)} domains), {args.scrapes} scrapes each:")
        real = Path(tmp) / "real.yaml"
        real.write_text(f"hosts:\n  - {{name: local, driver: libvirt, uri: '{args.uri}'}}\n")
        count = guests(args.uri)
        anchor = None
        if shutil.which("prometheus-libvirt-exporter"):
            port = free_port()
            anchor = measure(
                "anchor: prometheus-libvirt-exporter",
                ["prometheus-libvirt-exporter", f"--libvirt.uri={args.uri}", f"--web.listen-address=127.0.0.1:{port}"],
                port,
                b"libvirt_domain_info_virtual_cpus{",
                args.scrapes,
                count,
            )
        port = free_port()
        same = measure(
            "vfleet export (same libvirtd)",
            [*vfleet, "-i", str(real), "export", "--listen", f"127.0.0.1:{port}", "--interval", "2"],
            port,
            b"vfleet_domain_info{",
            args.scrapes,
            count,
        )
        if anchor:
            print(
                f"ratio vfleet/anchor: latency {same['median_s'] / anchor['median_s']:.2f}x (target <= 1),"
                f" cpu per scrape {same['cpu_s'] / max(anchor['cpu_s'], 1e-3):.2f}x,"
                f" bytes per domain {same['per_domain'] / anchor['per_domain']:.2f}x"
            )
        lines = ["hosts:"]
        for i in range(args.hosts):
            node = write_node(Path(tmp) / f"node{i}.xml", many(f"h{i}-vm", args.domains))
            lines.append(f"  - {{name: host{i:02d}, driver: libvirt, uri: 'test://{node}'}}")
        big = Path(tmp) / "big.yaml"
        big.write_text("\n".join(lines) + "\n")
        total = args.hosts * args.domains
        print(f"{args.hosts} test-driver hosts x {args.domains} domains ({total}):")
        port = free_port()
        scale = measure(
            f"vfleet export ({total} domains)",
            [*vfleet, "-i", str(big), "export", "--listen", f"127.0.0.1:{port}", "--interval", "5"],
            port,
            b"vfleet_domain_info{",
            max(3, args.scrapes // 4),
            total,
        )
        if anchor:
            print(
                f"ratio vfleet at {total} domains / anchor at {count}:"
                f" latency {scale['median_s'] / anchor['median_s']:.1f}x,"
                f" per domain {scale['median_s'] / total / (anchor['median_s'] / max(1, count)):.3f}x"
            )


if __name__ == "__main__":
    main()
