"""YAML inventory -> typed Inventory, with errors that name file:line and the key.

The file is composed into YAML nodes (not loaded into dicts) so that every value
keeps its line number and duplicate keys are caught instead of silently
overwritten. Settings are inherited: defaults, then each group the host names,
in order, then the host itself; tags accumulate, read_only and protected are
sticky (any level can switch them on, none can switch them back off).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from vfleet.core.errors import InventoryError, UsageError
from vfleet.core.models import HostConfig, SshSettings, TlsSettings
from vfleet.drivers.registry import DRIVERS

SCHEMA_VERSION = 1
ENV_VAR = "VFLEET_INVENTORY"

# Keys every level (defaults, group, host) may set.
_SETTING_KEYS = (
    "poll_interval",
    "connect_timeout",
    "call_timeout",
    "reconnect_max",
    "read_only",
    "protected",
    "protected_domains",
    "tags",
    "user",
    "port",
    "password_env",
    "ssh",
    "tls",
)
_HOST_KEYS = ("name", "driver", "uri", "address", "groups", "options", *_SETTING_KEYS)
_GROUP_KEYS = ("description", *_SETTING_KEYS)
_TOP_KEYS = ("version", "defaults", "groups", "hosts")
_SSH_KEYS = {"agent": bool, "key_file": str, "known_hosts": str, "config": bool}
_TLS_KEYS = {"insecure": bool, "ca_file": str, "thumbprint": str}
# Connection keys and the transports they belong to.
_CONNECTION_KEYS = {
    "uri": ("uri",),
    "address": ("ssh", "api"),
    "port": ("ssh", "api"),
    "user": ("ssh", "api"),
    "ssh": ("ssh",),
    "password_env": ("api",),
    "tls": ("api",),
}
_REQUIRED_BY_TRANSPORT = {"uri": ("uri",), "ssh": ("address",), "api": ("address", "user"), "none": ()}


@dataclass(frozen=True, slots=True)
class Inventory:
    path: str
    hosts: tuple[HostConfig, ...]
    groups: Mapping[str, str] = field(default_factory=dict)  # name -> description

    def host(self, name: str) -> HostConfig:
        for host in self.hosts:
            if host.name == name:
                return host
        raise UsageError(f"{self.path}: no host named {name!r} in the inventory")

    def with_read_only(self) -> Inventory:
        return replace(self, hosts=tuple(replace(h, read_only=True) for h in self.hosts))


def default_path() -> Path:
    """$VFLEET_INVENTORY, else $XDG_CONFIG_HOME/vfleet/inventory.yaml."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "vfleet" / "inventory.yaml"


