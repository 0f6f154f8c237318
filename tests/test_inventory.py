"""Inventory parsing: inheritance, and one error per kind, each naming file:line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vfleet.core import inventory
from vfleet.core.errors import ExitCode, InventoryError

GOOD = """\
version: 1
defaults:
  poll_interval: 3
  ssh: {known_hosts: /etc/vfleet/known_hosts}
groups:
  prod:
    description: production
    tags: [prod]
    read_only: true
    poll_interval: 5
  lab:
    tags: [lab]
hosts:
  - name: kvm1
    driver: libvirt
    uri: qemu+ssh://root@kvm1/system
    groups: [prod]
    tags: [rack1]
  - name: xen1
    driver: xen_xl
    address: xen1.example.net
    user: root
    groups: [lab, prod]
    poll_interval: 10
    options: {config_dir: /etc/xen/auto}
  - name: esx1
    driver: esxi_api
    address: esx1.example.net
    user: monitor
    password_env: ESX1_PASSWORD
    tls: {thumbprint: "AB:CD"}
    protected: true
"""


def test_good_inventory_applies_defaults_then_groups_then_host() -> None:
    inv = inventory.parse(GOOD, "fleet.yaml")
    kvm1, xen1, esx1 = inv.hosts
    assert kvm1.poll_interval == 5.0  # group beats defaults
    assert xen1.poll_interval == 10.0  # host beats groups
    assert esx1.poll_interval == 3.0  # defaults
    assert kvm1.tags == {"prod", "rack1"}
    assert xen1.tags == {"lab", "prod"}
    assert kvm1.read_only and xen1.read_only and not esx1.read_only
    assert xen1.ssh.known_hosts == "/etc/vfleet/known_hosts"
    assert xen1.options == {"config_dir": "/etc/xen/auto"}
    assert esx1.password_env == "ESX1_PASSWORD" and esx1.tls.thumbprint == "AB:CD" and not esx1.tls.insecure
    assert esx1.protected
    assert kvm1.port is None and kvm1.user is None  # connection keys of other transports do not leak
    assert kvm1.source == "fleet.yaml:14"
    assert inv.groups == {"prod": "production", "lab": ""}


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    colour: red\n", 5, "hosts[a].colour", "unknown key"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    poll_interval: fast\n", 5, "hosts[a].poll_interval", "expected a number"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    read_only: 'yes'\n", 5, "hosts[a].read_only", "expected true or false"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    port: 70000\n", 5, "hosts[a].port", "1-65535"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    tags: prod\n", 5, "hosts[a].tags", "list of strings"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    poll_interval: 0\n", 5, "hosts[a].poll_interval", "greater than 0"),
        ("hosts:\n  - {name: a, driver: libvirt, uri: x}\n  - {name: a, driver: libvirt, uri: y}\n", 3, "hosts[a].name", "duplicate host name"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    driver: sim\n", 4, "hosts[a].driver", "duplicate key"),
        ("groups:\n  g: {}\n  g: {}\nhosts:\n  - {name: a, driver: sim}\n", 3, "groups.g", "duplicate name"),
        ("hosts:\n  - name: a\n    uri: x\n", 2, "hosts[a].driver", "missing required key"),
        ("hosts:\n  - driver: sim\n", 2, "hosts[0].name", "missing required key"),
        ("hosts:\n  - name: a\n    driver: libvirt\n", 2, "hosts[a].uri", "missing required key"),
        ("hosts:\n  - name: a\n    driver: esxi_api\n    address: h\n", 2, "hosts[a].user", "missing required key"),
        ("hosts:\n  - name: a\n    driver: kvmm\n", 3, "hosts[a].driver", "unknown driver 'kvmm'"),
        ("hosts:\n  - name: a\n    driver: sim\n    groups: [nope]\n", 4, "hosts[a].groups[0]", "unknown group"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    address: h\n", 5, "hosts[a].address", "not used by the libvirt driver"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    options: {colour: red}\n", 5, "hosts[a].options.colour", "unknown key"),
        ("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    options: {a: 1}\n", 5, "hosts[a].options", "takes no options"),
        ("hosts:\n  - name: a\n    driver: xen_xl\n    address: h\n    ssh: {agent: maybe}\n", 5, "hosts[a].ssh.agent", "true or false"),
        ("defaults:\n  poll_interval: -1\nhosts:\n  - {name: a, driver: sim}\n", 2, "defaults.poll_interval", "greater than 0"),
        ("version: 2\nhosts:\n  - {name: a, driver: sim}\n", 1, "version", "unsupported version"),
        ("hosts: {a: 1}\n", 1, "hosts", "non-empty list"),
        ("hosts:\n  - name: a\n    driver: sim\n  - [oops\n", 5, "", "flow sequence started on line 4"),
        ("nodes: []\n", 1, "nodes", "unknown key"),
        ("defaults: &d {poll_interval: 2}\nhosts:\n  - {<<: *d, name: a, driver: sim}\n", 3, "hosts[a].<<", "merge keys"),
    ],
)
def test_each_error_names_file_line_and_key(text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.parse(text, "fleet.yaml")
    error = caught.value
    assert (error.path, error.line, error.key) == ("fleet.yaml", line, key)
    message = str(error)
    assert message.startswith(f"fleet.yaml:{line}: ")
    assert words in message
    assert "\n" not in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope.yaml: no such file"):
        inventory.load(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InventoryError, match=r"empty.yaml: hosts: the inventory is empty"):
        inventory.load(empty)


def test_example_inventory_is_valid_and_mixes_hypervisors() -> None:
    example = Path(__file__).parent.parent / "inventory.example.yaml"
    inv = inventory.load(example)
    drivers = {h.driver for h in inv.hosts}
    assert {"libvirt", "xen_xl", "esxi_api", "esxi_ssh"} <= drivers


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=60)


def test_inventory_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    ok = _run_cli("inventory", "check", str(good))
    assert ok.returncode == ExitCode.OK, ok.stderr
    assert "3 hosts" in ok.stdout and "esxi_api 1, libvirt 1, xen_xl 1" in ok.stdout
    assert "2 groups" in ok.stdout and "read-only: kvm1, xen1" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  - name: a\n    driver: libvirt\n    uri: x\n    colour: red\n")
    failed = _run_cli("inventory", "check", str(bad))
    assert failed.returncode == ExitCode.USAGE == 2
    assert failed.stdout == ""
    assert failed.stderr.strip() == f"vfleet: {bad}:5: hosts[a].colour: unknown key (expected one of: " + failed.stderr.split("expected one of: ")[1].strip()
    assert "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1
