"""History memory: bytes per domain for ten minutes of what the TUI draws, and the RSS of
a 10,000-domain console over 20 simulated minutes.

1. Bytes per domain (tracemalloc, one full and wrapped ring per domain) at a 2 s and a
   1 s interval: the float32 rings of vfleet.core.history against the anchor, the
   representation they replaced (a deque of HistoryPoint(taken_at, DomainRates,
   memory) per domain, every rate a Python float), both measured in this run.
2. RSS of HostData for 10 hosts x 1,000 domains fed 2 s polls on a fake clock, in a
   fresh process per mode: history off (status, top), on (the TUI), and the old deque
   (the anchor, at --anchor-domains, default 2,000). History per domain = RSS minus the
   history-off run of the same size, over the domains. By default the first two polls
   and each checkpoint minute are a real HostData.absorb (new rows, rates, counters)
   and the polls between record each domain's history as absorb does (the rest of
   absorb only swaps the rows); --full runs absorb for every poll (about 10x slower).
   "Flat" = RSS after the history is full (10 min) moves by less than --flat-pct.

Run: .venv/bin/python bench/history.py [--domains 10000] [--minutes 20] [--full]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from vfleet.core.history import History, HostHistory, capacity_for
from vfleet.core.models import Domain, DomainCounters, DomainRates, HostConfig, HostFacts, HostSnapshot, PowerState
from vfleet.core.samples import HostData

TARGET = 10 * 1024  # bytes per domain
HOSTS = 10
CHECKPOINTS = (2, 5, 10, 15, 20)  # simulated minutes


@dataclass(frozen=True, slots=True)
class HistoryPoint:  # the anchor: the representation before core/history.py
    taken_at: float
    rates: DomainRates
    memory_used_bytes: int | None


def _rates(i: int, step: int) -> DomainRates:
    """Distinct floats in every field, as a busy KVM guest gives (the engine builds new ones each poll)."""
    base = float(i * 1000 + step) + 0.5
    return DomainRates(base / 1e4, base / 1e5, base * 3, base * 7, base / 3, base / 7, base * 11, base * 13, base / 1e6)


def bytes_per_domain(interval: float, domains: int) -> tuple[float, float, int]:
    """(anchor, rings) bytes per domain by tracemalloc, and one ring's own nbytes."""
    capacity = capacity_for(interval)
    samples = capacity + 7  # full and wrapped: the steady state
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    old = [deque(maxlen=capacity) for _ in range(domains)]
    for step in range(samples):
        for i, ring in enumerate(old):
            ring.append(HistoryPoint(2.0 * step, _rates(i, step), (1 << 30) + i * 4096 + step))
    old_bytes = (tracemalloc.get_traced_memory()[0] - before) / domains
    del old, ring
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    new = [History(capacity) for _ in range(domains)]
    for step in range(samples):
        for i, history in enumerate(new):
            r = _rates(i, step)
            history.record(r.cpu_percent, (1 << 30) + i * 4096 + step, r.disk_read_bps, r.net_rx_bps)
    new_bytes = (tracemalloc.get_traced_memory()[0] - before) / domains
    tracemalloc.stop()
    return old_bytes, new_bytes, new[0].nbytes


# -- RSS of a fleet, one mode per process -----------------------------------------


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _snapshot(host: int, per_host: int, step: int, t: float) -> HostSnapshot:
    running = PowerState.RUNNING
    domains = tuple(
        Domain(
            f"vm-{host}-{i}", running, "running", f"{host:04x}{i:08x}-0000-0000-0000-000000000000", i + 1, 2,
            4 << 30, 4 << 30, (2 << 30) + step * 4096 + i, None, 100.0 + t,
            DomainCounters(t, step * (i % 97 + 1) * 10_000_000, step * i * 1000, step * i * 3000, step * i,
                           step * i, step * i * 50, step * i * 20, step * 1000),
        )
        for i in range(per_host)
    )
    return HostSnapshot(f"h{host}", t, domains, HostFacts("kvm", cpus=64, memory_bytes=1 << 40))


