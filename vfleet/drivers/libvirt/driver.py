"""libvirt driver: KVM/QEMU, Xen (libxl) and anything else libvirt speaks.

libvirt-python is blocking C code and its connections are thread-safe. Each host
owns one connection and a small pool of daemon threads (drivers/threaded.py):
connect, poll and close on one lane, up to 4 actions at once on another, so a bulk
action never delays a poll (libvirtd serves 5 calls per connection). Every call runs
by the deadline it is given; a call that outlives it keeps its thread, and a host
whose threads are all stuck answers DriverBusy instead of piling more on.
Connecting over ssh is bounded too (sshcmd.py): the ssh child has a connect timeout
and is killed when we abandon the connect. Domain events arrive through libvirtaio
on the asyncio loop. Metrics come from one bulk getAllDomainStats call per poll,
with a per-domain fallback for drivers that lack it (libxl).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import libvirt
import libvirtaio

from vfleet.core.errors import (
    ActionFailed,
    AuthFailed,
    DomainNotFound,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    UnsupportedAction,
)
from vfleet.core.models import (
    ActionParams,
    ActionResult,
    Domain,
    DomainEvent,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MigrateParams,
    SnapshotInfo,
    SnapshotParams,
    Verb,
)
from vfleet.drivers.base import LIFECYCLE, Capability, Driver
from vfleet.drivers.libvirt import snapshots
from vfleet.drivers.libvirt.parse import (
    CALLS_FILE,
    HOST_CALLS,
    RecordCache,
    calls_json,
    event_words,
    host_facts,
    power_state,
)
from vfleet.drivers.libvirt.sshcmd import SshLaunch
from vfleet.drivers.threaded import Lane, pool_for

if TYPE_CHECKING:
    from vfleet.core.console import ConsoleStream

log = logging.getLogger(__name__)
T = TypeVar("T")

# libvirt prints every error to stderr by default, which would tear the TUI.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
# Do not wait for a domain job that holds the monitor: report what is free now.
STATS_FLAGS = getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)
_AUTH_CODES = {libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED, libvirt.VIR_ERR_AUTH_UNAVAILABLE}
_HOST_KEY_WORDS = ("host key verification failed", "remote host identification has changed", "host key for")
KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 3
CLOSE_WAIT = 5.0  # close() waits this long for the connection's close; it runs later if need be
SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
Record = tuple[str, str, int, dict[str, Any], float]


def with_no_tty(uri: str) -> str:
    """Make libvirt's ssh transports fail instead of prompting on the terminal."""
    parts = urlsplit(uri)
    if "+ssh" not in parts.scheme and "+libssh" not in parts.scheme:
        return uri
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("no_tty", "1")
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


FACTS_BUDGET = 2.0  # seconds a poll gives the every-few-polls snapshot facts read


