"""Messages from the fleet (its subscription, events, action results) to the screens.

FleetUpdated and FleetEvents replace a queued predecessor of their kind, so a busy
UI handles one merged update instead of working through a backlog of stale ones.
"""

from __future__ import annotations

from textual.message import Message

from vfleet.core.engine import HostView
from vfleet.core.models import ActionResult, DomainEvent


class FleetUpdated(Message):
    """The latest view of each host that changed."""

    def __init__(self, views: dict[str, HostView]) -> None:
        super().__init__()
        self.views = views

    def can_replace(self, message: Message) -> bool:
        # `message` is newer and queued right behind this one: hand it our hosts it
        # does not have (its own views are fresher) and let it go instead of us.
        if isinstance(message, FleetUpdated):
            for name, view in self.views.items():
                message.views.setdefault(name, view)
            return True
        return False


class FleetEvents(Message):
    """New lifecycle events arrived (read them, newest first, from Fleet.events)."""

    def __init__(self, latest: DomainEvent) -> None:
        super().__init__()
        self.latest = latest

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FleetEvents)


class JobResult(Message):
    """One target of a running action has its result."""

    def __init__(self, job: int, result: ActionResult) -> None:
        super().__init__()
        self.job = job
        self.result = result


class JobDone(Message):
    def __init__(self, job: int, ok: int, failed: int) -> None:
        super().__init__()
        self.job = job
        self.ok = ok
        self.failed = failed
