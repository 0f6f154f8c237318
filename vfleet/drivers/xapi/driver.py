"""xapi driver: an XCP-ng or XenServer pool (or a standalone host) through XAPI.

The official `XenAPI` client is blocking: each inventory host owns one logged-in
session and the small per-host thread pool of drivers/threaded.py (login, poll and
logout on the control lane, actions on the action lane, each on its own HTTP
connection over the same session). Every call runs by its deadline, and every socket
has a timeout, so a hung pool costs at most the pool's threads.

One poll = five record reads (VM, VM_metrics, host, host_metrics, pool: get_all_records)
plus one /rrd_updates per live node of the pool (xcp-rrdd answers for the VMs resident
on the host asked), over the same session. While the event feed runs, it keeps those
records current (event.from on the same classes, a full read every minute) and a poll
reads only /rrd_updates: a 500-VM pool's records cost the client ~0.3-0.5 s of CPU to
parse, every tick otherwise. A node whose metrics cannot be read leaves its VMs' gauges
None for that poll; it never fails the poll.

Connecting to a pool member answers HOST_IS_SLAVE with the master's address: we follow
it once, log it, and keep it in `warnings` (set the inventory's address to the master).
event.from is the change feed (events capability), on its own session; when its token
expires (EVENTS_LOST and friends) the feed re-syncs from a fresh token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import (
    ActionFailed,
    DomainNotFound,
    DriverError,
    HostUnreachable,
    NoConsole,
    PolicyRefused,
    VFleetError,
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
    PowerState,
    SnapshotInfo,
    Verb,
)
from vfleet.core.sanitize import printable
from vfleet.drivers.base import LIFECYCLE, Capability, Driver
from vfleet.drivers.threaded import Lane, pool_for
from vfleet.drivers.tls import PinMismatch, login_context, pinned_context, presented_fingerprint
from vfleet.drivers.xapi import events as feed
from vfleet.drivers.xapi import recording, snapshots, wire
from vfleet.drivers.xapi.records import (
    assemble,
    blocked_reason,
    first_pool,
    is_guest,
    node_names,
    not_allowed,
    operation_for,
    power_state,
)
from vfleet.drivers.xapi.rrd import RrdFormatError, RrdUpdate
from vfleet.drivers.xapi.rrd import parse as parse_rrd

log = logging.getLogger(__name__)
T = TypeVar("T")
_ADDRESS = re.compile(r"[A-Za-z0-9._:-]{1,253}")  # a host name, IPv4 or IPv6 address
LOGOUT_WAIT = 5.0
RRD_HISTORY_S = 60  # the first /rrd_updates asks this far back; later ones start at the last answer's end
RRD_KEEP_S = 30.0  # a node's last metrics stand in for this long when a read brings no row
RRD_MARGIN = 0.3  # s: with less left after the records, metrics wait for the next poll
# The Async call each verb makes (RESUME of a suspended VM is VM.resume: see records.operation_for).
_CALLS: Mapping[str, tuple[str, tuple[object, ...]]] = {
    "start": ("VM.start", (False, False)),  # start_paused, force
    "resume": ("VM.resume", (False, False)),
    "clean_shutdown": ("VM.clean_shutdown", ()),
    "hard_shutdown": ("VM.hard_shutdown", ()),
    "clean_reboot": ("VM.clean_reboot", ()),
    "hard_reboot": ("VM.hard_reboot", ()),
    "pause": ("VM.pause", ()),
    "unpause": ("VM.unpause", ()),
    "suspend": ("VM.suspend", ()),
}


class _Node:
    """What a poll needs to read one pool member's metrics."""

    def __init__(self, address: str, context: ssl.SSLContext) -> None:
        self.address = address
        self.context = context
        self.start: int | None = None  # the next rrd_updates start (server time)
        self.last: RrdUpdate | None = None
        self.last_at = float("-inf")
        self.failing: str | None = None  # the last failure, so it is logged once


