"""The fleet's event stream (`vfleet events`): one JSON-ready record per thing that happened.

Four sources feed one schema (SCHEMA, documented field by field in the README):
- lifecycle events of drivers that announce them (libvirt, sim): "derived": false;
- state changes seen between two polls of the same domain key, for drivers that do not
  announce them (xen_xl, esxi_*): "derived": true. On a host whose driver announces
  events a derived change is held for `grace` seconds and dropped if an announced event
  explains it, so a change shows once; one the event stream missed still shows;
- host health transitions (up, degraded, stale, down, auth-failed, connecting);
- vfleet's own actions, read back from the audit log (another process usually acts).
Records hold names, states and messages only: no address, user@host or credential.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vfleet.core.engine import HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import Domain, DomainEvent, DomainRates, HostConfig, HostStatus, PowerState
from vfleet.core.selector import Selector
from vfleet.drivers.base import Capability

SCHEMA = "vfleet.event/1"
GRACE = 3.0  # seconds an announced event may come after the poll that already showed its change

# The state a lifecycle event leaves its domain in (None: it does not say).
IMPLIED_STATE: Mapping[str, PowerState] = {
    "started": PowerState.RUNNING,
    "resumed": PowerState.RUNNING,
    "suspended": PowerState.PAUSED,
    "stopped": PowerState.OFF,
    "crashed": PowerState.CRASHED,
    "pmsuspended": PowerState.SUSPENDED,
}
# The announced word a poll-derived change stands for, so consumers handle one vocabulary.
_DERIVED_WORD: Mapping[PowerState, str] = {
    PowerState.RUNNING: "started",
    PowerState.PAUSED: "suspended",
    PowerState.OFF: "stopped",
    PowerState.CRASHED: "crashed",
    PowerState.SUSPENDED: "pmsuspended",
    PowerState.SHUTTING_DOWN: "shutdown",
    PowerState.UNKNOWN: "unknown",
}
# Audit record fields an action event carries (an allow-list: nothing else leaves the log).
_ACTION_FIELDS = ("op", "user", "face", "verb", "selector", "tier", "outcome", "reason", "counts", "seconds")
_TARGET_FIELDS = ("host", "domain", "key", "plan", "why", "state", "override")
_RESULT_FIELDS = ("host", "domain", "key", "result", "state_after", "error", "override")
ACTION_KINDS = ("intent", "result", "close", "refused", "dry-run")


def wall_time(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds, the audit log's format."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dumps(event: Mapping[str, Any]) -> str:
    # ensure_ascii: control characters and bidi marks from a hostile host stay escaped
    return json.dumps(event, ensure_ascii=True, separators=(",", ":"))


@dataclass
class _Host:
    config: HostConfig
    status: HostStatus | None = None  # None until the first settled status (not connecting)
    states: dict[str, PowerState] | None = None  # domain key -> state; None until the first poll
    rows: dict[str, DomainRow] | None = None
    seen: tuple[DomainRow, ...] | None = None  # the rows tuple last diffed (replaced on each poll)
    hypervisor: str = ""


@dataclass
class _Held:
    due: float
    host: str
    key: str
    event: dict[str, Any]
    row: DomainRow


class EventStream:
    """Turns fleet views, driver events and audit records into filtered event records.

    Pure bookkeeping: the caller passes the monotonic `now` and the wall clock, and
    writes what comes back.
    """

    def __init__(self, hosts: Sequence[HostConfig], selector: Selector | None = None, *, grace: float = GRACE) -> None:
        self._hosts = {h.name: _Host(h) for h in hosts}
        self.selector = self._selector = selector or Selector.parse("")
        self._grace = grace
        self._held: list[_Held] = []
        self._announced: dict[tuple[str, str], float] = {}  # (host, key) -> when the last event came
        self._ops: dict[str, bool] = {}  # audit op id -> whether its targets pass the filter

    # -- the current state ---------------------------------------------------------

    def snapshot(self, views: Sequence[HostView], wall: float) -> list[dict[str, Any]]:
        """One `host` record per host and one `domain` record per domain, as known now."""
        out: list[dict[str, Any]] = []
        for view in views:
            self._observe(view, 0.0, wall, emit=False)
            if self._selector.host_may_match(view.config):
                out.append(self._health(view, "snapshot", None, wall))
            for row in view.rows:
                if self._selector.matches(row, view.config):
                    out.append(self._domain(row, "snapshot", "", False, None, wall, row.domain.state))
        return out

    # -- changes ---------------------------------------------------------------------

    def observe(self, views: Sequence[HostView], now: float, wall: float) -> list[dict[str, Any]]:
        """Health transitions and poll-derived state changes since the last call."""
        out: list[dict[str, Any]] = []
        for view in views:
            out += self._observe(view, now, wall, emit=True)
        return out + self.due(now)

    def due(self, now: float) -> list[dict[str, Any]]:
        """Held derived changes no announced event explained within the grace."""
        ready = [h for h in self._held if h.due <= now]
        self._held = [h for h in self._held if h.due > now]
        return [h.event for h in ready]

    def lifecycle(self, event: DomainEvent, now: float) -> list[dict[str, Any]]:
        host = self._hosts.get(event.host)
        if host is None:
            return []
        key = event.uuid or event.domain
        if host.rows is not None and key not in host.rows:  # a backend without UUIDs in one place
            key = next((k for k, r in host.rows.items() if r.domain.name == event.domain), key)
        self._announced[(event.host, key)] = now
        self._held = [h for h in self._held if (h.host, h.key) != (event.host, key)]
        state = IMPLIED_STATE.get(event.kind)
        previous = host.states.get(key) if host.states is not None else None
        if host.states is not None and state is not None:
            host.states[key] = state  # the poll that shows it is then no change
        last = host.rows.get(key) if host.rows is not None else None
        row = last or DomainRow(
            event.host,
            host.hypervisor,
            Domain(event.domain, state or PowerState.UNKNOWN, "", uuid=event.uuid),
            DomainRates(),
            host.config.tags,
            0.0,
        )
        row = replace(row, domain=replace(row.domain, name=event.domain, state=state or row.domain.state))
        if not self._selector.matches(row, host.config):
            return []
        when = event.wall_time or time.time()  # a driver that did not stamp it: now is close
        return [self._domain(row, event.kind, event.detail, False, previous, when, state, key=key)]

    def action(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One audit record -> one action event (if it passes the filter)."""
        kind = record.get("kind")
        if kind not in ACTION_KINDS:
            return []
        op = str(record.get("op") or "")
        event: dict[str, Any] = {"schema": SCHEMA, "time": record.get("time"), "type": "action", "event": kind}
        event.update({k: record[k] for k in _ACTION_FIELDS if k in record})
        if kind == "result":
            event.update({k: record.get(k) for k in _RESULT_FIELDS})
            keep = self._target_passes(record)
        elif kind == "close":
            keep = self._ops.pop(op, not self._selector)
        else:
            raw = record.get("targets")
            targets = [t for t in raw if isinstance(t, Mapping)] if isinstance(raw, list) else []
            event["targets"] = [{k: t.get(k) for k in _TARGET_FIELDS} for t in targets]
            keep = not self._selector or any(self._target_passes(t) for t in targets)
            if kind == "intent":
                self._ops[op] = keep
        return [event] if keep else []

    # -- inside ------------------------------------------------------------------------

    def _observe(self, view: HostView, now: float, wall: float, *, emit: bool) -> list[dict[str, Any]]:
        host = self._hosts.get(view.name)
        if host is None:
            return []
        out: list[dict[str, Any]] = []
        if view.facts is not None:
            host.hypervisor = view.facts.hypervisor
        status = view.health.status
        if status is not host.status:
            if status is HostStatus.CONNECTING:  # a first connect or a retry says nothing new
                quiet = host.status in (None, HostStatus.DOWN, HostStatus.AUTH_FAILED)
            else:  # a first connect that went well neither
                quiet = host.status is None and status is HostStatus.UP
            if emit and not quiet and self._selector.host_may_match(view.config):
                out.append(self._health(view, "health", host.status or HostStatus.CONNECTING, wall))
            if not (quiet and status is HostStatus.CONNECTING):
                host.status = status
        if view.health.polls == 0 or view.rows is host.seen:
            return out
        host.seen = view.rows
        rows = {r.domain.key: r for r in view.rows}
        if host.states is None or host.rows is None:  # the first poll is the baseline
            host.states = {k: r.domain.state for k, r in rows.items()}
            host.rows = rows
            return out
        announced = Capability.EVENTS in view.capabilities
        for key, row in rows.items():
            before = host.states.get(key)
            if before is row.domain.state:
                continue
            host.states[key] = row.domain.state
            if key not in host.rows:
                word, detail = "defined", "appeared"
            elif row.domain.state is PowerState.RUNNING and before in (PowerState.PAUSED, PowerState.SUSPENDED):
                word, detail = "resumed", ""
            else:
                word, detail = _DERIVED_WORD[row.domain.state], ""
            out += self._derived(host, key, row, word, detail, before, now, wall, announced, emit)
        for key in set(host.rows) - set(rows):
            gone = host.rows[key]
            host.states.pop(key, None)
            before = gone.domain.state
            out += self._derived(host, key, gone, "undefined", "vanished", before, now, wall, announced, emit)
        host.rows = rows
        return out

    def _derived(
        self,
        host: _Host,
        key: str,
        row: DomainRow,
        word: str,
        detail: str,
        before: PowerState | None,
        now: float,
        wall: float,
        announced: bool,
        emit: bool,
    ) -> list[dict[str, Any]]:
        if not emit or not self._selector.matches(row, host.config):
            return []
        state = None if word == "undefined" else row.domain.state
        event = self._domain(row, word, detail, True, before, wall, state, key=key)
        if not announced:
            return [event]
        name = host.config.name
        if now - self._announced.get((name, key), float("-inf")) <= self._grace:
            return []  # an announced event already said it
        self._held.append(_Held(now + self._grace, name, key, event, row))
        return []

    def _target_passes(self, target: Mapping[str, Any]) -> bool:
        if not self._selector:
            return True
        host = self._hosts.get(str(target.get("host")))
        if host is None:
            return False
        key, name = str(target.get("key") or target.get("domain")), str(target.get("domain") or "")
        row = (host.rows or {}).get(key) or DomainRow(
            host.config.name,
            host.hypervisor,
            Domain(name, PowerState.UNKNOWN, "", uuid=key if key != name else None),
            DomainRates(),
            host.config.tags,
            0.0,
        )
        return self._selector.matches(row, host.config)

    def _health(self, view: HostView, word: str, previous: HostStatus | None, wall: float) -> dict[str, Any]:
        config, health = view.config, view.health
        return {
            "schema": SCHEMA,
            "time": wall_time(wall),
            "type": "host",
            "event": word,
            "host": config.name,
            "hypervisor": view.facts.hypervisor if view.facts else None,
            "driver": config.driver,
            "status": health.status.value,
            "previous": previous.value if previous else None,
            "error": health.last_error,
        }

    def _domain(
        self,
        row: DomainRow,
        word: str,
        detail: str,
        derived: bool,
        previous: PowerState | None,
        wall: float,
        state: PowerState | None,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        host = self._hosts[row.host]
        return {
            "schema": SCHEMA,
            "time": wall_time(wall),
            "type": "domain",
            "event": word,
            "detail": detail,
            "derived": derived,
            "host": row.host,
            "hypervisor": row.hypervisor or host.hypervisor or None,
            "driver": host.config.driver,
            "domain": row.domain.name,
            "domain_key": key or row.domain.key,
            "state": state.value if state else None,
            "previous": previous.value if previous else None,
            "raw_state": row.domain.raw_state if derived or word == "snapshot" else None,
        }


class AuditTail:
    """New records appended to an audit log since the last read, like `tail -F -n0`.

    A log that does not exist yet is read from its start once it appears; a log that
    was replaced or cut short (rotation) is read again from its start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        try:
            info = path.stat()
        except OSError:
            return
        self._identity, self._offset = (info.st_dev, info.st_ino), info.st_size

    def read(self) -> list[dict[str, Any]]:
        try:
            info = self.path.stat()
        except OSError:
            return []
        identity = (info.st_dev, info.st_ino)
        if identity != self._identity or info.st_size < self._offset:
            self._identity, self._offset, self._partial = identity, 0, b""
        if info.st_size == self._offset:
            return []
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return []
        try:
            data = os.pread(fd, info.st_size - self._offset, self._offset)
        finally:
            os.close(fd)
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # damage is `vfleet audit verify`'s to report; the stream goes on
            if isinstance(record, dict):
                records.append(record)
        return records
