"""The audit log: a hash chain that shows any edit, deletion or reordering, a checkpoint
that shows truncation and a rehashed rewrite, an optional key a forger needs, private
files, one chain under concurrent appends, and appends that fail as AuditUnavailable
(exit 7) before anything is recorded."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vfleet.cli.main import main
from vfleet.core.audit import GENESIS, AuditLog, digest, head_path, verify
from vfleet.core.errors import AuditUnavailable, ExitCode


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VFLEET_AUDIT_KEY_FILE", raising=False)


def _op(i: int) -> dict[str, Any]:
    return {"kind": "result", "op": f"{i:012x}", "host": "h", "domain": f"d{i}", "key": f"k{i}", "result": "ok"}


def _log(tmp_path: Path, count: int = 5, key_file: Path | None = None) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key_file=key_file)
    for i in range(count):
        log.append(_op(i))
    return path


def _key(tmp_path: Path, mode: int = 0o600) -> Path:
    key = tmp_path / "audit.key"
    key.write_text(os.urandom(24).hex() + "\n")
    key.chmod(mode)
    return key


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _forge(path: Path, records: list[dict[str, Any]], *, checkpoint: bool, keep_macs: bool = True) -> None:
    """What a forger without the key can do: rewrite records, recompute every hash and
    link, and (if asked) write a checkpoint that matches the forged log."""
    previous = GENESIS
    for record in records:
        if not keep_macs:
            record.pop("mac", None)
        record["prev"] = previous
        record["hash"] = previous = digest(record)
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    path.write_text(data)
    if checkpoint:
        head = json.loads(head_path(path).read_text())
        head.update(records=len(records), head=previous, bytes=len(data.encode()))
        if not keep_macs:
            head.pop("mac", None)
        head_path(path).write_text(json.dumps(head, sort_keys=True) + "\n")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    return code, captured.out, captured.err


# -- the chain ---------------------------------------------------------------------------


def test_records_chain_to_each_other(tmp_path: Path) -> None:
    path = _log(tmp_path)
    records = list(AuditLog(path).records())
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert {"time", "user", "ran_on", "kind", "op", "prev", "hash"} <= set(records[0])
    verdict = verify(path)
    assert verdict.ok and verdict.records == 5 and verdict.checkpoint


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["result"] = "failed"
    lines[2] = json.dumps(record, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 3 and "edited" in verdict.problem


def test_a_deleted_record_is_named(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 2 and "does not follow" in verdict.problem


def test_reordered_records_are_named(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    path.write_text("\n".join(lines) + "\n")
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 4


def test_rehashing_one_record_still_breaks_the_chain(tmp_path: Path) -> None:
    """Editing a record and recomputing its own hash is caught by the next record's link."""
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["user"] = "someone-else"
    record["hash"] = digest(record)
    lines[1] = json.dumps(record, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 3


# -- the checkpoint ----------------------------------------------------------------------


def test_truncating_the_last_record_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 5 and "truncated" in verdict.problem
    # ...and an append does not paper over it with a fresh checkpoint.
    with pytest.raises(AuditUnavailable, match="records were removed"):
        AuditLog(path).append(_op(9))
    assert not verify(path).ok


def test_a_rewrite_with_every_hash_recomputed_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    records = _lines(path)
    records[1]["result"] = "failed"
    _forge(path, records, checkpoint=False)
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 5 and "rewritten" in verdict.problem
    with pytest.raises(AuditUnavailable, match="rewritten"):
        AuditLog(path).append(_op(9))


def test_a_deleted_checkpoint_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    head_path(path).unlink()
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2]))
    verdict = verify(path)
    assert not verdict.ok and "checkpoint" in verdict.problem and "missing" in verdict.problem
    with pytest.raises(AuditUnavailable, match="missing"):
        AuditLog(path).append(_op(9))