class XapiDriver(Driver):
    kind = "xapi"
    capabilities = LIFECYCLE | {Capability.SUSPEND, Capability.SNAPSHOT, Capability.MIGRATION, Capability.EVENTS}

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self._address = config.address or ""  # the master's, after a HOST_IS_SLAVE redirect
        self._pool = pool_for(config.name, self.endpoint)
        self._session: Any = None
        self._ref = ""
        self._context: ssl.SSLContext | None = None
        self._by_uuid: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        self._nodes: dict[str, str] = {}  # node name -> host ref
        self._rrd_nodes: dict[str, _Node] = {}  # host ref -> its metrics reader
        self._raw: dict[str, str] | None = None  # while recording: the poll's answers
        self._cache = feed.RecordCache()  # kept current by the event feed while it runs
        self.warnings: list[str] = []
        self.redirected_from: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{wire.url_host(self._address or self.config.address or '?')}:{self._port}"

    @property
    def _port(self) -> int:
        return self.config.port or 443

    @property
    def _socket_timeout(self) -> float:
        # longer than a call's own deadline, so a hung call is reported first (DriverTimeout,
        # then DriverBusy) and frees its thread only later, never racing the caller's timeout
        return max(1.0, 2 * self.config.call_timeout)

    def _option(self, name: str, default: bool) -> bool:
        value = self.config.options.get(name, default)
        return value if isinstance(value, bool) else default

    # -- plumbing -----------------------------------------------------------------

    def _translate(self, exc: Exception, what: str) -> DriverError | None:
        if isinstance(exc, VFleetError):  # ours already (a policy refusal from blocked_operations)
            return None
        return wire.translate(exc, what, host=self.host, endpoint=self.endpoint, user=self.config.user)

    async def _call(self, lane: Lane, what: str, fn: Callable[[], T], deadline: float) -> T:
        return await self._pool.call(lane, what, fn, deadline=deadline, translate=self._translate)

    def _client(self) -> Any:
        """A client of our session for one action thread (a client holds one HTTP connection)."""
        if self._context is None or not self._ref:
            raise HostUnreachable(self.host, "not connected")
        return wire.attach(self._address, self._port, self._context, self._socket_timeout, self._ref)

    # -- connection ---------------------------------------------------------------

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        context, warnings = login_context(self.config, self.kind)
        self.warnings = list(warnings)
        for warning in warnings:
            log.warning("%s: %s", self.host, warning)
        self._context = context
        session, facts = await self._pool.call(
            Lane.CONTROL,
            "login",
            lambda: self._open(context, deadline),
            deadline=deadline,
            translate=self._translate,
            discard=lambda opened: wire.logout(opened[0]),  # a login that succeeds after we gave up
        )
        self._session, self._ref = session, wire.session_ref(session)
        return facts

    def _open(self, context: ssl.SSLContext, deadline: float) -> tuple[Any, HostFacts]:
        cfg = self.config
        assert cfg.user and cfg.password_env
        password = os.environ[cfg.password_env]  # read here only; never stored or logged by us
        try:
            session = self._login(context, password, deadline)
        except wire.XapiFailure as failure:
            if failure.code != "HOST_IS_SLAVE" or not failure.params or self.redirected_from is not None:
                raise
            master = failure.params[0]
            if not _ADDRESS.fullmatch(master):  # remote text that becomes a URL: an address, nothing else
                raise HostUnreachable(
                    self.host, f"{cfg.address} is a pool member and names no usable master ({printable(master)!r})"
                ) from failure
            note = (
                f"{cfg.address} is a pool member; following HOST_IS_SLAVE to the pool master {master} "
                f"(set address: {master} in the inventory)"
            )
            log.warning("%s: %s", self.host, printable(note))
            self.warnings.append(note)
            self.redirected_from, self._address = self._address, master
            session = self._login(context, password, deadline)  # once: a second redirect is an error
        try:
            self._ref = wire.session_ref(session)
            return session, self._read(session, deadline, metrics=False)[1]
        except BaseException:
            wire.logout(session)  # logged in, but the rest failed: no session left behind
            raise

    def _login(self, context: ssl.SSLContext, password: str, deadline: float) -> Any:
        session = wire.open_session(self._address, self._port, context, self._socket_timeout)
        try:
            wire.login(session, self.config.user or "", password)
        except PinMismatch:
            wire.close_transport(session)
            raise
        except ssl.SSLCertVerificationError as exc:
            wire.close_transport(session)
            presented = presented_fingerprint(self._address, self._port, max(0.1, self.seconds_left(deadline)))
            raise wire.Untrusted(exc.verify_message or str(exc), presented) from exc
        except BaseException:
            wire.close_transport(session)
            raise
        return session

    async def close(self) -> None:
        """Log out; behind a stuck call the logout is queued, never skipped (sessions are a pool resource)."""
        session, self._session, self._ref = self._session, None, ""
        if session is None:
            return
        await self._pool.finally_run(
            "logout", lambda: wire.logout(session), wait=LOGOUT_WAIT, translate=self._translate
        )

    # -- polling ------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._session is None:
            raise HostUnreachable(self.host, "not connected")
        return self._session

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        deadline = self.due(deadline)
        session = self._connected()
        metrics = self._option("metrics", True)
        domains, facts, taken_at = await self._call(
            Lane.CONTROL, "poll", lambda: self._read(session, deadline, metrics=metrics), deadline
        )
        return HostSnapshot(self.host, taken_at, domains, facts)

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """Record mode: the raw answers of one poll (artifact name -> text), unscrubbed; they
        replay into the same domains through recording.replay()."""
        self._raw = {}
        try:
            await self.poll(deadline=deadline)
            return self._raw
        finally:
            self._raw = None

    def _read(
        self, session: Any, deadline: float, *, metrics: bool
    ) -> tuple[tuple[Domain, ...], HostFacts, float]:
        raw: dict[str, Any] | None = None if self._raw is not None else self._cache.current()
        if raw is None:  # no event feed running (or recording): read every record
            api = session.xenapi
            raw = {name: wire.call(getattr(api, name).get_all_records) or {} for name in recording.RECORD_SETS}
            # XenAPI logs in again by itself when the pool expired the session: share the new one
            self._ref = wire.session_ref(session)
        taken_at, now = time.monotonic(), time.time()
        hosts, pool = raw["host"], first_pool(raw["pool"])
        self._nodes = {name: ref for ref, name in node_names(hosts).items()}
        if self._raw is not None:  # recording: the answers as they came (a few MB for a big pool)
            self._raw.update({recording.records_file(name): wire.dump(value) for name, value in raw.items()})
            self._raw[recording.POLL_FILE] = recording.poll_text(now)
        rrd = self._read_metrics(session, hosts, raw["host_metrics"], pool.get("master"), deadline) if metrics else {}
        pairs, facts = assemble(raw, rrd, now)
        self._index(pairs)
        return tuple(d for _ref, d in pairs), facts, taken_at

    def _index(self, pairs: list[tuple[str, Domain]]) -> None:
        by_name: dict[str, list[str]] = {}
        for ref, domain in pairs:
            by_name.setdefault(domain.name, []).append(ref)
        # swapped whole: actions read them from other threads
        self._by_name = by_name
        self._by_uuid = {d.uuid: ref for ref, d in pairs if d.uuid}

    def _read_metrics(
        self, session: Any, hosts: Mapping[str, Mapping[str, Any]], host_metrics: Mapping[str, Mapping[str, Any]],
        master: object, deadline: float,
    ) -> dict[str, Mapping[str, float]]:
        """One /rrd_updates per live node; the master is asked at the address we logged in to."""
        values: dict[str, Mapping[str, float]] = {}
        for ref, record in hosts.items():
            live = host_metrics.get(str(record.get("metrics")), {}).get("live", True)
            if live is False or str(live).lower() == "false":
                continue
            address = self._address if ref == master else str(record.get("address") or "")
            if not address:
                continue
            node = self._rrd_nodes.get(ref)
            if node is None or node.address != address:
                node = self._rrd_nodes[ref] = _Node(address, self._node_context(session, ref, record, master))
            left = deadline - time.monotonic()
            if left > RRD_MARGIN:
                self._read_node(ref, node, str(record.get("name_label") or ref), left)
            if node.last is not None and time.monotonic() - node.last_at <= RRD_KEEP_S:
                values.update(node.last.vms)
        return values

    def _node_context(self, session: Any, ref: str, record: Mapping[str, Any], master: object) -> ssl.SSLContext:
        """A member presents its own certificate: with a pin (which names the master's), trust the
        fingerprint the verified master lists for that host (its Certificate records), else the
        configured context (a CA that signed every host's certificate)."""
        assert self._context is not None
        if ref == master or not self.config.tls.thumbprint:
            return self._context
        for cert in record.get("certificates") or []:
            try:
                found = wire.call(lambda cert=cert: session.xenapi.Certificate.get_record(cert))
            except wire.XapiFailure:
                continue
            if found.get("type") == "host" and found.get("fingerprint"):
                try:
                    return pinned_context(str(found["fingerprint"]))
                except ValueError:
                    log.info("%s: node %s lists an unreadable certificate fingerprint", self.host, ref)
        return self._context

    def _read_node(self, ref: str, node: _Node, name: str, budget: float) -> None:
        start = node.start if node.start is not None else int(time.time()) - RRD_HISTORY_S
        try:
            text = wire.rrd_updates(node.address, self._port, node.context, budget, self._ref, start)
            update = parse_rrd(text)
        except (OSError, RrdFormatError, ValueError) as exc:
            problem = printable(f"metrics of node {name} ({node.address}): {exc}")
            log.log(logging.WARNING if problem != node.failing else logging.DEBUG, "%s: %s", self.host, problem)
            node.failing = problem
            return
        node.failing = None
        if self._raw is not None:
            self._raw[recording.rrd_file(ref)] = text
        if update.end is not None:
            # ask again from one step before the last row: the newest row is always in the answer
            node.start = max(0, update.end - (update.step or 5))
        if update.vms or update.hosts or node.last is None:  # no row at all: the last one stands a while
            node.last, node.last_at = update, time.monotonic()

    # -- actions ------------------------------------------------------------------

    def _find(self, session: Any, key: str) -> tuple[str, dict[str, Any]]:
        """The VM's ref and a fresh record (the state and allowed operations of now)."""
        ref = self._by_uuid.get(key)
        if ref is None:
            matches = self._by_name.get(key, [])
            if len(matches) > 1:
                raise ActionFailed(self.host, f"{len(matches)} VMs are named {key!r}; name the VM by its UUID instead")
            ref = matches[0] if matches else None
        if ref is None:  # not polled yet: ask the pool
            try:
                ref = str(wire.call(lambda: session.xenapi.VM.get_by_uuid(key)))
            except wire.XapiFailure:
                found = [str(r) for r in wire.call(lambda: session.xenapi.VM.get_by_name_label(key)) or []]
                if len(found) != 1:
                    raise DomainNotFound(
                        self.host, f"no VM named {printable(key)!r} on {self.endpoint}"
                        + (f" ({len(found)} share the name; use the UUID)" if found else "")
                    ) from None
                ref = found[0]
        try:
            record = wire.call(lambda: session.xenapi.VM.get_record(ref))
        except wire.XapiFailure as failure:
            if failure.code in ("HANDLE_INVALID", "UUID_INVALID"):
                gone = f"the VM {printable(key)!r} no longer exists on {self.endpoint}"
                raise DomainNotFound(self.host, gone) from failure
            raise
        if not is_guest(record):
            raise DomainNotFound(self.host, f"{printable(key)!r} is a template, snapshot or control domain")
        return ref, record

    def _check(self, record: Mapping[str, Any], operation: str, what: str) -> None:
        """blocked_operations is the pool's protection: a refusal, as the policy's own."""
        self._refuse_blocked(record, operation, what)
        if not_allowed(record, operation):
            allowed = ", ".join(map(str, record.get("allowed_operations") or [])) or "nothing"
            raise ActionFailed(
                self.host, f"{what}: xapi does not allow {operation} now (it is {record.get('power_state')}; "
                f"allowed: {allowed})"
            )

    def _refuse_blocked(self, record: Mapping[str, Any], operation: str, what: str) -> None:
        reason = blocked_reason(record, operation)
        if reason is not None:
            raise PolicyRefused(f"{self.host}: {what}: the pool blocks {operation} on this VM: {printable(reason)}")

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        deadline = self.due(deadline)
        self._connected()
        what = f"{verb.value} {target.name}"
        task_wait = max(0.5, self.seconds_left(deadline) - 1.0)  # stop a little early: report the task's fate
        state, raw, note = await self._call(
            Lane.ACTION, what, lambda: self._act(verb, target.key, what, task_wait), deadline
        )
        return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=note or raw)

    def _act(self, verb: Verb, key: str, what: str, task_wait: float) -> tuple[PowerState, str, str]:
        session = self._client()
        try:
            ref, record = self._find(session, key)
            before, _raw = power_state(record)
            if verb is Verb.START and before is PowerState.SUSPENDED:
                operation = "resume"  # a suspended VM starts from its saved memory
            elif verb is Verb.RESUME and before not in (PowerState.PAUSED, PowerState.SUSPENDED):
                raise ActionFailed(self.host, f"{what}: only a paused or suspended VM resumes (it is {before.value})")
            else:
                operation = operation_for(verb, before)
            self._check(record, operation, what)
            method, extra = _CALLS[operation]
            task = wire.call(lambda: _method(session, "Async." + method)(ref, *extra))
            wire.wait_task(session, str(task), task_wait, self.host, what)
            state, raw = power_state(wire.call(lambda: session.xenapi.VM.get_record(ref)))
            return state, raw, f"{method} done"
        finally:
            wire.close_transport(session)

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        deadline = self.due(deadline)
        self._connected()
        task_wait = max(0.5, self.seconds_left(deadline) - 1.0)
        if isinstance(params, MigrateParams):
            what = f"migrate {target.name} to {params.destination}"
            state, message = await self._call(
                Lane.ACTION, what, lambda: self._migrate(target.key, params, what, task_wait), deadline
            )
            return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=message)
        what = f"{verb.value} {params.name} of {target.name}"

        def run() -> tuple[PowerState, str]:
            session = self._client()
            try:
                ref, record = self._find(session, target.key)
                state = power_state(record)[0]
                memory = verb is Verb.SNAPSHOT_CREATE and params.memory and state is PowerState.RUNNING
                self._refuse_blocked(record, "checkpoint" if memory else operation_for(verb, state), what)
                message = snapshots.apply(session, self.host, ref, record, verb, params, task_wait, what)
                state, _raw = power_state(wire.call(lambda: session.xenapi.VM.get_record(ref)))
                return state, message
            finally:
                wire.close_transport(session)

        state, message = await self._call(Lane.ACTION, what, run, deadline)
        return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=message)

    def _migrate(self, key: str, params: MigrateParams, what: str, task_wait: float) -> tuple[PowerState, str]:
        """VM.pool_migrate to another node of this pool (storage stays where it is: shared SRs)."""
        if params.to_host != self.host or not params.node:
            raise ActionFailed(self.host, f"{what}: name a node of this pool (--to {self.host}/NODE)")
        node = self._nodes.get(params.node)
        if node is None:
            known = ", ".join(sorted(self._nodes)) or "none"
            raise ActionFailed(self.host, f"{what}: no node named {params.node!r} in this pool (known: {known})")
        session = self._client()
        try:
            ref, record = self._find(session, key)
            state, raw = power_state(record)
            if state is not PowerState.RUNNING:
                raise ActionFailed(self.host, f"{what}: pool_migrate moves a running VM; this one is {raw}")
            if record.get("resident_on") == node:
                raise ActionFailed(self.host, f"{what}: it already runs on {params.node}")
            self._check(record, "pool_migrate", what)
            task = wire.call(lambda: session.xenapi.Async.VM.pool_migrate(ref, node, {"live": "true"}))
            wire.wait_task(session, str(task), task_wait, self.host, what)
            after = wire.call(lambda: session.xenapi.VM.get_record(ref))
            now_on = {v: k for k, v in self._nodes.items()}.get(str(after.get("resident_on")), "?")
            return power_state(after)[0], f"now on {now_on}"
        finally:
            wire.close_transport(session)

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        self._connected()

        def run() -> tuple[SnapshotInfo, ...]:
            session = self._client()
            try:
                _ref, record = self._find(session, target.key)
                return snapshots.listing(session, record)
            finally:
                wire.close_transport(session)

        return await self._call(Lane.ACTION, f"snapshots of {target.name}", run, self.due(deadline))

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        """XAPI's consoles are VNC (rfb) and text (vt100) behind an HTTP CONNECT to the pool,
        not a serial stream vfleet can attach to: say where they are."""
        self._connected()
        links = await self._call(
            Lane.ACTION, f"console {target.name}", lambda: self._console_links(target.key), self.due(deadline)
        )
        raise NoConsole(
            self.host,
            f"{target.name}: no serial console over XAPI; its consoles are VNC or text behind the pool's "
            "HTTPS CONNECT (use Xen Orchestra, XenCenter or `xe console` on a pool host)"
            + ("; their URLs follow" if links else ""),
            links=links,
        )

    def _console_links(self, key: str) -> tuple[str, ...]:
        session = self._client()
        try:
            _ref, record = self._find(session, key)
            links = []
            for console in record.get("consoles") or []:
                try:
                    found = wire.call(lambda console=console: session.xenapi.console.get_record(console))
                except wire.XapiFailure:
                    continue
                links.append(f"{found.get('protocol', '?')}: {found.get('location', '?')}")
            return tuple(links)
        finally:
            wire.close_transport(session)

    # -- events -------------------------------------------------------------------

    async def events(self) -> AsyncIterator[DomainEvent]:
        if not self._option("events", True):
            await asyncio.Event().wait()
        self._connected()
        lane = pool_for(f"{self.host}#events", self.endpoint, size=2)
        stream = feed.EventFeed(self.host, self._client, self._translate, lane, cache=self._cache)
        async for event in stream.follow():
            yield event


def _method(session: Any, dotted: str) -> Any:
    target = session.xenapi
    for part in dotted.split("."):
        target = getattr(target, part)
    return target
