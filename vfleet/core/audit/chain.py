"""The chain's primitives: record hashes, MACs, the checkpoint, the key file, line parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfleet.core.errors import UsageError

GENESIS = "0" * 64
ENV_VAR = "VFLEET_AUDIT_LOG"
KEY_ENV_VAR = "VFLEET_AUDIT_KEY_FILE"
HEAD_SCHEMA = "vfleet.audit-head/1"
RESERVED = frozenset({"time", "user", "ran_on", "prev", "hash", "mac"})
MIN_KEY_BYTES = 16
# check_writable() refuses below this much free space: a record plus its checkpoint is
# well under 1 KiB, but an operation appends one per target and a close.
MIN_FREE_BYTES = 1 << 20


def default_path() -> Path:
    """$VFLEET_AUDIT_LOG, else $XDG_STATE_HOME/vfleet/audit.jsonl."""
    if env := os.environ.get(ENV_VAR):
        return Path(env).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "vfleet" / "audit.jsonl"


def head_path(path: Path) -> Path:
    """The checkpoint kept beside a log."""
    return path.with_name(path.name + ".head")


def key_file_from_env() -> Path | None:
    value = os.environ.get(KEY_ENV_VAR)
    return Path(value).expanduser() if value else None


def load_key(path: Path) -> bytes:
    """Read an HMAC key file; it must be private to its owner (a readable key forges nothing less)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: the audit key file is not a regular file")
        if info.st_mode & 0o077:
            raise UsageError(
                f"{path}: the audit key file must be readable by its owner only (chmod 600), "
                f"it is {stat.filemode(info.st_mode)}"
            )
        data = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the audit key file: {exc.strerror or exc}") from None
    if len(data) < MIN_KEY_BYTES:
        raise UsageError(
            f"{path}: the audit key is too short ({len(data)} bytes; use at least {MIN_KEY_BYTES}, "
            "e.g. `head -c 32 /dev/urandom | base64`)"
        )
    return data


def new_op_id() -> str:
    """The 12-hex-digit id that ties an operation's records together."""
    return os.urandom(6).hex()


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def digest(record: Mapping[str, Any]) -> str:
    # `mac` is outside the hash: it is computed from it.
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k not in ("hash", "mac")})).hexdigest()


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_mac(key: bytes, record_hash: str) -> str:
    return _mac(key, record_hash.encode())


def who() -> tuple[str, str]:
    """The account vfleet runs as and the machine: from the uid, never from $USER or
    $LOGNAME, which whoever runs vfleet can set to anyone's name."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return user, socket.gethostname()


class Damage(Exception):
    """An internal verdict on one line or on the checkpoint; callers turn it into a user error.

    `inspect`: whether `vfleet audit verify` would tell the operator more (not for a
    missing or misplaced key, which verify cannot fix).
    """

    def __init__(self, message: str, *, inspect: bool = True) -> None:
        super().__init__(message)
        self.inspect = inspect

    def hint(self) -> str:
        return f"{self}; run `vfleet audit verify`" if self.inspect else str(self)


def parse_line(raw: bytes) -> dict[str, Any]:
    """One log line (newline stripped) -> its record, or Damage saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Damage("not UTF-8 text (damaged)") from None
    try:
        record = json.loads(text)
    except ValueError:
        raise Damage("not valid JSON (damaged or cut short)") from None
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str) or "prev" not in record:
        raise Damage("not an audit record (no hash/prev)")
    return record


@dataclass(frozen=True, slots=True)
class Head:
    """The checkpoint: how many records the log had, the last one's hash, its size in bytes."""

    records: int
    head: str
    size: int
    mac: str | None = None

    def _body(self) -> dict[str, Any]:
        return {"schema": HEAD_SCHEMA, "records": self.records, "head": self.head, "bytes": self.size}

    def signed(self, key: bytes | None) -> Head:
        mac = _mac(key, _canonical(self._body())) if key is not None else None
        return Head(self.records, self.head, self.size, mac)

    def mac_ok(self, key: bytes) -> bool:
        return self.mac is not None and hmac.compare_digest(self.mac, _mac(key, _canonical(self._body())))

    def dumps(self) -> bytes:
        body = self._body()
        if self.mac is not None:
            body["mac"] = self.mac
        return json.dumps(body, sort_keys=True).encode() + b"\n"


def read_head(path: Path) -> Head | None:
    """The checkpoint beside `path`, None when there is none; Damage when it is damaged."""
    try:
        raw = head_path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        body = json.loads(raw.decode("utf-8"))
        if not isinstance(body, dict) or body.get("schema") != HEAD_SCHEMA:
            raise ValueError
        records, head, size, mac = body["records"], body["head"], body["bytes"], body.get("mac")
        if not (isinstance(records, int) and isinstance(size, int) and isinstance(head, str)):
            raise ValueError
        if mac is not None and not isinstance(mac, str):
            raise ValueError
    except (ValueError, KeyError, UnicodeDecodeError):
        raise Damage(f"its checkpoint {head_path(path)} is damaged") from None
    return Head(records, head, size, mac)