def test_an_old_log_without_checkpoint_is_adopted(tmp_path: Path) -> None:
    """Logs from before checkpoints (records without `kind`) verify, and the next append anchors them."""
    path = tmp_path / "audit.jsonl"
    old = [{"verb": "start", "targets": [{"host": "h", "domain": f"d{i}", "result": "ok"}]} for i in range(3)]
    _forge(path, old, checkpoint=False)
    verdict = verify(path)
    assert verdict.ok and not verdict.checkpoint and any("predates checkpoints" in n for n in verdict.notes)
    AuditLog(path).append(_op(1))
    assert json.loads(head_path(path).read_text())["records"] == 4
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    assert not verify(path).ok


def test_an_append_interrupted_before_its_checkpoint_is_tolerated(tmp_path: Path) -> None:
    """A crash between the log's fsync and the checkpoint's rename leaves a whole, chained record."""
    path = _log(tmp_path, 2)
    saved = head_path(path).read_bytes()
    AuditLog(path).append(_op(2))
    head_path(path).write_bytes(saved)  # as if the rename never happened
    verdict = verify(path)
    assert verdict.ok and verdict.records == 3 and "after the checkpoint" in verdict.notes[0]
    AuditLog(path).append(_op(3))
    assert verify(path).ok and json.loads(head_path(path).read_text())["records"] == 4


# -- the key -----------------------------------------------------------------------------


def test_with_a_key_a_consistent_rewrite_of_log_and_checkpoint_is_detected(tmp_path: Path) -> None:
    key_file = _key(tmp_path)
    key = key_file.read_bytes().strip()
    path = _log(tmp_path, key_file=key_file)
    assert all(len(r["mac"]) == 64 for r in _lines(path)) and "mac" in json.loads(head_path(path).read_text())
    assert verify(path, key).ok and verify(path, key).macs_checked
    original = path.read_bytes(), head_path(path).read_bytes()

    records = _lines(path)
    records[1]["result"] = "failed"
    _forge(path, records, checkpoint=True)  # old MACs kept: they no longer match
    verdict = verify(path, key)
    assert not verdict.ok and verdict.first_bad == 2 and "MAC" in verdict.problem
    # Without the key the forgery passes, and verify says the MACs were not checked.
    unchecked = verify(path)
    assert unchecked.ok and unchecked.macs_present and not unchecked.macs_checked

    path.write_bytes(original[0])
    head_path(path).write_bytes(original[1])
    records = _lines(path)
    records[1]["result"] = "failed"
    _forge(path, records, checkpoint=True, keep_macs=False)  # every MAC stripped
    verdict = verify(path, key)
    assert not verdict.ok and verdict.first_bad == 1 and "no MAC" in verdict.problem
    # Appends refuse a MAC-less log once a key is configured: no laundering either.
    with pytest.raises(AuditUnavailable, match="without a MAC key"):
        AuditLog(path, key_file=key_file).append(_op(9))


def test_a_forged_checkpoint_mac_is_detected(tmp_path: Path) -> None:
    key_file = _key(tmp_path)
    path = _log(tmp_path, key_file=key_file)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    head = json.loads(head_path(path).read_text())
    last = _lines(path)[-1]
    head.update(records=4, head=last["hash"], bytes=path.stat().st_size)
    head_path(path).write_text(json.dumps(head))
    verdict = verify(path, key_file.read_bytes().strip())
    assert not verdict.ok and "checkpoint's MAC" in verdict.problem
    assert verify(path).ok  # without the key, a truncation with a rewritten checkpoint passes
    with pytest.raises(AuditUnavailable, match="MAC"):
        AuditLog(path, key_file=key_file).append(_op(9))
    with pytest.raises(AuditUnavailable, match="no key is configured"):
        AuditLog(path).append(_op(9))


