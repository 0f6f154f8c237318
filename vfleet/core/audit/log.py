"""Appending to the audit log, and reading it back."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vfleet.core.audit.chain import (
    GENESIS,
    KEY_ENV_VAR,
    MIN_FREE_BYTES,
    RESERVED,
    Damage,
    Head,
    default_path,
    digest,
    head_path,
    key_file_from_env,
    load_key,
    parse_line,
    read_head,
    record_mac,
    who,
)
from vfleet.core.errors import AuditDamaged, AuditUnavailable, UsageError, VFleetError

log = logging.getLogger("vfleet.audit")
_warned: set[str] = set()


def _replace_head(path: Path, head: Head) -> None:
    """Replace the checkpoint atomically: a crash leaves the old one or the new one, never half."""
    target = head_path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(head.dumps())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


def _committed(path: Path, head: Head) -> bool:
    """Whether `head` is the checkpoint on disk now (the rename happened)."""
    try:
        return read_head(path) == head
    except (OSError, Damage):
        return False


def _sync_directory(directory: Path) -> None:
    """Make the rename durable. A failure here is not fatal: the records are already on
    disk, and a checkpoint that lags after a power loss is tolerated (verify notes it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("%s: cannot sync the audit log's directory: %s", directory, exc.strerror or exc)


def _last_line(fd: int, end: int) -> bytes:
    """The line that ends at byte `end` (without its newline); Damage if it is cut short."""
    chunk, position = b"", end
    while position > 0 and b"\n" not in chunk[:-1]:
        step = min(8192, position)
        position -= step
        chunk = os.pread(fd, step, position) + chunk
    if not chunk.endswith(b"\n"):
        raise Damage("its last record is cut short (no newline)")
    return chunk[:-1].rsplit(b"\n", 1)[-1]


def _warn_if_open(path: Path, info: os.stat_result, what: str) -> None:
    key = f"{what}:{path}"
    if info.st_mode & 0o022 and key not in _warned:
        _warned.add(key)
        log.warning(
            "%s: the audit %s is group- or world-writable (%s): others can rewrite or replace it",
            path,
            what,
            stat.filemode(info.st_mode),
        )


@dataclass(frozen=True, slots=True)
class _Tail:
    records: int
    last: str
    size: int


class AuditLog:
    def __init__(self, path: Path | None = None, *, key_file: Path | None = None) -> None:
        self.path = path or default_path()
        self.key_file = key_file if key_file is not None else key_file_from_env()
        self._key: bytes | None = None

    # -- writing ---------------------------------------------------------------------

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Chain, write and fsync one record; returns it with time, user, prev, hash (and mac)."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append several records with one write, one fsync and one checkpoint update.

        For bursts of results in a bulk operation; all of them are on disk when this returns,
        or none is and AuditUnavailable says why.
        """
        for event in events:
            if clash := RESERVED & event.keys():
                raise ValueError(f"audit events must not set {sorted(clash)}: the log fills them in")
        try:
            key = self._load_key()
            self._prepare_directory()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                _warn_if_open(self.path, os.fstat(fd), "log")
                fcntl.flock(fd, fcntl.LOCK_EX)
                tail = self._tail(fd, key)
                records, data = self._chain(events, tail.last, key)
                self._commit(fd, tail, records, data, key)
            finally:
                os.close(fd)  # also releases the lock
        except OSError as exc:
            raise AuditUnavailable(str(self.path), exc.strerror or str(exc)) from exc
        except Damage as exc:
            raise AuditUnavailable(str(self.path), exc.hint()) from None
        return records

    def check_writable(self) -> None:
        """Raise AuditUnavailable if an append would fail now, without writing a record.

        Run before asking for confirmation: the operator should not confirm an action
        that will then be refused. Creates the 0700 directory if it is missing.
        """
        try:
            key = self._load_key()
            self._prepare_directory()
            if self.path.exists():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
                try:
                    _warn_if_open(self.path, os.fstat(fd), "log")
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    self._tail(fd, key)
                finally:
                    os.close(fd)
            # The checkpoint is replaced through a temporary file in the same directory.
            probe, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.probe.")
            os.close(probe)
            os.unlink(name)
            fs = os.statvfs(self.path.parent)
            if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
                raise AuditUnavailable(str(self.path), "no space left on the device")
        except OSError as exc:
            raise AuditUnavailable(str(self.path), exc.strerror or str(exc)) from exc
        except Damage as exc:
            raise AuditUnavailable(str(self.path), exc.hint()) from None

    def _load_key(self) -> bytes | None:
        if self.key_file is None:
            return None
        if self._key is None:
            try:
                self._key = load_key(self.key_file)
            except UsageError as exc:
                raise AuditUnavailable(str(self.path), str(exc)) from None
        return self._key

    def _prepare_directory(self) -> None:
        """Create missing directories 0700 (umask cannot widen that); warn about open ones."""
        missing: list[Path] = []
        directory = self.path.parent
        while not directory.exists() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            try:
                os.mkdir(created, 0o700)
            except FileExistsError:  # another process won the race: its mode, not ours
                continue
            os.chmod(created, 0o700)  # a umask like 0o277 must not leave it unusable
        _warn_if_open(self.path.parent, os.stat(self.path.parent), "log's directory")

    def _tail(self, fd: int, key: bytes | None) -> _Tail:
        """Where the next record goes, after checking the log still matches its checkpoint."""
        size = os.fstat(fd).st_size
        head = read_head(self.path)
        if key is not None and size > 0 and (head is None or head.mac is None):
            # A log written without the key cannot be vouched for after the fact (nor told
            # apart from one whose MACs a forger stripped): a key starts a new log.
            raise Damage(
                "it was written without a MAC key, so it cannot continue with one: "
                f"move it and {head_path(self.path).name} aside to start a MAC-protected log",
                inspect=False,
            )
        if head is None:
            return self._tail_without_head(fd, size)
        if head.mac is not None and key is None:
            raise Damage(f"its checkpoint is MAC-protected but no key is configured (set {KEY_ENV_VAR})", inspect=False)
        if key is not None and not head.mac_ok(key):
            raise Damage("its checkpoint's MAC does not match the configured key (a wrong key, or a forgery)")
        if size < head.size:
            raise Damage(
                f"the log is shorter than its checkpoint says ({size} < {head.size} bytes): records were removed"
            )
        records, last = head.records, head.head
        if head.size > 0:
            try:
                record = parse_line(_last_line(fd, head.size))
            except Damage:
                record = {"hash": None}
            if record["hash"] != head.head:
                raise Damage(f"record {head.records} does not match its checkpoint: the log was rewritten")
        elif head.records != 0 or head.head != GENESIS:
            raise Damage(f"its checkpoint {head_path(self.path)} is damaged")
        # Records past the checkpoint: an earlier append was interrupted between its fsync
        # and the checkpoint's rename. They are whole and chained, or the tail is damaged.
        if size > head.size:
            extra = os.pread(fd, size - head.size, head.size)
            if not extra.endswith(b"\n"):
                whole = extra.count(b"\n")
                raise Damage(f"line {records + whole + 1} is cut short (no newline)")
            for raw in extra[:-1].split(b"\n"):
                records += 1
                record = self._line(raw, records)
                if record["prev"] != last:
                    raise Damage(f"line {records} does not follow the record before it")
                last = record["hash"]
        return _Tail(records, last, size)

    def _tail_without_head(self, fd: int, size: int) -> _Tail:
        if size == 0:
            return _Tail(0, GENESIS, 0)
        # A log without a checkpoint: written before vfleet kept one (read it once to count
        # and adopt it), unless its records are of the operation schema, which always came
        # with a checkpoint: then it was deleted, maybe to hide a truncation.
        records, last = 0, GENESIS
        # A dup shares the lock's open file description: closing it keeps the lock.
        with os.fdopen(os.dup(fd), "rb") as handle:
            handle.seek(0)
            for records, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    raise Damage(f"line {records} is cut short (no newline)")
                record = self._line(raw[:-1], records)
                if "kind" in record:
                    raise Damage(f"its checkpoint {head_path(self.path)} is missing: records may have been removed")
                last = record["hash"]
        return _Tail(records, last, size)

    @staticmethod
    def _line(raw: bytes, number: int) -> dict[str, Any]:
        try:
            return parse_line(raw)
        except Damage as exc:
            raise Damage(f"line {number} is {exc}") from None

    def _chain(
        self, events: Sequence[Mapping[str, Any]], last: str, key: bytes | None
    ) -> tuple[list[dict[str, Any]], bytes]:
        user, machine = who()
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        records, lines = [], []
        for event in events:
            record: dict[str, Any] = {"time": now, "user": user, "ran_on": machine, **event, "prev": last}
            record["hash"] = last = digest(record)
            if key is not None:
                record["mac"] = record_mac(key, last)
            records.append(record)
            lines.append(json.dumps(record, sort_keys=True).encode() + b"\n")
        return records, b"".join(lines)

    def _commit(self, fd: int, tail: _Tail, records: list[dict[str, Any]], data: bytes, key: bytes | None) -> None:
        if not records:
            return
        head = Head(tail.records + len(records), records[-1]["hash"], tail.size + len(data)).signed(key)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)  # the records are on disk before the checkpoint names them
            _replace_head(self.path, head)
        except BaseException:
            # All or nothing (Ctrl-C included): a half-written line (disk full) would make
            # every later append refuse, and a record the caller was told failed must not
            # be in the log. Once the new checkpoint is in place the records stay.
            if not _committed(self.path, head):
                with suppress(OSError):
                    os.ftruncate(fd, tail.size)
                    os.fsync(fd)
            raise
        _sync_directory(self.path.parent)

    # -- reading ---------------------------------------------------------------------

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, record) for every record; AuditDamaged names an unreadable line."""
        if not self.path.exists():
            return
        try:
            with open(self.path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.strip():
                        continue
                    try:
                        record = parse_line(raw.rstrip(b"\r\n"))
                    except Damage as exc:
                        raise AuditDamaged(str(self.path), number, exc.hint()) from None
                    yield number, record
        except OSError as exc:
            raise VFleetError(f"{self.path}: cannot read the audit log: {exc.strerror or exc}") from None

    def records(self) -> Iterator[dict[str, Any]]:
        for _, record in self.entries():
            yield record
