"""Headless `audit verify` and `audit show`: the core checks and rebuilds, this only formats.

Its arguments are in vfleet/cli/args.py: this module loads only when `audit` runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from vfleet.core.audit import KEY_ENV_VAR, AuditLog, Verdict, key_file_from_env, load_key, verify
from vfleet.core.audit import default_path as default_audit_path
from vfleet.core.audit.view import NO_RESULT, Operation, TargetView, operations, select
from vfleet.core.errors import ExitCode, UsageError
from vfleet.core.output import as_json


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    path: Path = args.audit_log or default_audit_path()
    if args.audit_command == "verify":
        key_file = args.audit_key_file or key_file_from_env()
        return _verify(path, load_key(key_file) if key_file else None, out)
    return _show(path, args, out)


def _verify(path: Path, key: bytes | None, out: TextIO) -> int:
    verdict = verify(path, key)
    for note in verdict.notes:
        print(f"vfleet: {path}: {note}", file=sys.stderr)
    if not verdict.ok:
        where = f"{path}:{verdict.first_bad}" if verdict.first_bad is not None else str(path)
        print(f"vfleet: {where}: audit chain broken: {verdict.problem}", file=sys.stderr)
        return int(ExitCode.FAILED)
    out.write(f"{path}: OK: {_summary(verdict)}\n")
    return int(ExitCode.OK)


def _summary(verdict: Verdict) -> str:
    checkpoint = "matches its checkpoint" if verdict.checkpoint else "no checkpoint"
    if verdict.macs_checked:
        macs = "MACs verified"
    elif verdict.macs_present:
        macs = f"MACs not checked (no key given: ${KEY_ENV_VAR} or --audit-key-file)"
    else:
        macs = "no MACs (written without a key)"
    return f"{verdict.records} records, chain intact, {checkpoint}; {macs}"


def _show(path: Path, args: argparse.Namespace, out: TextIO) -> int:
    if args.last is not None and args.last < 1:
        raise UsageError("-n/--last must be 1 or more")
    if not path.exists():
        raise UsageError(f"{path}: no audit log here (nothing was recorded yet, or a wrong path)")
    ops = select(operations(AuditLog(path).entries()), host=args.host, verb=args.verb, user=args.user, last=args.last)
    if args.output == "json":
        for operation in ops:
            out.write(as_json(operation.document(), indent=None))
        return int(ExitCode.OK)
    _show_table(ops, out)
    return int(ExitCode.OK)


def _show_table(ops: list[Operation], out: TextIO) -> None:
    headers = ("TIME", "USER", "FACE", "VERB", "OUTCOME", "OP", "DETAIL")
    rows = [
        (o.time or "?", o.user or "?", o.face or "-", o.verb or "?", o.outcome, o.op or "-", _detail(o)) for o in ops
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out.write(_line(headers, widths))
    for operation, row in zip(ops, rows, strict=True):
        out.write(_line(row, widths))
        targets = [_target_row(operation, t) for t in operation.targets]
        if targets:
            target_widths = [max(len(r[i]) for r in targets) for i in range(len(targets[0]))]
            for target in targets:
                out.write("    " + _line(target, target_widths))


def _detail(operation: Operation) -> str:
    parts = []
    opening = operation.opening or {}
    if isinstance(selector := opening.get("selector"), str) and selector:
        parts.append(repr(selector))
    if reason := operation.reason:
        parts.append(reason)
    if operation.close is not None:
        counts = operation.close.get("counts")
        if isinstance(counts, dict) and counts:
            parts.append(", ".join(f"{k} {v}" for k, v in counts.items()))
        seconds = operation.close.get("seconds")
        if isinstance(seconds, int | float):
            parts.append(f"{seconds:.1f} s")
    if operation.kind == "intent" and operation.opening is None:
        parts.append("no intent record")
    return "; ".join(parts)


def _target_row(operation: Operation, target: TargetView) -> tuple[str, ...]:
    name = f"{target.host or '?'}/{target.domain or '?'}"
    plan = target.plan or "not in the intent"
    if target.override:
        plan += " (override)"
    if operation.outcome in ("dry-run", "refused") or target.plan in ("refused", "no-op"):
        # Nothing was to be sent: the plan is the whole story (a result, if any, still shows).
        result = target.result or "-"
    else:
        result = target.result or NO_RESULT
    detail = target.error or target.why or (f"now {target.state_after}" if target.state_after else "")
    return (name, plan, result, detail)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n"
