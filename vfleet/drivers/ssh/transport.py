"""Shared SSH transport (asyncssh) for the command-line drivers (xen_xl, esxi_ssh).

One connection per host, reused for every command: channels are cheap,
handshakes are not. Host keys are always checked against a known_hosts file:
asyncssh reads a missing (None) known_hosts argument as "accept any key", so we
always pass a file and fail clearly when there is none. Reconnecting is the fleet engine's job: a
dropped connection is HostUnreachable and the driver is replaced.

Every command runs by a deadline and is cancellation-safe: a command that times out or
is cancelled gets its channel closed and its processes killed, so nothing outlives the
call on either side. Closing the channel alone does not stop a remote command, and
sshd refuses to forward signals into root sessions ("session signalling requires
privilege separation"), so each command line first echoes its shell's pid ($$): sshd
makes every session's shell a process group leader, and `kill -TERM -PGID` on a channel
of its own stops the whole command. Output is read as it arrives and capped
(max_output, 16 MiB by default): a command that prints more is stopped, never
buffered whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from vfleet.core.errors import ActionFailed, AuthFailed, DriverTimeout, GarbledOutput, HostUnreachable
from vfleet.core.models import HostConfig

log = logging.getLogger(__name__)

# sshd's default MaxSessions is 10: stay below it so polls and actions never get refused.
MAX_CHANNELS = 8
MAX_OUTPUT = 16 * 1024 * 1024  # bytes of stdout + stderr per command
_CHUNK = 64 * 1024
PGID_MARK = "@@VFLEET-PGID@@"
PGID_PREFIX = f"echo {PGID_MARK} $$; "  # put before every command line; its line is taken off stdout
KILL_WAIT = 5.0  # s for the kill of an abandoned command's process group
_HOST_IN_ERROR = re.compile(r"for host (\S+)")


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line, shortened: enough to say what went wrong in one line."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


class SshTransport:
    """One asyncssh connection to one host; run() opens a channel per command."""

    def __init__(self, config: HostConfig, *, max_output: int = MAX_OUTPUT) -> None:
        self.config = config
        self.max_output = max_output
        self.target = config.address or config.name  # may be a ~/.ssh/config Host alias
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lost: str | None = None
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self._kills: set[asyncio.Task[None]] = set()
        # commands in flight: close() stops them on the host too (its caller may not have unwound yet)
        self._running: dict[asyncssh.SSHClientProcess[bytes], _Remote] = {}
        # while recording (`vfleet debug record`): every command's result, in order
        self.recording: list[CommandResult] | None = None

    @property
    def host(self) -> str:
        return self.config.name

    @property
    def where(self) -> str:
        return f"{self.target}:{self.config.port or 22}"

    def known_hosts_file(self) -> Path:
        configured = self.config.ssh.known_hosts
        path = Path(configured or "~/.ssh/known_hosts").expanduser()
        if not path.is_file():
            source = "the inventory's ssh.known_hosts" if configured else "the default known_hosts"
            raise AuthFailed(
                self.host,
                f"cannot verify the host key of {self.where}: {source} file {path} does not exist; "
                f"add the host's key to it (e.g. ssh-keyscan) or name another file with ssh.known_hosts",
            )
        return path

    def _options(self, known_hosts: Path, budget: float) -> dict[str, Any]:
        ssh = self.config.ssh
        options: dict[str, Any] = {
            "known_hosts": str(known_hosts),  # never None: None disables host key checking
            "config": () if ssh.config else [],  # () = ~/.ssh/config when it exists
            "agent_path": () if ssh.agent else None,
            "connect_timeout": budget,
            "login_timeout": budget,
            "password_auth": False,  # never prompt: a console cannot answer
            "kbdint_auth": False,
            "keepalive_interval": 15,
        }
        if self.config.port is not None:
            options["port"] = self.config.port
        if self.config.user is not None:
            options["username"] = self.config.user
        if ssh.key_file:
            options["client_keys"] = [str(Path(ssh.key_file).expanduser())]
        if self.config.password_env:
            password = os.environ.get(self.config.password_env)
            if password:
                options.update(password=password, password_auth=True)
        return options

    async def connect(self, *, deadline: float | None = None) -> None:
        """Connect and log in by `deadline` (default: connect_timeout from now)."""
        known_hosts = self.known_hosts_file()
        budget = _left(deadline, self.config.connect_timeout)
        try:
            options = self._options(known_hosts, max(budget, 0.001))
            async with asyncio.timeout(budget):
                self._conn = await asyncssh.connect(self.target, **options)
        except TimeoutError:
            raise DriverTimeout(self.host, f"no SSH answer from {self.where} within {budget:.3g} s") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise AuthFailed(self.host, self._host_key_message(exc, known_hosts)) from exc
        except asyncssh.PermissionDenied as exc:
            user = f"{self.config.user}@" if self.config.user else ""
            raise AuthFailed(
                self.host,
                f"SSH authentication to {user}{self.where} failed: the server refused our keys "
                f"({exc.reason}); check ssh.key_file, the agent and the user",
            ) from exc
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise AuthFailed(self.host, f"cannot load the SSH key {self.config.ssh.key_file}: {exc}") from exc
        except asyncssh.DisconnectError as exc:
            raise HostUnreachable(self.host, f"SSH to {self.where} failed: {exc.reason}") from exc
        except asyncssh.ConfigParseError as exc:  # a typo in ~/.ssh/config is the user's to fix, not a bug
            raise HostUnreachable(self.host, f"cannot use ~/.ssh/config: {exc} (or set ssh.config: false)") from exc
        except OSError as exc:
            if (
                self.config.ssh.key_file
                and exc.filename
                and str(exc.filename).endswith(Path(self.config.ssh.key_file).name)
            ):
                raise AuthFailed(self.host, f"cannot read the SSH key {exc.filename}: {exc.strerror}") from exc
            raise HostUnreachable(self.host, f"cannot reach {self.where}: {exc.strerror or exc}") from exc
        self._lost = None

    def _host_key_message(self, exc: asyncssh.HostKeyNotVerifiable, known_hosts: Path) -> str:
        """Tell an unknown key from a changed one: the second may be an attack."""
        found = _HOST_IN_ERROR.search(exc.reason)
        host = found.group(1) if found else self.target
        port = self.config.port or 22
        where = f"{host}:{port}"
        try:
            trusted = asyncssh.match_known_hosts(str(known_hosts), host, host, port if port != 22 else None)[0]
        except (OSError, ValueError):
            trusted = []
        if trusted:
            return (
                f"host key for {where} does not match {known_hosts}: the host was reinstalled or someone "
                f"is intercepting the connection; verify the new key before replacing the old entry"
            )
        return f"host key for {where} not in {known_hosts}: verify the host's key fingerprint, then add it"

    async def close(self) -> None:
        for process, remote in list(self._running.items()):
            self._abort(process, remote)
        if self._kills:  # let the kills of abandoned commands go out first
            await asyncio.wait(set(self._kills), timeout=KILL_WAIT)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await conn.wait_closed()

    def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise HostUnreachable(self.host, f"not connected to {self.where}")
        if self._lost is not None:
            raise HostUnreachable(self.host, self._lost)
        return self._conn

    async def run(
        self,
        command: str,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
    ) -> CommandResult:
        """Run one command line on its own channel by `deadline` (or within `timeout`, default
        call_timeout); never raises on a non-zero exit status."""
        conn = self._connection()
        budget = timeout if timeout is not None else _left(deadline, self.config.call_timeout)
        limit = self.max_output if max_output is None else max_output
        process: asyncssh.SSHClientProcess[bytes] | None = None
        remote = _Remote()
        finished = False
        try:
            async with asyncio.timeout(budget), self._channels:
                process = await conn.create_process(PGID_PREFIX + command, stdin=asyncssh.DEVNULL, encoding=None)
                self._running[process] = remote
                stdout, stderr = await _read_both(process, limit, remote)
                completed = await process.wait(check=False)
                finished = True
        except TimeoutError:
            raise DriverTimeout(
                self.host, f"`{_short(command)}` on {self.where}: no answer within {budget:.3g} s"
            ) from None
        except _TooMuchOutput:
            raise GarbledOutput(
                self.host, f"`{_short(command)}`: output exceeded {_size(limit)}; stopped reading"
            ) from None
        except (asyncssh.ChannelOpenError, asyncssh.DisconnectError, ConnectionError, BrokenPipeError) as exc:
            self._lost = f"SSH connection to {self.where} lost: {exc}"
            raise HostUnreachable(self.host, self._lost) from exc
        finally:
            if process is not None and self._running.pop(process, None) is not None and not finished:
                self._abort(process, remote)  # a timeout, cancellation or error: stop the remote command too
        result = self._result(command, completed, stdout, stderr)
        if self.recording is not None:
            self.recording.append(result)
        return result

    @contextlib.contextmanager
    def recorded(self) -> Iterator[list[CommandResult]]:
        """Every command run() completes inside the block, with its verbatim output (the recording hook)."""
        commands: list[CommandResult] = []
        self.recording = commands
        try:
            yield commands
        finally:
            self.recording = None

    async def open_terminal(
        self, command: str, *, term_type: str, term_size: tuple[int, int], deadline: float | None = None
    ) -> asyncssh.SSHClientProcess[bytes]:
        """`command` in a PTY session on this host's connection (no second login), for a console.

        Outside the channel limit: a console may stay open for hours and must not take a poll's slot.
        """
        conn = self._connection()
        budget = _left(deadline, self.config.call_timeout)
        try:
            async with asyncio.timeout(budget):
                return await conn.create_process(command, term_type=term_type, term_size=term_size, encoding=None)
        except TimeoutError:
            raise DriverTimeout(
                self.host, f"`{_short(command)}` on {self.where}: no PTY within {budget:.3g} s"
            ) from None
        except (asyncssh.ChannelOpenError, asyncssh.DisconnectError, ConnectionError, BrokenPipeError) as exc:
            self._lost = f"SSH connection to {self.where} lost: {exc}"
            raise HostUnreachable(self.host, self._lost) from exc

    def _abort(self, process: asyncssh.SSHClientProcess[bytes], remote: _Remote) -> None:
        """Close the channel and kill the command: by signal where sshd allows it, else by process group."""
        self._running.pop(process, None)
        with contextlib.suppress(Exception):
            process.send_signal("TERM")
        with contextlib.suppress(Exception):
            process.close()
        conn = self._conn
        if remote.pgid is None or conn is None or conn.is_closed():
            return  # never started, or the connection is gone (then sshd ends the session)
        task = asyncio.get_running_loop().create_task(self._kill(conn, remote.pgid))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    async def _kill(self, conn: asyncssh.SSHClientConnection, pgid: int) -> None:
        with contextlib.suppress(Exception):  # best effort: the command may have ended meanwhile
            async with asyncio.timeout(KILL_WAIT), self._channels:
                await conn.run(f"kill -TERM -{pgid} 2>/dev/null || kill -TERM {pgid}", stdin=asyncssh.DEVNULL)

    def _result(
        self, command: str, completed: asyncssh.SSHCompletedProcess, stdout: bytes, stderr: bytes
    ) -> CommandResult:
        """Say what happened to a command that did not exit on its own."""
        if completed.exit_signal is not None:
            signal, _core, message, _lang = completed.exit_signal
            why = f": {first_line(message)}" if message and message.strip() else ""
            raise ActionFailed(self.host, f"`{_short(command)}` was killed by signal {signal} on {self.where}{why}")
        if completed.exit_status is None:
            if self._conn is None or self._conn.is_closed():
                self._lost = f"the SSH connection to {self.where} closed before `{_short(command)}` finished"
                raise HostUnreachable(self.host, self._lost)
            raise ActionFailed(
                self.host, f"`{_short(command)}`: {self.where} closed the channel before the command finished"
            )
        return CommandResult(command, completed.exit_status, _text(stdout), _text(stderr))

    async def run_checked(
        self,
        command: str,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        allowed_stderr: re.Pattern[str] | None = None,
    ) -> CommandResult:
        """Run and require exit status 0 and no stderr beyond the lines `allowed_stderr` matches."""
        result = await self.run(command, deadline=deadline, timeout=timeout)
        raise_for(self.host, result, allowed_stderr)
        return result


def raise_for(host: str, result: CommandResult, allowed_stderr: re.Pattern[str] | None = None) -> None:
    if result.exit_status != 0:
        detail = first_line(result.stderr) or first_line(result.stdout) or "no message"
        raise ActionFailed(host, f"`{_short(result.command)}` exited with status {result.exit_status}: {detail}")
    unexpected = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not (allowed_stderr and allowed_stderr.search(line))
    ]
    if unexpected:
        raise ActionFailed(host, f"`{_short(result.command)}` wrote to stderr: {first_line(unexpected[0])}")


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."


def _text(data: object) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _size(count: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _left(deadline: float | None, default: float) -> float:
    return default if deadline is None else max(0.0, deadline - time.monotonic())


class _TooMuchOutput(Exception):
    pass


class _Remote:
    """What we know of a running command on the host."""

    pgid: int | None = None


async def _read_both(
    process: asyncssh.SSHClientProcess[bytes], limit: int, remote: _Remote
) -> tuple[bytes, bytes]:
    """stdout and stderr read side by side (they share the channel's window), at most `limit` bytes in all.

    stdout's first line, PGID_PREFIX's echo, goes to `remote` as soon as it arrives."""
    total = 0

    async def drain(stream: asyncssh.SSHReader[bytes], head: bool) -> bytes:
        nonlocal total
        chunks: list[bytes] = []
        while chunk := await stream.read(_CHUNK):
            chunks.append(chunk)
            total += len(chunk)
            if head and (b"\n" in chunk or total > _CHUNK):
                data = b"".join(chunks)
                chunks, head = [_take_pgid(data, remote)], False
                total -= len(data) - len(chunks[0])  # our pid line is not the command's output
            if total > limit:
                raise _TooMuchOutput
        return b"".join(chunks)

    readers = [
        asyncio.ensure_future(drain(process.stdout, head=True)),
        asyncio.ensure_future(drain(process.stderr, head=False)),
    ]
    try:
        stdout, stderr = await asyncio.gather(*readers)
    finally:
        for reader in readers:
            reader.cancel()
    return stdout, stderr


def _take_pgid(data: bytes, remote: _Remote) -> bytes:
    """Take the pid line off the front of stdout (a shell that printed something else keeps it all)."""
    line, newline, rest = data.partition(b"\n")
    mark, _, number = line.decode("ascii", "replace").partition(" ")
    if newline and mark == PGID_MARK and number.strip().isdigit():
        remote.pgid = int(number)
        return rest
    return data
