"""The shared SSH transport against a real asyncssh server on loopback: host-key
checking, authentication, errors, timeouts and connection reuse."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshhost import Answer, Keys, Shell, SshTestServer
from vfleet.core.errors import ActionFailed, AuthFailed, DriverTimeout, HostUnreachable
from vfleet.core.models import HostConfig, SshSettings
from vfleet.drivers.ssh.transport import SshTransport


class Canned:
    def __init__(self) -> None:
        self.shell = Shell(self.answer)
        self.released = asyncio.Event()

    async def run(self, command: str) -> Answer:
        return await self.shell.run(command)

    async def answer(self, command: str) -> Answer:
        if command == "hang":
            await asyncio.Event().wait()
        return {
            "hello": ("hi\n", "", 0),
            "fail": ("", "boom: it broke\n", 2),
            "warn": ("ok\n", "careful now\n", 0),
        }.get(command, ("", f"sh: {command}: not found\n", 127))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
async def server(keys: Keys, tmp_path: Path) -> AsyncIterator[SshTestServer]:
    srv = await SshTestServer(Canned(), keys, tmp_path).start()
    yield srv
    await srv.close()


async def connected(config: HostConfig) -> SshTransport:
    transport = SshTransport(config)
    await transport.connect()
    return transport


async def test_runs_commands_over_one_connection(server: SshTestServer) -> None:
    transport = await connected(server.config())
    try:
        results = [await transport.run("hello") for _ in range(20)]
        results += await asyncio.gather(*(transport.run("hello") for _ in range(20)))
    finally:
        await transport.close()
    assert {(r.stdout, r.exit_status) for r in results} == {("hi\n", 0)}
    assert server.connections == 1


async def test_non_zero_exit_and_stderr_are_typed_errors_naming_command_and_host(server: SshTestServer) -> None:
    transport = await connected(server.config(name="h1"))
    try:
        result = await transport.run("fail")
        assert (result.exit_status, result.stderr) == (2, "boom: it broke\n")
        with pytest.raises(ActionFailed, match=r"^h1: `fail` exited with status 2: boom: it broke$"):
            await transport.run_checked("fail")
        with pytest.raises(ActionFailed, match=r"^h1: `warn` wrote to stderr: careful now$"):
            await transport.run_checked("warn")
        allowed = await transport.run_checked("warn", allowed_stderr=re.compile("^careful"))
        assert allowed.stdout == "ok\n"
    finally:
        await transport.close()


async def test_changed_host_key_is_auth_failed_and_says_so(server: SshTestServer) -> None:
    with pytest.raises(AuthFailed) as caught:
        await connected(server.config(known_hosts=server.wrong_known_hosts))
    assert f"host key for 127.0.0.1:{server.port} does not match {server.wrong_known_hosts}" in str(caught.value)


async def test_unknown_host_key_is_auth_failed_never_accepted(server: SshTestServer) -> None:
    with pytest.raises(AuthFailed) as caught:
        await connected(server.config(known_hosts=server.other_known_hosts))
    assert f"host key for 127.0.0.1:{server.port} not in {server.other_known_hosts}" in str(caught.value)
    assert server.open == [] or all(c.is_closed() for c in server.open)


async def test_missing_known_hosts_file_is_a_clear_error(server: SshTestServer, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "known_hosts"
    with pytest.raises(AuthFailed, match=f"file {missing} does not exist"):
        await connected(server.config(known_hosts=str(missing)))
    assert server.connections == 0  # refused before any connection was made


async def test_default_known_hosts_is_the_users(
    server: SshTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(AuthFailed, match=r"the default known_hosts file .*/\.ssh/known_hosts does not exist"):
        await connected(server.config(known_hosts=None))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(server.known_line(server.keys.host))
    transport = await connected(server.config(known_hosts=None))
    await transport.close()


async def test_wrong_client_key_is_auth_failed(server: SshTestServer) -> None:
    with pytest.raises(AuthFailed, match=r"authentication to root@127\.0\.0\.1:\d+ failed: the server refused our keys"):
        await connected(server.config(key_file=server.stranger_key_file))


async def test_missing_key_file_is_auth_failed(server: SshTestServer, tmp_path: Path) -> None:
    with pytest.raises(AuthFailed, match=r"cannot (read|load) the SSH key"):
        await connected(server.config(key_file=str(tmp_path / "no_such_key")))


async def test_refused_port_is_host_unreachable(server: SshTestServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    config = HostConfig(name="gone", driver="xen_xl", address="127.0.0.1", port=free_port, user="root",
                        ssh=SshSettings(agent=False, key_file=server.key_file, known_hosts=server.known_hosts,
                                        config=False))
    with pytest.raises(HostUnreachable, match=f"cannot reach 127.0.0.1:{free_port}"):
        await connected(config)


async def test_hung_command_times_out_within_call_timeout(server: SshTestServer) -> None:
    transport = await connected(server.config())
    backend = server.backend
    assert isinstance(backend, Canned)
    try:
        started = time.monotonic()
        with pytest.raises(DriverTimeout, match=r"`hang` on 127\.0\.0\.1:\d+: no answer within 0\.5 s"):
            await transport.run("hang", timeout=0.5)
        assert time.monotonic() - started < 1.5
        await asyncio.wait_for(server.backend.released.wait(), 5)  # type: ignore[attr-defined]
        assert (await transport.run("hello")).stdout == "hi\n"  # the connection survives a timeout
    finally:
        await transport.close()
    assert server.connections == 1


async def test_dropped_connection_is_host_unreachable(server: SshTestServer) -> None:
    transport = await connected(server.config())
    try:
        await server.drop_connections()
        with pytest.raises(HostUnreachable):
            await transport.run("hello")
        with pytest.raises(HostUnreachable):  # and stays so: reconnecting is the fleet's job
            await transport.run("hello")
    finally:
        await transport.close()


async def test_ssh_config_aliases_user_port_and_identity(
    server: SshTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        f"Host xenbox\n  HostName 127.0.0.1\n  Port {server.port}\n  User root\n  IdentityFile {server.key_file}\n"
    )
    (ssh_dir / "known_hosts").write_text(server.known_line(server.keys.host))
    config = HostConfig(name="xenbox", driver="xen_xl", ssh=SshSettings(agent=False, config=True))
    transport = await connected(config)
    try:
        assert (await transport.run("hello")).stdout == "hi\n"
    finally:
        await transport.close()
    # Without the config the alias means nothing: the name does not resolve.
    with pytest.raises((HostUnreachable, AuthFailed)):
        await connected(HostConfig(name="xenbox", driver="xen_xl", connect_timeout=3,
                                   ssh=SshSettings(agent=False, config=False)))


async def test_a_broken_ssh_config_is_a_clear_host_error(
    server: SshTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text("Host xenbox\n  Port not-a-number\n")
    (ssh_dir / "known_hosts").write_text(server.known_line(server.keys.host))
    with pytest.raises(HostUnreachable, match=r"^xenbox: cannot use ~/.ssh/config: .*ssh.config: false"):
        await connected(HostConfig(name="xenbox", driver="xen_xl", ssh=SshSettings(agent=False, config=True)))