class LibvirtDriver(Driver):
    kind = "libvirt"
    capabilities = LIFECYCLE | {
        Capability.EVENTS,
        Capability.READ_ONLY_CONNECTION,
        Capability.CONSOLE,
        Capability.SNAPSHOT,
        Capability.MIGRATION,
    }
    unsupported = {
        Capability.SUSPEND: "libvirt saves a domain to disk with managedsave, which it reports as shut off: "
        "not offered, pause keeps the memory in RAM",
    }

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self.uri = with_no_tty(config.uri or "qemu:///system")
        self._pool = pool_for(config.name, self.uri)
        self._conn: libvirt.virConnect | None = None
        self._bulk = True
        self._lost: str | None = None  # why libvirt closed the connection under us
        self._callbacks: list[int] = []
        self._events: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event_loop_bound = False  # stream callbacks (consoles) need libvirt's loop on ours
        self._devices: dict[str, tuple[list[str], list[str]]] = {}  # uuid -> (disks, interfaces), fallback only
        self._records = RecordCache()  # unchanged domains come back as the same objects
        self._snapshot_facts: snapshots.Facts = {}
        self._polls_to_facts = 0  # polls until snapshot facts are read again (0: by the next poll)

    # -- plumbing ---------------------------------------------------------------

    async def _call(self, lane: Lane, what: str, fn: Callable[[], T], deadline: float) -> T:
        return await self._pool.call(lane, what, fn, deadline=deadline, translate=self._translate_backend)

    def _translate_backend(self, exc: Exception, what: str) -> DriverError | None:
        return self._translate(exc, what) if isinstance(exc, libvirt.libvirtError) else None

    def _translate(self, exc: libvirt.libvirtError, what: str) -> DriverError:
        code, message = exc.get_error_code(), " ".join((str(exc) or exc.get_error_message() or "").split())
        lowered = message.lower()
        if any(word in lowered for word in _HOST_KEY_WORDS):
            return AuthFailed(
                self.host, f"SSH host key verification failed for {self.uri}: check known_hosts ({message})"
            )
        if code in _AUTH_CODES:
            return AuthFailed(self.host, f"authentication failed: {message}")
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainNotFound(self.host, f"{what}: {message}")
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            return UnsupportedAction(self.host, f"{what}: {message}")
        if code == libvirt.VIR_ERR_OPERATION_INVALID:
            return ActionFailed(self.host, f"{what}: {message}")
        if self._conn is None or self._lost is not None or not self._alive():
            return HostUnreachable(self.host, f"{what}: {message}")
        return ActionFailed(self.host, f"{what}: {message}")

    def _alive(self) -> bool:
        try:
            return self._conn is not None and bool(self._conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _use_event_loop(self) -> bool:
        """Bind libvirt's event loop to ours; libvirt allows one per process."""
        loop = asyncio.get_running_loop()
        impl = libvirtaio.getCurrentImpl()
        if impl is None:
            libvirtaio.virEventRegisterAsyncIOImpl(loop=loop)
            return True
        if impl.loop is not loop:
            log.warning("%s: libvirt events are bound to another event loop; polling only", self.host)
            return False
        return True

    # -- connection ---------------------------------------------------------------

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        events = self._event_loop_bound = self._use_event_loop()
        self._loop = asyncio.get_running_loop()
        opener = libvirt.openReadOnly if self.read_only else libvirt.open
        launch = SshLaunch(self.uri, self.seconds_left(deadline))
        try:
            self._conn = await self._pool.call(
                Lane.CONTROL,
                "open",
                lambda: opener(launch.uri),
                deadline=deadline,
                translate=self._translate_backend,
                on_abandon=launch.kill,  # its ssh child would wait for a banner for ever
                discard=_close_quietly,  # an open that succeeds after we gave up
            )
        finally:
            launch.cleanup()
        conn = self._conn
        assert conn is not None
        if events:
            await self._call(Lane.CONTROL, "keepalive", lambda: self._setup_connection(conn), deadline)
        return host_facts(*await self._host_calls(conn, deadline))

    async def _host_calls(self, conn: libvirt.virConnect, deadline: float) -> tuple[list[Any], str, int, str | None]:
        """getInfo, getType, getVersion and getHostname: the host facts, in one job."""
        return await self._call(
            Lane.CONTROL,
            HOST_CALLS,
            lambda: (conn.getInfo(), conn.getType(), conn.getVersion(), self._hostname(conn)),
            deadline,
        )

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """The host calls connect() makes and the calls of one poll (bulk stats or their per-domain
        equivalent, snapshot facts), as the blocking pool saw them return."""
        deadline = self.due(deadline)
        conn = self._connection()
        self._polls_to_facts = 0  # a recording holds every kind of answer a poll can read
        with self._pool.recorded() as calls:
            await self._host_calls(conn, deadline)
            await self.poll(deadline=deadline)
        return {CALLS_FILE: calls_json(calls)}

    @staticmethod
    def _hostname(conn: libvirt.virConnect) -> str | None:
        try:
            return str(conn.getHostname())
        except libvirt.libvirtError:
            return None

    def _setup_connection(self, conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):  # local drivers have no keepalive
            conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        conn.registerCloseCallback(self._on_close, None)
        self._callbacks.append(
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        )

    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        words = {0: "error", 1: "end of file", 2: "keepalive timeout", 3: "client closed"}
        self._lost = f"connection closed by libvirt ({words.get(reason, reason)})"

    def _on_lifecycle(self, _conn: object, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
        kind, words = event_words(event, detail)
        name = dom.name()
        self._records.forget(name)  # a define or a start may give it a new uuid or id
        record = DomainEvent(self.host, name, kind, words, dom.UUIDString(), time.time())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._events.put_nowait, record)

    async def close(self) -> None:
        """Close the connection; behind a stuck call it is queued, never skipped."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        await self._pool.finally_run(
            "close", lambda: self._close_connection(conn), wait=CLOSE_WAIT, translate=self._translate_backend
        )

    def _close_connection(self, conn: libvirt.virConnect) -> None:
        for callback in self._callbacks:
            with contextlib.suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(callback)
        self._callbacks.clear()
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        conn.close()

    async def events(self) -> AsyncIterator[DomainEvent]:
        while True:
            yield await self._events.get()

    # -- polling ------------------------------------------------------------------

    def _connection(self) -> libvirt.virConnect:
        if self._conn is None:
            raise HostUnreachable(self.host, "not connected")
        if self._lost is not None:
            raise HostUnreachable(self.host, self._lost)
        return self._conn

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        """One budget for the bulk call and, where it is unsupported, the per-domain fallback."""
        deadline = self.due(deadline)
        conn = self._connection()
        if self._bulk and self._pool.recording is None:
            # Facts first: the Domains are made with them, in the poll's thread.
            await self._refresh_snapshot_facts(conn, deadline)
            try:
                taken_at, domains = await self._call(
                    Lane.CONTROL, "getAllDomainStats", lambda: self._read_bulk(conn), deadline
                )
                return HostSnapshot(self.host, taken_at, domains)
            except UnsupportedAction:
                self._no_bulk()
            records = await self._read_each_call(conn, deadline)
        else:  # the per-domain fallback, or `vfleet debug record`: raw records, then facts, in that order
            records = await self._read_records_call(conn, deadline)
            await self._refresh_snapshot_facts(conn, deadline)
        taken_at = records[0][4] if records else time.monotonic()
        return HostSnapshot(self.host, taken_at, self._records.domains(records, self._snapshot_facts))

    def _no_bulk(self) -> None:
        log.info("%s: no bulk stats (VIR_ERR_NO_SUPPORT); polling domain by domain", self.host)
        self._bulk = False

    async def _read_records_call(self, conn: libvirt.virConnect, deadline: float) -> list[Record]:
        if self._bulk:
            try:
                return await self._call(Lane.CONTROL, "getAllDomainStats", lambda: self._read_records(conn), deadline)
            except UnsupportedAction:
                self._no_bulk()
        return await self._read_each_call(conn, deadline)

    async def _read_each_call(self, conn: libvirt.virConnect, deadline: float) -> list[Record]:
        return await self._call(Lane.CONTROL, "per-domain stats", lambda: self._read_each(conn, deadline), deadline)

    async def _refresh_snapshot_facts(self, conn: libvirt.virConnect, deadline: float) -> None:
        """Every snapshots.FACTS_EVERY polls; a failure keeps the last facts and never fails the poll."""
        self._polls_to_facts -= 1
        if self._polls_to_facts >= 0:
            return
        self._polls_to_facts = snapshots.FACTS_EVERY - 1
        # Not on the control lane, and briefly: snapshot calls can wait on a domain a hung
        # action holds, and an optional fact must never stall the poll behind it.
        # They come before the stats now: at most half the time left, the rest stays the stats'.
        now = time.monotonic()
        budget = min(now + (deadline - now) / 2, now + FACTS_BUDGET)
        try:
            found, complete = await self._call(
                Lane.ACTION, "snapshot facts", lambda: snapshots.facts(conn, budget), budget
            )
        except DriverError as exc:
            log.info("%s: snapshot facts not read: %s", self.host, exc)
            return
        self._snapshot_facts = found if complete else {**self._snapshot_facts, **found}

    def _read_bulk(self, conn: libvirt.virConnect) -> tuple[float, tuple[Domain, ...]]:
        raw = conn.getAllDomainStats(STATS_GROUPS, STATS_FLAGS)
        now = time.monotonic()
        # With lifecycle events registered, a domain's uuid and id are known by its name.
        return now, self._records.from_bulk(raw, now, self._snapshot_facts, trust_names=bool(self._callbacks))

    @staticmethod
    def _read_records(conn: libvirt.virConnect) -> list[Record]:
        """getAllDomainStats as records with every uuid and id read: what a recording keeps."""
        raw = conn.getAllDomainStats(STATS_GROUPS, STATS_FLAGS)
        now = time.monotonic()
        return [
            (dom.name(), dom.UUIDString(), -1 if stats.get("state.state") == SHUTOFF else dom.ID(), stats, now)
            for dom, stats in raw
        ]

    def _read_each(self, conn: libvirt.virConnect, deadline: float) -> list[Record]:
        """The per-domain equivalent of getAllDomainStats, in its key format.

        Stops at the deadline: a poll nobody waits for any more must free its thread."""
        out: list[Record] = []
        for dom in conn.listAllDomains(0):
            if time.monotonic() > deadline:
                raise DriverTimeout(self.host, f"per-domain stats: deadline passed after {len(out)} domains")
            try:
                out.append((dom.name(), dom.UUIDString(), dom.ID(), self._stats_of(dom), time.monotonic()))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # vanished meanwhile: skip it
                    raise
        return out

    def _stats_of(self, dom: libvirt.virDomain) -> dict[str, Any]:
        state, max_kib, cur_kib, vcpus, cpu_ns = dom.info()
        stats: dict[str, Any] = {
            "state.state": state,
            "balloon.maximum": max_kib,
            "balloon.current": cur_kib,
            "vcpu.current": vcpus,
        }
        if not dom.isActive():
            return stats
        stats["cpu.time"] = cpu_ns
        stats.update({f"balloon.{k}": v for k, v in _optional(_memory_stats, dom, "").items()})
        disks, nics = self._device_names(dom)
        for prefix, names, read in (("block", disks, _block_stats), ("net", nics, _net_stats)):
            stats[f"{prefix}.count"] = len(names)
            for i, name in enumerate(names):
                values = _optional(read, dom, name)
                stats.update({f"{prefix}.{i}.{k}": v for k, v in values.items()})
        return stats

    def _device_names(self, dom: libvirt.virDomain) -> tuple[list[str], list[str]]:
        key = f"{dom.UUIDString()}:{dom.ID()}"  # a restart may change the devices
        if key not in self._devices:
            import xml.etree.ElementTree as ET  # here: only the per-domain fallback reads the XML

            tree = ET.fromstring(dom.XMLDesc(0))
            disks = [t.get("dev", "") for t in tree.findall("./devices/disk/target")]
            nics = [t.get("dev", "") for t in tree.findall("./devices/interface/target")]
            self._devices[key] = ([d for d in disks if d], [n for n in nics if n])
        return self._devices[key]

    # -- actions ------------------------------------------------------------------

    async def _lookup(self, target: DomainRef, deadline: float) -> libvirt.virDomain:
        conn = self._connection()
        return await self._call(
            Lane.ACTION,
            f"lookup {target.name}",
            lambda: conn.lookupByUUIDString(target.key) if target.by_uuid else conn.lookupByName(target.name),
            deadline,
        )

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        """Snapshot verbs: internal snapshots (snapshots.py says what libvirt allows); migration."""
        if isinstance(params, MigrateParams):
            return await self._migrate(target, params, deadline)
        if not isinstance(params, SnapshotParams):
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
        deadline = self.due(deadline)
        dom = await self._lookup(target, deadline)
        calls: dict[Verb, Callable[[], object]] = {
            Verb.SNAPSHOT_CREATE: lambda: snapshots.create(self.host, dom, params),
            Verb.SNAPSHOT_REVERT: lambda: snapshots.revert(dom, params.name),
            Verb.SNAPSHOT_DELETE: lambda: snapshots.delete(dom, params.name),
        }
        await self._call(Lane.ACTION, f"{verb.value} {params.name} of {target.name}", calls[verb], deadline)
        self._polls_to_facts = 0  # the next poll shows the new count
        code, _reason = await self._call(Lane.ACTION, f"state of {target.name}", dom.state, deadline)
        state, raw = power_state(code)
        return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=raw)

    async def _migrate(self, target: DomainRef, params: MigrateParams, deadline: float | None) -> ActionResult:
        """Peer-to-peer: this host's libvirtd connects to the destination's URI itself and streams the
        domain over the destination's `migration_uri` (or the address libvirt derives from its hostname)."""
        deadline = self.due(deadline)
        what = f"migrate {target.name} to {params.destination}"
        if not params.to_uri:
            raise ActionFailed(self.host, f"{what}: {params.to_host} has no `uri` in the inventory")
        dom = await self._lookup(target, deadline)
        code, _reason = await self._call(Lane.ACTION, f"state of {target.name}", dom.state, deadline)
        persistent = await self._call(Lane.ACTION, f"persistence of {target.name}", dom.isPersistent, deadline)
        flags = migrate_flags(params, active=code != SHUTOFF, persistent=bool(persistent))
        typed: dict[str, object] = {}
        if params.data_uri:
            typed[libvirt.VIR_MIGRATE_PARAM_URI] = params.data_uri
        await self._call(Lane.ACTION, what, lambda: dom.migrateToURI3(params.to_uri, typed, flags), deadline)
        state, _raw = power_state(code)  # the domain left this host as it was; the destination's poll shows it
        return ActionResult(
            self.host, target.name, Verb.MIGRATE, ok=True, state_after=state, message=f"now on {params.to_host}"
        )

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        deadline = self.due(deadline)
        dom = await self._lookup(target, deadline)
        return await self._call(Lane.ACTION, f"snapshots of {target.name}", lambda: snapshots.listing(dom), deadline)

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        """Lookup, verb and read-back as separate calls under one deadline: after a timeout nothing more is sent."""
        deadline = self.due(deadline)
        domain = target.name
        dom = await self._lookup(target, deadline)
        calls: dict[Verb, Callable[[], object]] = {
            Verb.START: dom.create,
            Verb.SHUTDOWN: dom.shutdown,
            Verb.REBOOT: lambda: dom.reboot(0),
            Verb.PAUSE: dom.suspend,
            Verb.RESUME: dom.resume,
            Verb.FORCE_OFF: dom.destroy,
            Verb.RESET: lambda: dom.reset(0),
        }
        try:
            await self._call(Lane.ACTION, f"{verb.value} {domain}", calls[verb], deadline)
        finally:
            self._records.forget(domain)  # its id may change: read it at the next poll, event or not
        code, _reason = await self._call(Lane.ACTION, f"state of {domain}", dom.state, deadline)
        state, raw = power_state(code)
        return ActionResult(self.host, domain, verb, ok=True, state_after=state, message=raw)

    # -- console ------------------------------------------------------------------

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        from vfleet.drivers.libvirt.console import LibvirtConsole, console_flags, open_error  # polls never need it

        deadline = self.due(deadline)
        domain = target.name
        conn = self._connection()
        if not self._event_loop_bound:
            raise UnsupportedAction(self.host, f"console of {domain}: libvirt events are bound to another loop")
        dom = await self._call(
            Lane.ACTION,
            f"lookup {domain}",
            lambda: conn.lookupByUUIDString(target.key) if target.by_uuid else conn.lookupByName(domain),
            deadline,
        )
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        flags = console_flags(force=force, safe=safe)
        try:
            await self._call(
                Lane.ACTION, f"console of {domain}", lambda: dom.openConsole(None, stream, flags), deadline
            )
        except DriverError as exc:
            cause = exc.__cause__
            better = open_error(self.host, domain, cause) if isinstance(cause, libvirt.libvirtError) else None
            # The stream must be freed while the event loop runs (freeing it updates the loop's
            # watches): drop every reference, including the worker frames in the cause's traceback.
            del stream, dom
            if cause is not None:
                cause.__traceback__ = None
            raise (better or exc) from cause

        async def blocking(what: str, fn: Callable[[], Any]) -> Any:
            return await self._call(Lane.ACTION, f"{what} {domain}", fn, time.monotonic() + CLOSE_WAIT)

        return LibvirtConsole(self.host, domain, stream, blocking)


def migrate_flags(params: MigrateParams, *, active: bool, persistent: bool) -> int:
    """Live for a running or paused domain, offline (definition only) for one that is off; a persistent
    domain stays defined on the destination only, so it does not run on one host and linger on the other."""
    flags: int = libvirt.VIR_MIGRATE_PEER2PEER
    if active:
        flags |= libvirt.VIR_MIGRATE_LIVE
    else:
        flags |= libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
    if persistent:
        flags |= libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if params.copy_storage:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    return flags


def _close_quietly(conn: libvirt.virConnect) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


def _optional(
    read: Callable[[libvirt.virDomain, str], dict[str, Any]], dom: libvirt.virDomain, dev: str
) -> dict[str, Any]:
    """Per-device stats are best effort: a device without counters reports None."""
    try:
        return read(dom, dev)
    except libvirt.libvirtError:
        return {}


def _memory_stats(dom: libvirt.virDomain, _dev: str) -> dict[str, Any]:
    return dict(dom.memoryStats())


def _block_stats(dom: libvirt.virDomain, dev: str) -> dict[str, Any]:
    rd_req, rd_bytes, wr_req, wr_bytes, _errs = dom.blockStats(dev)
    return {"rd.reqs": rd_req, "rd.bytes": rd_bytes, "wr.reqs": wr_req, "wr.bytes": wr_bytes}


def _net_stats(dom: libvirt.virDomain, dev: str) -> dict[str, Any]:
    values = dom.interfaceStats(dev)
    return {"rx.bytes": values[0], "tx.bytes": values[4]}
