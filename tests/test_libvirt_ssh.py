"""libvirt over a real OpenSSH server on loopback, with strict host-key checking.

The testbed's sshd has its own host keys; the ssh wrapper passed as libvirt's
`command=` checks them against a known_hosts file with StrictHostKeyChecking=yes.
A second wrapper uses a known_hosts file holding a different key for the same host.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nodexml import RUNNING, SHUTOFF, write_node
from vfleet.core.engine import Fleet
from vfleet.core.errors import AuthFailed
from vfleet.core.models import DomainRef, HostConfig, HostStatus, PowerState, Verb


def ssh_uri(testbed: dict[str, str], scheme: str, path: str, wrapper_key: str = "VFLEET_SSH_WRAPPER") -> str:
    return (f"{scheme}://root@127.0.0.1:{testbed['VFLEET_SSH_PORT']}{path}"
            f"?keyfile={testbed['VFLEET_SSH_KEY']}&command={testbed[wrapper_key]}")


def host(name: str, uri: str, **kw: object) -> HostConfig:
    return HostConfig(name=name, driver="libvirt", uri=uri, poll_interval=1.0, connect_timeout=20,
                      call_timeout=20, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def guests(testbed: dict[str, str], libvirt_module: object) -> list[str]:
    return testbed["VFLEET_GUESTS"].split(",")


async def test_qemu_over_ssh_sees_real_guests_with_metrics(testbed: dict[str, str], guests: list[str]) -> None:
    fleet = Fleet([host("kvm-ssh", ssh_uri(testbed, "qemu+ssh", "/system"))])

    def have_rates(views: list) -> bool:  # type: ignore[type-arg]
        rows = [r for r in views[0].rows if r.domain.name in guests and r.domain.state is PowerState.RUNNING]
        return len(rows) >= 1 and all(r.rates.cpu_percent is not None for r in rows)

    async with fleet:
        assert await fleet.wait_until(have_rates, timeout=60), fleet.view("kvm-ssh").health
        view = fleet.view("kvm-ssh")
    assert view.health.status is HostStatus.UP and view.facts is not None and view.facts.hypervisor == "kvm"
    assert set(guests) <= {r.domain.name for r in view.rows}


async def test_events_and_actions_over_ssh(testbed: dict[str, str], tmp_path: Path) -> None:
    node = write_node(tmp_path / "remote.xml", [("r1", RUNNING), ("r2", SHUTOFF)])
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(host("test-ssh", ssh_uri(testbed, "test+ssh", str(node))))
    facts = await driver.connect()
    try:
        assert facts.hypervisor == "test"
        states = {d.name: d.state for d in (await driver.poll()).domains}
        assert states == {"r1": PowerState.RUNNING, "r2": PowerState.OFF}
        events = driver.events()
        result = await driver.perform(Verb.PAUSE, DomainRef.named("r1"))
        assert result.state_after is PowerState.PAUSED
        event = await events.__anext__()
        assert (event.domain, event.kind) == ("r1", "suspended")
    finally:
        await driver.close()


async def test_wrong_host_key_is_a_clear_auth_error_not_a_hang(testbed: dict[str, str]) -> None:
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    uri = ssh_uri(testbed, "qemu+ssh", "/system", wrapper_key="VFLEET_SSH_WRAPPER_WRONG")
    driver = LibvirtDriver(host("impostor", uri))
    started = time.monotonic()
    with pytest.raises(AuthFailed) as caught:
        await driver.connect()
    elapsed = time.monotonic() - started
    await driver.close()
    message = str(caught.value)
    assert elapsed < 10, elapsed
    assert message.startswith("impostor: SSH host key verification failed") and "known_hosts" in message
    assert "\n" not in message


async def test_wrong_host_key_in_the_fleet_is_auth_failed(testbed: dict[str, str]) -> None:
    uri = ssh_uri(testbed, "qemu+ssh", "/system", wrapper_key="VFLEET_SSH_WRAPPER_WRONG")
    fleet = Fleet([host("impostor", uri)])
    async with fleet:
        assert await fleet.wait_until(lambda v: v[0].health.status is HostStatus.AUTH_FAILED, timeout=20)