def test_a_key_file_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = _key(tmp_path, 0o644)
    with pytest.raises(AuditUnavailable, match="owner only") as info:
        AuditLog(tmp_path / "audit.jsonl", key_file=key_file).append(_op(1))
    assert info.value.exit_code == ExitCode.AUDIT and not (tmp_path / "audit.jsonl").exists()
    path = _log(tmp_path)
    code, out, err = _cli(capsys, "audit", "verify", "--audit-log", str(path), "--audit-key-file", str(key_file))
    assert code == ExitCode.USAGE and err.count("\n") == 1 and "chmod 600" in err and not out


# -- files -------------------------------------------------------------------------------


def test_files_are_private_and_existing_modes_are_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = os.umask(0o002)
    try:
        path = tmp_path / "state" / "vfleet" / "audit.jsonl"
        AuditLog(path).append(_op(1))
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777, head_path(path).stat().st_mode & 0o777) == (0o600, 0o600)
    assert [p.stat().st_mode & 0o777 for p in (path.parent, path.parent.parent)] == [0o700, 0o700]

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    log = shared / "audit.jsonl"
    log.touch()
    log.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="vfleet.audit"):
        AuditLog(log).append(_op(1))
        AuditLog(log).append(_op(2))
    assert log.stat().st_mode & 0o777 == 0o666  # never changed behind the owner's back
    warnings = [r.getMessage() for r in caplog.records if "world-writable" in r.getMessage()]
    assert len(warnings) == 1 and str(log) in warnings[0]


# -- appends that cannot happen ---------------------------------------------------------


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """A file or directory its owner cannot write: chmod for a user, chattr +i for root
    (who ignores modes)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    path = _log(tmp_path, 2)
    with _read_only(path):
        yield path


def test_an_unwritable_log_is_audit_unavailable(immutable: Path) -> None:
    before = immutable.read_bytes()
    for attempt in (AuditLog(immutable).check_writable, lambda: AuditLog(immutable).append(_op(9))):
        with pytest.raises(AuditUnavailable) as info:
            attempt()
        message = str(info.value)
        assert info.value.exit_code == ExitCode.AUDIT == 7
        assert message.startswith(f"{immutable}: cannot write the audit log: ") and "nothing was sent" in message
        assert "\n" not in message
    assert immutable.read_bytes() == before


def test_a_checkpoint_that_cannot_be_replaced_takes_the_record_back(tmp_path: Path) -> None:
    """The record is written and fsynced, then the checkpoint fails: the append is undone,
    so the caller's "not recorded" is true and the log still matches its checkpoint."""
    (tmp_path / "real").mkdir()
    real = _log(tmp_path / "real", 2)
    (tmp_path / "ro").mkdir()
    link = tmp_path / "ro" / "audit.jsonl"
    link.symlink_to(real)
    shutil.copy(head_path(real), head_path(link))
    before = real.read_bytes()
    with _read_only(tmp_path / "ro"), pytest.raises(AuditUnavailable) as info:
        AuditLog(link).append(_op(9))
    assert info.value.exit_code == ExitCode.AUDIT
    assert real.read_bytes() == before and verify(link).ok


def test_a_full_disk_is_audit_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    full = tmp_path / "audit.jsonl"
    full.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full file system
    with pytest.raises(AuditUnavailable, match="No space left on device"):
        AuditLog(full).append(_op(1))
    assert not head_path(full).exists()


def test_a_directory_that_cannot_exist_is_audit_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = AuditLog(tmp_path / "file" / "audit.jsonl")
    for attempt in (log.check_writable, lambda: log.append(_op(1))):
        with pytest.raises(AuditUnavailable, match="Not a directory"):
            attempt()


def test_a_damaged_last_line_refuses_appends(tmp_path: Path) -> None:
    path = _log(tmp_path, 2)
    with open(path, "ab") as handle:
        handle.write(b'{"kind": "result", "op": "12')  # a record cut short
    for attempt in (AuditLog(path).check_writable, lambda: AuditLog(path).append(_op(9))):
        with pytest.raises(AuditUnavailable, match=r"line 3 is cut short.*audit verify"):
            attempt()


