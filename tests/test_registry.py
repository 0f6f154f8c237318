"""Drivers register through the `vfleet.drivers` entry-point group and describe their own
keys: built-in ones as pyproject.toml registers them, a third-party one from a dist-info
directory on sys.path (nothing installed), both validated by the same inventory code."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from toy_plugin import MODULE, installed, write_dist, write_plugin
from vfleet.core import inventory
from vfleet.core.errors import ExitCode, InventoryError, MissingDependency
from vfleet.drivers import registry
from vfleet.drivers.spec import NONE, SSH, DriverSpec, KeySpec, Transport

ROOT = Path(__file__).resolve().parent.parent
TOY_HOST = "hosts:\n  - name: t1\n    driver: toy\n"


def test_builtin_table_is_what_pyproject_registers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["vfleet.drivers"] == dict(registry.BUILTIN)


def test_the_installed_metadata_registers_the_builtins() -> None:
    try:
        dist = distribution("vfleet")
    except PackageNotFoundError:
        pytest.skip("vfleet is not installed (a source checkout on PYTHONPATH)")
    registered = {e.name: e.value for e in dist.entry_points if e.group == registry.ENTRY_POINT_GROUP}
    if not registered:
        pytest.skip("the installed vfleet metadata predates its entry points: pip install -e . refreshes it")
    assert registered == dict(registry.BUILTIN)


def test_every_builtin_spec_loads_without_its_backend() -> None:
    code = (
        "import sys\n"
        "from vfleet.drivers import registry\n"
        "specs = [registry.get(name) for name in registry.BUILTIN]\n"
        "heavy = ('libvirt', 'libvirtaio', 'pyVmomi', 'pyVim', 'asyncssh', 'importlib.metadata')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.startswith(('pyVmomi.', 'asyncssh.'))))\n"
        "print(sorted(m for m in sys.modules if m.endswith(('.driver', '.xl', '.api', '.ssh'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout


def test_spec_values_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="module:Class"):
        DriverSpec(name="x", driver="x.Driver", summary="x", transport=NONE)
    with pytest.raises(ValueError, match="the default '3' does not fit integer"):
        KeySpec("n", int, "3", "a number")
    with pytest.raises(ValueError, match="choices are strings"):
        KeySpec("c", str, "green", "a colour", choices=("red", "blue"))
    with pytest.raises(ValueError, match="one line"):
        KeySpec("n", int, 3, "two\nlines")
    with pytest.raises(ValueError, match="bad keys"):
        Transport("x", ("address", "colour"))
    with pytest.raises(ValueError, match="say how to install"):
        DriverSpec(name="x", driver="x:D", summary="x", transport=SSH, requires=("paramiko",))


def test_a_third_party_driver_is_accepted_and_validated_from_its_own_spec(tmp_path: Path) -> None:
    with installed(tmp_path):
        host = inventory.parse(TOY_HOST + "    options: {domains: 3, colour: blue}\n", "f.yaml").hosts[0]
        assert host.driver == "toy"
        assert host.options == {"domains": 3, "latency": 0.001, "colour": "blue"}  # the spec's defaults filled in
        assert "toy" in registry.names() and registry.driver_class("toy").kind == "toy"
        for extra, key, words in [
            ("    options: {size: 3}\n", "hosts[t1].options.size", "unknown key (expected one of: domains, latency, colour)"),
            ("    options: {domains: many}\n", "hosts[t1].options.domains", "expected an integer, got str 'many'"),
            ("    options: {domains: 0}\n", "hosts[t1].options.domains", "must be at least 1"),
            ("    options: {colour: green}\n", "hosts[t1].options.colour", "expected one of: red, blue"),
            ("    address: h\n", "hosts[t1].address", "not used by the toy driver"),
        ]:
            with pytest.raises(InventoryError) as caught:
                inventory.parse(TOY_HOST + extra, "f.yaml")
            assert (caught.value.line, caught.value.key) == (4, key)
            assert words in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_driver_lists_the_third_party_ones_too(tmp_path: Path) -> None:
    with installed(tmp_path), pytest.raises(InventoryError) as caught:
        inventory.parse("hosts:\n  - name: t1\n    driver: tooy\n", "f.yaml")
    assert str(caught.value) == (
        "f.yaml:3: hosts[t1].driver: unknown driver 'tooy' "
        "(expected one of: libvirt, xen_xl, esxi_api, esxi_ssh, sim, xapi, toy, toy_broken, toy_needy)"
    )


def test_a_broken_plugin_is_a_one_line_error_where_a_host_uses_it(tmp_path: Path) -> None:
    with installed(tmp_path):
        assert inventory.parse(TOY_HOST, "f.yaml").hosts  # a broken plugin nobody uses harms nobody
        with pytest.raises(InventoryError) as caught:
            inventory.parse("hosts:\n  - name: t1\n    driver: toy_broken\n", "f.yaml")
    message = str(caught.value)
    assert message.startswith("f.yaml:3: hosts[t1].driver: driver 'toy_broken': cannot load ")
    assert f"{MODULE}_missing:SPEC (toy-vfleet-driver): ModuleNotFoundError" in message and "\n" not in message


def test_a_plugin_cannot_take_a_builtin_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with installed(tmp_path) as site:
        write_dist(site, "rogue-driver", f"[vfleet.drivers]\nlibvirt = {MODULE}:SPEC\n")
        registry.refresh()
        with caplog.at_level(logging.WARNING, logger="vfleet.drivers.registry"):
            names = registry.names()
        assert registry.get("libvirt").driver == "vfleet.drivers.libvirt.driver:LibvirtDriver"
    assert names.count("libvirt") == 1
    assert "rogue-driver registers a driver named 'libvirt': ignored, that name is built in" in caplog.text


def test_a_missing_driver_package_is_a_one_line_error_with_the_install_hint(tmp_path: Path) -> None:
    with installed(tmp_path), pytest.raises(MissingDependency) as caught:
        registry.driver_class("toy_needy")
    assert str(caught.value) == (
        "the toy_needy driver needs the Python module 'vfleet_no_such_module_4711': pip install vfleet-no-such-package"
    )


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def test_inventory_check_and_keys_see_a_third_party_driver(tmp_path: Path) -> None:
    site = write_plugin(tmp_path)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(TOY_HOST + "  - {name: s1, driver: sim}\n")
    ok = _cli(site, "inventory", "check", str(fleet))
    assert ok.returncode == ExitCode.OK, ok.stderr
    assert f"{fleet}: OK: 2 hosts (sim 1, toy 1)" in ok.stdout and "  t1 " in ok.stdout and ok.stderr == ""

    keys = _cli(site, "inventory", "keys", "toy")
    assert keys.returncode == 0, keys.stderr
    assert keys.stdout.startswith("toy: a third-party test driver\n")
    assert "colour   red | blue" in keys.stdout and "latency  number >= 0" in keys.stdout

    listing = _cli(site, "inventory", "keys")
    assert "  toy " in listing.stdout and "  toy_needy " in listing.stdout
    assert "  toy_broken: driver 'toy_broken': cannot load" in listing.stdout

    needy = tmp_path / "needy.yaml"
    needy.write_text("hosts:\n  - {name: n1, driver: toy_needy}\n")
    failed = _cli(site, "inventory", "check", str(needy))
    assert failed.returncode == ExitCode.FAILED == 1
    assert f"{needy}: 1 problem: 1 host (toy_needy 1)" in failed.stdout and "OK" not in failed.stdout
    assert failed.stderr == (
        f"vfleet: {needy}:2: n1: the toy_needy driver needs the Python module 'vfleet_no_such_module_4711': "
        "pip install vfleet-no-such-package\n"
    )
