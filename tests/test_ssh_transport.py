"""The shared SSH transport against a real asyncssh server on loopback: host-key
checking, authentication, errors, timeouts and connection reuse."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshhost import Answer, Keys, Shell, SshTestServer
from vfleet.core.errors import ActionFailed, AuthFailed, DriverTimeout, GarbledOutput, HostUnreachable
from vfleet.core.models import HostConfig, SshSettings
from vfleet.drivers.ssh.transport import MAX_CHANNELS, MAX_OUTPUT, SshTransport


class Canned:
    def __init__(self) -> None:
        self.shell = Shell(self.answer)
        self.released = asyncio.Event()  # the client closed the channel of a running command
        self.hanging = asyncio.Event()

    async def run(self, command: str) -> Answer:
        return await self.shell.run(command)

    async def answer(self, command: str) -> Answer:
        if command == "hang":
            self.hanging.set()
            await asyncio.Event().wait()
        return {
            "hello": ("hi\n", "", 0),
            "fail": ("", "boom: it broke\n", 2),
            "warn": ("ok\n", "careful now\n", 0),
            "killed": ("partial\n", "", -9),  # ends with signal KILL, no exit status
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


# -- cancellation, deadlines, output size, and what a dying command looks like ----------------


async def test_a_cancelled_command_closes_its_channel(server: SshTestServer) -> None:
    backend = server.backend
    assert isinstance(backend, Canned)
    transport = await connected(server.config())
    try:
        call = asyncio.ensure_future(transport.run("hang"))
        await asyncio.wait_for(backend.hanging.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # the server sees the channel close: the remote command is stopped, not left running
        await asyncio.wait_for(backend.released.wait(), 2)
        assert transport._channels._value == MAX_CHANNELS
        assert (await transport.run("hello")).stdout == "hi\n"
    finally:
        await transport.close()


async def test_a_deadline_bounds_the_command(server: SshTestServer) -> None:
    transport = await connected(server.config())  # call_timeout 3 s
    try:
        started = time.monotonic()
        with pytest.raises(DriverTimeout, match=r"`hang` on 127\.0\.0\.1:\d+: no answer within 0\.[45]\d* s"):
            await transport.run("hang", deadline=started + 0.5)
        assert time.monotonic() - started < 1.0
        with pytest.raises(DriverTimeout):  # a deadline already gone fails at once
            await transport.run("hello", deadline=time.monotonic() - 1)
    finally:
        await transport.close()


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


async def test_output_is_capped_and_read_as_it_arrives(server: SshTestServer) -> None:
    """64 MiB of output against the 16 MiB cap: a clear error, and memory stays small."""
    server.floods["flood"] = 4 * MAX_OUTPUT
    transport = await connected(server.config(name="h1"))
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:  # RSS while the command runs (ru_maxrss is the whole run's peak)
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_kib())
            await asyncio.sleep(0.02)

    try:
        before = _rss_kib()
        sampler = asyncio.ensure_future(sample())
        try:
            with pytest.raises(GarbledOutput) as caught:
                await transport.run("flood", timeout=20)
        finally:
            stop.set()
            await sampler
        assert str(caught.value) == "h1: `flood`: output exceeded 16 MiB; stopped reading"
        assert server.flood_sent < 2 * MAX_OUTPUT  # the client stopped reading; the server stopped sending
        growth_mib = (peak - before) / 1024
        print(f"\nRSS growth while reading 16 MiB of a 64 MiB answer: {growth_mib:.1f} MiB "
              f"(ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
        assert growth_mib < 48, growth_mib
        assert (await transport.run("hello")).stdout == "hi\n"  # the connection is still fine
    finally:
        await transport.close()


async def test_a_per_call_cap_names_its_size(server: SshTestServer) -> None:
    transport = await connected(server.config(name="h1"))
    try:
        with pytest.raises(GarbledOutput, match=r"^h1: `hello`: output exceeded 2 bytes; stopped reading$"):
            await transport.run("hello", max_output=2)  # "hi\n" is 3
        assert (await transport.run("hello", max_output=3)).stdout == "hi\n"
    finally:
        await transport.close()


async def test_a_lost_connection_mid_command_says_so(server: SshTestServer) -> None:
    backend = server.backend
    assert isinstance(backend, Canned)
    transport = await connected(server.config(name="h1"))
    try:
        call = asyncio.ensure_future(transport.run_checked("hang"))
        await asyncio.wait_for(backend.hanging.wait(), 5)
        await server.drop_connections()  # as when the host or its sshd dies mid-command
        with pytest.raises(HostUnreachable) as caught:
            await call
        message = str(caught.value)
        assert message == f"h1: the SSH connection to 127.0.0.1:{server.port} closed before `hang` finished"
    finally:
        await transport.close()


async def test_a_killed_command_says_which_signal(server: SshTestServer) -> None:
    transport = await connected(server.config(name="h1"))
    try:
        with pytest.raises(ActionFailed) as caught:
            await transport.run("killed")
        assert str(caught.value) == f"h1: `killed` was killed by signal KILL on 127.0.0.1:{server.port}"
    finally:
        await transport.close()


# -- against the testbed's real OpenSSH server (root login, as on most dom0s and ESXi hosts) ----


def _processes(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def _until_gone(argv: list[str], timeout: float) -> bool:
    """Only /proc can tell when another process has gone: check it every 20 ms."""
    deadline = time.monotonic() + timeout
    while _processes(argv):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_an_abandoned_command_is_killed_on_a_real_openssh_host(testbed: dict[str, str]) -> None:
    """sshd ignores signal requests in root sessions and closing the channel does not stop
    the command: the transport kills the command's process group itself."""
    config = HostConfig(
        name="sshd", driver="xen_xl", address="127.0.0.1", port=int(testbed["VFLEET_SSH_PORT"]), user="root",
        ssh=SshSettings(agent=False, config=False, key_file=testbed["VFLEET_SSH_KEY"],
                        known_hosts=testbed["VFLEET_SSH_KNOWN_HOSTS"]),
        connect_timeout=10, call_timeout=10,
    )
    transport = await connected(config)
    try:
        for how in ("timeout", "cancel"):
            argv = ["sleep", f"{1000 + os.getpid() % 1000}.{1 if how == 'timeout' else 2}"]
            call = asyncio.ensure_future(transport.run(" ".join(argv), timeout=1.0 if how == "timeout" else None))
            started = time.monotonic()
            while not _processes(argv):  # the remote command has started (the host is this machine)
                assert time.monotonic() - started < 5
                await asyncio.sleep(0.02)
            if how == "cancel":
                call.cancel()
            with pytest.raises(asyncio.CancelledError if how == "cancel" else DriverTimeout):
                await call
            assert await _until_gone(argv, 10), f"`{' '.join(argv)}` still runs on the host after a {how}"
        assert (await transport.run("echo hello")).stdout == "hello\n"
    finally:
        await transport.close()
