"""A simulated host: random-walk metrics, lifecycle with realistic delays, faults.

It backs `vfleet demo` and the TUI tests. It is never used to test another driver.
Its options are declared in SPEC below.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, ClassVar

from vfleet.core.errors import ActionFailed, DomainNotFound, DriverTimeout, GarbledOutput, HostUnreachable
from vfleet.core.models import (
    ActionParams,
    ActionResult,
    Domain,
    DomainCounters,
    DomainEvent,
    DomainGauges,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MemorySource,
    MigrateParams,
    NodeFacts,
    PowerState,
    SnapshotInfo,
    Verb,
)
from vfleet.drivers.base import LIFECYCLE, Capability, Driver
from vfleet.drivers.spec import NONE, DriverSpec, KeySpec
from vfleet.drivers.xen import UNSUPPORTED

SPEC = DriverSpec(
    name="sim",
    driver="vfleet.drivers.sim:SimDriver",
    summary="the built-in simulated fleet (demo and tests)",
    transport=NONE,
    options=(
        KeySpec("flavour", str, "kvm", "raw state words and memory sources follow this backend",
                choices=("kvm", "xen", "esxi", "xapi")),
        KeySpec("domains", int, 10, "how many domains the host has", minimum=0),
        KeySpec("nodes", int, 0, "servers of a simulated pool or cluster (0: a single host); domains run on them",
                minimum=0),
        KeySpec("seed", int, 0, "random seed: the same seed gives the same fleet"),
        KeySpec("flaky", bool, False, "drop the connection now and then"),
        KeySpec("latency", float, 0.05, "seconds per round trip", minimum=0),
        KeySpec("hostile", bool, False, "the first domains get hostile names (escapes, markup, bidi): for tests"),
    ),
)

GIB = 1024**3
_RAW_STATES = {
    "kvm": {
        PowerState.RUNNING: "running",
        PowerState.OFF: "shut off",
        PowerState.PAUSED: "paused",
        PowerState.SHUTTING_DOWN: "in shutdown",
        PowerState.SUSPENDED: "pmsuspended",
    },
    "xen": {
        PowerState.RUNNING: "-b----",
        PowerState.OFF: "(not running)",
        PowerState.PAUSED: "--p---",
        PowerState.SHUTTING_DOWN: "---s--",
        PowerState.SUSPENDED: "--p---",
    },
    "esxi": {
        PowerState.RUNNING: "poweredOn",
        PowerState.OFF: "poweredOff",
        PowerState.PAUSED: "suspended",
        PowerState.SHUTTING_DOWN: "poweredOn",
        PowerState.SUSPENDED: "suspended",
    },
    "xapi": {  # XAPI's power_state words
        PowerState.RUNNING: "Running",
        PowerState.OFF: "Halted",
        PowerState.PAUSED: "Paused",
        PowerState.SHUTTING_DOWN: "Running",
        PowerState.SUSPENDED: "Suspended",
    },
}
_MEMORY_SOURCE = {"kvm": MemorySource.GUEST, "xen": None, "esxi": MemorySource.HYPERVISOR, "xapi": MemorySource.GUEST}
_HYPERVISOR = {"kvm": "kvm", "xen": "xen", "esxi": "esxi", "xapi": "xen"}
_VERSION = {"kvm": "9.0.0", "xen": "4.17.7", "esxi": "8.0.2", "xapi": "XCP-ng 8.3.0"}
NODE_CPUS, NODE_MEMORY = 16, 128 * 1024**3  # each server of a simulated pool
# Names a hostile or broken host could report: terminal escapes (OSC title, SGR,
# clear screen, a C1 CSI), Rich/Textual markup, a leading dash, bidi and zero-width
# characters, line breaks; and printable non-ASCII names that must stay readable.
HOSTILE_NAMES = (
    "ev\x1b]0;PWNED-TITLE\x07\x1b[31mRED",
    "[red]markup[/] [bold",
    "-f",
    "invoice\u202egnp.exe",
    "two\nlines\tand\x1b[2Jclear",
    "zero\u200bwidth\u2066iso\u2069",
    "c1\x9b31mcsi\x7f",
    "Wébserver",
    "数据库",
)
_ROLES = ("web", "db", "cache", "api", "build", "mail", "dns", "proxy", "queue", "ci", "ldap", "backup")


@dataclass
class _SimDomain:
    name: str
    uuid: str
    vcpus: int
    memory: int
    state: PowerState
    load: float  # fraction of its vCPUs busy, random-walked each poll
    used_fraction: float
    cpu_ns: int = 0
    disk: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # rd bytes, wr bytes, rd reqs, wr reqs
    net: list[int] = field(default_factory=lambda: [0, 0])
    wait_ns: int = 0
    started_at: float | None = None
    domain_id: int | None = None
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    node: str | None = None  # the pool server it runs on (pools only)


class SimDriver(Driver):
    kind = "sim"
    capabilities = LIFECYCLE | {
        Capability.EVENTS,
        Capability.READ_ONLY_CONNECTION,
        Capability.SNAPSHOT,
        Capability.MIGRATION,
    }
    # The connected simulated hosts of this process, by name: a migration moves a domain between two of them.
    _connected_hosts: ClassVar[dict[str, SimDriver]] = {}

    def __new__(cls, config: HostConfig, *, read_only: bool = False) -> SimDriver:
        # A xen-flavoured host does what xen_xl does: no snapshots, and the menu says why.
        flavour = config.options.get("flavour")
        chosen = SimXenDriver if flavour == "xen" else SimSavingDriver if flavour in ("esxi", "xapi") else cls
        chosen = chosen if cls is SimDriver else cls
        return super().__new__(chosen)

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        options = self.config.options  # typed and checked by the inventory against the sim spec
        self.flavour = str(options.get("flavour", "kvm"))
        self.latency = float(str(options.get("latency", 0.05)))
        self.flaky = bool(options.get("flaky", False))
        self.hostile = bool(options.get("hostile", False))
        seed = str(options.get("seed", 0))
        self._rng = random.Random(f"{seed}:{self.host}")
        count = int(str(options.get("domains", 10)))
        # Servers named as pool members often are: the pool's prefix and a number (xcp-pool-1: xcp-01, xcp-02).
        prefix = self.host.split("-", 1)[0]
        self.nodes = tuple(f"{prefix}-{i + 1:02d}" for i in range(int(str(options.get("nodes", 0)))))
        self._domains = {d.name: d for d in (self._make_domain(i) for i in range(count))}
        self._events: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._connected = False
        self._last_tick = time.monotonic()
        self._next_id = 1
        self._transitions: set[asyncio.Task[None]] = set()

    def _make_domain(self, index: int) -> _SimDomain:
        rng = self._rng
        roll = rng.random()
        state = PowerState.RUNNING if roll < 0.8 else PowerState.OFF if roll < 0.95 else PowerState.PAUSED
        role = _ROLES[index % len(_ROLES)]
        name = f"{self.host}-{role}{index // len(_ROLES) + 1:02d}"
        if self.hostile and index < len(HOSTILE_NAMES):
            name = HOSTILE_NAMES[index]
        dom = _SimDomain(
            name=name,
            uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            vcpus=rng.choice((2, 4, 4, 8) if self.nodes else (1, 2, 2, 4, 4, 8)),  # pools host the big VMs
            memory=rng.choice((1, 2, 4, 4, 8, 16)) * GIB,
            state=state,
            load=rng.uniform(0.02, 0.6),
            used_fraction=rng.uniform(0.2, 0.8),
            started_at=time.monotonic() - rng.uniform(60, 86400 * 30) if state is not PowerState.OFF else None,
        )
        if self.nodes:
            # Two of three on the first server: a pool whose placement drifted, so the first
            # server is overcommitted and its domains wait for CPUs (contention) while the rest idle.
            others = self.nodes[1:] or self.nodes
            dom.node = self.nodes[0] if index % 3 != 2 else others[index % len(others)]
        return dom

    async def _take(self, seconds: float, deadline: float, what: str) -> None:
        """Simulated latency, within the call's deadline like a real backend."""
        left = max(0.0, deadline - time.monotonic())
        if seconds > left:
            await asyncio.sleep(left)
            raise DriverTimeout(self.host, f"{what}: no answer within {left:.3g} s (simulated latency)")
        await asyncio.sleep(seconds)

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        await self._take(self.latency, self.due(deadline, self.config.connect_timeout), "connect")
        if self.flaky and self._rng.random() < 0.3:
            raise HostUnreachable(self.host, "connection refused (simulated fault)")
        self._connected = True
        SimDriver._connected_hosts[self.host] = self
        for dom in self._domains.values():
            if dom.state is not PowerState.OFF and dom.domain_id is None:
                dom.domain_id = self._take_id()
        return self._facts()

    def _facts(self) -> HostFacts:
        version = _VERSION[self.flavour]
        hostname, cpu_model = f"{self.host}.demo", "Simulated Xeon"
        if self.hostile:
            version += "\u202e"
            hostname = f"{self.host}\x1b]0;PWNED-HOST\x07.demo"
            cpu_model = "Simulated\x1b[2J Xeon"
        nodes = tuple(NodeFacts(name, NODE_CPUS, NODE_MEMORY) for name in self.nodes)
        return HostFacts(
            hypervisor=_HYPERVISOR[self.flavour],
            version=version,
            hostname=hostname,
            cpus=NODE_CPUS * len(nodes) if nodes else 32,
            memory_bytes=NODE_MEMORY * len(nodes) if nodes else 256 * GIB,
            cpu_model=cpu_model,
            nodes=nodes,
        )

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def close(self) -> None:
        self._connected = False
        if SimDriver._connected_hosts.get(self.host) is self:
            del SimDriver._connected_hosts[self.host]
        for task in self._transitions:
            task.cancel()

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        if not self._connected:
            raise HostUnreachable(self.host, "not connected")
        await self._take(self.latency * self._rng.uniform(0.5, 1.5), self.due(deadline), "poll")
        if self.flaky and self._rng.random() < 0.04:
            self._connected = False
            raise HostUnreachable(self.host, "connection reset by peer (simulated fault)")
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        waits = self._wait_factors()
        return HostSnapshot(
            self.host, now, tuple(self._observe(d, elapsed, now, waits) for d in self._domains.values())
        )

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """A simulated host has no backend: its raw answer is one poll's domains and its facts, as JSON."""
        snapshot = await self.poll(deadline=deadline)
        document = {"facts": asdict(self._facts()), "domains": [asdict(d) for d in snapshot.domains]}
        return {RECORDING_FILE: json.dumps(document, indent=1, ensure_ascii=False, default=_enum_value)}

    def _wait_factors(self) -> dict[str | None, float]:
        """How much a busy vCPU waits for a CPU, per server: more the more its CPUs are committed
        (a pool server at 2 vCPUs per CPU waits about 6 times what one at 0.8 does)."""
        if not self.nodes:
            return {None: 0.03}
        vcpus = dict.fromkeys(self.nodes, 0)
        for dom in self._domains.values():
            if dom.node in vcpus and dom.state is PowerState.RUNNING:
                vcpus[dom.node] += dom.vcpus
        return {node: 0.05 * (n / NODE_CPUS) ** 2 for node, n in vcpus.items()}

    def _observe(self, dom: _SimDomain, elapsed: float, now: float, waits: dict[str | None, float]) -> Domain:
        running = dom.state in (PowerState.RUNNING, PowerState.SHUTTING_DOWN)
        if running:
            rng = self._rng
            dom.load = min(1.0, max(0.0, dom.load + rng.gauss(0, 0.05)))
            dom.used_fraction = min(0.98, max(0.05, dom.used_fraction + rng.gauss(0, 0.01)))
            dom.cpu_ns += int(dom.load * dom.vcpus * elapsed * 1e9)
            wait = waits.get(dom.node if self.nodes else None, 0.03)
            dom.wait_ns += int(dom.load * wait * dom.vcpus * elapsed * 1e9 * 2 * rng.random())
            for i, scale in enumerate((2e6, 1e6, 120, 80)):
                dom.disk[i] += int(scale * dom.load * elapsed * rng.random())
            for i, scale in enumerate((3e6, 1.5e6)):
                dom.net[i] += int(scale * dom.load * elapsed * rng.random())
        source = _MEMORY_SOURCE[self.flavour] if running else None
        return Domain(
            name=dom.name,
            state=dom.state,
            raw_state=_RAW_STATES[self.flavour][dom.state] + ("\x1b[0m" if self.hostile else ""),
            uuid=dom.uuid,
            domain_id=dom.domain_id,
            vcpus=dom.vcpus,
            memory_max_bytes=dom.memory,
            memory_current_bytes=dom.memory if dom.state is not PowerState.OFF else None,
            memory_used_bytes=int(dom.memory * dom.used_fraction) if source else None,
            memory_used_source=source,
            uptime_s=now - dom.started_at if dom.started_at is not None and running else None,
            counters=DomainCounters(
                taken_at=now,
                cpu_time_ns=dom.cpu_ns,
                disk_read_bytes=dom.disk[0],
                disk_write_bytes=dom.disk[1],
                disk_read_reqs=dom.disk[2],
                disk_write_reqs=dom.disk[3],
                net_rx_bytes=dom.net[0],
                net_tx_bytes=dom.net[1],
                vcpu_wait_ns=dom.wait_ns if self.flavour != "xen" else None,
            )
            if running
            else None,
            snapshot_count=len(dom.snapshots) if self.flavour != "xen" else None,
            oldest_snapshot_at=min((s.created for s in dom.snapshots if s.created is not None), default=None),
            # XAPI: a halted VM is resident on no server (resident_on is NULL)
            node=None if dom.state is PowerState.OFF and self.flavour == "xapi" else dom.node,
        )

    async def events(self) -> AsyncIterator[DomainEvent]:
        while True:
            yield await self._events.get()

    def _emit(self, dom: _SimDomain, kind: str, detail: str = "") -> None:
        self._events.put_nowait(DomainEvent(self.host, dom.name, kind, detail, dom.uuid, time.time()))

    def _find(self, target: DomainRef) -> _SimDomain:
        dom = next((d for d in self._domains.values() if d.uuid == target.key), None)
        if dom is None and not target.by_uuid:
            dom = self._domains.get(target.name)
        if dom is None:
            raise DomainNotFound(self.host, f"no domain named {target.name!r}")
        return dom

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        dom = self._find(target)
        await self._take(self.latency, self.due(deadline), f"snapshots of {target.name}")
        return tuple(dom.snapshots)

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        dom = self._find(target)
        await self._take(self.latency * 2, self.due(deadline), f"{verb.value} {target.name}")
        if isinstance(params, MigrateParams):
            return self._migrate(dom, params)
        known = next((s for s in dom.snapshots if s.name == params.name), None)
        if verb is Verb.SNAPSHOT_CREATE:
            if known is not None:
                raise ActionFailed(self.host, f"{dom.name}: a snapshot named {params.name!r} exists")
            current = next((s.name for s in dom.snapshots if s.current), None)
            dom.snapshots = [replace(s, current=False) for s in dom.snapshots]
            memory = params.memory and dom.state is PowerState.RUNNING
            dom.snapshots.append(SnapshotInfo(params.name, time.time(), current, True, memory, state=dom.state.value))
        elif known is None:
            raise ActionFailed(self.host, f"{dom.name}: no snapshot named {params.name!r}")
        elif verb is Verb.SNAPSHOT_REVERT:
            dom.snapshots = [replace(s, current=s.name == params.name) for s in dom.snapshots]
            if not known.memory and dom.state is not PowerState.OFF:
                self._power_off(dom, "reverted to a disk-only snapshot")
        else:
            dom.snapshots = [s for s in dom.snapshots if s.name != params.name]
        return ActionResult(self.host, dom.name, verb, ok=True, state_after=dom.state)

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        domain = target.name
        dom = self._find(target)
        await self._take(self.latency * 2, self.due(deadline), f"{verb.value} {domain}")
        allowed = {
            Verb.START: (PowerState.OFF,),
            Verb.SHUTDOWN: (PowerState.RUNNING,),
            Verb.REBOOT: (PowerState.RUNNING,),
            Verb.PAUSE: (PowerState.RUNNING,),
            Verb.RESUME: (PowerState.PAUSED, PowerState.SUSPENDED),
            Verb.SUSPEND: (PowerState.RUNNING,),
            Verb.FORCE_OFF: (PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTTING_DOWN, PowerState.CRASHED),
            Verb.RESET: (PowerState.RUNNING,),
        }[verb]
        if dom.state not in allowed:
            raise ActionFailed(self.host, f"{domain}: cannot {verb.value} a domain that is {dom.state.value}")
        if verb is Verb.START:
            dom.state, dom.started_at, dom.domain_id = PowerState.RUNNING, time.monotonic(), self._take_id()
            if self.nodes and self.flavour == "xapi":  # XAPI starts a VM on the server with the most room
                waits = self._wait_factors()
                dom.node = min(self.nodes, key=lambda n: waits.get(n, 0.0))
            self._emit(dom, "started", "booted")
        elif verb is Verb.PAUSE:
            dom.state = PowerState.PAUSED
            self._emit(dom, "suspended", "paused")
        elif verb is Verb.RESUME:
            dom.state = PowerState.RUNNING
            self._emit(dom, "resumed", "unpaused")
        elif verb is Verb.SUSPEND:
            dom.state = PowerState.SUSPENDED
            self._emit(dom, "suspended", "saved to disk")
        elif verb is Verb.FORCE_OFF:
            self._power_off(dom, "destroyed")
        elif verb is Verb.RESET:
            dom.started_at = time.monotonic()
            self._emit(dom, "reset")
        elif verb is Verb.SHUTDOWN:
            dom.state = PowerState.SHUTTING_DOWN
            self._emit(dom, "shutdown", "guest asked to power off")
            self._later(self._rng.uniform(1.0, 3.0), lambda: self._power_off(dom, "shutdown"))
        elif verb is Verb.REBOOT:
            self._emit(dom, "reboot")
            dom.started_at = time.monotonic() + 2.0
        return ActionResult(self.host, domain, verb, ok=True, state_after=dom.state)

    def _migrate(self, dom: _SimDomain, params: MigrateParams) -> ActionResult:
        dest = SimDriver._connected_hosts.get(params.to_host)
        if dest is None or not dest._connected:
            raise HostUnreachable(params.to_host, "not connected (simulated migration)")
        if dom.name in dest._domains:
            raise ActionFailed(self.host, f"{params.to_host} has a domain named {dom.name!r} already")
        del self._domains[dom.name]
        dest._domains[dom.name] = dom
        self._emit(dom, "stopped", f"migrated to {params.to_host}")
        dest._emit(dom, "started", f"migrated from {self.host}")
        return ActionResult(
            self.host, dom.name, Verb.MIGRATE, ok=True, state_after=dom.state, message=f"now on {params.to_host}"
        )

    def _power_off(self, dom: _SimDomain, detail: str) -> None:
        dom.state, dom.started_at, dom.domain_id = PowerState.OFF, None, None
        self._emit(dom, "stopped", detail)

    def _later(self, delay: float, change: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            change()

        task = asyncio.create_task(run())
        self._transitions.add(task)
        task.add_done_callback(self._transitions.discard)


RECORDING_FILE = "sim-poll.json"


def _enum_value(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def replay(host: str, text: str) -> HostSnapshot:
    """A sim recording back into the poll it came from."""
    try:
        document = json.loads(text)
        domains = tuple(_domain(d) for d in document["domains"])
        facts = HostFacts(**document["facts"])
    except (ValueError, TypeError, KeyError) as exc:
        raise GarbledOutput(host, f"{RECORDING_FILE}: not a sim poll recording ({exc})") from exc
    return HostSnapshot(host, 0.0, domains, facts)


def _domain(fields: dict[str, Any]) -> Domain:
    source = fields.get("memory_used_source")
    counters, gauges = fields.get("counters"), fields.get("gauges")
    return Domain(
        **{
            **fields,
            "state": PowerState(fields["state"]),
            "memory_used_source": MemorySource(source) if source is not None else None,
            "counters": DomainCounters(**counters) if counters is not None else None,
            "gauges": DomainGauges(**gauges) if gauges is not None else None,
        }
    )


class SimXenDriver(SimDriver):
    """The sim driver as a Xen host: xen_xl's capabilities (no snapshots, no migration) and its reasons."""

    capabilities = SimDriver.capabilities - {Capability.SNAPSHOT, Capability.MIGRATION}

    unsupported = {c: UNSUPPORTED[c] for c in (Capability.SNAPSHOT, Capability.MIGRATION)}


class SimSavingDriver(SimDriver):
    """The sim driver as a host that suspends domains to disk (ESXi, XAPI): it offers suspend."""

    capabilities = SimDriver.capabilities | {Capability.SUSPEND}
