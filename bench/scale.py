"""Engine CPU per poll cycle against the bare getAllDomainStats floor, and the saturation point.

10 hosts of libvirt's test driver with N domains in total. Measured in the same run:
  anchor  a bare loop calling getAllDomainStats (vfleet's stats groups and flags) on
          the engine's own connections: CPU per cycle;
  vfleet  what `vfleet top --batch -o ndjson` does per frame, in-process: every host
          polled through the real engine and libvirt driver, absorbed, then
          build_report + the NDJSON line: CPU per cycle (all threads);
  ratio   vfleet / anchor (target <= 3x, stretch 2x), and the saturation point: the
          domains one core handles at a 2 s interval = 2 s / (vfleet CPU per domain).
Then the same with REAL KVM stats: the testbed guests' getAllDomainStats records at
qemu:///system (~53 keys each) are captured once, and N copies with distinct
names/uuids and advancing counters go through the driver's parse and the same
engine path; the anchor is the marginal client CPU of one such record in a real
getAllDomainStats call. CPU is time.process_time(), medians of --cycles cycles.
History bytes per domain and RSS after 10 minutes at 10k: see the history
engineer's part (issue 12), not measured here.
Run: .venv/bin/python bench/scale.py [--quick] [--cycles 7] [--profile SIZE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodexml import many, write_node
from vfleet.core.engine import Fleet
from vfleet.core.gctune import tune_for_long_run
from vfleet.core.models import HostConfig, HostFacts, HostSnapshot
from vfleet.core.output import as_json
from vfleet.core.report import TOP_SCHEMA, RecordCache, build_report
from vfleet.core.selector import Selector
from vfleet.drivers.base import Driver
from vfleet.drivers.libvirt.driver import STATS_FLAGS, STATS_GROUPS
from vfleet.drivers.libvirt.parse import domain_from_stats

HOSTS = 10
INTERVAL = 2.0
TARGET, STRETCH, SATURATION_TARGET = 3.0, 2.0, 150_000
Records = list[tuple[str, str, int, dict[str, Any]]]


def cpu_median(cycles: int, once: Callable[[], object]) -> float:
    times = []
    for _ in range(cycles):
        started = time.process_time()
        once()
        times.append(time.process_time() - started)
    return statistics.median(times)


async def engine_cycle(
    fleet: Fleet, selector: Selector, sink: list[int], prepare: Callable[[], None], cache: RecordCache
) -> float:
    """One frame: poll every host once, then the report and its NDJSON line. Returns its CPU time."""
    prepare()  # outside the measured window: the bench's own input, not vfleet's work
    names = [v.name for v in fleet.views()]
    before = {v.name: v.health.polls for v in fleet.views()}
    started = time.process_time()
    for name in names:
        fleet.request_poll(name)
    ok = await fleet.wait_until(lambda views: all(v.health.polls > before[v.name] for v in views), 300)
    if not ok:
        raise SystemExit("a poll did not come back within 300 s")
    report = build_report(fleet.views(), selector, cache=cache)
    line = as_json(report.document(TOP_SCHEMA, iteration=len(sink)), indent=None)
    elapsed = time.process_time() - started
    sink.append(len(line))
    return elapsed


async def measure_engine(
    hosts: list[HostConfig],
    cycles: int,
    factory: Callable[[HostConfig, bool], Driver] | None = None,
    prepare: Callable[[], None] = lambda: None,
    anchor: Callable[[Fleet], float] | None = None,
    profile: bool = False,
) -> tuple[float, float, int]:
    """(vfleet CPU per cycle, anchor CPU per cycle or 0, domains seen), medians."""
    configs = [h for h in hosts]
    kwargs: dict[str, Any] = {"driver_factory": factory} if factory else {}
    async with Fleet(configs, **kwargs) as fleet:
        up = await fleet.wait_until(lambda views: all(v.health.polls >= 1 for v in views), 600)
        if not up:
            raise SystemExit(f"hosts not up: {[(v.name, v.health.last_error) for v in fleet.views()]}")
        tune_for_long_run()  # what `top --batch` does once its hosts are up
        selector = Selector.parse("")
        sink: list[int] = []
        cache = RecordCache()  # as `top --batch` keeps one
        for _ in range(2):  # warm: every domain seen twice, so rates exist
            await engine_cycle(fleet, selector, sink, prepare, cache)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        times = [await engine_cycle(fleet, selector, sink, prepare, cache) for _ in range(cycles)]
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        anchor_cpu = anchor(fleet) if anchor else 0.0
        domains = sum(len(v.rows) for v in fleet.views())
    return statistics.median(times), anchor_cpu, domains


def bare_anchor(cycles: int) -> Callable[[Fleet], float]:
    def run(fleet: Fleet) -> float:
        conns = [fleet.driver(v.name)._conn for v in fleet.views()]  # the engine's connections

        def once() -> None:
            for conn in conns:
                conn.getAllDomainStats(STATS_GROUPS, STATS_FLAGS)

        once()
        return cpu_median(cycles, once)

    return run


def test_driver_hosts(tmp: Path, total: int) -> list[HostConfig]:
    per_host = total // HOSTS
    hosts = []
    for i in range(HOSTS):
        node = write_node(tmp / f"node{i}.xml", many(f"h{i}-vm", per_host))
        hosts.append(HostConfig(name=f"host{i:02d}", driver="libvirt", uri=f"test://{node}",
                                poll_interval=3600.0, call_timeout=300.0, connect_timeout=300.0))
    return hosts


# -- real KVM stats -------------------------------------------------------------------

class Replay:
    """Copies of the testbed guests' real records, with counters that advance every cycle."""

    def __init__(self, records: Records, total: int) -> None:
        self.base = records
        self.per_host = total // HOSTS
        self.cycle = 0
        self.next: dict[str, Records] = {}

    def prepare(self) -> None:
        self.cycle += 1
        step = self.cycle
        for h in range(HOSTS):
            out: Records = []
            for i in range(self.per_host):
                name, _, dom_id, stats = self.base[i % len(self.base)]
                copy = dict(stats)
                for key, value in stats.items():  # every cumulative counter moves, as on a busy host
                    if type(value) is int and key.endswith(("time", "bytes", "reqs", "delay", "pkts")):
                        copy[key] = value + step * (1 + i % 97)
                uid = str(uuid.UUID(int=h << 64 | i))
                out.append((f"h{h}-{name}-{i}", uid, dom_id + i, copy))
            self.next[f"host{h:02d}"] = out