def test_append_many_writes_one_chain_and_one_checkpoint(tmp_path: Path) -> None:
    path = _log(tmp_path, 1)
    written = AuditLog(path).append_many([_op(i) for i in range(1, 500)])
    assert len(written) == 499 and written[0]["prev"] == _lines(path)[0]["hash"]
    assert verify(path).records == 500 and json.loads(head_path(path).read_text())["records"] == 500


def test_the_user_comes_from_the_uid_not_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    for variable in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "mallory")
    record = AuditLog(tmp_path / "audit.jsonl").append(_op(1))
    assert record["user"] == pwd.getpwuid(os.geteuid()).pw_name != "mallory"


def test_events_cannot_set_the_logs_own_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hash"):
        AuditLog(tmp_path / "audit.jsonl").append({"kind": "intent", "hash": "0"})


# -- verify and show on broken input, through the CLI ------------------------------------


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _log(tmp_path)
    code, out, _ = _cli(capsys, "audit", "verify", "--audit-log", str(path))
    assert code == 0 and "5 records" in out and "no MACs" in out
    path.write_text(path.read_text().replace('"d3"', '"d9"'))
    code, out, err = _cli(capsys, "audit", "verify", "--audit-log", str(path))
    assert code == 1 and err == f"vfleet: {path}:4: audit chain broken: content does not match its hash (edited)\n"


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(b"{not json\n", "not valid JSON"), (b'{"hash": "\xff\xfe"}\n', "not UTF-8"), (b"[1, 2]\n", "not an audit record")],
)
def test_damaged_lines_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: bytes, problem: str
) -> None:
    path = _log(tmp_path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + damage + b"".join(lines[1:]))
    for command in ("verify", "show"):
        code, out, err = _cli(capsys, "audit", command, "--audit-log", str(path))
        assert code == ExitCode.FAILED and not out
        assert err.startswith(f"vfleet: {path}:2: ") and problem in err and err.count("\n") == 1


def test_a_missing_log_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing.jsonl"
    for command in ("verify", "show"):
        code, out, err = _cli(capsys, "audit", command, "--audit-log", str(path))
        assert code == ExitCode.USAGE and not out
        assert err == f"vfleet: {path}: no audit log here (nothing was recorded yet, or a wrong path)\n"
    # A deleted log whose checkpoint is still there is a broken log, not a wrong path.
    path = _log(tmp_path)
    path.unlink()
    code, _, err = _cli(capsys, "audit", "verify", "--audit-log", str(path))
    assert code == ExitCode.FAILED and "it was deleted" in err


def test_cli_exits_7_when_the_audit_log_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = tmp_path / "audit.jsonl"
    full.symlink_to("/dev/full")
    code, _, err = _cli(capsys, "--demo", "act", "start", "web-*", "--multiple", "--dry-run", "--audit-log", str(full))
    assert code == ExitCode.AUDIT == 7
    assert err.splitlines()[-1] == f"vfleet: {full}: cannot write the audit log: No space left on device; nothing was sent"


# -- concurrency -------------------------------------------------------------------------

APPENDER = """
import sys
from pathlib import Path
from vfleet.core.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append({"kind": "result", "op": sys.argv[2] * 12, "writer": sys.argv[2], "n": i, "targets": []})
"""


def test_concurrent_appends_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), name, "150"]) for name in "abc"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    verdict = verify(path)
    assert verdict.ok and verdict.checkpoint and not verdict.notes, verdict
    assert verdict.records == 450 and json.loads(head_path(path).read_text())["records"] == 450
    records = list(AuditLog(path).records())
    assert {r["writer"] for r in records} == {"a", "b", "c"}
    for name in "abc":  # each writer's records in its own order
        assert [r["n"] for r in records if r["writer"] == name] == list(range(150))
