"""The driver contract every backend implements.

Drivers are async on the outside and hide their threads, subprocesses or SSH
channels inside. They translate backend exceptions into the VFleetError tree
(keeping the original as __cause__) and never import the core.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from vfleet.core.errors import NoConsole, PolicyRefused, UnsupportedAction, UsageError
from vfleet.core.models import (
    LIFECYCLE_VERBS,
    SNAPSHOT_VERBS,
    ActionParams,
    ActionResult,
    DomainEvent,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MigrateParams,
    SnapshotInfo,
    SnapshotParams,
    Verb,
)

if TYPE_CHECKING:
    from vfleet.core.console import ConsoleStream


class Capability(Enum):
    EVENTS = "events"
    CONSOLE = "console"
    READ_ONLY_CONNECTION = "read-only-connection"
    START = Verb.START.value
    SHUTDOWN = Verb.SHUTDOWN.value
    REBOOT = Verb.REBOOT.value
    PAUSE = Verb.PAUSE.value
    RESUME = Verb.RESUME.value
    SUSPEND = Verb.SUSPEND.value  # not every hypervisor saves a running domain to disk: declared apart
    FORCE_OFF = Verb.FORCE_OFF.value
    RESET = Verb.RESET.value
    SNAPSHOT = "snapshot"  # create, revert, delete and list snapshots
    MIGRATION = "migration"  # move a domain to another host (or another server of a vCenter)


# The power verbs every hypervisor has; SUSPEND is declared by the drivers that have it.
LIFECYCLE = frozenset(Capability(v.value) for v in LIFECYCLE_VERBS if v is not Verb.SUSPEND)
# The parameters each verb that takes some requires (a verb not listed takes none).
PARAMS: dict[Verb, type[ActionParams]] = {verb: SnapshotParams for verb in SNAPSHOT_VERBS}
PARAMS[Verb.MIGRATE] = MigrateParams


def capability_for(verb: Verb) -> Capability:
    if verb is Verb.MIGRATE:
        return Capability.MIGRATION
    return Capability.SNAPSHOT if verb in SNAPSHOT_VERBS else Capability(verb.value)


def check_params(verb: Verb, params: ActionParams | None) -> None:
    """A verb gets exactly the parameters it needs: a UsageError names what is wrong."""
    wanted = PARAMS.get(verb)
    if wanted is None and params is not None:
        raise UsageError(f"{verb.value} takes no parameters")
    if wanted is not None and not isinstance(params, wanted):
        raise UsageError(f"{verb.value} needs {wanted.__name__}")
    if isinstance(params, SnapshotParams) and not params.name.strip():
        raise UsageError(f"{verb.value} needs a snapshot name")
    if isinstance(params, MigrateParams) and not params.to_host.strip():
        raise UsageError(f"{verb.value} needs a destination host")


class Driver(ABC):
    """One connection to one host."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Why a capability is missing, where there is a reason worth telling the operator (menus, README).
    unsupported: ClassVar[Mapping[Capability, str]] = {}

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

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """The raw backend answers ONE poll reads, unscrubbed: artifact file name -> text (`vfleet debug record`).

        File names are plain (letters, digits, `.`, `-`, `_`); the core scrubs the texts before
        anything is written. A recording must parse back into the same domains the poll gives.
        """
        raise UnsupportedAction(self.host, f"the {self.kind} driver cannot record its polls")

    async def events(self) -> AsyncIterator[DomainEvent]:
        """Lifecycle events as they happen; drivers without EVENTS never yield."""
        await asyncio.Event().wait()
        return
        yield  # pragma: no cover - unreachable; makes this an async generator

    async def perform(
        self,
        verb: Verb,
        target: DomainRef,
        *,
        deadline: float | None = None,
        params: ActionParams | None = None,
    ) -> ActionResult:
        """Run one verb on the domain `target.key` names and report the state read back.

        Lifecycle verbs go to `_perform`, verbs with parameters (snapshots) to `_perform_with`.
        Only the core's operations service calls this (policy, confirmation and audit come first).
        """
        if capability_for(verb) not in self.capabilities:
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
        if self.read_only:  # defence in depth: the core's policy refuses first
            raise PolicyRefused(f"{self.host}: read-only: {verb.value} {target.name} refused")
        check_params(verb, params)
        if params is None:
            return await self._perform(verb, target, deadline)
        return await self._perform_with(verb, target, params, deadline)

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

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")

    async def snapshots(self, target: DomainRef, *, deadline: float | None = None) -> tuple[SnapshotInfo, ...]:
        """The domain's snapshots, oldest first (a read: allowed on read-only hosts)."""
        if Capability.SNAPSHOT not in self.capabilities:
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot list snapshots")
        return await self._snapshots(target, deadline)

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        raise UnsupportedAction(self.host, f"the {self.kind} driver cannot list snapshots")