class ReplayDriver(Driver):
    """The libvirt driver's poll minus the RPC: the same records through the same parse."""

    kind = "replay"
    replay: Replay

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        return HostFacts(hypervisor="kvm", cpus=16, memory_bytes=64 << 30)

    async def close(self) -> None:
        return None

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        if not self.replay.next:
            self.replay.prepare()
        now = time.monotonic()
        records = self.replay.next[self.host]
        return HostSnapshot(self.host, now, tuple(domain_from_stats(n, u, i, s, now) for n, u, i, s in records))


def kvm_anchor_per_record(cycles: int) -> tuple[Records, float]:
    """The guests' records, and the client CPU one more record adds to a real getAllDomainStats."""
    conn = libvirt.openReadOnly("qemu:///system")
    try:
        raw = conn.getAllDomainStats(STATS_GROUPS, STATS_FLAGS)
        records = [(d.name(), d.UUIDString(), d.ID(), s) for d, s in raw if s.get("state.state") == 1]
        doms = [d for d, s in raw if s.get("state.state") == 1]
        if len(doms) < 2:
            raise SystemExit("the real-stats part needs the 2 running testbed guests at qemu:///system")
        # Interleaved, so a busy neighbour slows both alike; the median of the differences.
        batch = 20
        diffs = []
        for _ in range(max(cycles, 5) * 3):
            one = cpu_median(1, lambda: [conn.domainListGetStats(doms[:1], STATS_GROUPS, STATS_FLAGS)
                                         for _ in range(batch)])
            two = cpu_median(1, lambda: [conn.domainListGetStats(doms[:2], STATS_GROUPS, STATS_FLAGS)
                                         for _ in range(batch)])
            diffs.append((two - one) / batch)
        marginal = statistics.median(diffs)
        two = cpu_median(cycles, lambda: conn.domainListGetStats(doms[:2], STATS_GROUPS, STATS_FLAGS))
        return records, marginal if marginal > 0 else two / 2
    finally:
        conn.close()


