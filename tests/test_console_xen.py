"""xen_xl consoles: `xl console -- NAME` in a PTY session on the host's own SSH connection, against
the SSH test host with a fake `xl console` that prompts and echoes; the operator's terminal is a
real pty pair, so raw mode and its restoration are the real thing."""

from __future__ import annotations

import asyncio
import os
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from sshhost import Keys, SshTestServer, XenHost
from vfleet.core.audit import AuditLog
from vfleet.core.console import attach
from vfleet.core.engine import Fleet
from vfleet.core.errors import AuditUnavailable
from vfleet.core.models import DomainRef
from vfleet.core.operations import Operations, Target
from vfleet.drivers.registry import create_driver
from vfleet.drivers.xen.xl import XenXlDriver

COMMAND = "xl console -- tiny"


class FakeConsole:
    """`xl console tiny` on a PV guest: a login prompt, then every line it gets, echoed back."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.terminal: tuple[str | None, tuple[int, int]] | None = None
        self.opened = 0
        self.ended = asyncio.Event()

    async def __call__(self, process: asyncssh.SSHServerProcess[str]) -> None:
        self.opened += 1
        self.terminal = (process.get_terminal_type(), process.get_terminal_size()[:2])
        try:
            process.stdout.write("\r\ntiny login: ")
            while line := await process.stdin.readline():
                self.received.append(line.strip())
                process.stdout.write(f"guest got {line.strip()}\r\n")
            process.exit(0)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            pass
        finally:
            self.ended.set()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
async def server(keys: Keys, tmp_path: Path) -> AsyncIterator[tuple[SshTestServer, FakeConsole]]:
    srv = await SshTestServer(XenHost(), keys, tmp_path).start()
    fake = FakeConsole()
    srv.interactive[COMMAND] = fake
    yield srv, fake
    await srv.close()


class Operator:
    """The operator's terminal: the slave end of a pty pair; the test types into the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.settings = termios.tcgetattr(self.slave)
        self.seen = b""
        self._more = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            self.seen += os.read(self.master, 4096)
        except OSError:
            return
        self._more.set()

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    async def wait_for(self, text: bytes, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.seen:
                self._more.clear()
                await self._more.wait()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
async def operator() -> AsyncIterator[Operator]:
    term = Operator()
    yield term
    term.close()


async def _driver(srv: SshTestServer, *, read_only: bool = False) -> XenXlDriver:
    drv = create_driver(srv.config(), read_only=read_only)
    assert isinstance(drv, XenXlDriver)
    await drv.connect()
    return drv


async def test_xl_console_in_a_pty_on_the_same_connection(
    server: tuple[SshTestServer, FakeConsole], operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, fake = server
    monkeypatch.setenv("TERM", "vt220")
    driver = await _driver(srv)
    try:
        stream = await driver.open_console(DomainRef("tiny", "tiny"))
        session = asyncio.create_task(attach(stream, stdin=operator.slave, stdout=operator.slave))
        await operator.wait_for(b"tiny login: ")
        assert termios.tcgetattr(operator.slave) != operator.settings  # raw while attached
        operator.type(b"root\r")
        await operator.wait_for(b"guest got root")
        operator.type(b"\x1d")  # Ctrl+]
        ended = await asyncio.wait_for(session, 20)
        assert ended.how == "escape"
        assert termios.tcgetattr(operator.slave) == operator.settings
        await asyncio.wait_for(fake.ended.wait(), 20)  # closing the channel ended the remote command
        assert fake.received == ["root"]
        assert fake.terminal is not None and fake.terminal[0] == "vt220"
        assert srv.connections == 1  # no second login
    finally:
        await driver.close()


async def test_view_only_sends_no_keystrokes(server: tuple[SshTestServer, FakeConsole], operator: Operator) -> None:
    srv, fake = server
    driver = await _driver(srv, read_only=True)
    try:
        stream = await driver.open_console(DomainRef("tiny", "tiny"))
        session = asyncio.create_task(attach(stream, view_only=True, stdin=operator.slave, stdout=operator.slave))
        await operator.wait_for(b"tiny login: ")
        operator.type(b"secret\r")
        operator.type(b"\x1d")
        assert (await asyncio.wait_for(session, 20)).how == "escape"
        # the channel's close follows any data on it: once the fake saw the end, it saw everything
        await asyncio.wait_for(fake.ended.wait(), 20)
        assert fake.received == []
        assert termios.tcgetattr(operator.slave) == operator.settings
    finally:
        await driver.close()


async def test_a_dropped_connection_restores_the_terminal(
    server: tuple[SshTestServer, FakeConsole], operator: Operator
) -> None:
    srv, _fake = server
    driver = await _driver(srv)
    try:
        stream = await driver.open_console(DomainRef("tiny", "tiny"))
        session = asyncio.create_task(attach(stream, stdin=operator.slave, stdout=operator.slave))
        await operator.wait_for(b"tiny login: ")
        await srv.drop_connections()
        ended = await asyncio.wait_for(session, 20)
        assert ended.how in ("closed", "error")
        assert termios.tcgetattr(operator.slave) == operator.settings
    finally:
        await driver.close()


async def test_no_audit_log_no_console(server: tuple[SshTestServer, FakeConsole], tmp_path: Path) -> None:
    srv, fake = server
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    async with Fleet([srv.config()]) as fleet:
        assert await fleet.wait_until(lambda vs: all(v.health.polls >= 1 for v in vs), 20)
        operations = Operations(fleet, AuditLog(blocker / "audit.jsonl"), face="cli")
        with pytest.raises(AuditUnavailable) as caught:
            async with operations.console(Target("xen1", "tiny", "tiny"), view_only=False):
                pass
    assert caught.value.exit_code == 7
    assert fake.opened == 0  # refused before the host was asked


async def test_sigterm_ends_the_session_and_restores_the_terminal(
    server: tuple[SshTestServer, FakeConsole], operator: Operator
) -> None:
    import signal

    srv, fake = server
    driver = await _driver(srv)
    try:
        stream = await driver.open_console(DomainRef("tiny", "tiny"))
        session = asyncio.create_task(attach(stream, stdin=operator.slave, stdout=operator.slave))
        await operator.wait_for(b"tiny login: ")
        os.kill(os.getpid(), signal.SIGTERM)  # only the session's handler is installed now: it ends the session
        ended = await asyncio.wait_for(session, 20)
        assert ended.how == "terminated"
        assert termios.tcgetattr(operator.slave) == operator.settings
        await asyncio.wait_for(fake.ended.wait(), 20)  # and the remote console was closed
    finally:
        await driver.close()
