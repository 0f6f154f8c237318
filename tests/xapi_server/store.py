"""The pool's database: objects by class and reference, the event log, sessions.

Every change goes through `add` / `modify` / `remove`, which append to the event log that
event.from reads (ids increase by one per change; a token names the last id seen).
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from .schema import NULL_REF, Api, blank_record, load_api


class XapiError(Exception):
    """An xapi error: ErrorDescription = [code, *params]."""

    def __init__(self, code: str, *params: object) -> None:
        super().__init__(code, *params)
        self.description = [code, *(str(p) for p in params)]


def new_ref() -> str:
    return f"OpaqueRef:{uuid.uuid4()}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Event:
    id: int
    cls: str  # the class name as defined (VM, host, ...)
    operation: str  # add | mod | del
    ref: str
    snapshot: dict[str, Any]
    timestamp: dt.datetime


@dataclass
class Session:
    ref: str
    user: str
    originator: str
    valid: bool = True


class Store:
    def __init__(self, api: Api | None = None) -> None:
        self.api = api or load_api()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.events: list[Event] = []
        self.sessions: dict[str, Session] = {}
        # part of every event.from token; bumping it makes older tokens EVENTS_LOST
        self.event_generation = 0
        self.next_session_refs: list[str] = []  # test hook: refs the next logins return

    # --- objects ---------------------------------------------------------------

    def add(self, cls: str, fields: dict[str, Any], ref: str | None = None) -> str:
        record = blank_record(cls, self.api)
        unknown = set(fields) - set(record)
        if unknown:
            raise KeyError(f"{cls} has no field(s) {sorted(unknown)}")
        record.update(copy.deepcopy(fields))
        if "uuid" in record and not record["uuid"]:
            record["uuid"] = str(uuid.uuid4())
        ref = ref or new_ref()
        with self.lock:
            self.objects.setdefault(cls, {})[ref] = record
            self._log(cls, "add", ref, record)
        return ref

    def modify(self, cls: str, ref: str, **changes: Any) -> None:
        with self.lock:
            record = self.get(cls, ref)
            unknown = set(changes) - set(record)
            if unknown:
                raise KeyError(f"{cls} has no field(s) {sorted(unknown)}")
            record.update(changes)
            self._log(cls, "mod", ref, record)

    def remove(self, cls: str, ref: str) -> None:
        with self.lock:
            record = self.get(cls, ref)
            del self.objects[cls][ref]
            self._log(cls, "del", ref, record)

    def rekey(self, old: str, new: str) -> None:
        """Rename a reference everywhere (seeding objects under the refs a fixture expects)."""

        def swap(value: Any) -> Any:
            if isinstance(value, str):
                return new if value == old else value
            if isinstance(value, list):
                return [swap(v) for v in value]
            if isinstance(value, dict):
                return {swap(k): swap(v) for k, v in value.items()}
            return value

        with self.lock:
            for cls, objects in self.objects.items():
                self.objects[cls] = {swap(ref): swap(record) for ref, record in objects.items()}

    def get(self, cls: str, ref: str) -> dict[str, Any]:
        """The live record (callers copy before handing it out); HANDLE_INVALID if absent."""
        with self.lock:
            record = self.objects.get(cls, {}).get(ref)
        if record is None:
            raise XapiError("HANDLE_INVALID", cls, ref)
        return record

    def record(self, cls: str, ref: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.get(cls, ref))

    def refs(self, cls: str) -> list[str]:
        with self.lock:
            return list(self.objects.get(cls, {}))

    def all_records(self, cls: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.objects.get(cls, {}))

    def find(self, cls: str, **match: Any) -> list[str]:
        with self.lock:
            return [r for r, rec in self.objects.get(cls, {}).items() if all(rec.get(k) == v for k, v in match.items())]

    def by_name(self, cls: str, name: str) -> str:
        """The one object of a class with this name_label (seed and test helper)."""
        found = self.find(cls, name_label=name)
        if len(found) != 1:
            raise KeyError(f"{len(found)} {cls} named {name!r}")
        return found[0]

    # --- events ----------------------------------------------------------------

    def _log(self, cls: str, operation: str, ref: str, record: dict[str, Any]) -> None:
        event_id = (self.events[-1].id if self.events else 0) + 1
        self.events.append(Event(event_id, cls, operation, ref, copy.deepcopy(record), now()))
        self.changed.notify_all()

    def last_event_id(self) -> int:
        with self.lock:
            return self.events[-1].id if self.events else 0

    def expire_event_tokens(self) -> None:
        """Every token handed out so far becomes too old (EVENTS_LOST on its next use)."""
        with self.lock:
            self.event_generation += 1
            self.changed.notify_all()

    # --- sessions --------------------------------------------------------------

    def open_session(self, user: str, originator: str, host: str) -> str:
        with self.lock:
            ref = self.next_session_refs.pop(0) if self.next_session_refs else new_ref()
            self.sessions[ref] = Session(ref, user, originator)
            fields = {
                "this_host": host, "last_active": now(), "validation_time": now(), "is_local_superuser": True,
                "originator": originator, "auth_user_name": user, "pool": False,
            }
            self.add("session", fields, ref)
        return ref

    def check_session(self, ref: Any) -> Session:
        with self.lock:
            session = self.sessions.get(ref) if isinstance(ref, str) else None
        if session is None or not session.valid:
            raise XapiError("SESSION_INVALID", ref)
        return session

    def close_session(self, ref: str) -> None:
        self.check_session(ref)
        with self.lock:
            self.sessions[ref].valid = False
            if ref in self.objects.get("session", {}):
                self.remove("session", ref)

    def expire_sessions(self) -> None:
        with self.lock:
            for session in self.sessions.values():
                session.valid = False
            self.changed.notify_all()


def ref_or_null(value: str | None) -> str:
    return value or NULL_REF
