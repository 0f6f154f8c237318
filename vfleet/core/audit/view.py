"""Operations rebuilt from their records, for `vfleet audit show` (the CLI only formats).

An operation writes `intent` before anything is sent, one `result` per target as it
completes and `close` in a finally; a plan stopped before intent writes `refused`, a
`--dry-run` writes `dry-run`. Records of one operation share `op` and may interleave
with other processes' records. Logs written before operations existed hold one record
per action (no `kind`, `targets` with results): each is an operation of its own.

The log is input written by earlier versions or damaged by hand: every field is read
defensively (wrong types become None), never trusted to have the documented shape.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "vfleet.audit/1"
OPEN = "OPEN"  # intent without close: the process was killed, or is still running
NO_RESULT = "no result recorded"
OPENING_KINDS = ("intent", "refused", "dry-run", "console")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _targets_of(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    targets = record.get("targets")
    return [t for t in targets if isinstance(t, Mapping)] if isinstance(targets, list) else []


@dataclass(slots=True)
class TargetView:
    host: str | None
    domain: str | None
    key: str | None
    plan: str | None  # send / no-op / refused; None: not in the intent (or no intent recorded)
    why: str | None = None
    override: bool = False
    result: str | None = None  # ok / no-op / refused / failed / timed-out; None: no result recorded
    state_after: str | None = None
    error: str | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        key = _text(record.get("key"))
        if key and self.key:
            return key == self.key
        return (self.host, self.domain) == (_text(record.get("host")), _text(record.get("domain")))


@dataclass(slots=True)
class Operation:
    op: str | None  # None for a record written before operations existed
    line: int  # where its first record is
    kind: str = "intent"  # intent / refused / dry-run / legacy: what opened it
    opening: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    close: dict[str, Any] | None = None
    first: dict[str, Any] = field(default_factory=dict)  # its first record, whatever kind
    targets: list[TargetView] = field(default_factory=list)

    def _field(self, name: str) -> str | None:
        for record in (self.opening, self.first, self.close):
            if record is not None and (value := _text(record.get(name))):
                return value
        return None

    @property
    def time(self) -> str | None:
        return self._field("time")

    @property
    def user(self) -> str | None:
        return self._field("user")

    @property
    def verb(self) -> str | None:
        return self._field("verb")

    @property
    def face(self) -> str | None:
        return self._field("face")

    @property
    def reason(self) -> str | None:
        """Why a plan was stopped before intent (or, for old records, refused)."""
        if self.opening is None:
            return None
        return _text(self.opening.get("reason")) or _text(self.opening.get("refused"))

    @property
    def outcome(self) -> str:
        """completed / interrupted / crashed from the close record; OPEN when there is none."""
        if self.kind == "refused":
            return "refused"
        if self.kind == "dry-run":
            return "dry-run"
        if self.kind == "legacy":
            assert self.opening is not None
            return "refused" if self.reason else "dry-run" if self.opening.get("dry_run") is True else "completed"
        if self.close is not None:
            return _text(self.close.get("outcome")) or "?"
        return OPEN

    def touches(self, host_glob: str) -> bool:
        return any(t.host is not None and fnmatch.fnmatchcase(t.host, host_glob) for t in self.targets)

    def document(self) -> dict[str, Any]:
        """The `-o json` object: the reconstruction plus the records it came from."""
        seconds = self.close.get("seconds") if self.close else None
        counts = self.close.get("counts") if self.close else None
        opening = self.opening or {}
        return {
            "schema": SCHEMA,
            "op": self.op,
            "kind": self.kind,
            "line": self.line,
            "time": self.time,
            "user": self.user,
            "ran_on": self._field("ran_on"),
            "face": self.face,
            "verb": self.verb,
            "selector": _text(opening.get("selector")),
            "tier": _text(opening.get("tier")),
            "outcome": self.outcome,
            "reason": self.reason,
            "seconds": seconds if isinstance(seconds, int | float) else None,
            "counts": counts if isinstance(counts, dict) else None,
            "targets": [asdict(t) for t in self.targets],
            "intent": self.opening,
            "results": self.results,
            "close": self.close,
        }


def operations(entries: Iterable[tuple[int, dict[str, Any]]]) -> list[Operation]:
    """Group (line, record) pairs into operations, in the order each one started."""
    by_id: dict[str, Operation] = {}
    ordered: list[Operation] = []
    for line, record in entries:
        kind = record.get("kind")
        if kind is None:
            ordered.append(Operation(None, line, "legacy", record, first=record))
            continue
        op_id = _text(record.get("op")) or f"?line{line}"
        operation = by_id.get(op_id)
        if operation is None:
            operation = by_id[op_id] = Operation(op_id, line, first=record)
            ordered.append(operation)
        if kind in OPENING_KINDS and operation.opening is None:
            operation.kind, operation.opening = str(kind), record
        elif kind == "result":
            operation.results.append(record)
        elif kind == "close" and operation.close is None:
            operation.close = record
        # Anything else (a kind from a newer vfleet, a duplicate) stays out of the view;
        # `audit verify` still checks it and `-o json` of the raw log still has it.
    for operation in ordered:
        operation.targets = _targets(operation)
    return ordered


def _targets(operation: Operation) -> list[TargetView]:
    if operation.kind == "legacy":
        assert operation.opening is not None
        return [_legacy_target(t) for t in _targets_of(operation.opening)]
    targets = [
        TargetView(
            _text(t.get("host")),
            _text(t.get("domain")),
            _text(t.get("key")),
            _text(t.get("plan")),
            _text(t.get("why")),
            t.get("override") is True,
        )
        for t in (_targets_of(operation.opening) if operation.opening else [])
    ]
    for record in operation.results:
        target = next((t for t in targets if t.result is None and t.matches(record)), None)
        if target is None:  # a result for a target the intent did not list (or no intent)
            target = TargetView(_text(record.get("host")), _text(record.get("domain")), _text(record.get("key")), None)
            targets.append(target)
        target.result = _text(record.get("result")) or "?"
        target.state_after = _text(record.get("state_after"))
        target.error = _text(record.get("error"))
    return targets


def _legacy_target(t: Mapping[str, Any]) -> TargetView:
    result = _text(t.get("result"))
    plan = {"refused": "refused", "no-op": "no-op", "planned": "send"}.get(result or "", "send")
    if t.get("noop") is True:
        plan = "no-op"
    return TargetView(
        _text(t.get("host")),
        _text(t.get("domain")),
        _text(t.get("key")),
        plan,
        None,
        t.get("override") is True,
        None if result == "planned" else result,
        _text(t.get("state_after")),
        _text(t.get("error")),
    )


def select(
    ops: Iterable[Operation],
    *,
    host: str | None = None,
    verb: str | None = None,
    user: str | None = None,
    last: int | None = None,
) -> list[Operation]:
    """The operations `audit show` prints: filters first, then the last N of what is left."""
    chosen = [
        o
        for o in ops
        if (host is None or o.touches(host)) and (verb is None or o.verb == verb) and (user is None or o.user == user)
    ]
    return chosen[-last:] if last else chosen
