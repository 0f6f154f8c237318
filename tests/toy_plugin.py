"""A third-party driver package, "installed" the way pip would leave it: a module and a
dist-info directory with entry points, on sys.path. Nothing is installed into the venv;
importlib.metadata finds the dist-info because its directory is on sys.path (or
PYTHONPATH, for a subprocess)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vfleet.drivers import registry

MODULE = "toy_vfleet_driver"
DRIVER_SOURCE = '''\
"""A third-party driver: the simulator's behaviour under another name and its own keys."""

from vfleet.drivers.sim import SimDriver
from vfleet.drivers.spec import NONE, DriverSpec, KeySpec

SPEC = DriverSpec(
    name="toy",
    driver="toy_vfleet_driver:ToyDriver",
    summary="a third-party test driver",
    transport=NONE,
    options=(
        KeySpec("domains", int, 6, "how many toy domains", minimum=1),
        KeySpec("latency", float, 0.001, "seconds per round trip", minimum=0),
        KeySpec("colour", str, "red", "the toy's colour", choices=("red", "blue")),
    ),
)

# A driver whose Python dependency is missing here: `inventory check` must say so.
NEEDY = DriverSpec(
    name="toy_needy",
    driver="toy_vfleet_driver:ToyDriver",
    summary="a third-party test driver that needs a package nobody has",
    transport=NONE,
    requires=("vfleet_no_such_module_4711",),
    install_hint="pip install vfleet-no-such-package",
)


class ToyDriver(SimDriver):
    kind = "toy"
'''
ENTRY_POINTS = f"""\
[vfleet.drivers]
toy = {MODULE}:SPEC
toy_needy = {MODULE}:NEEDY
toy_broken = {MODULE}_missing:SPEC
"""


def write_dist(site: Path, name: str, entry_points: str) -> None:
    """A dist-info directory, as pip writes one, registering `entry_points`."""
    dist_info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(entry_points)


def write_plugin(root: Path) -> Path:
    """Write the package under `root`; returns the directory to put on sys.path."""
    site = root / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{MODULE}.py").write_text(DRIVER_SOURCE)
    write_dist(site, "toy-vfleet-driver", ENTRY_POINTS)
    return site


@contextmanager
def installed(root: Path) -> Iterator[Path]:
    """The toy package on sys.path for the duration, and a registry that sees it."""
    site = write_plugin(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        registry.refresh()
        try:
            yield site
        finally:
            sys.modules.pop(MODULE, None)
    registry.refresh()
