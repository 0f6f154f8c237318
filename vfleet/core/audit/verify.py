"""`vfleet audit verify`: the chain, the checkpoint and (with a key) the MACs."""

from __future__ import annotations

import fcntl
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfleet.core.audit.chain import (
    GENESIS,
    Damage,
    Head,
    digest,
    head_path,
    parse_line,
    read_head,
    record_mac,
)
from vfleet.core.errors import UsageError, VFleetError


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    first_bad: int | None = None  # 1-based line number, when the problem has one
    problem: str = ""
    notes: tuple[str, ...] = ()  # true but not fatal: what could not be checked, and why
    macs_checked: bool = False  # a key was given: every record's and the checkpoint's MAC matched
    macs_present: bool = False  # the log carries MACs (written with a key)
    checkpoint: bool = False  # the log was compared against a checkpoint


def verify(path: Path, key: bytes | None = None) -> Verdict:
    """Check every record's hash, its link to the one before, the checkpoint and (with a key) the MACs.

    Raises UsageError when there is neither a log nor a checkpoint at `path`, and a
    VFleetError when it cannot be read.
    """
    try:
        return _verify(path, key)
    except OSError as exc:
        raise VFleetError(f"{path}: cannot read the audit log: {exc.strerror or exc}") from None


def _verify(path: Path, key: bytes | None) -> Verdict:
    head_file = head_path(path)
    if not path.exists():
        if not head_file.exists():
            raise UsageError(f"{path}: no audit log here (nothing was recorded yet, or a wrong path)")
        try:
            head = read_head(path)
        except Damage as exc:
            return Verdict(False, 0, None, f"the log is missing and {exc}")
        count = head.records if head else 0
        return Verdict(False, 0, None, f"the log is missing but its checkpoint says {count} records: it was deleted")
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)  # a consistent log + checkpoint while appends go on
        try:
            head = read_head(path)
        except Damage as exc:
            return Verdict(False, 0, None, str(exc).replace("its checkpoint", "the checkpoint"))
        return _Walk(path, head, key).run(handle)


class _Walk:
    """One pass over the log for verify."""

    def __init__(self, path: Path, head: Head | None, key: bytes | None) -> None:
        self.path, self.head, self.key = path, head, key
        self.count = 0
        self.seen_mac = False
        self.operation_schema = False

    def run(self, handle: Any) -> Verdict:
        previous = GENESIS
        for number, raw in enumerate(handle, start=1):
            try:
                previous = self._check(raw, previous)
            except Damage as exc:
                return Verdict(False, self.count, number, str(exc))
            self.count += 1
        return self._against_head()

    def _check(self, raw: bytes, previous: str) -> str:
        """The record's hash, or Damage saying what is wrong with it."""
        if not raw.endswith(b"\n"):
            raise Damage("the record is cut short (no newline at the end)")
        if not raw.strip():
            raise Damage("empty line inside the log")
        record = parse_line(raw[:-1])
        if record["hash"] != digest(record):
            raise Damage("content does not match its hash (edited)")
        if record["prev"] != previous:
            raise Damage("does not follow the record before it (deleted, moved or inserted)")
        self.operation_schema |= "kind" in record
        if self.head is not None and self.count + 1 == self.head.records and record["hash"] != self.head.head:
            raise Damage(
                "does not match the checkpoint's last hash: this record or one before it was rewritten "
                "(and every hash recomputed)"
            )
        if self.key is not None:
            # With a key every record must carry its MAC: a log started without one is refused
            # by appends, so a record without a MAC here was written without the key.
            mac = record.get("mac")
            if not isinstance(mac, str):
                raise Damage("no MAC: written without the key (forged, or the log was started without a key)")
            if not hmac.compare_digest(mac, record_mac(self.key, record["hash"])):
                raise Damage("its MAC does not match (forged without the key, or checked with another key)")
        self.seen_mac |= "mac" in record
        return str(record["hash"])

    def _against_head(self) -> Verdict:
        notes: list[str] = []
        head, count = self.head, self.count
        if head is None:
            if self.operation_schema:
                return Verdict(
                    False,
                    count,
                    None,
                    f"the checkpoint {head_path(self.path)} is missing: records may have been removed from the end",
                )
            if count:
                notes.append(
                    "no checkpoint (the log predates checkpoints): removal of the last records "
                    "cannot be detected until the next append creates one"
                )
        else:
            if count < head.records:
                return Verdict(
                    False,
                    count,
                    count + 1,
                    f"the log ends after {count} records but its checkpoint "
                    f"says {head.records}: records were removed from the end (truncated)",
                )
            if head.records == 0 and head.head != GENESIS:
                return Verdict(False, count, None, "the checkpoint is damaged (0 records but a head hash)")
            if count > head.records:
                notes.append(
                    f"{count - head.records} records after the checkpoint "
                    "(an append was interrupted before it updated the checkpoint)"
                )
        if self.key is not None and head is not None and head.mac is None and count:
            return Verdict(False, count, None, "the checkpoint carries no MAC: written without the key")
        if self.key is not None and head is not None and head.mac is not None and not head.mac_ok(self.key):
            return Verdict(
                False, count, None, "the checkpoint's MAC does not match (forged without the key, or another key)"
            )
        macs_present = self.seen_mac or (head is not None and head.mac is not None)
        return Verdict(True, count, None, "", tuple(notes), self.key is not None, macs_present, head is not None)
