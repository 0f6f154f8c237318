"""The console's config file -> typed Config, with errors that name file:line and the key.

`--config FILE`, else `$VFLEET_CONFIG`, else `$XDG_CONFIG_HOME/vfleet/config.yaml`
(`~/.config/vfleet/config.yaml`). A missing default file is an empty config; a file
named explicitly must exist. It is read like the inventory (vfleet.core.yamlnodes:
bounded, line numbers kept, duplicate keys caught) and every key is a KeySpec, so
`vfleet config check` and the README say the same as the parser.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vfleet.core import yamlnodes
from vfleet.core.errors import InventoryError, UsageError, VFleetError
from vfleet.core.fields import ALWAYS_SHOWN, KEYS, SORTABLE, starts_descending
from vfleet.core.selector import Selector
from vfleet.core.thresholds import DEFAULT_THRESHOLDS, METRICS, Threshold, Thresholds
from vfleet.drivers.spec import KeySpec

SCHEMA_VERSION = 1
ENV_VAR = "VFLEET_CONFIG"
MIN_INTERVAL = 0.2  # seconds: faster than this only loads the hosts

# The console's rebindable actions: name -> (default key, as typed; what it does).
KEY_ACTIONS: dict[str, tuple[str, str]] = {
    "filter": ("/", "filter the table"),
    "mark": ("space", "mark the row"),
    "mark_filtered": ("*", "mark every row the filter shows"),
    "unmark": ("u", "unmark all"),
    "actions": ("a", "the action menu"),
    "columns": ("c", "choose the columns"),
    "freeze": ("Z", "freeze the order"),
    "open_domain": ("enter", "domain detail"),
    "open_host": ("h", "the host screen"),
    "focus_hosts": ("H", "move into the hosts list and back"),
    "job_detail": ("J", "the latest job's full results"),
    "sort_prev": ("<", "sort by the previous column"),
    "sort_next": (">", "sort by the next column"),
    "reverse_sort": ("r", "reverse the sort"),
    "hosts_pane": ("p", "show or hide the hosts pane"),
    "events_pane": ("e", "show or hide the events pane"),
    "jobs_pane": ("j", "show or hide the jobs pane"),
    "command": (":", "command line"),
    "console": ("o", "the cursor row's serial console"),
    "snapshots": ("s", "the cursor row's snapshots"),
    "help": ("?", "help"),
    "quit": ("q", "quit"),
}
# Keys that stay what they are: moving the cursor, closing things, the palette.
RESERVED_KEYS = frozenset(
    {"escape", "ctrl+c", "ctrl+p", "up", "down", "left", "right", "pageup", "pagedown", "home", "end", "tab"}
)
_KEY = re.compile(r"^((ctrl|shift|alt|meta)\+)*([a-z][a-z0-9_]*|\S)$")

_SORT_KEYS = (
    KeySpec("column", str, None, "a sortable column", required=True, choices=SORTABLE),
    KeySpec("direction", str, None, "asc or desc (default: desc for numbers, asc for text)", choices=("asc", "desc")),
)
_COLUMNS_DOC = "visible columns, in table order (name and state are always shown)"
_VIEW_KEYS = (
    KeySpec("filter", str, None, "filter terms, as typed after `/`"),
    KeySpec("sort", dict, None, "sort column and direction", keys=_SORT_KEYS),
    KeySpec("columns", list, None, _COLUMNS_DOC),
)


def _threshold_spec(metric: str, unit: str, maximum: float | None, doc: str) -> KeySpec:
    default = Thresholds().get(metric)
    bounds: dict[str, Any] = {"minimum": 0.0, "maximum": maximum} if maximum is not None else {"above": 0.0}
    return KeySpec(
        metric,
        dict,
        None,
        doc,
        keys=(
            KeySpec("warn", float, default.warn, f"warning at or above this ({unit})", **bounds),
            KeySpec("crit", float, default.crit, f"critical at or above this ({unit}); not below warn", **bounds),
        ),
    )


_THRESHOLD_KEYS = tuple(_threshold_spec(m.name, m.unit, m.maximum, m.doc) for m in METRICS)
_KEY_KEYS = tuple(KeySpec(name, str, default, doc) for name, (default, doc) in KEY_ACTIONS.items())
TOP_KEYS = (
    KeySpec("version", int, SCHEMA_VERSION, "config format version"),
    KeySpec("theme", str, None, "a Textual theme (ctrl+p lists them), e.g. textual-dark, nord, gruvbox"),
    KeySpec("interval", float, None, "seconds between polls in the console, for every host", minimum=MIN_INTERVAL),
    KeySpec("sort", dict, None, "the table's sort at start (default: host, asc)", keys=_SORT_KEYS),
    KeySpec("columns", list, None, _COLUMNS_DOC + " (default: all that fit)"),
    KeySpec("thresholds", dict, None, "warn/crit levels that colour cells", keys=_THRESHOLD_KEYS),
    KeySpec("keys", dict, None, "key overrides: action -> key", keys=_KEY_KEYS),
    KeySpec("views", dict, None, "named views: filter, sort, columns", shown_as="mapping of names", keys=_VIEW_KEYS),
)


class ConfigError(InventoryError):
    """A malformed config file; the message names file:line and the key."""


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool

    @property
    def text(self) -> str:
        return f"{self.column} {'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class View:
    name: str
    filter: str = ""
    sort: Sort | None = None
    columns: tuple[str, ...] | None = None
    source: str = ""  # file:line, for messages

    def describe(self) -> str:
        parts = [f"filter '{self.filter}'" if self.filter else "no filter"]
        if self.sort is not None:
            parts.append(f"sort {self.sort.text}")
        if self.columns is not None:
            parts.append("columns " + ",".join(self.columns))
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Config:
    path: str | None = None  # None: no file, every default
    theme: str | None = None
    interval: float | None = None
    sort: Sort | None = None
    columns: tuple[str, ...] | None = None
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    keys: Mapping[str, str] = field(default_factory=dict)  # action -> key, overrides only
    views: Mapping[str, View] = field(default_factory=dict)
    lines: Mapping[str, int] = field(default_factory=dict)  # top key -> line, for errors found at run time

    def where(self, key: str) -> str:
        """`file:line: key` of a setting, for messages about values only the console can check."""
        line = self.lines.get(key)
        return f"{self.path}:{line}: {key}" if line is not None else f"{self.path}: {key}"

    def view(self, name: str) -> View:
        if name not in self.views:
            known = ", ".join(self.views) or "none defined"
            where = self.path or default_path()
            raise UsageError(f"{where}: no view named {name!r} (views: {known})")
        return self.views[name]


def default_path() -> Path:
    """$VFLEET_CONFIG, else $XDG_CONFIG_HOME/vfleet/config.yaml."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "vfleet" / "config.yaml"


