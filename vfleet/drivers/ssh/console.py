"""A console that is a command in a PTY session on the host's SSH connection (`xl console NAME`)."""

from __future__ import annotations

import asyncssh

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import HostUnreachable

CHUNK = 64 * 1024


class SshPtyConsole(ConsoleStream):
    def __init__(self, host: str, what: str, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._host, self._what = host, what
        self._process = process

    async def read(self) -> bytes:
        try:
            return await self._process.stdout.read(CHUNK)
        except (asyncssh.Error, ConnectionError) as exc:
            raise HostUnreachable(self._host, f"{self._what}: {exc}") from exc

    async def write(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (asyncssh.Error, ConnectionError, BrokenPipeError) as exc:
            raise HostUnreachable(self._host, f"{self._what}: {exc}") from exc

    async def close(self) -> None:
        self._process.close()  # the remote command gets SIGHUP from its PTY
