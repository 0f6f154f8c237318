"""Error tree and process exit codes shared by every layer.

Every error a user can hit is a VFleetError whose str() is one line saying what
happened and where; the CLI prints it and exits with the error's exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of the headless commands (see README)."""

    OK = 0
    FAILED = 1  # the requested operation failed
    USAGE = 2  # bad command line or inventory
    UNREACHABLE = 3  # some hosts could not be reached or authenticated
    REFUSED = 4  # refused by policy (read-only, protected, interlock)
    PARTIAL = 5  # some targets of a bulk operation failed
    MISSING_DEPENDENCY = 6  # an optional backend package is not installed
    AUDIT = 7  # the audit log cannot be written; nothing was done
    NO_CONSOLE = 8  # the domain has no serial console this driver can attach to
    INTERNAL = 70  # a bug in vfleet (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C


class VFleetError(Exception):
    """Base of every error vfleet reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(VFleetError):
    exit_code = ExitCode.USAGE


class InventoryError(UsageError):
    """A malformed inventory; the message names file:line and the key."""

    def __init__(self, path: str, line: int | None, key: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class MissingDependency(VFleetError):
    exit_code = ExitCode.MISSING_DEPENDENCY


class PolicyRefused(VFleetError):
    exit_code = ExitCode.REFUSED


class AuditUnavailable(VFleetError):
    """The audit log cannot be written (permissions, disk full, damaged tail, key, checkpoint).

    Raised before anything is recorded, so the operations service can refuse an action
    before sending it; `after` says what that means for the operation at hand.
    """

    exit_code = ExitCode.AUDIT

    def __init__(self, path: str, cause: str, *, after: str = "nothing was sent") -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"{path}: cannot write the audit log: {cause}" + (f"; {after}" if after else ""))


class AuditDamaged(VFleetError):
    """A line of the audit log cannot be read (not UTF-8, not JSON, not a record)."""

    exit_code = ExitCode.FAILED

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


def host_line(host: str, text: str) -> str:
    """`text` led by `host: ` exactly once, whether or not it already names the host."""
    prefix = f"{host}: "
    while text.startswith(prefix):
        text = text[len(prefix) :]
    return prefix + text


class DriverError(VFleetError):
    """A backend failed; `host` names which one. The backend's exception is __cause__.

    str() is "HOST: message"; a message that already starts with "HOST: " (e.g. the
    text of another DriverError) is not prefixed again.
    """

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        self.message = host_line(host, message)[len(host) + 2 :]
        super().__init__(f"{host}: {self.message}")


class HostUnreachable(DriverError):
    exit_code = ExitCode.UNREACHABLE


class AuthFailed(DriverError):
    """Wrong credentials, or a host key that does not match known_hosts."""

    exit_code = ExitCode.UNREACHABLE


class DriverTimeout(DriverError):
    exit_code = ExitCode.UNREACHABLE


class DriverBusy(DriverTimeout):
    """The previous call to this host has timed out and is still running."""


class UnsupportedAction(DriverError):
    exit_code = ExitCode.REFUSED


class NoConsole(DriverError):
    """No serial console to attach to (no serial device, or none over this driver's interface).

    `links` are where a console may be found instead (a VMRC link, a web console URL, a
    network serial port): data for the operator, never part of the message (a VMRC link
    carries a clone ticket, and messages go to the audit log).
    """

    exit_code = ExitCode.NO_CONSOLE

    def __init__(self, host: str, message: str, *, links: tuple[str, ...] = ()) -> None:
        super().__init__(host, message)
        self.links = links


class DomainNotFound(DriverError):
    exit_code = ExitCode.USAGE


class ActionFailed(DriverError):
    exit_code = ExitCode.FAILED


class DataStale(DriverError):
    """A relay (a Prometheus server) has no fresh data for the host; the engine shows it STALE."""

    exit_code = ExitCode.UNREACHABLE


class GarbledOutput(DriverError):
    """A backend answered with something we cannot parse; never guess a number."""

    exit_code = ExitCode.FAILED