def verdict(ratio: float) -> str:
    return "PASS (stretch)" if ratio <= STRETCH else "PASS" if ratio <= TARGET else "FAIL"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1k and 20k only")
    parser.add_argument("--cycles", type=int, default=7)
    parser.add_argument("--sizes", type=str, default="", help="comma-separated totals, overrides the default")
    parser.add_argument("--profile", type=int, default=0, help="cProfile the engine cycles at this size (stderr)")
    parser.add_argument("--no-kvm", action="store_true", help="skip the real-KVM-stats part")
    args = parser.parse_args()
    libvirt.registerErrorHandler(lambda *_: None, None)
    sizes = [int(s) for s in args.sizes.split(",") if s] or ([1000, 20_000] if args.quick else
                                                             [1000, 20_000, 50_000, 150_000])
    rows: list[tuple[str, int, float, float, float]] = []  # label, domains, anchor, vfleet, per-domain
    for total in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            hosts = test_driver_hosts(Path(tmp), total)
            # one event loop for the whole run: libvirt binds its events to the first one
            vfleet_cpu, anchor_cpu, seen = await measure_engine(
                hosts, args.cycles, anchor=bare_anchor(args.cycles), profile=args.profile == total)
        assert seen == total, (seen, total)
        rows.append(("test driver", total, anchor_cpu, vfleet_cpu, vfleet_cpu / total))
        print(f"  {total} domains: anchor {anchor_cpu * 1e3:.1f} ms, vfleet {vfleet_cpu * 1e3:.1f} ms", file=sys.stderr)
        gc.unfreeze()
        gc.collect()
    kvm: list[tuple[int, float, float]] = []
    if not args.no_kvm:
        records, per_record = kvm_anchor_per_record(args.cycles)
        for total in sizes[:3]:
            replay = Replay(records, total)
            hosts = [HostConfig(name=f"host{h:02d}", driver="replay", poll_interval=3600.0, call_timeout=300.0)
                     for h in range(HOSTS)]

            def factory(config: HostConfig, read_only: bool, replay: Replay = replay) -> Driver:
                driver = ReplayDriver(config, read_only=read_only)
                driver.replay = replay
                return driver

            cpu, _, seen = await measure_engine(hosts, args.cycles, factory, replay.prepare)
            assert seen == total, (seen, total)
            kvm.append((total, per_record, cpu / total))
            gc.unfreeze()
            gc.collect()

    print(f"{HOSTS} hosts, CPU per poll cycle (poll + absorb + report + NDJSON), median of {args.cycles}")
    print(f"{'stats':<12} {'domains':>8} {'anchor':>10} {'vfleet':>10} {'ratio':>7}  {'verdict':<15}"
          f"{'saturation @2s/core':>20}")
    for label, total, anchor_cpu, vfleet_cpu, per_domain in rows:
        ratio = vfleet_cpu / anchor_cpu
        print(f"{label:<12} {total:>8} {anchor_cpu * 1e3:>8.1f}ms {vfleet_cpu * 1e3:>8.1f}ms {ratio:>6.2f}x  "
              f"{verdict(ratio):<15}{INTERVAL / per_domain:>20,.0f}")
    for total, per_record, per_domain in kvm:
        # a real poll costs the RPC's record (the anchor) plus vfleet's work on it
        ratio = (per_record + per_domain) / per_record
        print(f"{'real KVM':<12} {total:>8} {per_record * 1e6:>6.1f}us/d {(per_record + per_domain) * 1e6:>6.1f}us/d"
              f" {ratio:>6.2f}x  {verdict(ratio):<15}{INTERVAL / (per_record + per_domain):>20,.0f}")
    if rows:
        best = max(rows, key=lambda r: r[1])
        saturation = INTERVAL / best[4]
        state = "PASS" if saturation >= SATURATION_TARGET else "FAIL"
        print(f"saturation (test driver, {best[1]} domains): {saturation:,.0f} domains per core at a 2 s interval"
              f"  target >= {SATURATION_TARGET:,}  {state}")
    print("history bytes per domain, RSS after 10 min at 10k: measured by the history part of issue 12")


if __name__ == "__main__":
    asyncio.run(main())
