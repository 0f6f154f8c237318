"""vfleet under faults, measured in one run (issue 10's figures), with in-run anchors.

1. Healthy hosts' data age, p50/p99, alone (the anchor) and beside 7 faulty hosts
   (refused, black hole, banner-less, hung command, slow lossy link, garbled and truncated
   output) while an 8th host is down for --outage seconds. Target: p99 ratio <= 1.1x.
2. Time from that host's return to UP (target <= 10 s after a 60 s outage); the anchor is
   the same host's first, cold connect in the same run.
3. TUI key-to-screen latency, p99, with 7 of 9 hosts faulty (target <= 50 ms); the anchor
   is the same TUI with the 2 healthy hosts alone. Measured from the key event to the first
   frame written after the cursor moved, with a driver that renders like a terminal.
4. Soaks, running beside the rest as their own `vfleet top --batch` processes: RSS and
   threads with one black-holed host (--soak seconds, default 600), and threads, sockets and
   child processes with an unreachable esxi_api host and a hung qemu+ssh host (default 180).

The faulty hosts are the fault suite's (tests/faults): fake SSH hosts as processes, a user-
space proxy for latency and stalls, a network namespace that swallows SYNs. Needs root (ip
netns), libvirt-python and ssh.
Run: .venv/bin/python bench/faults.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import textual.drivers.headless_driver as headless  # noqa: E402
from textual import events  # noqa: E402

from faults.harness import (  # noqa: E402
    FakeHost,
    Keyring,
    NetFault,
    Vfleet,
    black_hole,
    free_port,
    sample,
    write_inventory,
)
from vfleet.app import VFleetApp  # noqa: E402
from vfleet.core import inventory  # noqa: E402
from vfleet.core.engine import Fleet  # noqa: E402
from vfleet.core.models import HostConfig, HostStatus  # noqa: E402

POLL = 1.0
SIZE = (160, 50)
PASSWORD_ENV = "VFLEET_BENCH_ESX_PASSWORD"


class TimedDriver(headless.HeadlessDriver):
    """Renders like a terminal driver (is_headless False) and notes when it writes a frame,
    and what `probe` (the table's cursor row) was when it did."""

    last_write = 0.0
    probe: Callable[[], object] = staticmethod(lambda: None)
    frames: list[tuple[float, object]] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        TimedDriver.last_write = time.perf_counter()
        TimedDriver.frames.append((TimedDriver.last_write, TimedDriver.probe()))

    def flush(self) -> None:
        pass


headless.HeadlessDriver = TimedDriver  # type: ignore[misc]  # run_test imports it from here


class Counting(logging.Handler):
    """Counts warnings instead of printing them over the figures (reported at the end)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name}: {record.getMessage()[:100]}"
        self.seen[key] = self.seen.get(key, 0) + 1


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


class Lab:
    """Every host of the run: 2 healthy, 7 faulty, 1 that dies and returns."""

    def __init__(self, directory: Path, stack: contextlib.ExitStack) -> None:
        self.dir = directory
        self.keys = Keyring(directory / "keys")
        self.stack = stack
        self.procs: list[FakeHost | NetFault] = []
        guests = [f"vm{i:02d}" for i in range(20)]
        self.healthy = [self.fake(f"ok{i}", guests=guests).entry() for i in (1, 2)]
        self.phoenix = self.fake("phoenix")
        slow = self.fake("slow-origin")
        link = self.net(NetFault.proxy(slow.port, delay=0.3, rate=32_000, stall_prob=0.05))
        self.keys.trust(link.port, self.keys.host_key("slow-origin"))
        hole = stack.enter_context(black_hole())
        self.faulty = [
            self.keys.ssh_entry("refused", "xen_xl", free_port()),
            self.keys.ssh_entry("blackhole", "xen_xl", 22, address=hole),
            self.keys.ssh_entry("nobanner", "xen_xl", self.net(NetFault.nobanner()).port),
            self.fake("hung", poll="hang").entry(),
            slow.entry(name="slow", port=link.port, connect_timeout=15, call_timeout=10),
            self.fake("garbled", poll="garbled").entry(),
            self.fake("truncated", poll="truncated").entry(),
        ]
        self.hole = hole

    def fake(self, name: str, **options: Any) -> FakeHost:
        host = FakeHost(self.keys, name, **options).start()
        self.procs.append(host)
        return host

    def net(self, fault: NetFault) -> NetFault:
        self.procs.append(fault)
        return fault

    def hosts(self, entries: list[dict[str, Any]], name: str) -> tuple[HostConfig, ...]:
        path = write_inventory(self.dir / f"{name}.yaml", entries, poll_interval=POLL, connect_timeout=3,
                               call_timeout=3)
        return inventory.load(path).hosts

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()


async def data_ages(fleet: Fleet, names: list[str], seconds: float) -> list[float]:
    """Every healthy host's data age, sampled 20 times a second, as a screen would see it."""
    ages: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        ages += [a for v in fleet.views() if v.name in names and (a := v.health.data_age(now)) is not None]
        await asyncio.sleep(0.05)
    return ages


def is_up(fleet: Fleet, name: str, after: float) -> bool:
    health = fleet.view(name).health
    return health.status is HostStatus.UP and (health.last_ok_at or 0) > after


async def measure_fleet(lab: Lab, warmup: float, anchor_s: float, outage: float) -> dict[str, float]:
    names = [str(h["name"]) for h in lab.healthy]
    result: dict[str, float] = {}
    async with Fleet(lab.hosts(lab.healthy, "healthy")) as alone:
        await alone.wait_until(lambda vs: all(v.health.polls >= 1 for v in vs), 30)
        await asyncio.sleep(warmup)
        anchor = await data_ages(alone, names, anchor_s)
    result.update(anchor_p50=statistics.median(anchor), anchor_p99=pct(anchor, 99))
    everyone = [*lab.healthy, *lab.faulty, lab.phoenix.entry()]
    started = time.monotonic()
    async with Fleet(lab.hosts(everyone, "faulty")) as fleet:
        await fleet.wait_until(lambda vs: is_up(fleet, "phoenix", started), 30)
        result["cold_connect"] = time.monotonic() - started
        await asyncio.sleep(warmup)  # every fault has shown itself (connect timeouts are 3 s)
        lab.phoenix.kill()
        ages_task = asyncio.create_task(data_ages(fleet, names, outage + 15))
        await asyncio.sleep(outage)
        lab.phoenix.start()
        back = time.monotonic()
        recovered = await fleet.wait_until(lambda vs: is_up(fleet, "phoenix", back), 60)
        result["recovery"] = time.monotonic() - back if recovered else float("inf")
        ages = await ages_task
    result.update(faulty_p50=statistics.median(ages), faulty_p99=pct(ages, 99))
    return result


async def until(check: Callable[[], bool], what: str) -> None:
    """Spin, yielding to the app, until check() holds (a key's effect posts no event to await)."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > 10:
            raise SystemExit(f"bench/faults.py: {what} did not come within 10 s")
        await asyncio.sleep(0.0005)


async def key_latency(hosts: tuple[HostConfig, ...], presses: int, warmup: float) -> list[float]:
    """Key event -> first frame written after the cursor moved, in the TUI over a live fleet."""
    app = VFleetApp(Fleet(hosts))
    latencies: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        table = app.fleet_screen.table
        deadline = time.monotonic() + 30
        while table.row_count < 10 and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(warmup)
        driver = app._driver
        assert driver is not None
        TimedDriver.probe = staticmethod(lambda: table.cursor_row)
        for _ in range(presses):
            before = table.cursor_row
            TimedDriver.frames = []
            started = time.perf_counter()
            # As a terminal driver delivers it; pilot.press() would also wait for the CPU to go idle.
            driver.send_message(events.Key("down" if before < 5 else "up", None))

            def shown(b: int = before) -> float | None:
                """When the first frame showing the moved cursor was written (it may precede our look)."""
                return next((t for t, cursor in TimedDriver.frames if cursor != b), None)

            await until(lambda: shown() is not None, "a frame with the cursor moved")
            latencies.append(float(shown() or 0.0) - started)
            await asyncio.sleep(0.05)  # key repeat is ~20 Hz, not a flood
    return latencies


class Soak:
    """`vfleet top --batch` over an inventory, as its own process, sampled from /proc."""

    def __init__(self, lab: Lab, name: str, entries: list[dict[str, Any]], seconds: float) -> None:
        path = write_inventory(lab.dir / f"{name}.yaml", entries, connect_timeout=3, call_timeout=3)
        frames = max(1, int(seconds / 2))
        self.proc = Vfleet("-i", str(path), "top", "--batch", "-d", "2", "-n", str(frames),
                           stderr_file=lab.dir / f"{name}.err", env={PASSWORD_ENV: "not-a-secret"})
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.seconds = seconds
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        started = time.monotonic()
        while self.proc.running():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - started, sample(self.proc.pid)))
            time.sleep(1)

    def finish(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Samples at 15 s (pools and connections made), half-way and at the end."""
        self.proc.finish(self.seconds + 60)
        self.thread.join()
        first = next(s for t, s in self.samples if t >= 15)
        middle = next(s for t, s in self.samples if t >= self.samples[-1][0] / 2)
        return first, middle, self.samples[-1][1]


def unreachable(lab: Lab) -> list[dict[str, Any]]:
    esx, sshd = lab.net(NetFault.nobanner()), lab.net(NetFault.nobanner())
    wrapper = lab.dir / "ssh-no-timeout"  # ssh as most users run it: no ConnectTimeout
    wrapper.write_text(
        "#!/bin/sh\nexec ssh -F none -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null"
        f" -o StrictHostKeyChecking=yes -o BatchMode=yes -i {lab.keys.client_key} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return [
        {"name": "esx-dead", "driver": "esxi_api", "address": "127.0.0.1", "port": esx.port, "user": "root",
         "password_env": PASSWORD_ENV, "tls": {"thumbprint": ":".join(["AB"] * 32)}},
        {"name": "qemu-hung", "driver": "libvirt",
         "uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/system?keyfile={lab.keys.client_key}&command={wrapper}"},
    ]


@contextlib.contextmanager
def lab_running() -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="vfleet-bench-faults-") as tmp, contextlib.ExitStack() as stack:
        lab = Lab(Path(tmp), stack)
        try:
            yield lab
        finally:
            lab.close()


