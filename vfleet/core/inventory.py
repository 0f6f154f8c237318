"""YAML inventory -> typed Inventory, with errors that name file:line and the key.

The file is composed into YAML nodes (not loaded into dicts) so that every value
keeps its line number and duplicate keys are caught instead of silently
overwritten. Settings are inherited: defaults, then each group the host names,
in order, then the host itself; tags accumulate, read_only and protected are
sticky (any level can switch them on, none can switch them back off).

Nothing here knows a particular driver: a host's connection keys and `options`
are checked against the spec its driver registered (vfleet.drivers.spec).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from vfleet.core import yamlnodes
from vfleet.core.errors import InventoryError, UsageError
from vfleet.core.models import HostConfig, SshSettings, TlsSettings, Value
from vfleet.drivers import registry
from vfleet.drivers.spec import CONNECTION_KEYS, DriverSpec, KeySpec

SCHEMA_VERSION = 1
ENV_VAR = "VFLEET_INVENTORY"

_SSH_KEYS = (
    KeySpec("agent", bool, True, "offer keys from the ssh agent ($SSH_AUTH_SOCK)"),
    KeySpec("key_file", str, None, "a private key file"),
    KeySpec("known_hosts", str, None, "host keys are always verified against this file (default ~/.ssh/known_hosts)"),
    KeySpec("config", bool, True, "honour ~/.ssh/config (Host aliases, User, Port, ProxyJump)"),
)
_TLS_KEYS = (
    KeySpec("insecure", bool, False, "skip certificate checks (always shown as a warning)"),
    KeySpec("ca_file", str, None, "trust this CA bundle instead of the system's"),
    KeySpec("thumbprint", str, None, "pin the certificate by its SHA-256 (or SHA-1) fingerprint"),
)
# Keys every level (defaults, group, host) may set.
_SETTING_KEYS = (
    KeySpec("poll_interval", float, 2.0, "seconds between polls of a host", above=0),
    KeySpec("connect_timeout", float, 10.0, "seconds to wait for a connection before the host is down", above=0),
    KeySpec("call_timeout", float, 15.0, "seconds to wait for any one call to a host", above=0),
    KeySpec("reconnect_max", float, 8.0, "longest pause, in seconds, between reconnection attempts", minimum=1),
    KeySpec("read_only", bool, False, "refuse every mutating action; sticky: once on at any level, on for the host"),
    KeySpec("protected", bool, False, "refuse destructive actions (force-off, reset) without override; sticky"),
    KeySpec("protected_domains", list, None, "glob patterns of domain names to protect; they add up across levels"),
    KeySpec("tags", list, None, "labels for filters (`tag:prod`); they add up across levels"),
    KeySpec("user", str, None, "login for SSH and API drivers"),
    KeySpec("port", int, None, "TCP port, when not the transport's usual one", minimum=1, maximum=65535),
    KeySpec("password_env", str, None, "the NAME of the environment variable holding the password"),
    KeySpec("ssh", dict, None, "how SSH drivers log in", keys=_SSH_KEYS),
    KeySpec("tls", dict, None, "how API drivers verify TLS", keys=_TLS_KEYS),
)
_HOST_ONLY_KEYS = (
    KeySpec("name", str, None, "the host's name, unique in the inventory", required=True),
    KeySpec("driver", str, None, "which driver talks to it (`vfleet inventory keys` lists them)", required=True),
    KeySpec("uri", str, None, "a libvirt connection URI; `+ssh` transports never prompt (vfleet adds `no_tty=1`)"),
    KeySpec("address", str, None, "host name or IP address (or a Host alias of ~/.ssh/config)"),
    KeySpec("groups", list, None, "groups to inherit settings from, in order"),
    KeySpec("options", dict, None, "the driver's own keys (below)"),
)
_GROUP_ONLY_KEYS = (KeySpec("description", str, None, "free text, shown by `inventory check`"),)
_TOP_KEYS = (
    KeySpec("version", int, SCHEMA_VERSION, "inventory format version"),
    KeySpec("defaults", dict, None, "settings for every host"),
    KeySpec("groups", dict, None, "named settings (and a description) that hosts join", shown_as="mapping of names"),
    KeySpec("hosts", list, None, "the hosts, each a mapping of the keys below", required=True, shown_as="list"),
)
_HOST_KEYS = (*_HOST_ONLY_KEYS, *_SETTING_KEYS)
_GROUP_KEYS = (*_GROUP_ONLY_KEYS, *_SETTING_KEYS)
_ADDED_UP = ("tags", "protected_domains")
_STICKY = ("read_only", "protected")
_SUBMAPPINGS = ("ssh", "tls")


def key_sections() -> list[tuple[str, tuple[KeySpec, ...]]]:
    """The inventory's own keys by where they may appear, for `inventory keys` and the README."""
    return [
        ("top", _TOP_KEYS),
        ("host", _HOST_ONLY_KEYS),
        ("group", _GROUP_ONLY_KEYS),
        ("any level", _SETTING_KEYS),
    ]


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Inventory(Value):
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
    return parse(yamlnodes.read(name), name)


def parse(text: str, path: str = "<inventory>") -> Inventory:
    return _Parser(path).parse(text)


_line = yamlnodes.line_of
_named = yamlnodes.named


