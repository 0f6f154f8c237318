"""The `--source prometheus` refresh over 20,000 domains against polling the same fleet directly.

The fleet: 20 libvirt test-driver hosts x 1,000 domains. Anchor (same run): one direct
refresh, every host's driver polled at once (getAllDomainStats each), as the engine does.
A real Prometheus scrapes the same fleet in the agreed metric names every 15 s (a real
deployment's interval), served as `--shards` expositions split by `shard_of` as
`vfleet export --shard K/N` splits it: Prometheus spreads the targets' scrapes over the
interval, as it does in the documented layout. Measured:
- a full refresh (a new source: 3 host queries + 11 domain-family queries, parsed and split
  into per-host snapshots): a console's first refresh;
- the steady state: a console refreshing every 2 s for two scrape intervals, where a refresh
  reads the domains of the hosts scraped since the last one only.
Bytes per refresh (on the wire: the client asks for gzip) are compared with one full scrape
of the expositions (what a console reading the exporters themselves would transfer each
tick). The test driver is in-process, so direct polling has no wire bytes to compare with.
Run: .venv/bin/python bench/prom_source.py [--hosts 20] [--domains 1000] [--repeat 5] [--shards 4]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from promstack import query, start_prometheus, wait_for

from nodexml import many, write_node
from vfleet.core.exposition import shard_of
from vfleet.core.models import HostConfig
from vfleet.drivers.registry import create_driver
from vfleet.sources.prometheus import PrometheusSource
from vfleet.sources.promql import PromClient

VALUES = (
    "vcpus 1",
    "memory_max_bytes 134217728",
    "memory_used_bytes 67108864",
    "uptime_seconds 1234",
    "cpu_ratio 0.25",
    "contention_ratio 0.01",
    "disk_read_bytes_per_second 1000",
    "disk_write_bytes_per_second 2000",
    "network_receive_bytes_per_second 300",
    "network_transmit_bytes_per_second 400",
)


def exposition(hosts: dict[str, list[tuple[str, int]]]) -> bytes:
    """The agreed families for the fleet, in the text format (rendered once: the bench measures reads)."""
    states = {1: "running", 3: "paused", 5: "off"}
    now = time.time()
    out: list[str] = []
    for host, domains in hosts.items():
        h = f'host="{host}",hypervisor="kvm",driver="libvirt"'
        out += [f"vfleet_host_info{{{h},version=\"1\"}} 1", f"vfleet_host_up{{{h}}} 1",
                f"vfleet_host_status{{{h},status=\"up\"}} 1", f"vfleet_host_last_poll_timestamp_seconds{{{h}}} {now}",
                f"vfleet_host_cpus{{{h}}} 16", f"vfleet_host_memory_bytes{{{h}}} 17179869184"]
        for name, state in domains:
            key = uuid.uuid5(uuid.NAMESPACE_DNS, name)
            d = f'host="{host}",domain="{name}",domain_key="{key}",hypervisor="kvm",driver="libvirt"'
            out.append(f'vfleet_domain_info{{{d},state="{states[state]}"}} 1')
            out += [f"vfleet_domain_{v.split()[0]}{{{d}}} {v.split()[1]}" for v in VALUES]
    return ("\n".join(out) + "\n").encode()


def serve(body: bytes) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


async def direct_refreshes(configs: list[HostConfig], repeat: int) -> list[float]:
    drivers = [create_driver(c) for c in configs]
    await asyncio.gather(*(d.connect() for d in drivers))
    times = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            snaps = await asyncio.gather(*(d.poll() for d in drivers))
            times.append(time.perf_counter() - started)
            assert sum(len(s.domains) for s in snaps) == sum(1 for _ in snaps for _ in _.domains)
    finally:
        await asyncio.gather(*(d.close() for d in drivers))
    return times


async def full_refreshes(client: PromClient, hosts: list[str], repeat: int, expected: int) -> list[float]:
    """A new source each time: every domain is read (the first refresh, and one after each scrape)."""
    times = []
    for _ in range(repeat):
        source = PrometheusSource(client, hosts, reuse=0.0, max_age=3600)
        started = time.perf_counter()
        refresh = await source.refresh()
        snaps = [source.snapshot(h, refresh) for h in hosts]
        times.append(time.perf_counter() - started)
        got = sum(len(s.domains) for s in snaps)
        assert got == expected and len(refresh.fetched) == len(hosts), (got, expected, refresh.fetched)
    return times


def breakdown(client: PromClient, hosts: list[str]) -> tuple[float, float]:
    """One full refresh's queries one after the other: (server + HTTP seconds, parse + split seconds)."""
    from vfleet.sources.prometheus import queries, split
    from vfleet.sources.promql import vector_items

    at, wire = time.time(), 0.0
    bodies = {}
    for role, promql in queries(hosts).items():
        started = time.perf_counter()
        bodies[role] = client._post("/api/v1/query", {"query": promql, "time": f"{at:.3f}"}, 120)[1]
        wire += time.perf_counter() - started
    started = time.perf_counter()
    answers = {role: vector_items(body, "bench") for role, body in bodies.items()}
    split(answers, hosts)
    return wire, time.perf_counter() - started


