"""Normalised values shared by drivers, the core and both faces.

Everything here is a frozen dataclass or an enum: drivers build them, the core
derives rates from them, screens and the CLI only read them. Units are bytes,
nanoseconds of CPU time and seconds of monotonic time; a value the backend does
not have is None, never 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from operator import attrgetter


class Value:
    """Equality, hash and repr of vfleet's frozen value classes, written once.

    @dataclass compiles these three for every class at import, and every command
    imports these classes: shared, they cost nothing at start-up. They mean what the
    generated ones do: same class and equal fields (in order), a hash of the fields,
    `Name(field=value, ...)`. Use: `@dataclass(frozen=True, slots=True, repr=False,
    eq=False)` on a subclass.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        values = _values_of(self.__class__)
        return values(self) == values(other)

    def __hash__(self) -> int:
        return hash(_values_of(self.__class__)(self))

    def __repr__(self) -> str:
        names = _FIELD_NAMES.get(self.__class__) or _field_names(self.__class__)
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_VALUES: dict[type, Callable[[object], tuple[object, ...]]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _values_of(cls: type) -> Callable[[object], tuple[object, ...]]:
    """All field values of an instance of `cls` as one tuple, read in one C call."""
    found = _VALUES.get(cls)
    if found is None:
        names = _FIELD_NAMES.get(cls) or _field_names(cls)
        read = attrgetter(*names)
        found = _VALUES[cls] = read if len(names) > 1 else lambda obj: (read(obj),)
    return found


class PowerState(Enum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting-down"
    OFF = "off"
    CRASHED = "crashed"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"

    # Enum's own __hash__ is Python code; summaries hash a state per domain per poll.
    # Members are singletons compared by identity, so the identity hash is equivalent.
    __hash__ = object.__hash__


class HostStatus(Enum):
    CONNECTING = "connecting"
    UP = "up"  # connected, and the last poll succeeded within 2 intervals
    STALE = "stale"  # connected, no poll failed, but the data is older than 2 intervals (polls slow or skipped)
    DEGRADED = "degraded"  # connected, but the last poll failed (error, timeout, bad sample)
    DOWN = "down"
    AUTH_FAILED = "auth-failed"


class Verb(Enum):
    """Every action, the same names for every hypervisor: lifecycle verbs and verbs with parameters."""

    START = "start"
    SHUTDOWN = "shutdown"
    REBOOT = "reboot"
    PAUSE = "pause"
    RESUME = "resume"
    SUSPEND = "suspend"  # memory to disk, the domain stops running (XAPI, ESXi)
    FORCE_OFF = "force-off"
    RESET = "reset"
    SNAPSHOT_CREATE = "snapshot-create"
    SNAPSHOT_REVERT = "snapshot-revert"
    SNAPSHOT_DELETE = "snapshot-delete"
    MIGRATE = "migrate"


# The power verbs: what `act` and the lifecycle menus offer; they take no parameters.
LIFECYCLE_VERBS = (
    Verb.START,
    Verb.SHUTDOWN,
    Verb.REBOOT,
    Verb.PAUSE,
    Verb.RESUME,
    Verb.SUSPEND,
    Verb.FORCE_OFF,
    Verb.RESET,
)
SNAPSHOT_VERBS = (Verb.SNAPSHOT_CREATE, Verb.SNAPSHOT_REVERT, Verb.SNAPSHOT_DELETE)


class MemorySource(Enum):
    """Where a "memory used" number came from, so allocation never poses as usage."""

    GUEST = "guest"  # reported by the guest (balloon driver stats, tools)
    HOST_RSS = "host-rss"  # resident memory of the VM process on the host
    HYPERVISOR = "hypervisor"  # the hypervisor's own active-memory estimate


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainCounters(Value):
    """Cumulative counters at one instant; the core turns two of them into rates."""

    taken_at: float  # time.monotonic() when the sample was read
    cpu_time_ns: int | None = None
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    disk_read_reqs: int | None = None
    disk_write_reqs: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    vcpu_wait_ns: int | None = None  # time runnable but not running (steal/ready)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainGauges(Value):
    """Instant values, for backends that report rates rather than counters."""

    cpu_percent: float | None = None
    contention_percent: float | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    disk_read_iops: float | None = None  # operations per second (esxtop gives rates, not counters)
    disk_write_iops: float | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Domain(Value):
    """One VM as a driver saw it in one poll."""

    name: str
    state: PowerState
    raw_state: str  # the backend's own word, for display and debugging
    uuid: str | None = None
    domain_id: int | None = None  # hypervisor id while running (-1/None when off)
    vcpus: int | None = None
    memory_max_bytes: int | None = None  # configured maximum
    memory_current_bytes: int | None = None  # current allocation / balloon target
    memory_used_bytes: int | None = None
    memory_used_source: MemorySource | None = None
    uptime_s: float | None = None
    counters: DomainCounters | None = None
    gauges: DomainGauges | None = None
    protected: bool = False  # a native "do not touch" flag where the backend has one
    # Snapshot facts, where the driver reads them (some only every few polls); None: not known.
    snapshot_count: int | None = None
    oldest_snapshot_at: float | None = None  # wall time (time.time()) the oldest snapshot was taken
    node: str | None = None  # the server it runs on inside a pool or cluster (HostFacts.nodes); None: none/not running
    # The key where neither the UUID nor the name is the stable identity: xl gives a domain a
    # new UUID at every `xl create`, so xen_xl keys by name, and a nameless dying domain by its id.
    identity: str | None = None

    @property
    def key(self) -> str:
        """Stable identity within a host: the UUID when the backend has one (unless `identity` says)."""
        return self.identity or self.uuid or self.name

    def snapshot_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest snapshot was taken (wall clock); None where not known."""
        if self.oldest_snapshot_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.oldest_snapshot_at)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainRef(Value):
    """What an action aims at: the domain's key (its UUID where the backend has one) and,
    for messages and for backends that only know names, its name as last polled."""

    name: str
    key: str

    @classmethod
    def of(cls, domain: Domain) -> DomainRef:
        return cls(domain.name, domain.key)

    @classmethod
    def named(cls, name: str) -> DomainRef:
        """Aim by name alone (backends whose names are unique; scripts that know only the name)."""
        return cls(name, name)

    @property
    def by_uuid(self) -> bool:
        return self.key != self.name


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class SnapshotParams(Value):
    """What a snapshot verb needs: the snapshot's name and, for create, whether to save the RAM too.

    The parameters of an action are typed values like this one (migration adds its own);
    `record()` is what the audit log keeps of them: never a secret.
    """

    name: str
    memory: bool = False  # create only: include the running guest's memory state
    description: str = ""

    def record(self) -> dict[str, object]:
        return {"snapshot": self.name, "memory": self.memory}


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class MigrateParams(Value):
    """Where a migration goes and how: `to_host` is an inventory host; `node` a server inside it
    (an ESXi host of a vCenter: `--to vc1/esx-2`), or None to move between inventory hosts.

    `live`: a running domain moves while it runs (it is never shut down implicitly); False
    (`--offline`) accepts only domains that are off. `copy_storage`: copy the disks with the
    domain (libvirt's --copy-storage-all) instead of relying on storage both hosts share.
    `to_uri` is filled by the plan from the inventory: the source driver connects there;
    `data_uri` likewise from the destination's `options.migration_uri` (libvirt's data channel).
    """

    to_host: str
    node: str | None = None
    live: bool = True
    copy_storage: bool = False
    to_uri: str | None = None
    data_uri: str | None = None

    @property
    def destination(self) -> str:
        return self.to_host if self.node is None else f"{self.to_host}/{self.node}"

    @property
    def name(self) -> str:
        """How the action reads in prompts and tables: `migrate to kvm-2`."""
        return f"to {self.destination}"

    def record(self) -> dict[str, object]:
        return {"to": self.destination, "live": self.live, "copy_storage": self.copy_storage}


ActionParams = SnapshotParams | MigrateParams


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class SnapshotInfo(Value):
    """One snapshot of one domain as the backend lists it."""

    name: str
    created: float | None = None  # wall time (time.time()), None where unknown
    parent: str | None = None
    current: bool = False  # the domain runs from (or was last reverted to) this one
    memory: bool | None = None  # the snapshot holds the guest's memory state; None: unknown
    description: str = ""
    state: str = ""  # the domain's state when taken, in the backend's words
    key: str = ""  # the backend's id where names are not unique (ESXi's snapshot moref); else the name


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class NodeFacts(Value):
    """One server inside a pool or cluster (an ESXi host of a vCenter, an XCP-ng pool member):
    what Domain.node names, with its own capacity for per-node aggregates."""

    name: str
    cpus: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostFacts(Value):
    """What a host says about itself when vfleet connects."""

    hypervisor: str  # "kvm", "qemu", "xen", "esxi", "test", "sim"
    version: str | None = None
    hostname: str | None = None
    cpus: int | None = None  # a pool or cluster: the sum over its nodes
    memory_bytes: int | None = None
    cpu_model: str | None = None
    nodes: tuple[NodeFacts, ...] = ()  # a pool's or cluster's servers; () for a single host


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostSnapshot(Value):
    """Everything one poll of one host returned."""

    host: str
    taken_at: float
    domains: tuple[Domain, ...]
    facts: HostFacts | None = None
    lag: float = 0.0  # seconds the data had already aged when the poll returned it (a relay such as Prometheus)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainEvent(Value):
    """A lifecycle event as the backend announced it."""

    host: str
    domain: str
    kind: str  # "started", "stopped", "suspended", "resumed", "shutdown", ...
    detail: str = ""
    uuid: str | None = None
    wall_time: float = 0.0  # time.time(), for display


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ActionResult(Value):
    """How one action on one domain ended."""

    host: str
    domain: str
    verb: Verb
    ok: bool
    state_after: PowerState | None = None
    message: str = ""
    noop: bool = False  # nothing to do: the domain was already in the verb's end state
    refused: bool = False  # the policy refused it; nothing was sent
    timed_out: bool = False
    key: str = ""  # the domain's key (DomainRef.key); "" where unknown

    @property
    def outcome(self) -> str:
        if self.noop:
            return "no-op"
        if self.ok:
            return "ok"
        return "refused" if self.refused else "timed-out" if self.timed_out else "failed"


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DomainRates(Value):
    """Per-second rates and percentages derived by the core (None = unknown)."""

    cpu_percent: float | None = None  # of the domain's own vCPUs (100 = all busy)
    cpu_host_percent: float | None = None  # of the host's physical CPUs
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    disk_read_iops: float | None = None
    disk_write_iops: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    contention_percent: float | None = None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostHealth(Value):
    """The engine's view of one host's connection and polls."""

    status: HostStatus
    last_error: str | None = None
    last_error_at: float | None = None  # monotonic time of last_error
    last_ok_at: float | None = None  # monotonic time of the last good poll
    polls: int = 0
    skipped_ticks: int = 0
    since: float | None = None  # monotonic time this status began
    lag: float = 0.0  # the last good poll's data was this old already (HostSnapshot.lag)

    def data_age(self, now: float) -> float | None:
        return None if self.last_ok_at is None else max(0.0, now - self.last_ok_at + self.lag)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class SshSettings(Value):
    """How to reach an SSH host; credentials are references, never secrets."""

    agent: bool = True  # offer keys from $SSH_AUTH_SOCK
    key_file: str | None = None
    known_hosts: str | None = None  # None: the user's ~/.ssh/known_hosts
    config: bool = True  # honour ~/.ssh/config (Host aliases, User, ProxyJump ...)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class TlsSettings(Value):
    """How a host's TLS certificate is checked."""

    insecure: bool = False  # skip certificate checks: only when asked, and always shown as a warning
    ca_file: str | None = None
    thumbprint: str | None = None  # pin a certificate by its SHA-1/SHA-256 fingerprint


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostConfig(Value):
    """One inventory host after defaults and groups were applied."""

    name: str
    driver: str
    uri: str | None = None
    address: str | None = None
    port: int | None = None
    user: str | None = None
    password_env: str | None = None  # name of the environment variable holding it
    ssh: SshSettings = field(default_factory=SshSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    tags: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()
    poll_interval: float = 2.0
    connect_timeout: float = 10.0
    call_timeout: float = 15.0
    reconnect_max: float = 8.0  # seconds: the longest wait between two connection attempts
    read_only: bool = False
    protected: bool = False
    protected_domains: tuple[str, ...] = ()  # glob patterns of domain names
    options: Mapping[str, object] = field(default_factory=dict)
    source: str = ""  # "file:line" where the host was defined, for messages
