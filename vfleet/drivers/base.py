"""The driver contract every backend implements.

Drivers are async on the outside and hide their threads, subprocesses or SSH
channels inside. They translate backend exceptions into the VFleetError tree
(keeping the original as __cause__) and never import the core.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from enum import Enum
from typing import ClassVar

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import NoConsole, PolicyRefused, UnsupportedAction
from vfleet.core.models import ActionResult, DomainEvent, DomainRef, HostConfig, HostFacts, HostSnapshot, Verb


class Capability(Enum):
    EVENTS = "events"
    CONSOLE = "console"
    READ_ONLY_CONNECTION = "read-only-connection"
    START = Verb.START.value
    SHUTDOWN = Verb.SHUTDOWN.value
    REBOOT = Verb.REBOOT.value
    PAUSE = Verb.PAUSE.value
    RESUME = Verb.RESUME.value
    FORCE_OFF = Verb.FORCE_OFF.value
    RESET = Verb.RESET.value


LIFECYCLE = frozenset(Capability(v.value) for v in Verb)


def capability_for(verb: Verb) -> Capability:
    return Capability(verb.value)


class Driver(ABC):
    """One connection to one host."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        self.config = config
        self.read_only = read_only

    @property
    def host(self) -> str:
        return self.config.name

    def due(self, deadline: float | None, seconds: float | None = None) -> float:
        """The deadline itself, or one `seconds` (default: call_timeout) from now: one budget for a whole call."""
        if deadline is not None:
            return deadline
        return time.monotonic() + (seconds if seconds is not None else self.config.call_timeout)

    def seconds_left(self, deadline: float | None, default: float | None = None) -> float:
        """What is left of a call's budget (a time.monotonic() deadline); the host's call_timeout without one."""
        if deadline is None:
            return default if default is not None else self.config.call_timeout
        return max(0.0, deadline - time.monotonic())

    @abstractmethod
    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        """Open the connection by `deadline`; raise HostUnreachable, AuthFailed or DriverTimeout."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; must not raise and must be safe to call twice."""

    @abstractmethod
    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        """Read every domain of the host, in as few round trips as the backend allows, by `deadline`."""

    async def events(self) -> AsyncIterator[DomainEvent]:
        """Lifecycle events as they happen; drivers without EVENTS never yield."""
        await asyncio.Event().wait()
        return
        yield  # pragma: no cover - unreachable; makes this an async generator

    async def perform(self, verb: Verb, target: DomainRef, *, deadline: float | None = None) -> ActionResult:
        """Run one lifecycle verb on the domain `target.key` names and report the state read back.

        Only the core's operations service calls this (policy, confirmation and audit come first).
        """
        if capability_for(verb) not in self.capabilities:
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
        if self.read_only:  # defence in depth: the core's policy refuses first
            raise PolicyRefused(f"{self.host}: read-only: {verb.value} {target.name} refused")
        return await self._perform(verb, target, deadline)

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        """Attach to the serial console of `target` over this host's connection.

        Only the core's operations service calls this (the audit record comes first).
        Raises NoConsole where there is none to attach to (the message says what exists instead).
        """
        raise NoConsole(self.host, f"{target.name}: the {self.kind} driver has no serial console")
