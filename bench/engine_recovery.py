"""Time from a host's return to UP after an outage, with the engine's own backoff.

N in-process fake hosts are UP, then lose their connection for --outage seconds
(connections refused, or with --black-hole: connects that hang until their
deadline), then come back one by one, spread over connect_timeout seconds so the
hosts sample every phase of their retry cycle. Prints p50/p90/max of each host's
time from its return to UP.
The engine and its backoff are the real ones; only the driver is a fake, so this
measures the engine, not a network (bench/faults.py does real processes).
Run: .venv/bin/python bench/engine_recovery.py [--hosts 50] [--outage 60] [--black-hole]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import HostUnreachable
from vfleet.core.models import HostConfig, HostFacts, HostSnapshot, HostStatus
from vfleet.drivers.base import Driver


class World:
    back_at: dict[str, float] = {}  # host -> when it returns (monotonic); absent: not down
    black_hole = False

    @classmethod
    def down(cls, host: str) -> bool:
        return time.monotonic() < cls.back_at.get(host, 0.0)


class OutageDriver(Driver):
    kind = "outage"

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        if World.down(self.host):
            if World.black_hole:  # an attempt made during the outage fails at its deadline
                await asyncio.sleep(self.seconds_left(deadline, self.config.connect_timeout))
            raise HostUnreachable(self.host, "connection refused")
        return HostFacts(hypervisor="fake", cpus=4)

    async def close(self) -> None:
        return None

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        if World.down(self.host):
            raise HostUnreachable(self.host, "connection reset")
        return HostSnapshot(self.host, time.monotonic(), ())


async def run(hosts: int, outage: float, reconnect_max: float) -> list[float]:
    configs = [HostConfig(name=f"h{i}", driver="outage", poll_interval=2.0, reconnect_max=reconnect_max)
               for i in range(hosts)]
    async with Fleet(configs, driver_factory=lambda c, ro: OutageDriver(c, read_only=ro)) as fleet:
        await fleet.wait_until(lambda v: all(x.health.status is HostStatus.UP for x in v), 30)
        start = time.monotonic()
        spread = configs[0].connect_timeout
        World.back_at = {c.name: start + outage + spread * i / hosts for i, c in enumerate(configs)}
        await fleet.wait_until(lambda v: all(x.health.status is HostStatus.DOWN for x in v), 30)
        up_at: dict[str, float] = {}

        def record(views: list[HostView]) -> bool:
            now = time.monotonic()
            for v in views:
                if v.health.status is HostStatus.UP and now >= World.back_at[v.name]:
                    up_at.setdefault(v.name, now)
            return len(up_at) == hosts

        await fleet.wait_until(record, outage + spread + reconnect_max + 30)
    return sorted(t - World.back_at[name] for name, t in up_at.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--reconnect-max", type=float, default=8.0)
    parser.add_argument("--black-hole", action="store_true", help="connects hang until their deadline (10 s)")
    args = parser.parse_args()
    World.black_hole = args.black_hole
    times = asyncio.run(run(args.hosts, args.outage, args.reconnect_max))
    kind = "black-holed (connects hang 10 s)" if args.black_hole else "refused"
    print(f"{args.hosts} hosts, {args.outage:g} s outage ({kind}), reconnect_max {args.reconnect_max:g} s")
    print(f"return to UP: p50 {statistics.median(times):.2f} s, "
          f"p90 {times[int(0.9 * (len(times) - 1))]:.2f} s, max {times[-1]:.2f} s ({len(times)} hosts)")


if __name__ == "__main__":
    main()
