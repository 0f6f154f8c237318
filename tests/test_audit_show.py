"""`vfleet audit show`: one entry per operation, rebuilt from its intent, results and close
records (interleaved with other operations'), OPEN when the close never came, and the
targets that have no result; old one-record-per-action logs still show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vfleet.cli.main import main
from vfleet.core.audit import AuditLog
from vfleet.core.audit.view import OPEN, operations


def _target(domain: str, plan: str = "send", host: str = "kvm1", why: str | None = None) -> dict[str, Any]:
    return {"host": host, "domain": domain, "key": f"uuid-{domain}", "plan": plan, "why": why, "override": False}


def _result(op: str, domain: str, result: str, host: str = "kvm1", **extra: Any) -> dict[str, Any]:
    return {"kind": "result", "op": op, "host": host, "domain": domain, "key": f"uuid-{domain}", "result": result,
            "state_after": extra.get("state_after"), "error": extra.get("error")}


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three operations as the operations service writes them, interleaved, plus an old record."""
    monkeypatch.delenv("VFLEET_AUDIT_KEY_FILE", raising=False)
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.append({"verb": "reboot", "face": "cli", "selector": "db-1", "dry_run": False,  # before operations existed
                  "targets": [{"host": "kvm2", "domain": "db-1", "result": "failed", "error": "kvm2: no agent"}]})
    audit.append({"kind": "intent", "op": "aaaaaaaaaaaa", "verb": "force-off", "face": "cli", "selector": "web-*",
                  "tier": "type-name", "targets": [_target("web-1"), _target("web-2"),
                                                   _target("web-3", "refused", why="protected domain")]})
    audit.append({"kind": "intent", "op": "bbbbbbbbbbbb", "verb": "start", "face": "tui", "tier": "yes-no",
                  "targets": [_target("app-1", host="esx1"), _target("app-2", host="esx1")]})
    audit.append(_result("aaaaaaaaaaaa", "web-2", "failed", error="kvm1: web-2: operation timed out"))
    audit.append(_result("bbbbbbbbbbbb", "app-1", "ok", host="esx1", state_after="running"))
    audit.append(_result("aaaaaaaaaaaa", "web-1", "ok", state_after="off"))
    audit.append({"kind": "close", "op": "aaaaaaaaaaaa", "outcome": "completed",
                  "counts": {"ok": 1, "failed": 1, "refused": 1}, "seconds": 3.25})
    # bbbbbbbbbbbb never closes: its process was killed -9 after app-1.
    audit.append({"kind": "refused", "op": "cccccccccccc", "verb": "reset", "face": "cli", "selector": "web-3",
                  "reason": "reset web-3: not confirmed; nothing was done", "targets": [_target("web-3")]})
    return path


def test_operations_are_rebuilt_from_their_records(log: Path) -> None:
    ops = operations(AuditLog(log).entries())
    assert [(o.op, o.kind, o.outcome) for o in ops] == [
        (None, "legacy", "completed"),
        ("aaaaaaaaaaaa", "intent", "completed"),
        ("bbbbbbbbbbbb", "intent", OPEN),
        ("cccccccccccc", "refused", "refused"),
    ]
    force_off = ops[1]
    assert [(t.domain, t.plan, t.result, t.state_after) for t in force_off.targets] == [
        ("web-1", "send", "ok", "off"),
        ("web-2", "send", "failed", None),
        ("web-3", "refused", None, None),
    ]
    assert [(t.domain, t.result) for t in ops[2].targets] == [("app-1", "ok"), ("app-2", None)]


def test_show_table_marks_open_operations_and_missing_results(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "show", "--audit-log", str(log)]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n2")  # each operation's header row starts with its timestamp
    assert out.startswith("TIME") and len(blocks) == 5
    legacy, force_off, start, refused = blocks[1:]
    assert "reboot" in legacy and "completed" in legacy and "kvm2/db-1" in legacy and "no agent" in legacy
    assert "force-off" in force_off.splitlines()[0] and "completed" in force_off.splitlines()[0]
    assert "3.2 s" in force_off and "operation timed out" in force_off and "protected domain" in force_off
    header, *targets = start.splitlines()
    assert header.split()[2:5] == ["tui", "start", OPEN]
    assert "esx1/app-1" in targets[0] and "ok" in targets[0] and "now running" in targets[0]
    assert "esx1/app-2" in targets[1] and "no result recorded" in targets[1]
    assert "refused" in refused.splitlines()[0] and "not confirmed" in refused.splitlines()[0]
    assert "no result recorded" not in refused


def test_show_json_is_one_versioned_object_per_operation(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "show", "--audit-log", str(log), "-o", "json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["schema"] for d in docs] == ["vfleet.audit/1"] * 4
    force_off = docs[1]
    assert force_off["intent"]["kind"] == "intent" and len(force_off["results"]) == 2
    assert force_off["close"]["outcome"] == "completed" and force_off["outcome"] == "completed"
    assert force_off["counts"] == {"ok": 1, "failed": 1, "refused": 1} and force_off["seconds"] == 3.25
    assert docs[2]["outcome"] == "OPEN" and docs[2]["close"] is None
    assert [t["result"] for t in docs[2]["targets"]] == ["ok", None]


def test_show_filters_work_on_operations(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def ops(*argv: str) -> list[str | None]:
        assert main(["audit", "show", "--audit-log", str(log), "-o", "json", *argv]) == 0
        return [json.loads(line)["op"] for line in capsys.readouterr().out.splitlines()]

    assert ops("--host", "esx*") == ["bbbbbbbbbbbb"]
    assert ops("--host", "kvm1") == ["aaaaaaaaaaaa", "cccccccccccc"]
    assert ops("--verb", "reboot") == [None]
    assert ops("-n", "2") == ["bbbbbbbbbbbb", "cccccccccccc"]
    assert ops("--host", "kvm1", "-n", "1") == ["cccccccccccc"]
    assert ops("--user", "nobody-at-all") == []


def test_a_result_without_intent_still_shows(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(_result("dddddddddddd", "web-9", "ok"))
    (operation,) = operations(AuditLog(path).entries())
    assert operation.outcome == OPEN and operation.opening is None
    assert [(t.domain, t.plan, t.result) for t in operation.targets] == [("web-9", None, "ok")]


def test_records_of_odd_shapes_do_not_crash_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log is input: wrong types in known fields must not become a traceback."""
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.append({"kind": "intent", "op": 7, "verb": ["x"], "targets": "all"})
    audit.append({"kind": "close", "op": "eeeeeeeeeeee", "outcome": None, "counts": [1], "seconds": "3"})
    audit.append({"targets": [1, {"host": None}]})
    assert main(["audit", "show", "--audit-log", str(path)]) == 0
    assert main(["audit", "show", "--audit-log", str(path), "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err == ""