def load(path: str | os.PathLike[str]) -> Inventory:
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(name, None, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(name, None, "", f"cannot read: {exc}") from None
    return parse(text, name)


def parse(text: str, path: str = "<inventory>") -> Inventory:
    return _Parser(path).parse(text)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self._scalar_loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> InventoryError:
        return InventoryError(self.path, _line(node) if node is not None else None, key, problem)

    # -- YAML node helpers -------------------------------------------------

    def mapping(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping, got {self.kind(node)}")
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if name == "<<":
                raise self.fail(key_node, where, "YAML merge keys are not supported: use defaults or groups")
            if not isinstance(name, str) or name not in allowed:
                raise self.fail(key_node, where, f"unknown key (expected one of: {', '.join(allowed)})")
            if name in seen:
                raise self.fail(key_node, where, f"duplicate key (first set on line {_line(seen[name])})")
            seen[name] = value_node
        return seen

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.scalar(node)
        return "nothing" if value is None else f"{type(value).__name__} {node.value!r}"

    def scalar(self, node: yaml.Node) -> Any:
        return self._scalar_loader.construct_object(node) if isinstance(node, yaml.ScalarNode) else node

    def value(self, node: yaml.Node, key: str, want: type) -> Any:
        value = self.scalar(node)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if not ok or isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            raise self.fail(node, key, f"expected {_type_word(want)}, got {self.kind(node)}")
        return value

    def positive(self, node: yaml.Node, key: str) -> float:
        number: float = self.value(node, key, float)
        if not number > 0:
            raise self.fail(node, key, f"must be greater than 0, got {number}")
        return number

    def at_least_one(self, node: yaml.Node, key: str) -> float:
        number: float = self.value(node, key, float)
        if not number >= 1:
            raise self.fail(node, key, f"must be 1 or more, got {number}")
        return number

    def port(self, node: yaml.Node, key: str) -> int:
        number: int = self.value(node, key, int)
        if not 1 <= number <= 65535:
            raise self.fail(node, key, f"must be a TCP port (1-65535), got {number}")
        return number

    def strings(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of strings, got {self.kind(node)}")
        items = [self.value(item, f"{key}[{i}]", str) for i, item in enumerate(node.value)]
        for i, item in enumerate(items):
            if not item.strip():
                raise self.fail(node.value[i], f"{key}[{i}]", "must not be empty")
        return tuple(items)

    def text(self, node: yaml.Node, key: str) -> str:
        value: str = self.value(node, key, str)
        if not value.strip():
            raise self.fail(node, key, "must not be empty")
        return value

    # -- document ----------------------------------------------------------

    def parse(self, text: str) -> Inventory:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            context = ""
            if exc.context and exc.context_mark is not None:
                context = f" ({exc.context} started on line {exc.context_mark.line + 1})"
            raise InventoryError(self.path, line, "", f"YAML syntax error: {exc.problem or exc}{context}") from None
        except yaml.YAMLError as exc:
            raise InventoryError(self.path, None, "", f"YAML error: {exc}") from None
        if root is None:
            raise InventoryError(self.path, None, "hosts", "the inventory is empty: list at least one host")
        top = self.mapping(root, "", _TOP_KEYS)
        if "version" in top:
            version = self.value(top["version"], "version", int)
            if version != SCHEMA_VERSION:
                raise self.fail(
                    top["version"], "version", f"unsupported version {version} (this vfleet reads {SCHEMA_VERSION})"
                )
        defaults = self.settings(top["defaults"], "defaults", _SETTING_KEYS) if "defaults" in top else {}
        groups: dict[str, dict[str, Any]] = {}
        descriptions: dict[str, str] = {}
        if "groups" in top:
            group_nodes = self.mapping_of_names(top["groups"], "groups")
            for name, node in group_nodes.items():
                groups[name] = self.settings(node, f"groups.{name}", _GROUP_KEYS)
                descriptions[name] = str(groups[name].pop("description", ""))
        if "hosts" not in top:
            raise self.fail(root, "hosts", "missing required key")
        hosts_node = top["hosts"]
        if not isinstance(hosts_node, yaml.SequenceNode) or not hosts_node.value:
            raise self.fail(hosts_node, "hosts", "expected a non-empty list of hosts")
        hosts: list[HostConfig] = []
        first_line: dict[str, int] = {}
        for index, node in enumerate(hosts_node.value):
            host = self.host(node, f"hosts[{index}]", defaults, groups)
            if host.name in first_line:
                raise self.fail(
                    node,
                    f"hosts[{host.name}].name",
                    f"duplicate host name {host.name!r} (first defined on line {first_line[host.name]})",
                )
            first_line[host.name] = _line(node)
            hosts.append(host)
        return Inventory(self.path, tuple(hosts), descriptions)

    def mapping_of_names(self, node: yaml.Node, key: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping of names, got {self.kind(node)}")
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = self.value(key_node, key, str)
            if name in result:
                raise self.fail(
                    key_node, f"{key}.{name}", f"duplicate name (first defined on line {_line(result[name])})"
                )
            result[name] = value_node
        return result

    def settings(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Validate one level of settings; values are typed, nested ones kept with their node."""
        fields = self.mapping(node, key, allowed)
        out: dict[str, Any] = {"_nodes": fields}
        readers: dict[str, Callable[[yaml.Node, str], Any]] = {
            "poll_interval": self.positive,
            "connect_timeout": self.positive,
            "call_timeout": self.positive,
            "reconnect_max": self.at_least_one,
            "read_only": lambda n, k: self.value(n, k, bool),
            "protected": lambda n, k: self.value(n, k, bool),
            "protected_domains": self.strings,
            "tags": self.strings,
            "groups": self.strings,
            "user": self.text,
            "port": self.port,
            "password_env": self.text,
            "name": self.text,
            "driver": self.text,
            "uri": self.text,
            "address": self.text,
            "description": lambda n, k: self.value(n, k, str),
            "ssh": lambda n, k: self.submapping(n, k, _SSH_KEYS),
            "tls": lambda n, k: self.submapping(n, k, _TLS_KEYS),
            "options": lambda n, k: n,  # checked against the driver's spec later
        }
        for name, value_node in fields.items():
            out[name] = readers[name](value_node, f"{key}.{name}")
        return out

    def submapping(self, node: yaml.Node, key: str, schema: Mapping[str, type]) -> dict[str, Any]:
        fields = self.mapping(node, key, tuple(schema))
        return {name: self.value(value, f"{key}.{name}", schema[name]) for name, value in fields.items()}

    # -- hosts -------------------------------------------------------------

    def host(
        self, node: yaml.Node, key: str, defaults: dict[str, Any], groups: dict[str, dict[str, Any]]
    ) -> HostConfig:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping, got {self.kind(node)}")
        # Find the name first, so every later message can say which host it is about.
        name_nodes = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "name"]
        if not name_nodes:
            raise self.fail(node, f"{key}.name", "missing required key")
        name = self.text(name_nodes[0], f"{key}.name")
        key = f"hosts[{name}]"
        own = self.settings(node, key, _HOST_KEYS)
        nodes: dict[str, yaml.Node] = own["_nodes"]
        if "driver" not in own:
            raise self.fail(node, f"{key}.driver", "missing required key")
        spec = DRIVERS.get(own["driver"])
        if spec is None:
            raise self.fail(
                nodes["driver"],
                f"{key}.driver",
                f"unknown driver {own['driver']!r} (expected one of: {', '.join(DRIVERS)})",
            )
        levels = [defaults]
        for i, group in enumerate(own.get("groups", ())):
            if group not in groups:
                raise self.fail(
                    nodes["groups"],
                    f"{key}.groups[{i}]",
                    f"unknown group {group!r} (defined groups: {', '.join(groups) or 'none'})",
                )
            levels.append(groups[group])
        levels.append(own)
        merged = self.merge(levels)
        for conn_key, transports in _CONNECTION_KEYS.items():
            if conn_key in own and spec.transport not in transports:
                raise self.fail(nodes[conn_key], f"{key}.{conn_key}", f"not used by the {spec.name} driver")
        for required in _REQUIRED_BY_TRANSPORT[spec.transport]:
            if required not in merged:
                raise self.fail(node, f"{key}.{required}", f"missing required key for the {spec.name} driver")
        options = self.options(nodes.get("options"), f"{key}.options", spec.options, spec.name)
        ssh = {k: v for k, v in merged.get("ssh", {}).items()}
        tls = {k: v for k, v in merged.get("tls", {}).items()}
        if spec.transport == "ssh":
            ssh.setdefault("agent", True)
        return HostConfig(
            name=name,
            driver=spec.name,
            uri=merged.get("uri"),
            address=merged.get("address"),
            port=merged.get("port") if spec.transport in ("ssh", "api") else None,
            user=merged.get("user") if spec.transport in ("ssh", "api") else None,
            password_env=merged.get("password_env") if spec.transport == "api" else None,
            ssh=SshSettings(**ssh),
            tls=TlsSettings(**tls),
            tags=frozenset(merged.get("tags", ())),
            groups=tuple(own.get("groups", ())),
            poll_interval=merged.get("poll_interval", 2.0),
            connect_timeout=merged.get("connect_timeout", 10.0),
            call_timeout=merged.get("call_timeout", 15.0),
            reconnect_max=merged.get("reconnect_max", 8.0),
            read_only=bool(merged.get("read_only", False)),
            protected=bool(merged.get("protected", False)),
            protected_domains=tuple(merged.get("protected_domains", ())),
            options=options,
            source=f"{self.path}:{_line(node)}",
        )

    @staticmethod
    def merge(levels: list[dict[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for level in levels:
            for name, value in level.items():
                if name == "_nodes":
                    continue
                if name in ("tags", "protected_domains"):
                    merged[name] = tuple(dict.fromkeys((*merged.get(name, ()), *value)))
                elif name in ("read_only", "protected"):
                    merged[name] = bool(merged.get(name, False)) or value
                elif name in ("ssh", "tls"):
                    merged[name] = {**merged.get(name, {}), **value}
                else:
                    merged[name] = value
        return merged

    def options(self, node: yaml.Node | None, key: str, schema: Mapping[str, type], driver: str) -> dict[str, object]:
        if node is None:
            return {}
        if not schema:
            raise self.fail(node, key, f"the {driver} driver takes no options")
        fields = self.mapping(node, key, tuple(schema))
        return {name: self.value(value, f"{key}.{name}", schema[name]) for name, value in fields.items()}


def _type_word(want: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(want, want.__name__)