def resolve(path: str | os.PathLike[str] | None) -> Config:
    """The config named (must exist), else $VFLEET_CONFIG (must exist), else the default file if there is one."""
    if path is not None or os.environ.get(ENV_VAR):
        return load(path if path is not None else default_path())
    default = default_path()
    return load(default) if default.exists() else Config()


def load(path: str | os.PathLike[str]) -> Config:
    name = os.fspath(path)
    return parse(yamlnodes.read(name, "a config file", ConfigError), name)


def parse(text: str, path: str = "<config>") -> Config:
    return _Reader(path).parse(text)


def check_key(key: str) -> str | None:
    """What is wrong with a key as a config file or `keys:` names it, or None."""
    if key in RESERVED_KEYS:
        return f"{key!r} is reserved (cursor keys, escape, tab, ctrl+c, ctrl+p keep their meaning)"
    if not _KEY.match(key):
        return f"{key!r} is not a key: one character (/, *, Z) or a key name (enter, space, f5, ctrl+f)"
    return None


class _Reader(yamlnodes.NodeReader):
    error = ConfigError
    merge_hint = ": write views out in full"

    def parse(self, text: str) -> Config:
        root = yamlnodes.compose(text, self.path, "a config file", ConfigError)
        if root is None:
            return Config(self.path)
        top = self.mapping(root, "", yamlnodes.named(TOP_KEYS))
        specs = yamlnodes.named(TOP_KEYS)
        lines = {name: yamlnodes.line_of(node) for name, node in top.items()}
        if "version" in top:
            version = self.value(top["version"], "version", int)
            if version != SCHEMA_VERSION:
                raise self.fail(
                    top["version"], "version", f"unsupported version {version} (this vfleet reads {SCHEMA_VERSION})"
                )
        theme = self.read(specs["theme"], top["theme"], "theme") if "theme" in top else None
        interval = self.read(specs["interval"], top["interval"], "interval") if "interval" in top else None
        sort = self.sort(top["sort"], "sort") if "sort" in top else None
        columns = self.columns(top["columns"], "columns") if "columns" in top else None
        thresholds = self.thresholds(top["thresholds"]) if "thresholds" in top else Thresholds()
        keys = self.keys(top["keys"]) if "keys" in top else {}
        views = self.views(top["views"]) if "views" in top else {}
        return Config(self.path, theme, interval, sort, columns, thresholds, keys, views, lines)

    def sort(self, node: yaml.Node, key: str) -> Sort:
        fields = self.mapping(node, key, yamlnodes.named(_SORT_KEYS))
        if "column" not in fields:
            raise self.fail(node, f"{key}.column", "missing required key")
        column = self.read(_SORT_KEYS[0], fields["column"], f"{key}.column")
        if "direction" in fields:
            descending = self.read(_SORT_KEYS[1], fields["direction"], f"{key}.direction") == "desc"
        else:
            descending = starts_descending(column)
        return Sort(column, descending)

    def columns(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, key, f"expected a non-empty list of columns, got {self.kind(node)}")
        seen: dict[str, int] = {}
        for i, item in enumerate(node.value):
            name = self.text(item, f"{key}[{i}]")
            if name not in KEYS:
                raise self.fail(item, f"{key}[{i}]", f"unknown column {name!r} (columns: {' '.join(KEYS)})")
            if name in seen:
                raise self.fail(item, f"{key}[{i}]", f"column {name!r} listed twice (first on line {seen[name]})")
            seen[name] = yamlnodes.line_of(item)
        # Always shown, in their table places whatever the list's order.
        return tuple(k for k in KEYS if k in seen or k in ALWAYS_SHOWN)

    def thresholds(self, node: yaml.Node) -> Thresholds:
        allowed = yamlnodes.named(_THRESHOLD_KEYS)
        given = self.mapping(node, "thresholds", allowed)
        values: dict[str, Threshold] = {}
        for metric, metric_node in given.items():
            key = f"thresholds.{metric}"
            levels = self.read(allowed[metric], metric_node, key)
            default = Thresholds().get(metric)
            warn, crit = levels.get("warn", default.warn), levels.get("crit", default.crit)
            if crit < warn:
                raise self.fail(metric_node, key, f"crit ({crit:g}) is below warn ({warn:g})")
            values[metric] = Threshold(warn, crit)
        return Thresholds(**values)

    def keys(self, node: yaml.Node) -> dict[str, str]:
        allowed = yamlnodes.named(_KEY_KEYS)
        given = self.mapping(node, "keys", allowed)
        overrides: dict[str, str] = {}
        for action, key_node in given.items():
            key = self.read(allowed[action], key_node, f"keys.{action}")
            problem = check_key(key)
            if problem is not None:
                raise self.fail(key_node, f"keys.{action}", problem)
            overrides[action] = key
        effective = {action: overrides.get(action, default) for action, (default, _) in KEY_ACTIONS.items()}
        for action in overrides:
            clash = next((a for a, k in effective.items() if k == effective[action] and a != action), None)
            if clash is not None:
                raise self.fail(
                    given[action], f"keys.{action}", f"{effective[action]!r} is already the key of {clash}"
                )
        return overrides

    def views(self, node: yaml.Node) -> dict[str, View]:
        views: dict[str, View] = {}
        allowed = yamlnodes.named(_VIEW_KEYS)
        for name, view_node in self.mapping_of_names(node, "views").items():
            key = f"views.{name}"
            if not name.strip() or any(c.isspace() for c in name):
                raise self.fail(view_node, key, "a view's name is one word (`:view NAME` types it)")
            fields = self.mapping(view_node, key, allowed)
            if not fields:
                raise self.fail(view_node, key, "an empty view: set filter, sort or columns")
            text = ""
            if "filter" in fields:
                text = self.read(allowed["filter"], fields["filter"], f"{key}.filter")
                try:
                    Selector.parse(text)
                except VFleetError as exc:
                    raise self.fail(fields["filter"], f"{key}.filter", str(exc)) from None
            views[name] = View(
                name,
                text,
                self.sort(fields["sort"], f"{key}.sort") if "sort" in fields else None,
                self.columns(fields["columns"], f"{key}.columns") if "columns" in fields else None,
                f"{self.path}:{yamlnodes.line_of(view_node)}",
            )
        return views

    def mapping_of_names(self, node: yaml.Node, key: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping of names, got {self.kind(node)}")
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = self.value(key_node, key, str)
            if name in result:
                line = yamlnodes.line_of(result[name])
                raise self.fail(key_node, f"{key}.{name}", f"duplicate name (first defined on line {line})")
            result[name] = value_node
        return result


def summary(config: Config) -> list[str]:
    """What `vfleet config check` prints: one line per setting, defaults named as such."""
    t = config.thresholds
    lines = [
        f"theme: {config.theme or 'default (textual-dark)'}",
        f"interval: {f'{config.interval:g} s' if config.interval else 'each host poll_interval (inventory)'}",
        f"sort: {config.sort.text if config.sort else 'host asc (default)'}",
        f"columns: {' '.join(config.columns) if config.columns else 'all that fit (default)'}",
        "thresholds: "
        + ", ".join(f"{m.name} {t.get(m.name).warn:g}/{t.get(m.name).crit:g}{m.unit}" for m in METRICS)
        + (" (warn/crit; changed: " + ", ".join(t.changed()) + ")" if t.changed() else " (warn/crit; defaults)"),
        "keys: " + (", ".join(f"{a} {k!r}" for a, k in config.keys.items()) or "defaults"),
    ]
    lines += [f"view {view.name}: {view.describe()}" for view in config.views.values()]
    return lines
