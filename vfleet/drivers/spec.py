"""How a driver describes itself: its inventory keys, its transport, what it needs.

A driver family declares one `DriverSpec` per driver in a light module (its package's
`__init__`) that never imports the backend library, and registers it under the
`vfleet.drivers` entry-point group. The inventory validates hosts from these specs,
`vfleet inventory keys` and the README's key reference print them, and the driver class
itself is named as "module:Class" so that it is imported only when a host uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfleet.core.models import Value

# The connection keys the inventory knows (they map onto HostConfig fields); a transport
# says which of them apply to its drivers and which are required.
CONNECTION_KEYS = ("uri", "address", "port", "user", "password_env", "ssh", "tls")
_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list of strings",
    dict: "mapping",
}


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class KeySpec(Value):
    """One inventory key: its YAML type, default, one-line doc and bounds."""

    name: str
    type: type  # str, int, float (an integer is accepted), bool, list (of strings) or dict (of `keys`)
    default: object = None  # None: not set unless the inventory sets it
    doc: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound ("greater than 0")
    keys: tuple[KeySpec, ...] = ()  # the sub-keys of a dict key
    shown_as: str = ""  # the type as the docs say it, when the inventory checks it itself

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"key {self.name!r}: unsupported type {self.type!r} (expected one of {list(_TYPES)})")
        if not self.doc or "\n" in self.doc:
            raise ValueError(f"key {self.name!r}: the doc must be one line")
        if self.choices and (self.type is not str or (self.default is not None and self.default not in self.choices)):
            raise ValueError(f"key {self.name!r}: choices are strings, and the default is one of them")
        if self.default is not None and not _fits(self.default, self.type):
            raise ValueError(f"key {self.name!r}: the default {self.default!r} does not fit {self.type_word}")

    @property
    def type_word(self) -> str:
        """The type as the docs and error messages say it, bounds included."""
        word = self.shown_as or _TYPES[self.type]
        if self.choices:
            return " | ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{word} {self.minimum:g}-{self.maximum:g}"
        if self.above is not None:
            return f"{word} > {self.above:g}"
        if self.minimum is not None:
            return f"{word} >= {self.minimum:g}"
        if self.maximum is not None:
            return f"{word} <= {self.maximum:g}"
        return word

    @property
    def default_word(self) -> str:
        if self.required:
            return "required"
        if self.default is None:
            return "-"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Transport(Value):
    """Which connection keys a driver uses, and which of them a host must set."""

    name: str  # shown in docs: "libvirt URI", "SSH", "API" ...
    keys: tuple[str, ...]
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in (*self.keys, *self.required) if k not in CONNECTION_KEYS]
        if unknown or not set(self.required) <= set(self.keys):
            raise ValueError(f"transport {self.name!r}: bad keys {unknown or self.required}")


URI = Transport("libvirt URI", ("uri",), ("uri",))
SSH = Transport("SSH", ("address", "port", "user", "ssh"), ("address",))
API = Transport("API", ("address", "port", "user", "password_env", "tls"), ("address", "user"))
NONE = Transport("none", ())


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DriverSpec(Value):
    """Everything vfleet needs to know about a driver before importing it."""

    name: str  # the inventory's `driver:` value
    driver: str  # "package.module:Class", imported when a host uses the driver
    summary: str
    transport: Transport
    options: tuple[KeySpec, ...] = ()  # the host's `options:` keys
    requires: tuple[str, ...] = ()  # Python modules the backend imports
    install_hint: str = ""  # what to run when one of `requires` is missing

    def __post_init__(self) -> None:
        module, _, cls = self.driver.partition(":")
        if not module or not cls:
            raise ValueError(f"driver {self.name!r}: driver must be 'module:Class', got {self.driver!r}")
        if self.requires and not self.install_hint:
            raise ValueError(f"driver {self.name!r}: say how to install {', '.join(self.requires)}")

    @property
    def module_name(self) -> str:
        return self.driver.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.driver.partition(":")[2]


def _fits(value: object, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)
