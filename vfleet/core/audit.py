"""Tamper-evident audit log: append-only JSONL, each record chained to the previous one.

Every record carries `prev`, the SHA-256 of the previous record's line (the first
record chains to GENESIS), and `hash`, the SHA-256 of its own content without
`hash`. Appends take an exclusive lock on the file, read the last record's hash and
write under the lock, so concurrent vfleet processes neither corrupt the file nor
fork the chain. Secrets never reach it: records hold names, verbs and messages.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vfleet.core.errors import UsageError

GENESIS = "0" * 64
ENV_VAR = "VFLEET_AUDIT_LOG"


def default_path() -> Path:
    """$VFLEET_AUDIT_LOG, else $XDG_STATE_HOME/vfleet/audit.jsonl."""
    if env := os.environ.get(ENV_VAR):
        return Path(env).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "vfleet" / "audit.jsonl"


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _last_hash(handle: Any) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return GENESIS
    # Read backwards just far enough for the last line.
    chunk, position = b"", size
    while position > 0 and chunk.count(b"\n") < 2:
        step = min(8192, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + chunk
    last = chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        value = json.loads(last)["hash"]
    except (ValueError, KeyError, TypeError):
        raise UsageError("the audit log's last record is damaged: run `vfleet audit verify`") from None
    return str(value)


def who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Chain and write one record; returns it with `prev` and `hash` filled in."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        user, machine = who()
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                record = {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "user": user,
                    "ran_on": machine,
                    **event,
                    "prev": _last_hash(handle),
                }
                record["hash"] = _digest(record)
                handle.seek(0, os.SEEK_END)
                handle.write(json.dumps(record, sort_keys=True).encode() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    first_bad: int | None = None  # 1-based line number
    problem: str = ""


def verify(path: Path) -> Verdict:
    """Check every record's own hash and its link to the one before."""
    if not path.exists():
        return Verdict(True, 0)
    previous = GENESIS
    count = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                return Verdict(False, count, number, "empty line inside the log")
            try:
                record = json.loads(line)
            except ValueError:
                return Verdict(False, count, number, "not valid JSON")
            if not isinstance(record, dict) or "hash" not in record or "prev" not in record:
                return Verdict(False, count, number, "not an audit record (no hash/prev)")
            if record["hash"] != _digest(record):
                return Verdict(False, count, number, "content does not match its hash (edited)")
            if record["prev"] != previous:
                return Verdict(
                    False, count, number, "does not follow the record before it (deleted, moved or inserted)"
                )
            previous = record["hash"]
            count += 1
    return Verdict(True, count)