async def steady_refreshes(
    client: PromClient, hosts: list[str], seconds: float, tick: float
) -> tuple[list[float], int]:
    """A console's refreshes every `tick` s for `seconds`: (their times, hosts whose domains they read)."""
    source = PrometheusSource(client, hosts, reuse=0.0, max_age=3600)
    await source.refresh()  # the first, full one is measured above
    client.bytes_read = 0
    times, full = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        refresh = await source.refresh()
        for h in hosts:
            source.snapshot(h, refresh)
        times.append(time.perf_counter() - started)
        full += len(refresh.fetched)
        await asyncio.sleep(max(0.0, tick - times[-1]))
    return times, full


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scrape", type=int, default=15, help="Prometheus' scrape interval, seconds")
    parser.add_argument("--shards", type=int, default=4, help="exporters the fleet is split over")
    args = parser.parse_args()
    expected = args.hosts * args.domains
    with tempfile.TemporaryDirectory() as tmp:
        fleet = {f"host{i:02d}": many(f"h{i}-vm", args.domains) for i in range(args.hosts)}
        configs = []
        for i, (name, domains) in enumerate(fleet.items()):
            node = write_node(Path(tmp) / f"node{i}.xml", domains)
            uri = f"test://{node}"
            configs.append(HostConfig(name=name, driver="libvirt", uri=uri, connect_timeout=600, call_timeout=600))
        direct = asyncio.run(direct_refreshes(configs, args.repeat))
        shards = [{h: d for h, d in fleet.items() if shard_of(h, args.shards) == k} for k in range(1, args.shards + 1)]
        served = [serve(exposition(part)) for part in shards if part]
        try:
            with start_prometheus([target for _, target in served], interval=f"{args.scrape}s") as base:
                wait_for("the first scrapes", lambda: len(query(base, "vfleet_domain_info")) == expected, 300)
                scrape_bytes = 0
                for _, target in served:
                    with urllib.request.urlopen(f"http://{target}/metrics", timeout=60) as answer:
                        scrape_bytes += len(answer.read())
                client = PromClient(base, timeout=120)
                full = asyncio.run(full_refreshes(client, list(fleet), args.repeat, expected))
                full_bytes = client.bytes_read / args.repeat
                server_s, parse_s = breakdown(client, list(fleet))
                steady, reads = asyncio.run(steady_refreshes(client, list(fleet), 2 * args.scrape, 2.0))
                steady_bytes = client.bytes_read / len(steady)
        finally:
            for server, _ in served:
                server.shutdown()
                server.server_close()
    anchor = statistics.median(direct)
    f_med, s_mean = statistics.median(full), statistics.mean(steady)
    print(f"{args.hosts} hosts x {args.domains} domains = {expected} domains in {len(served)} exporters;"
          f" Prometheus scrapes every {args.scrape} s")
    print(f"  anchor: direct poll of every host (test driver), median of {args.repeat}  {anchor:7.3f} s")
    print(f"  full refresh (14 queries), median of {args.repeat}  {f_med:7.3f} s  {f_med / anchor:6.2f}x anchor")
    print(f"    of which, query by query: server + HTTP + gunzip {server_s:6.3f} s, parse + split {parse_s:6.3f} s")
    print(f"  steady state, a refresh every 2 s for {2 * args.scrape} s: {len(steady)} refreshes,"
          f" {reads / len(steady):.1f} of {args.hosts} hosts' domains read per refresh")
    print(f"    mean {s_mean:7.3f} s  {s_mean / anchor:6.2f}x anchor   max {max(steady):7.3f} s")
    mb = 1e6
    print(f"  bytes of one scrape of them all  {scrape_bytes / mb:8.2f} MB ({scrape_bytes / expected:6.0f} B/domain)")
    print(f"  bytes per full refresh           {full_bytes / mb:8.2f} MB ({full_bytes / expected:6.0f} B/domain)"
          f"  {full_bytes / scrape_bytes:5.2f}x a scrape")
    print(f"  bytes per refresh, steady state  {steady_bytes / mb:8.2f} MB ({steady_bytes / expected:6.0f} B/domain)"
          f"  {steady_bytes / scrape_bytes:5.2f}x a scrape")


if __name__ == "__main__":
    main()
