"""The TUI's console hand-over: the app gives the terminal to a serial console and takes it back."""

from __future__ import annotations

import sys

from textual.app import App, SuspendNotSupported

from vfleet.core.console import Ended, attach, banner, farewell
from vfleet.core.errors import NoConsole, UnsupportedAction, VFleetError
from vfleet.core.operations import Operations, Target

__all__ = ["farewell", "run_console"]


async def run_console(app: App[object], operations: Operations, target: Target, *, view_only: bool) -> Ended:
    """Open (on record) before suspending: a domain without a console never blanks the screen."""
    try:
        async with operations.console(target, view_only=view_only) as stream:
            try:
                # batch_update: the fleet keeps polling meanwhile, and no repaint may reach the terminal
                with app.batch_update(), app.suspend():
                    # App.suspend resumes only when its block ends normally: nothing may escape it
                    try:
                        print(banner(target.domain, target.host, view_only=view_only), file=sys.stderr, flush=True)
                        return await attach(stream, view_only=view_only)
                    except Exception as exc:
                        return Ended("error", f"{target.host}: console of {target.domain}: {exc}")
            except SuspendNotSupported:
                raise UnsupportedAction(target.host, "this terminal cannot be handed over to a console") from None
    except NoConsole as exc:  # where a console is instead, for the operator to copy
        return Ended("error", " ".join((str(exc), *exc.links)))
    except VFleetError as exc:
        return Ended("error", str(exc))
