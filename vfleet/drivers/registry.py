"""Which drivers exist and what they need, without importing any backend.

The inventory validates hosts against these specs; `create_driver` imports a
backend module only when a host actually uses it, so an ESXi-only inventory
never loads libvirt and a missing optional package is a one-line error.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from vfleet.core.errors import MissingDependency, UsageError
from vfleet.core.models import HostConfig
from vfleet.drivers.base import Driver


@dataclass(frozen=True, slots=True)
class DriverSpec:
    name: str
    module: str
    class_name: str
    transport: str  # "uri", "ssh", "api" or "none": which connection keys apply
    summary: str
    options: Mapping[str, type] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # python modules the backend imports
    install_hint: str = ""


DRIVERS: Mapping[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec(
            "libvirt",
            "vfleet.drivers.libvirt.driver",
            "LibvirtDriver",
            "uri",
            "KVM/QEMU, Xen (libxl) and anything else libvirt speaks",
            requires=("libvirt",),
            install_hint="pip install 'vfleet[libvirt]' (needs apt: libvirt-dev pkg-config gcc)",
        ),
        DriverSpec(
            "xen_xl",
            "vfleet.drivers.xen.xl",
            "XenXlDriver",
            "ssh",
            "Xen dom0 with the xl toolstack, over SSH",
            options={"config_dir": str},
        ),
        DriverSpec(
            "esxi_api",
            "vfleet.drivers.esxi.api",
            "EsxiApiDriver",
            "api",
            "ESXi or vCenter through the vSphere API",
            requires=("pyVmomi",),
            install_hint="pip install 'vfleet[esxi]'",
        ),
        DriverSpec(
            "esxi_ssh",
            "vfleet.drivers.esxi.ssh",
            "EsxiSshDriver",
            "ssh",
            "free-license ESXi through vim-cmd over SSH",
        ),
        DriverSpec(
            "sim",
            "vfleet.drivers.sim",
            "SimDriver",
            "none",
            "the built-in simulated fleet (demo and tests)",
            options={
                "flavour": str,
                "domains": int,
                "seed": int,
                "flaky": bool,
                "latency": float,
                "hostile": bool,
            },
        ),
    )
}


def driver_class(name: str) -> type[Driver]:
    spec = DRIVERS.get(name)
    if spec is None:
        raise UsageError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})")
    for module in spec.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(
                f"the {name} driver needs the Python module {module!r}: {spec.install_hint}"
            ) from exc
    try:
        backend = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name == spec.module:
            raise UsageError(f"the {name} driver is not available in this version of vfleet") from exc
        raise
    cls: type[Driver] = getattr(backend, spec.class_name)
    return cls


def create_driver(config: HostConfig, *, read_only: bool = False) -> Driver:
    return driver_class(config.driver)(config, read_only=read_only)


def check_available(names: set[str]) -> None:
    """Fail early, with the install hint, when a backend the inventory uses is missing."""
    for name in sorted(names):
        driver_class(name)
