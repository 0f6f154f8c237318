"""Headless `act` command: a face of the core's operations service, like the TUI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TextIO

from vfleet.cli.prompt import ask
from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import ExitCode, HostUnreachable, PolicyRefused, UsageError, host_line
from vfleet.core.models import ActionParams, ActionResult, HostConfig, HostStatus, Verb
from vfleet.core.operations import Operation, Operations, always
from vfleet.core.output import as_json
from vfleet.core.policy import Plan, Target, Tier, select
from vfleet.core.sanitize import display_width, pad, printable
from vfleet.core.selector import Selector

ACT_SCHEMA = "vfleet.act/1"
MAX_LISTED = 50  # targets listed above a terminal prompt
Resolve = Callable[[argparse.Namespace], Any]


class Progress(Protocol):
    def start(self, operation: Operation) -> None: ...
    def result(self, result: ActionResult) -> None: ...


def selector_of(words: list[str], hosts: list[str]) -> Selector:
    # A bare word names a domain (exact or glob), never a substring: `act force-off web1`
    # must not also hit web10.
    terms = list(words)
    if hosts:
        terms.append("|".join(f"host:{h}" for h in hosts))
    return Selector.parse(terms, bare="name")


def cmd_act(args: argparse.Namespace, out: TextIO) -> int:
    from vfleet.cli.main import resolve_inventory  # loaded already: main runs this

    return run_verb(args, out, resolve_inventory, Verb(args.verb), wait=args.wait)


def run_verb(
    args: argparse.Namespace,
    out: TextIO,
    resolve: Resolve,
    verb: Verb,
    params: ActionParams | None = None,
    *,
    wait: bool = False,
    progress: Progress | None = None,
    also: Sequence[str] = (),
) -> int:
    """One operation from the command line: select, plan, confirm (or --yes), run, print; the exit code.

    `progress` hears of the operation once it is confirmed and of each result as it completes;
    `also` names hosts to connect though the selector cannot match them (a migration's destination)."""
    inv = resolve(args)
    selector = selector_of(args.selector, args.host)
    hosts = [h for h in inv.hosts if selector.host_may_match(h) or h.name in also]
    if not hosts:
        raise UsageError(f"{inv.path}: no host matches the selector")
    audit = AuditLog(args.audit_log) if args.audit_log else AuditLog()
    return asyncio.run(_act(hosts, selector, args, out, audit, verb, params, wait, progress))


@contextlib.asynccontextmanager
async def connected(hosts: list[HostConfig], selector: Selector) -> AsyncIterator[tuple[Fleet, list[Target], bool]]:
    """A running fleet once every host answered or failed, the targets the selector names, and whether all settled."""
    async with Fleet(hosts) as fleet:
        deadline = max(h.connect_timeout + h.call_timeout for h in hosts)
        settled = await fleet.wait_until(lambda vs: all(_settled(v) for v in vs), deadline)
        views = fleet.views()
        down = [v for v in views if v.health.polls == 0]
        for view in down:
            error = host_line(view.name, view.health.last_error or "no data")
            print(printable(f"vfleet: {error}; its domains cannot be selected"), file=sys.stderr)
        targets = select(views, selector)
        if not targets and down:
            raise HostUnreachable(
                down[0].name if len(down) == 1 else f"{len(down)} hosts",
                "the selector matches no domain on the hosts that answered; nothing was done",
            )
        yield fleet, targets, settled


async def _act(
    hosts: list[HostConfig],
    selector: Selector,
    args: argparse.Namespace,
    out: TextIO,
    audit: AuditLog,
    verb: Verb,
    params: ActionParams | None,
    wait: bool,
    progress: Progress | None = None,
) -> int:
    async with connected(hosts, selector) as (fleet, targets, settled):
        operations = Operations(fleet, audit, face="cli")
        the_plan = operations.plan(
            verb,
            targets,
            override=args.override_protection,
            multiple=args.multiple,
            max_targets=args.max_targets,
            params=params,
        )
        context: dict[str, object] = {"selector": " ".join(args.selector)}
        if args.dry_run:
            _print_plan(the_plan, args.output, out)
        operation = await operations.run(
            the_plan,
            _confirm_on_terminal if not args.yes else always,
            timeout=args.timeout,
            wait=args.timeout if wait else None,
            dry_run=args.dry_run,
            context=context,
            on_start=progress.start if progress else None,
            on_result=progress.result if progress else None,
        )
    if operation.status == "dry-run":
        return int(ExitCode.OK if settled else ExitCode.UNREACHABLE)
    if operation.status == "not-confirmed":
        raise PolicyRefused(f"{the_plan.action}: not confirmed; nothing was done")
    _print_results(operation, args.output, out)
    return int(exit_code(operation.results))


def _settled(view: HostView) -> bool:
    return view.health.polls >= 1 or (
        view.attempts >= 1 and view.health.status in (HostStatus.DOWN, HostStatus.AUTH_FAILED, HostStatus.DEGRADED)
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


async def _confirm_on_terminal(the_plan: Plan) -> bool:
    """The CLI's answer to the core's confirmation tier; needs a terminal (else --yes)."""
    verb = the_plan.action
    if not sys.stdin.isatty():
        raise PolicyRefused(f"{verb} needs confirmation: no terminal to ask on; add --yes")
    sendable = the_plan.sendable
    for d in the_plan.decisions[:MAX_LISTED]:
        why = f"  ({d.refused or d.noop})" if not d.dispatch else f"  ({d.notes})" if d.notes else ""
        print(printable(f"  {d.plan_word:<7} {verb} {d.target.host}/{d.target.domain}{why}"), file=sys.stderr)
    if len(the_plan.decisions) > MAX_LISTED:
        print(f"  ... and {len(the_plan.decisions) - MAX_LISTED} more", file=sys.stderr)
    print(f"vfleet: {the_plan.summary()}", file=sys.stderr)
    if the_plan.tier is Tier.YES_NO:
        t = sendable[0].target
        what = f"{verb} {t.domain} on {t.host}" if len(sendable) == 1 else f"{verb} {len(sendable)} domains"
        answer = await ask(printable(f"{what}? [y/N] "))
        return answer.lower() in ("y", "yes")
    expected = printable(the_plan.expected_answer)  # what the operator was shown, and so can type
    what = "the domain name" if len(sendable) == 1 else "the number of domains"
    return await ask(printable(f"{verb}: type {what} ({expected}) to confirm: ")) == expected


def _print_plan(the_plan: Plan, fmt: str, out: TextIO) -> None:
    rows = [
        {
            "host": d.target.host,
            "domain": d.target.domain,
            "verb": the_plan.action,
            "would": "refuse" if d.refused else "no-op" if d.noop else "run",
            "state": d.state.value if d.state else None,
            "why": d.refused or d.noop or d.notes,
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
                    **_params(the_plan.params),
                    "confirmation": the_plan.tier.value,
                    "plan": rows,
                }
            )
        )
        return
    print_table(
        out,
        ("HOST", "DOMAIN", "VERB", "WOULD", "STATE", "WHY"),
        [(r["host"], r["domain"], r["verb"], r["would"], r["state"] or "-", r["why"]) for r in rows],
    )


def _print_results(dispatch: Operation, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(
            as_json(
                {
                    "schema": ACT_SCHEMA,
                    "dry_run": False,
                    "op": dispatch.op,
                    **_params(dispatch.plan.params),
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
    print_table(
        out,
        ("HOST", "DOMAIN", "VERB", "RESULT", "STATE", "MESSAGE"),
        [
            (
                r.host,
                r.domain,
                dispatch.plan.action,
                r.outcome,
                r.state_after.value if r.state_after else "-",
                "" if r.ok and not r.noop else r.message,
            )
            for r in dispatch.results
        ],
    )


def _params(params: ActionParams | None) -> dict[str, object]:
    return {} if params is None else {"params": params.record()}


def print_table(out: TextIO, headers: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> None:
    """Remote text (names, messages) escaped; columns aligned by terminal cells."""
    cells = [tuple(printable(str(c)) for c in row) for row in (headers, *rows)]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write("  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
