"""event.from as vfleet's event stream: power-state changes of the pool's guest VMs.

event.from(classes, token, timeout) is a long poll: it answers with the changes since
`token` (or everything, for the empty token) and the token to pass next. The server
forgets old tokens: a token it no longer knows answers EVENTS_LOST (or a parse error
for a token from before a restart). Then we re-sync: read every VM afresh with the
empty token, announce the changes we missed, and go on from the new token.

It runs on its own pool lane and HTTP connection (a long poll must never hold up a
poll or an action), as a client of the driver's session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vfleet.core.errors import DriverError
from vfleet.core.models import DomainEvent
from vfleet.drivers.threaded import BlockingPool, Lane
from vfleet.drivers.xapi import wire
from vfleet.drivers.xapi.records import is_guest

log = logging.getLogger(__name__)
LONG_POLL_S = 15.0  # how long one event.from waits for a change
FULL_READ_S = 60.0  # the feed reads every object afresh this often (the empty token)
# event.from class names -> the record sets a poll reads (records.assemble)
CACHED: Mapping[str, str] = {
    "vm": "VM", "vm_metrics": "VM_metrics", "host": "host", "host_metrics": "host_metrics", "pool": "pool",
}
MARGIN_S = 10.0  # beyond the long poll: the answer's transfer
# The errors that mean "your token is no longer valid": re-sync, not a failure.
TOKEN_LOST = frozenset(
    {"EVENTS_LOST", "EVENT_FROM_TOKEN_PARSE_FAILURE", "EVENT_SUBSCRIPTION_PARSE_FAILURE", "SESSION_NOT_REGISTERED"}
)
# (old power state, new power state) -> event kind; None is "not known before" / "gone".
_KINDS: Mapping[tuple[str | None, str | None], str] = {
    ("Halted", "Running"): "started",
    ("Suspended", "Running"): "resumed",
    ("Paused", "Running"): "resumed",
    ("Running", "Paused"): "paused",
    ("Running", "Suspended"): "suspended",
    ("Paused", "Halted"): "stopped",
    ("Running", "Halted"): "stopped",
    ("Suspended", "Halted"): "stopped",
    ("Halted", "Paused"): "started",
}


@dataclass(frozen=True, slots=True)
class _Seen:
    name: str
    uuid: str | None
    power: str


def changes(
    host: str, known: dict[str, _Seen], events: Iterable[Mapping[str, Any]], now: float
) -> list[DomainEvent]:
    """Apply one batch of vm events to `known` (ref -> last seen) and say what changed."""
    out: list[DomainEvent] = []
    for event in events:
        if str(event.get("class", "")).lower() != "vm":
            continue
        ref, operation = str(event.get("ref", "")), str(event.get("operation", ""))
        before = known.get(ref)
        record = event.get("snapshot")
        if operation == "del" or not isinstance(record, Mapping):
            if operation == "del" and before is not None:
                del known[ref]
                out.append(DomainEvent(host, before.name, "undefined", "removed from the pool", before.uuid, now))
            continue
        if not is_guest(record):
            continue
        uuid = str(record["uuid"]) if record.get("uuid") else None
        seen = _Seen(str(record.get("name_label") or uuid or ref), uuid, str(record.get("power_state") or ""))
        known[ref] = seen
        if before is None:
            if operation == "add":
                out.append(DomainEvent(host, seen.name, "defined", f"added ({seen.power})", uuid, now))
            continue
        if before.power != seen.power:
            kind = _KINDS.get((before.power, seen.power), "state")
            out.append(DomainEvent(host, seen.name, kind, f"{before.power} -> {seen.power}", uuid, now))
    return out


def resync(
    host: str, known: dict[str, _Seen], records: Mapping[str, Mapping[str, Any]], now: float
) -> list[DomainEvent]:
    """After a lost token: the full read against what we knew, as if each change were an event."""
    fresh = [{"class": "vm", "operation": "mod" if ref in known else "add", "ref": ref, "snapshot": r}
             for ref, r in records.items()]
    gone = [{"class": "vm", "operation": "del", "ref": ref} for ref in known if ref not in records]
    return changes(host, known, [*fresh, *gone], now)


class RecordCache:
    """The records a poll reads, kept current by the feed: while the feed runs, a poll reads
    only /rrd_updates. Only the feed writes it, in the order xapi sent the changes; a full
    read (the empty token) refills it every FULL_READ_S and after a lost token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, dict[str, Any]] | None = None

    def fill(self, events: Iterable[Mapping[str, Any]]) -> None:
        sets: dict[str, dict[str, Any]] = {name: {} for name in CACHED.values()}
        _apply(sets, events)
        with self._lock:
            self._sets = sets

    def apply(self, events: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            if self._sets is not None:
                _apply(self._sets, events)

    def current(self) -> dict[str, dict[str, Any]] | None:
        """A copy of every record set, or None when the feed is not running."""
        with self._lock:
            return None if self._sets is None else {name: dict(records) for name, records in self._sets.items()}

    def detach(self) -> None:
        with self._lock:
            self._sets = None


def _apply(sets: dict[str, dict[str, Any]], events: Iterable[Mapping[str, Any]]) -> None:
    for event in events:
        name = CACHED.get(str(event.get("class", "")).lower())
        if name is None:
            continue
        ref, record = str(event.get("ref", "")), event.get("snapshot")
        if event.get("operation") == "del":
            sets[name].pop(ref, None)
        elif isinstance(record, Mapping):
            sets[name][ref] = record


class EventFeed:
    def __init__(
        self, host: str, client: Callable[[], Any], translate: Callable[[Exception, str], DriverError | None],
        pool: BlockingPool, long_poll: float = LONG_POLL_S, cache: RecordCache | None = None,
    ) -> None:
        self.host = host
        self._client = client
        self._translate = translate
        self._pool = pool
        self._long_poll = long_poll
        self._cache = cache
        self._classes = sorted(CACHED) if cache is not None else ["vm"]
        self.resyncs = 0  # how often a lost token was recovered (tests, diagnostics)

    def _keep_token_errors(self, exc: Exception, what: str) -> DriverError | None:
        if isinstance(exc, wire.XapiFailure) and exc.code in TOKEN_LOST:
            return None  # re-raised as is: follow() re-syncs
        return self._translate(exc, what)

    async def _from(self, session: Any, token: str, timeout: float) -> Mapping[str, Any]:
        classes = self._classes

        def ask() -> Mapping[str, Any]:
            answer = wire.call(lambda: getattr(session.xenapi.event, "from")(classes, token, timeout))
            if not isinstance(answer, Mapping):
                raise ValueError(f"event.from answered {type(answer).__name__}, not a struct")
            return answer

        deadline = time.monotonic() + timeout + MARGIN_S
        return await self._pool.call(Lane.CONTROL, "event.from", ask, deadline=deadline,
                                     translate=self._keep_token_errors)

    async def _full(self, session: Any) -> tuple[list[Mapping[str, Any]], str]:
        """Every object of the classes (the empty token): the cache refilled; the events and the next token."""
        answer = await self._from(session, "", 0.0)
        events = [e for e in answer.get("events") or [] if isinstance(e, Mapping)]
        if self._cache is not None:
            self._cache.fill(events)
        return events, str(answer.get("token", ""))

    async def follow(self) -> AsyncIterator[DomainEvent]:
        session = self._client()
        known: dict[str, _Seen] = {}
        try:
            events, token = await self._full(session)
            changes(self.host, known, [{**e, "operation": "mod"} for e in events], time.time())  # the baseline
            full_at = time.monotonic()
            while True:
                answer = None
                if time.monotonic() - full_at < FULL_READ_S:  # else: a full read heals any drift
                    try:
                        answer = await self._from(session, token, self._long_poll)
                    except wire.XapiFailure as lost:
                        self.resyncs += 1
                        log.info("%s: event.from token lost (%s); re-syncing", self.host, lost.code)
                if answer is None:
                    events, token = await self._full(session)
                    full_at = time.monotonic()
                    records = {str(e.get("ref")): e["snapshot"] for e in events
                               if isinstance(e.get("snapshot"), Mapping) and str(e.get("class", "")).lower() == "vm"}
                    for event in resync(self.host, known, records, time.time()):
                        yield event
                    continue
                token = str(answer.get("token", token))
                batch = [e for e in answer.get("events") or [] if isinstance(e, Mapping)]
                if self._cache is not None:
                    self._cache.apply(batch)
                for event in changes(self.host, known, batch, time.time()):
                    yield event
        finally:
            if self._cache is not None:
                self._cache.detach()  # polls read everything again until the feed is back
            wire.close_transport(session)
