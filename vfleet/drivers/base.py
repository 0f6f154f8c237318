"""The driver contract every backend implements.

Drivers are async on the outside and hide their threads, subprocesses or SSH
channels inside. They translate backend exceptions into the VFleetError tree
(keeping the original as __cause__) and never import the core.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from enum import Enum
from typing import ClassVar

from vfleet.core.errors import PolicyRefused, UnsupportedAction
from vfleet.core.models import ActionResult, DomainEvent, HostConfig, HostFacts, HostSnapshot, Verb


class Capability(Enum):
    EVENTS = "events"
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

    @abstractmethod
    async def connect(self) -> HostFacts:
        """Open the connection; raise HostUnreachable, AuthFailed or DriverTimeout."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; must not raise and must be safe to call twice."""

    @abstractmethod
    async def poll(self) -> HostSnapshot:
        """Read every domain of the host, in as few round trips as the backend allows."""

    async def events(self) -> AsyncIterator[DomainEvent]:
        """Lifecycle events as they happen; drivers without EVENTS never yield."""
        await asyncio.Event().wait()
        return
        yield  # pragma: no cover - unreachable; makes this an async generator

    async def perform(self, verb: Verb, domain: str) -> ActionResult:
        """Run one lifecycle verb on one domain and report the state read back."""
        if capability_for(verb) not in self.capabilities:
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
        if self.read_only:  # defence in depth: the core's policy refuses first
            raise PolicyRefused(f"{self.host}: read-only: {verb.value} {domain} refused")
        return await self._perform(verb, domain)

    async def _perform(self, verb: Verb, domain: str) -> ActionResult:
        raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