class _Parser(yamlnodes.NodeReader):
    merge_hint = ": use defaults or groups"

    # -- document ----------------------------------------------------------

    def parse(self, text: str) -> Inventory:
        root = yamlnodes.compose(text, self.path)
        if root is None:
            raise InventoryError(self.path, None, "hosts", "the inventory is empty: list at least one host")
        top = self.mapping(root, "", _named(_TOP_KEYS))
        if "version" in top:
            version = self.value(top["version"], "version", int)
            if version != SCHEMA_VERSION:
                raise self.fail(
                    top["version"], "version", f"unsupported version {version} (this vfleet reads {SCHEMA_VERSION})"
                )
        defaults = self.settings(top["defaults"], "defaults", _named(_SETTING_KEYS)) if "defaults" in top else {}
        groups: dict[str, dict[str, Any]] = {}
        descriptions: dict[str, str] = {}
        if "groups" in top:
            group_keys = _named(_GROUP_KEYS)
            for name, node in self.mapping_of_names(top["groups"], "groups").items():
                groups[name] = self.settings(node, f"groups.{name}", group_keys)
                descriptions[name] = str(groups[name].pop("description", ""))
        if "hosts" not in top:
            raise self.fail(root, "hosts", "missing required key")
        hosts_node = top["hosts"]
        if not isinstance(hosts_node, yaml.SequenceNode) or not hosts_node.value:
            raise self.fail(hosts_node, "hosts", "expected a non-empty list of hosts")
        hosts: list[HostConfig] = []
        first_line: dict[str, int] = {}
        host_keys = _named(_HOST_KEYS)
        for index, node in enumerate(hosts_node.value):
            host = self.host(node, f"hosts[{index}]", host_keys, defaults, groups)
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

    def settings(self, node: yaml.Node, key: str, allowed: Mapping[str, KeySpec]) -> dict[str, Any]:
        """Validate one level of settings; `_nodes` keeps each key's node for later messages."""
        fields = self.mapping(node, key, allowed)
        out: dict[str, Any] = {"_nodes": fields}
        for name, value_node in fields.items():
            if name == "options":  # checked against the driver's spec once the driver is known
                out[name] = value_node
            else:
                out[name] = self.read(allowed[name], value_node, f"{key}.{name}")
        return out

    # -- hosts -------------------------------------------------------------

    def host(
        self,
        node: yaml.Node,
        key: str,
        allowed: Mapping[str, KeySpec],
        defaults: dict[str, Any],
        groups: dict[str, dict[str, Any]],
    ) -> HostConfig:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping, got {self.kind(node)}")
        # Find the name first, so every later message can say which host it is about.
        name_node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "name"), None)
        if name_node is None:
            raise self.fail(node, f"{key}.name", "missing required key")
        name = self.text(name_node, f"{key}.name")
        key = f"hosts[{name}]"
        own = self.settings(node, key, allowed)
        nodes: dict[str, yaml.Node] = own["_nodes"]
        if "driver" not in own:
            raise self.fail(node, f"{key}.driver", "missing required key")
        spec = self.driver(own["driver"], nodes["driver"], f"{key}.driver")
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
        uses = spec.transport.keys
        for conn_key in CONNECTION_KEYS:
            if conn_key in own and conn_key not in uses:
                raise self.fail(nodes[conn_key], f"{key}.{conn_key}", f"not used by the {spec.name} driver")
        for required in spec.transport.required:
            if required not in merged:
                raise self.fail(node, f"{key}.{required}", f"missing required key for the {spec.name} driver")
        options = self.options(node, nodes.get("options"), f"{key}.options", spec)
        return HostConfig(
            name=name,
            driver=spec.name,
            uri=merged.get("uri") if "uri" in uses else None,
            address=merged.get("address") if "address" in uses else None,
            port=merged.get("port") if "port" in uses else None,
            user=merged.get("user") if "user" in uses else None,
            password_env=merged.get("password_env") if "password_env" in uses else None,
            ssh=SshSettings(**merged.get("ssh", {})),
            tls=TlsSettings(**merged.get("tls", {})),
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

    def driver(self, name: str, node: yaml.Node, key: str) -> DriverSpec:
        try:
            spec = registry.find(name)
        except registry.DriverLoadError as exc:
            raise self.fail(node, key, str(exc)) from None
        if spec is None:
            raise self.fail(node, key, f"unknown driver {name!r} (expected one of: {', '.join(registry.names())})")
        return spec

    @staticmethod
    def merge(levels: list[dict[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for level in levels:
            for name, value in level.items():
                if name == "_nodes":
                    continue
                if name in _ADDED_UP:
                    merged[name] = tuple(dict.fromkeys((*merged.get(name, ()), *value)))
                elif name in _STICKY:
                    merged[name] = bool(merged.get(name, False)) or value
                elif name in _SUBMAPPINGS:
                    merged[name] = {**merged.get(name, {}), **value}
                else:
                    merged[name] = value
        return merged

    def options(self, host: yaml.Node, node: yaml.Node | None, key: str, spec: DriverSpec) -> dict[str, object]:
        """The host's options checked against its driver's spec, with the spec's defaults filled in."""
        given: dict[str, object] = {}
        if node is not None:
            if not spec.options:
                raise self.fail(node, key, f"the {spec.name} driver takes no options")
            allowed = _named(spec.options)
            fields = self.mapping(node, key, allowed)
            given = {name: self.read(allowed[name], value, f"{key}.{name}") for name, value in fields.items()}
        for option in spec.options:
            if option.required and option.name not in given:
                raise self.fail(host, f"{key}.{option.name}", f"missing required key for the {spec.name} driver")
        defaults = {o.name: o.default for o in spec.options if o.default is not None}
        return {**defaults, **given}
