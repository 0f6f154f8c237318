"""The audit log: a hash chain that shows any edit, deletion or reordering, and stays
one chain when several processes append at once."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from vfleet.core.audit import GENESIS, AuditLog, verify


def _log(tmp_path: Path, count: int = 5) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(count):
        log.append({"verb": "start", "targets": [{"host": "h", "domain": f"d{i}", "result": "ok"}]})
    return path


def test_records_chain_to_each_other(tmp_path: Path) -> None:
    path = _log(tmp_path)
    records = list(AuditLog(path).records())
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert {"time", "user", "ran_on", "verb", "targets"} <= set(records[0])
    assert verify(path).ok and verify(path).records == 5


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["targets"][0]["result"] = "failed"
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


def test_rehashed_forgery_still_breaks_the_chain(tmp_path: Path) -> None:
    """Editing a record and recomputing its own hash is caught by the next record's link."""
    from vfleet.core.audit import digest as _digest

    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["user"] = "someone-else"
    record["hash"] = _digest(record)
    lines[1] = json.dumps(record, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")
    verdict = verify(path)
    assert not verdict.ok and verdict.first_bad == 3


def test_cli_verify_exit_codes(tmp_path: Path) -> None:
    path = _log(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "vfleet", "audit", "verify", "--audit-log", str(path)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "5 records" in ok.stdout
    path.write_text(path.read_text().replace('"d3"', '"d9"'))
    bad = subprocess.run([sys.executable, "-m", "vfleet", "audit", "verify", "--audit-log", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and f"{path}:4: audit chain broken" in bad.stderr


APPENDER = """
import sys
from pathlib import Path
from vfleet.core.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append({"verb": "start", "writer": sys.argv[2], "n": i, "targets": []})
"""


def test_concurrent_appends_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), name, "150"]) for name in "abc"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    verdict = verify(path)
    assert verdict.ok, verdict
    assert verdict.records == 450
    records = list(AuditLog(path).records())
    assert {r["writer"] for r in records} == {"a", "b", "c"}
    for name in "abc":  # each writer's records in its own order
        assert [r["n"] for r in records if r["writer"] == name] == list(range(150))