def growth(first: dict[str, int], last: dict[str, int], key: str) -> str:
    return f"{first[key]} -> {last[key]} ({last[key] / max(1, first[key]):.2f}x)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (20 s outage, 60 s soaks)")
    parser.add_argument("--outage", type=float, help="seconds a host stays down (default 60)")
    parser.add_argument("--soak", type=float, help="seconds of the black-hole soak (default 600)")
    parser.add_argument("--leak-soak", type=float, help="seconds of the esxi_api/qemu+ssh soak (default 180)")
    args = parser.parse_args()
    outage = args.outage or (20.0 if args.quick else 60.0)
    soak_s = args.soak or (60.0 if args.quick else 600.0)
    leak_s = args.leak_soak or (60.0 if args.quick else 180.0)
    anchor_s, presses, warmup = (10.0, 60, 4.0) if args.quick else (30.0, 200, 5.0)
    warnings = Counting()
    logging.basicConfig(handlers=[warnings], level=logging.WARNING, force=True)
    print(f"vfleet under faults (poll interval {POLL:g} s, outage {outage:g} s, soaks {soak_s:g} s and {leak_s:g} s)")
    with lab_running() as lab:
        hole_soak = Soak(lab, "soak-blackhole", [lab.healthy[0], lab.keys.ssh_entry("blackhole", "xen_xl", 22,
                                                                                    address=lab.hole)], soak_s)
        leak_soak = Soak(lab, "soak-leaks", [lab.healthy[1], *unreachable(lab)], leak_s)
        fleet = await measure_fleet(lab, warmup, anchor_s, outage)
        print("healthy hosts' data age (2 healthy hosts, sampled at 20 Hz)")
        print(f"  anchor, alone:                 p50 {fleet['anchor_p50']:.2f} s  p99 {fleet['anchor_p99']:.2f} s")
        print(f"  beside 7 faulty + 1 down host: p50 {fleet['faulty_p50']:.2f} s  p99 {fleet['faulty_p99']:.2f} s"
              f"  ratio p50 {fleet['faulty_p50'] / fleet['anchor_p50']:.2f}x"
              f"  p99 {fleet['faulty_p99'] / fleet['anchor_p99']:.2f}x (target <= 1.1x)")
        print(f"back to UP after a {outage:g} s outage: {fleet['recovery']:.1f} s after the host returned"
              f" (target <= 10 s); anchor, its cold connect: {fleet['cold_connect']:.1f} s"
              f" ({fleet['recovery'] / fleet['cold_connect']:.1f}x)")
        alone = await key_latency(lab.hosts(lab.healthy, "tui-healthy"), presses, warmup)
        faulty = await key_latency(lab.hosts([*lab.healthy, *lab.faulty], "tui-faulty"), presses, warmup)
        print(f"TUI key -> screen ({presses} presses each): anchor, 2 healthy hosts:"
              f" p50 {statistics.median(alone) * 1e3:.1f} ms p99 {pct(alone, 99) * 1e3:.1f} ms;"
              f" 7 of 9 faulty: p50 {statistics.median(faulty) * 1e3:.1f} ms p99 {pct(faulty, 99) * 1e3:.1f} ms"
              f" ({pct(faulty, 99) / pct(alone, 99):.2f}x; target p99 <= 50 ms)")
        first, middle, last = hole_soak.finish()
        # Per-domain history rings fill for their first 10 minutes: RSS grows that long by design.
        print(f"{soak_s:g} s with one black-holed host (from 15 s to the end):"
              f" RSS {growth(first, last, 'rss_kib')} KiB (half-way {middle['rss_kib']}),"
              f" threads {growth(first, last, 'threads')}")
        first, _middle, last = leak_soak.finish()
        print(f"{leak_s:g} s with an unreachable esxi_api host and a hung qemu+ssh host (from 15 s to the end):"
              f" threads {growth(first, last, 'threads')}, sockets {growth(first, last, 'sockets')},"
              f" child processes {first['children']} -> {last['children']}")
    for message, count in sorted(warnings.seen.items()):
        print(f"logged {count}x inside the bench's own fleet: {message}")


if __name__ == "__main__":
    asyncio.run(main())
