"""Headless `act` and `audit` commands: the same policy and dispatch as the TUI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from vfleet.core.audit import AuditLog, verify
from vfleet.core.audit import default_path as default_audit_path
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import ExitCode, PolicyRefused, UsageError, host_line
from vfleet.core.models import ActionResult, HostConfig, HostStatus, Verb
from vfleet.core.operations import Dispatch, execute
from vfleet.core.output import as_json
from vfleet.core.policy import Plan, Tier, interlock, plan, select
from vfleet.core.selector import Selector

ACT_SCHEMA = "vfleet.act/1"
Resolve = Callable[[argparse.Namespace], Any]


def add_commands(commands: Any) -> None:
    act = commands.add_parser("act", help="run a lifecycle verb on the domains a selector names")
    act.add_argument("verb", choices=[v.value for v in Verb])
    act.add_argument("selector", nargs="+", help="domain name or glob, and filter terms (host:, tag:, state: ...)")
    act.add_argument("--host", action="append", default=[], metavar="GLOB", help="only domains of these hosts")
    act.add_argument("--multiple", action="store_true", help="allow a selector that matches several domains")
    act.add_argument("--max-targets", type=int, metavar="N", help="refuse if more than N domains match")
    act.add_argument("--dry-run", action="store_true", help="print the plan and do nothing")
    act.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation (required without a TTY)")
    act.add_argument(
        "--override-protection",
        action="store_true",
        help="allow destructive verbs on protected domains (recorded in the audit log)",
    )
    act.add_argument(
        "--wait",
        dest="wait",
        action="store_true",
        default=True,
        help="wait until each domain reaches the verb's end state (default)",
    )
    act.add_argument("--no-wait", dest="wait", action="store_false", help="return once the verb was sent")
    act.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per-target limit (default 120)")
    act.add_argument("-o", "--output", choices=("table", "json"), default="table")
    act.add_argument("--audit-log", type=Path, metavar="FILE", help=f"default: ${'VFLEET_AUDIT_LOG'} or XDG state dir")

    audit = commands.add_parser("audit", help="the tamper-evident log of every action")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    check = audit_commands.add_parser("verify", help="check the hash chain; name the first broken record")
    check.add_argument("--audit-log", type=Path, metavar="FILE")
    show = audit_commands.add_parser("show", help="print records, newest last")
    show.add_argument("--audit-log", type=Path, metavar="FILE")
    show.add_argument("--host", help="only records touching this host")
    show.add_argument("--verb", choices=[v.value for v in Verb])
    show.add_argument("--user")
    show.add_argument("-n", "--last", type=int, metavar="N", help="only the last N records")
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")


def _selector(words: list[str], hosts: list[str]) -> Selector:
    # A bare word names a domain (exact or glob), never a substring: `act force-off web1`
    # must not also hit web10.
    terms = [w if (":" in w or any(c in w for c in "<>=")) else f"name:{w}" for w in words]
    if len(hosts) == 1:
        terms.append(f"host:{hosts[0]}")
    return Selector.parse(terms)


def cmd_act(args: argparse.Namespace, out: TextIO, resolve: Resolve) -> int:
    inv = resolve(args)
    selector = _selector(args.selector, args.host)
    hosts = [h for h in inv.hosts if selector.host_may_match(h)]
    if len(args.host) > 1:
        import fnmatch

        hosts = [h for h in hosts if any(fnmatch.fnmatchcase(h.name, p) for p in args.host)]
    if not hosts:
        raise UsageError(f"{inv.path}: no host matches the selector")
    audit = AuditLog(args.audit_log) if args.audit_log else AuditLog()
    return asyncio.run(_act(hosts, selector, args, out, audit))


async def _act(
    hosts: list[HostConfig], selector: Selector, args: argparse.Namespace, out: TextIO, audit: AuditLog
) -> int:
    verb = Verb(args.verb)
    context: dict[str, object] = {"face": "cli", "selector": " ".join(args.selector), "dry_run": args.dry_run}
    async with Fleet(hosts) as fleet:
        deadline = max(h.connect_timeout + h.call_timeout for h in hosts)
        settled = await fleet.wait_until(lambda vs: all(_settled(v) for v in vs), deadline)
        views = fleet.views()
        down = [v for v in views if v.health.polls == 0]
        for view in down:
            print(
                f"vfleet: {host_line(view.name, view.health.last_error or 'no data')}; its domains cannot be selected",
                file=sys.stderr,
            )
        targets = select(views, selector)
        the_plan = plan(views, verb, targets, override=args.override_protection)
        planned = [
            {
                "host": d.target.host,
                "domain": d.target.domain,
                "error": d.refused,
                "result": "refused" if d.refused else "no-op" if d.noop else "planned",
            }
            for d in the_plan.decisions
        ]
        try:
            interlock(len(targets), multiple=args.multiple, max_targets=args.max_targets)
            if args.dry_run:
                _print_plan(the_plan, args.output, out)
                audit.append({"verb": verb.value, **context, "targets": planned})
                return int(ExitCode.OK if settled else ExitCode.UNREACHABLE)
            _confirm(the_plan, args.yes)
        except PolicyRefused as exc:
            if args.dry_run:
                _print_plan(the_plan, args.output, out)
            audit.append({"verb": verb.value, **context, "refused": str(exc), "targets": planned})
            raise
        dispatch = await execute(
            fleet,
            the_plan,
            timeout=args.timeout,
            wait=args.timeout if args.wait else None,
            audit=audit,
            context=context,
        )
    _print_results(dispatch, args.output, out)
    return int(exit_code(dispatch.results))


def _settled(view: HostView) -> bool:
    return view.health.polls >= 1 or (
        view.attempts >= 1 and view.health.status in (HostStatus.DOWN, HostStatus.AUTH_FAILED)
    )


def exit_code(results: list[ActionResult]) -> ExitCode:
    outcomes = {r.outcome for r in results}
    if outcomes <= {"ok", "no-op"}:
        return ExitCode.OK
    if outcomes == {"refused"}:
        return ExitCode.REFUSED
    if outcomes <= {"failed", "timed-out"}:
        return ExitCode.FAILED
    return ExitCode.PARTIAL


def _confirm(the_plan: Plan, yes: bool) -> None:
    sendable = [d for d in the_plan.decisions if d.dispatch]
    if yes or not sendable or the_plan.tier is Tier.NONE:
        return
    if not sys.stdin.isatty():
        raise PolicyRefused(f"{the_plan.verb.value} needs confirmation: no terminal to ask on; add --yes")
    verb = the_plan.verb.value
    if the_plan.tier is Tier.YES_NO:
        t = sendable[0].target
        answer = input(f"{verb} {t.domain} on {t.host}? [y/N] ")
        ok = answer.strip().lower() in ("y", "yes")
    else:
        expected = sendable[0].target.domain if len(the_plan.decisions) == 1 else str(len(sendable))
        what = "the domain name" if len(the_plan.decisions) == 1 else "the number of domains"
        for d in sendable[:20]:
            print(f"  {verb} {d.target.host}/{d.target.domain}", file=sys.stderr)
        answer = input(f"{verb}: type {what} ({expected}) to confirm: ")
        ok = answer.strip() == expected
    if not ok:
        raise PolicyRefused(f"{verb}: not confirmed; nothing was done")


def _print_plan(the_plan: Plan, fmt: str, out: TextIO) -> None:
    rows = [
        {
            "host": d.target.host,
            "domain": d.target.domain,
            "verb": the_plan.verb.value,
            "would": "refuse" if d.refused else "no-op" if d.noop else "run",
            "state": d.state.value if d.state else None,
            "why": d.refused or d.noop or "",
            "override": d.overridden,
        }
        for d in the_plan.decisions
    ]
    if fmt == "json":
        out.write(
            as_json(
                {
                    "schema": ACT_SCHEMA,
                    "dry_run": True,
                    "verb": the_plan.verb.value,
                    "confirmation": the_plan.tier.value,
                    "plan": rows,
                }
            )
        )
        return
    _table(
        out,
        ("HOST", "DOMAIN", "VERB", "WOULD", "STATE", "WHY"),
        [(r["host"], r["domain"], r["verb"], r["would"], r["state"] or "-", r["why"]) for r in rows],
    )


def _print_results(dispatch: Dispatch, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(
            as_json(
                {
                    "schema": ACT_SCHEMA,
                    "dry_run": False,
                    "seconds": round(dispatch.seconds, 3),
                    "results": [
                        {
                            "host": r.host,
                            "domain": r.domain,
                            "verb": r.verb.value,
                            "result": r.outcome,
                            "state_after": r.state_after.value if r.state_after else None,
                            "message": r.message,
                        }
                        for r in dispatch.results
                    ],
                }
            )
        )
        return
    _table(
        out,
        ("HOST", "DOMAIN", "VERB", "RESULT", "STATE", "MESSAGE"),
        [
            (
                r.host,
                r.domain,
                r.verb.value,
                r.outcome,
                r.state_after.value if r.state_after else "-",
                "" if r.ok and not r.noop else r.message,
            )
            for r in dispatch.results
        ],
    )


def _table(out: TextIO, headers: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> None:
    widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        out.write("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")


def cmd_audit(args: argparse.Namespace, out: TextIO, resolve: Resolve) -> int:
    path = args.audit_log or default_audit_path()
    if args.audit_command == "verify":
        verdict = verify(path)
        if verdict.ok:
            out.write(f"{path}: OK: {verdict.records} records, chain intact\n")
            return int(ExitCode.OK)
        print(f"vfleet: {path}:{verdict.first_bad}: audit chain broken: {verdict.problem}", file=sys.stderr)
        return int(ExitCode.FAILED)
    records = list(AuditLog(path).records())
    records = [
        r
        for r in records
        if (not args.verb or r.get("verb") == args.verb)
        and (not args.user or r.get("user") == args.user)
        and (not args.host or any(t.get("host") == args.host for t in r.get("targets", [])))
    ]
    if args.last:
        records = records[-args.last :]
    if args.output == "json":
        for record in records:
            out.write(as_json(record, indent=None))
        return int(ExitCode.OK)
    rows = []
    for r in records:
        results = ", ".join(f"{t['host']}/{t['domain']}={t['result']}" for t in r.get("targets", []))
        rows.append((r.get("time", ""), r.get("user", ""), r.get("verb", ""), r.get("refused") or results))
    _table(out, ("TIME", "USER", "VERB", "TARGETS"), rows)
    return int(ExitCode.OK)
