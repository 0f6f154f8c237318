"""One contract, every driver (as napalm's shared getter tests): the suite lives in
vfleet.testing.driver_contract so that third-party drivers run it too. Here each built-in
backend runs it against the most real thing this machine has: libvirt's test driver, SSH
test hosts serving real Xen and documented ESXi outputs, VMware's vcsim, and the
simulator; and a third-party driver, registered through an entry point, runs it as well."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from conftest import need_backend
from nodexml import PAUSED, RUNNING, SHUTOFF, write_node
from sshhost import EsxiHost, Keys, SshTestServer, XenHost
from toy_plugin import installed
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, start_vcsim
from vfleet.core.models import HostConfig, TlsSettings
from vfleet.drivers import registry
from vfleet.drivers.base import Capability
from vfleet.testing.driver_contract import DriverContract, Subject

PASSWORD_ENV = "VFLEET_CONTRACT_ESX_PASSWORD"


@pytest.fixture(params=["sim", "libvirt", "xen_xl", "esxi_ssh", "esxi_api"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Subject]:
    kind = request.param
    cleanup: list[Callable[[], object]] = []
    if kind == "sim":
        config = HostConfig(name="sim1", driver="sim", options={"domains": 8, "seed": 3, "latency": 0.001})
    elif kind == "libvirt":
        request.getfixturevalue("libvirt_module")
        node = write_node(tmp_path / "node.xml", [("c1", RUNNING), ("c2", SHUTOFF), ("c3", PAUSED)])
        config = HostConfig(name="lv1", driver="libvirt", uri=f"test://{node}")
    elif kind in ("xen_xl", "esxi_ssh"):
        server = await SshTestServer(XenHost() if kind == "xen_xl" else EsxiHost(), Keys.generate(), tmp_path).start()
        config = server.config(name=f"{kind}1", driver=kind)
        cleanup.append(server.close)
    else:
        need_backend(f"vcsim ({VCSIM_BIN})", VCSIM_BIN.exists())
        sim = start_vcsim(tmp_path / "vcsim", "-model", "esx", "-vm", "3")
        cleanup.append(sim.stop)
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        config = HostConfig(name="esx1", driver="esxi_api", address=sim.address, port=sim.port, user=USER,
                            password_env=PASSWORD_ENV, tls=TlsSettings(thumbprint=sim.sha256))
    yield Subject(config)
    for step in reversed(cleanup):
        result = step()
        if hasattr(result, "__await__"):
            await result  # type: ignore[misc]


class TestBuiltinDrivers(DriverContract):
    pass


class TestThirdPartyDriver(DriverContract):
    """A driver vfleet does not ship, found only through its `vfleet.drivers` entry point."""

    @pytest.fixture
    def subject(self, tmp_path: Path) -> Iterator[Subject]:
        with installed(tmp_path):
            yield Subject(HostConfig(name="toy1", driver="toy", options={"domains": 5, "latency": 0.001}))


def test_sim_hosts_suspend_where_the_hypervisor_they_play_does() -> None:
    """The demo's ESXi and XCP-ng hosts offer suspend; its KVM and Xen (xl) hosts say why not, as the real drivers."""
    def capabilities(flavour: str) -> frozenset[Capability]:
        driver = registry.create_driver(HostConfig(name=f"s-{flavour}", driver="sim", options={"flavour": flavour}))
        return type(driver).capabilities

    assert {f for f in ("kvm", "xen", "esxi", "xapi") if Capability.SUSPEND in capabilities(f)} == {"esxi", "xapi"}