def rss_child(mode: str, domains: int, minutes: int, interval: float, full: bool) -> dict[str, object]:
    per_host = domains // HOSTS
    hosts = [HostData(HostConfig(name=f"h{h}", driver="libvirt", poll_interval=interval)) for h in range(HOSTS)]
    capacity = capacity_for(interval)
    old: list[dict[str, deque[HistoryPoint]]] = [{} for _ in hosts]
    if mode == "on":
        for data in hosts:
            data.history = HostHistory(capacity)
    polls_per_minute = round(60 / interval)
    base = _rss()
    curve: dict[int, int] = {}
    for step in range(minutes * polls_per_minute + 1):
        t = step * interval
        for h, data in enumerate(hosts):
            if full or step < 2 or (step % polls_per_minute == 0 and step // polls_per_minute in CHECKPOINTS):
                data.absorb(_snapshot(h, per_host, step, t))
            elif data.history is not None:
                data.history.record(data.rows)  # what absorb does for history on every poll
            if mode == "old":  # the anchor: a new HistoryPoint and DomainRates per domain per poll
                rings = old[h]
                for i, row in enumerate(data.rows):
                    ring = rings.get(row.domain.key)
                    if ring is None:
                        ring = rings[row.domain.key] = deque(maxlen=capacity)
                    ring.append(HistoryPoint(t, _rates(i, step), row.domain.memory_used_bytes))
        if step and step % polls_per_minute == 0 and step // polls_per_minute in CHECKPOINTS:
            gc.collect()
            curve[step // polls_per_minute] = _rss()
    return {"mode": mode, "domains": domains, "base": base, "curve": curve}


def run_child(mode: str, domains: int, args: argparse.Namespace) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", mode, "--domains", str(domains), "--minutes", str(args.minutes),
           "--interval", str(args.interval)] + (["--full"] if args.full else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--anchor-domains", type=int, default=2_000, help="domains for the old-deque RSS run")
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--full", action="store_true", help="a real absorb for every poll")
    parser.add_argument("--flat-pct", type=float, default=3.0)
    parser.add_argument("--child", choices=("off", "on", "old"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(rss_child(args.child, args.domains, args.minutes, args.interval, args.full)))
        return

    print("history bytes per domain, 10 minutes (tracemalloc, 100 domains):")
    for interval in (2.0, 1.0):
        old, new, own = bytes_per_domain(interval, 100)
        verdict = "meets" if new <= TARGET else "MISSES"
        print(f"  {interval:g} s ({capacity_for(interval)} samples): deque of HistoryPoint {old / 1024:7.1f} KiB, "
              f"float32 rings {new / 1024:5.2f} KiB (nbytes {own}) = {old / new:4.1f}x smaller; "
              f"{new / TARGET:.2f}x the 10 KiB target: {verdict}")

    print(f"\nRSS, {HOSTS} hosts, {args.interval:g} s polls on a fake clock"
          f" ({'absorb every poll' if args.full else 'absorb at the checkpoints, history every poll'}):")
    print(f"  {'mode':<22} {'domains':>7}  " + "  ".join(f"{m:>4} min" for m in CHECKPOINTS if m <= args.minutes)
          + "   history/domain   after 10 min")
    per_domain: dict[str, float] = {}
    floors: dict[int, dict[int, int]] = {}  # domains -> the history-off curve: what the rest of the engine holds
    for mode, label, domains in (
        ("off", "off (status, top)", args.domains),
        ("on", "float32 rings (TUI)", args.domains),
        ("off", "off (status, top)", args.anchor_domains),
        ("old", "deque (anchor)", args.anchor_domains),
    ):
        result = run_child(mode, domains, args)
        curve = {int(k): int(v) for k, v in result["curve"].items()}  # type: ignore[attr-defined]
        points = "  ".join(f"{curve[m] / 2**20:5.0f} MB" for m in CHECKPOINTS if m in curve)
        floor = floors.setdefault(domains, curve) if mode == "off" else floors[domains]
        last = max(curve)
        per_domain[mode] = (curve[last] - floor[last]) / domains
        history = f"{per_domain[mode] / 1024:7.1f} KiB" if mode != "off" else " " * 11
        plateau = [v for m, v in curve.items() if m >= 10]
        drift = (max(plateau) - min(plateau)) / min(plateau) * 100 if len(plateau) > 1 else float("nan")
        flat = "flat" if drift < args.flat_pct else "GROWS"
        print(f"  {label:<22} {domains:>7}  {points}   {history}      {drift:+.1f}% {flat}")
    rings, deques = per_domain["on"] * args.domains, per_domain["old"] * args.domains
    print(f"  history of {args.domains} domains by RSS: rings {rings / 2**20:.0f} MB, deque {deques / 2**20:.0f} MB"
          f" (its per-domain figure x {args.domains}) = {deques / rings:.0f}x")

if __name__ == "__main__":
    main()
