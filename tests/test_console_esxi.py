"""esxi_api has no serial console: it says so (exit code 8 for the CLI) and gives a VMRC link with a
clone ticket from the API, and the VM's network serial port; against vcsim. The ticket never
reaches the audit log."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import need_backend
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim
from vfleet.core.audit import AuditLog
from vfleet.core.engine import Fleet
from vfleet.core.errors import ExitCode, NoConsole
from vfleet.core.models import DomainRef, HostConfig, TlsSettings
from vfleet.core.operations import Operations, Target
from vfleet.drivers.registry import create_driver

PASSWORD_ENV = "VFLEET_TEST_VCSIM_PASSWORD"


@pytest.fixture
def esx(tmp_path: Path) -> Iterator[Vcsim]:
    pytest.importorskip("pyVmomi")
    need_backend(f"vcsim binary {VCSIM_BIN} (testbed/vcsim.sh build)", VCSIM_BIN.exists())
    sim = start_vcsim(tmp_path / "vcsim", "-model", "esx", "-vm", "2")
    yield sim
    sim.stop()


def _add_network_serial_port(sim: Vcsim, uri: str) -> str:
    """What an admin does for a VM whose serial console is reached over the network."""
    from pyVim.connect import Disconnect, SmartConnect
    from pyVim.task import WaitForTask
    from pyVmomi import vim

    context = ssl._create_unverified_context()  # a throwaway simulator on loopback
    si = SmartConnect(host=sim.address, port=sim.port, user=USER, pwd=PASSWORD, sslContext=context)
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        vm = sorted(view.view, key=lambda v: v.name)[0]
        port = vim.vm.device.VirtualSerialPort(
            key=-1,
            backing=vim.vm.device.VirtualSerialPort.URIBackingInfo(serviceURI=uri, direction="server"),
            yieldOnPoll=True,
        )
        spec = vim.vm.ConfigSpec(
            deviceChange=[
                vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=port)
            ]
        )
        WaitForTask(vm.ReconfigVM_Task(spec))
        return str(vm.name)
    finally:
        Disconnect(si)


async def test_esxi_api_answers_with_a_vmrc_link_and_the_serial_port(
    esx: Vcsim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    config = HostConfig(
        name="esx1", driver="esxi_api", address=esx.address, port=esx.port, user=USER, password_env=PASSWORD_ENV,
        tls=TlsSettings(thumbprint=esx.sha256), poll_interval=0.2, call_timeout=5.0, connect_timeout=5.0,
    )
    name = _add_network_serial_port(esx, "telnet://:7001")
    audit = AuditLog(tmp_path / "audit.jsonl")
    async with Fleet([config]) as fleet:
        assert await fleet.wait_until(lambda vs: all(v.health.polls >= 1 for v in vs), 20)
        row = next(r for v in fleet.views() for r in v.rows if r.domain.name == name)
        operations = Operations(fleet, audit, face="cli")
        with pytest.raises(NoConsole) as caught:
            async with operations.console(Target("esx1", row.domain.name, row.domain.key), view_only=False):
                pass
    error = caught.value
    assert error.exit_code == ExitCode.NO_CONSOLE == 8
    assert "no serial console over the vSphere API" in str(error) and "\n" not in str(error)
    vmrc, serial = error.links
    moid = vmrc.rsplit("moid=", 1)[1]
    assert vmrc.startswith("vmrc://clone:")
    assert f"@{esx.address}:{esx.port}/?moid=" in vmrc and moid.startswith("vm-")
    ticket = vmrc.removeprefix("vmrc://clone:").split("@", 1)[0]
    assert ticket
    assert serial == "serial: telnet://:7001 (server)"
    text = (tmp_path / "audit.jsonl").read_text()
    assert ticket not in text  # a clone ticket is a credential
    assert '"kind":"console"' in text.replace(" ", "") and '"outcome":"failed"' in text.replace(" ", "")


async def test_esxi_ssh_answers_with_the_web_console_url(tmp_path: Path) -> None:
    from sshhost import EsxiHost, Keys, SshTestServer

    srv = await SshTestServer(EsxiHost(), Keys.generate(), tmp_path).start()
    driver = create_driver(srv.config(name="esx1", driver="esxi_ssh"))
    try:
        await driver.connect()
        snapshot = await driver.poll()
        vm = snapshot.domains[0]
        with pytest.raises(NoConsole) as caught:
            await driver.open_console(DomainRef(vm.name, vm.key))
    finally:
        await driver.close()
        await srv.close()
    assert "no serial console over SSH on ESXi" in str(caught.value) and vm.name in str(caught.value)
    (url,) = caught.value.links
    assert url.startswith("https://127.0.0.1/ui/#/console/") and url.rsplit("/", 1)[1].isdigit()
