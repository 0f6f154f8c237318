"""event.from: the long-poll change feed.

Token: "<last event id>,<generation>" as two 20-digit numbers (xapi's tokens are two
numbers too). The empty token answers every current object of the classes as an "add";
a later token answers one event per changed object (its latest state: xapi reads the
database, it does not replay a log), waiting up to `timeout` seconds for one.
`XapiPool.store.expire_event_tokens()` bumps the generation: older tokens get EVENTS_LOST.
A token that does not parse gets EVENT_FROM_TOKEN_PARSE_FAILURE, as in xapi.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from .store import Event, XapiError, now

if TYPE_CHECKING:
    from .pool import XapiPool


def make_token(last_id: int, generation: int) -> str:
    return f"{last_id:020d},{generation:020d}"


def _parse_token(token: str) -> tuple[int, int]:
    try:
        last, generation = token.split(",")
        return int(last), int(generation)
    except ValueError:
        raise XapiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token) from None


def _matcher(pool: XapiPool, classes: list[str]) -> Any:
    wanted: set[str] = set()
    objects: set[tuple[str, str]] = set()
    for entry in classes:
        name, _, ref = str(entry).partition("/")
        if name == "*":
            wanted.add("*")
            continue
        cdef = pool.store.api.class_named(name)
        if cdef is None:
            continue  # xapi ignores classes it does not know
        if ref:
            objects.add((cdef.name, ref))
        else:
            wanted.add(cdef.name)

    def matches(cls: str, ref: str) -> bool:
        return "*" in wanted or cls in wanted or (cls, ref) in objects

    return matches


def _event_record(event_id: int, cls: str, operation: str, ref: str, snapshot: dict[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": event_id,
        "timestamp": now(),
        "class": cls.lower(),
        "operation": operation,
        "ref": ref,
        "obj_uuid": (snapshot or {}).get("uuid", ""),
    }
    if snapshot is not None:
        record["snapshot"] = snapshot
    return record


def event_from(pool: XapiPool, session: str, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
    store = pool.store
    matches = _matcher(pool, classes)
    deadline = time.monotonic() + min(float(timeout), pool.max_event_wait)
    with store.lock:
        generation = store.event_generation
        if token == "":
            last = store.last_event_id()
            found = [
                _event_record(last, cls, "add", ref, copy.deepcopy(rec))
                for cls, objects in store.objects.items()
                for ref, rec in objects.items()
                if matches(cls, ref)
            ]
            return _batch(pool, found, make_token(last, generation), matches)
        since, token_generation = _parse_token(token)
        while True:
            if token_generation != store.event_generation:
                raise XapiError("EVENTS_LOST")
            store.check_session(session)  # a session expired while waiting ends the wait
            fresh = [e for e in store.events if e.id > since and matches(e.cls, e.ref)]
            left = deadline - time.monotonic()
            if fresh or left <= 0 or pool.stopping.is_set():
                break
            store.changed.wait(left)
        return _batch(pool, _coalesce(pool, fresh), make_token(store.last_event_id(), generation), matches)


def _coalesce(pool: XapiPool, fresh: list[Event]) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], Event] = {}
    added: set[tuple[str, str]] = set()
    for event in fresh:
        latest[(event.cls, event.ref)] = event
        if event.operation == "add":
            added.add((event.cls, event.ref))
    out = []
    for (cls, ref), event in sorted(latest.items(), key=lambda item: item[1].id):
        current = pool.store.objects.get(cls, {}).get(ref)
        if current is None:
            out.append(_event_record(event.id, cls, "del", ref, None))
        else:
            operation = "add" if (cls, ref) in added else "mod"
            out.append(_event_record(event.id, cls, operation, ref, copy.deepcopy(current)))
    return out


def _batch(pool: XapiPool, found: list[dict[str, Any]], token: str, matches: Any) -> dict[str, Any]:
    counts = {
        cls.lower(): len(objects)
        for cls, objects in pool.store.objects.items()
        if any(matches(cls, ref) for ref in objects) or matches(cls, "")
    }
    return {"events": found, "valid_ref_counts": counts, "token": token}
