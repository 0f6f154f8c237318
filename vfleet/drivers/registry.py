"""Which drivers exist, found through the `vfleet.drivers` entry-point group.

A driver package registers its spec (vfleet.drivers.spec.DriverSpec) in its
pyproject.toml, as vfleet registers its own:

    [project.entry-points."vfleet.drivers"]
    libvirt = "vfleet.drivers.libvirt:SPEC"

Built-in names resolve from BUILTIN without scanning the installed distributions
(that scan and importlib.metadata cost about 40 ms at every start, and a source
checkout may carry metadata older than its entry points); the scan runs only for
other names, or to list every driver. Built-in names are reserved: a plugin cannot
replace them. `create_driver` imports a backend module only when a host uses it, so
an ESXi-only inventory never loads libvirt and a missing package is a one-line error.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vfleet.core.errors import MissingDependency, UsageError
from vfleet.core.models import HostConfig, Value
from vfleet.drivers.base import Driver
from vfleet.drivers.spec import DriverSpec

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "vfleet.drivers"
# Exactly what pyproject.toml registers (tests/test_registry.py keeps the two equal).
BUILTIN: Mapping[str, str] = {
    "libvirt": "vfleet.drivers.libvirt:SPEC",
    "xen_xl": "vfleet.drivers.xen:SPEC",
    "esxi_api": "vfleet.drivers.esxi:API_SPEC",
    "esxi_ssh": "vfleet.drivers.esxi:SSH_SPEC",
    "sim": "vfleet.drivers.sim:SPEC",
    "xapi": "vfleet.drivers.xapi:SPEC",
}
log = logging.getLogger(__name__)


class DriverLoadError(UsageError):
    """A registered driver whose spec cannot be loaded (a broken or half-installed plugin)."""


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Registration(Value):
    name: str
    value: str  # "module:ATTRIBUTE"
    source: str  # "built-in" or the distribution that registered it


_plugins: dict[str, Registration] | None = None
_loaded: dict[str, DriverSpec] = {}


def refresh() -> None:
    """Forget what was found and loaded (for a plugin installed while running, and tests)."""
    global _plugins
    _plugins = None
    _loaded.clear()


def registrations() -> list[Registration]:
    """Every registered driver, built-in ones first, without loading any."""
    builtin = [Registration(name, value, "built-in") for name, value in BUILTIN.items()]
    return builtin + sorted(_scan().values(), key=lambda r: r.name)


def names() -> list[str]:
    return [r.name for r in registrations()]


def find(name: str) -> DriverSpec | None:
    """The spec registered as `name`, None if there is none; DriverLoadError if it is broken."""
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        registration = Registration(name, BUILTIN[name], "built-in")
    else:
        found = _scan().get(name)
        if found is None:
            return None
        registration = found
    spec = _load(registration)
    _loaded[name] = spec
    return spec


def get(name: str) -> DriverSpec:
    spec = find(name)
    if spec is None:
        raise UsageError(f"unknown driver {name!r} (known: {', '.join(names())})")
    return spec


def missing_modules(spec: DriverSpec) -> list[str]:
    """The Python modules the driver needs that cannot be imported here."""
    missing = []
    for module in spec.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def driver_class(name: str) -> type[Driver]:
    spec = get(name)
    for module in spec.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(
                f"the {name} driver needs the Python module {module!r}: {spec.install_hint}"
            ) from exc
    try:
        backend = importlib.import_module(spec.module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and f"{spec.module_name}.".startswith(f"{exc.name}."):
            raise DriverLoadError(f"the {name} driver's module {spec.module_name} is not installed") from exc
        raise
    cls = getattr(backend, spec.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverLoadError(f"the {name} driver names {spec.driver}, which is not a vfleet Driver class")
    return cls


def create_driver(config: HostConfig, *, read_only: bool = False) -> Driver:
    return driver_class(config.driver)(config, read_only=read_only)


def check_available(names: Iterable[str]) -> None:
    """Fail early, with the install hint, when a backend the inventory uses is missing."""
    for name in sorted(set(names)):
        driver_class(name)


def _scan() -> dict[str, Registration]:
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points  # only here: it costs ~30 ms to import

        _plugins = {}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            _add_plugin(_plugins, entry)
    return _plugins


def _add_plugin(plugins: dict[str, Registration], entry: EntryPoint) -> None:
    source = entry.dist.name if entry.dist is not None else "an unnamed distribution"
    if entry.name in BUILTIN:
        if entry.value != BUILTIN[entry.name]:
            log.warning("%s registers a driver named %r: ignored, that name is built in", source, entry.name)
        return
    first = plugins.get(entry.name)
    if first is not None:
        if first.value != entry.value:
            log.warning("%s registers a driver named %r: ignored, %s registered it first",
                        source, entry.name, first.source)
        return
    plugins[entry.name] = Registration(entry.name, entry.value, source)


def _load(registration: Registration) -> DriverSpec:
    module_name, _, attribute = registration.value.partition(":")
    where = f"{registration.value} ({registration.source})"
    try:
        spec = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # a plugin's import can fail in any way: say which, never crash
        raise DriverLoadError(
            f"driver {registration.name!r}: cannot load {where}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    if not isinstance(spec, DriverSpec):
        raise DriverLoadError(f"driver {registration.name!r}: {where} is not a DriverSpec")
    if spec.name != registration.name:
        raise DriverLoadError(f"driver {registration.name!r}: {where} describes a driver named {spec.name!r}")
    return spec
