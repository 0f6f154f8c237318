"""Fixtures of the fault suite: fake hosts as processes, bad links, black holes, and the
healthy hosts every case keeps beside its faulty ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import need_backend
from faults.harness import FakeHost, Keyring, NetFault, Vfleet, black_hole, netns_available
from nodexml import RUNNING, SHUTOFF, write_node


@pytest.fixture(autouse=True)
def _reap_vfleet() -> Iterator[None]:
    """A test that failed before its `vfleet` exited must not leave it running."""
    yield
    Vfleet.reap()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("faults-keys"))


@pytest.fixture(scope="module")
def fakes(keys: Keyring) -> Iterator[Callable[..., FakeHost]]:
    """Start fake hosts; all of them are stopped when the module is done."""
    started: list[FakeHost] = []

    def start(name: str, kind: str = "xen", guests: list[str] | None = None, **control: Any) -> FakeHost:
        host = FakeHost(keys, name, kind, guests, **control).start()
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture(scope="module")
def nets() -> Iterator[Callable[..., NetFault]]:
    started: list[NetFault] = []

    def start(kind: str, **options: Any) -> NetFault:
        fault = NetFault.proxy(**options) if kind == "proxy" else NetFault.nobanner()
        started.append(fault)
        return fault

    yield start
    for fault in started:
        fault.stop()


@pytest.fixture(scope="module")
def blackhole_address() -> Iterator[str]:
    need_backend("ip netns (iproute2, root)", shutil.which("ip") is not None and netns_available())
    with black_hole() as address:
        yield address


@pytest.fixture(scope="module")
def libvirt_test_host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A libvirt test-driver host (no daemon): healthy, and read in vfleet's own process."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        need_backend("libvirt-python", False)
    node = write_node(tmp_path_factory.mktemp("faults-node") / "node.xml", [("lt1", RUNNING), ("lt2", SHUTOFF)])
    return {"name": "lv-test", "driver": "libvirt", "uri": f"test://{node}"}


@pytest.fixture(scope="module")
def healthy(fakes: Callable[..., FakeHost], libvirt_test_host: dict[str, Any]) -> list[dict[str, Any]]:
    """Healthy hosts of every transport; each case puts them beside its faulty ones."""
    xen_ok = fakes("xen-ok")
    esx_ok = fakes("esx-ok", kind="esxi")
    return [xen_ok.entry(), esx_ok.entry(), libvirt_test_host]

