"""Read a YAML file into nodes, safely: bounded in size, depth and alias expansion.

The inventory is walked as YAML nodes (not loaded into dicts) so that every value keeps
its line number. PyYAML's composer recurses once per nesting level (10 KB of `[` ends in
a RecursionError) and lets aliases multiply a small file into billions of nodes, so the
nodes are built here from the parser's event stream, iteratively, with limits. The
parser is libyaml's when PyYAML has it: about 20x faster than the pure-Python one,
which is what made large inventories slow.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from vfleet.core.errors import InventoryError
from vfleet.drivers.spec import KeySpec

MAX_BYTES = 4 * 1024 * 1024  # an inventory of 20,000 hosts is about 3 MiB
MAX_DEPTH = 32  # the inventory's own structure is 5 levels deep
MAX_ALIAS_NODES = 100_000  # nodes that aliases (*name) may add, in total
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read(path: str, what: str = "an inventory", error: type[InventoryError] = InventoryError) -> str:
    """The file's text; refuses what is not a regular file, too large or not UTF-8.

    `what` names the kind of file in messages; `error` is the error class raised.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise error(path, None, "", "no such file") from None
    except OSError as exc:
        raise error(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((word for test, word in _KINDS if test(info.st_mode)), "not a regular file")
            raise error(path, None, "", f"is {kind}, not a regular file: {what} must be a file")
        data = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise error(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        hint = " (split the fleet)" if what == "an inventory" else ""
        raise error(path, None, "", f"larger than {MAX_BYTES // 2**20} MiB: too large for {what}{hint}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise error(
            path, line, "", f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column}; save the file as UTF-8"
        ) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def compose(
    text: str, path: str, what: str = "an inventory", error: type[InventoryError] = InventoryError
) -> yaml.Node | None:
    """The document's root node (None for an empty document), with every error as file:line."""
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader checks every character here
        builder = _Builder(path, loader.resolve, what, error)
        builder.run(loader.get_event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context} started on line {exc.context_mark.line + 1})"
        problem = " ".join(str(exc.problem or exc).split())
        raise error(path, line, "", f"YAML syntax error: {problem}{context}") from None
    except yaml.reader.ReaderError as exc:
        # The position counts characters for the pure-Python reader, bytes for libyaml.
        if exc.encoding == "unicode":
            line = text.count("\n", 0, exc.position) + 1
        else:
            line = text.encode().count(b"\n", 0, exc.position) + 1
        raise error(path, line, "", f"YAML error: {' '.join(exc.reason.split())}") from None
    except yaml.YAMLError as exc:
        raise error(path, None, "", f"YAML error: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return builder.root


class _Builder:
    """Nodes from events, as PyYAML's Composer builds them, without recursion.

    Events are typed Any: libyaml's and the pure-Python parser's carry different Mark types.
    """

    def __init__(self, path: str, resolve: Callable[..., str], what: str, error: type[InventoryError]) -> None:
        self.path = path
        self.resolve = resolve
        self.what = what
        self.error = error
        self.root: yaml.Node | None = None
        self.documents = 0
        self.anchors: dict[str, yaml.Node] = {}
        self.sizes: dict[int, int] = {}  # id(node) -> nodes in its tree, for anchored collections
        self.aliased = 0
        self.plain: dict[str, str] = {}  # plain scalar -> its resolved tag
        # Open collections: the node, its anchor, its children so far, its size so far.
        self.stack: list[tuple[yaml.CollectionNode, str | None, list[yaml.Node], list[int]]] = []
        self.handlers: dict[type, Callable[[Any], None]] = {
            yaml.SequenceStartEvent: self.start,
            yaml.MappingStartEvent: self.start,
            yaml.SequenceEndEvent: self.end,
            yaml.MappingEndEvent: self.end,
            yaml.AliasEvent: self.alias,
            yaml.DocumentStartEvent: self.document,
        }

    def fail(self, mark: Any, problem: str) -> InventoryError:
        return self.error(self.path, mark.line + 1 if mark is not None else None, "", problem)

    def run(self, next_event: Callable[[], Any]) -> None:
        # Scalars are most events: they are handled inline (this loop is the parse's hot path).
        handlers, plain, resolve = self.handlers, self.plain, self.resolve
        scalar_event: Any = yaml.ScalarEvent  # Any: libyaml's marks are not the stubs' Mark
        scalar_node = yaml.ScalarNode
        event: Any
        while (event := next_event()) is not None:
            if type(event) is not scalar_event:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
                continue
            tag = event.tag
            if tag is None or tag == "!":
                if event.implicit[0]:  # plain: keys and words repeat, so remember what they resolved to
                    tag = plain.get(event.value)
                    if tag is None:
                        tag = plain[event.value] = resolve(scalar_node, event.value, event.implicit)
                else:
                    tag = resolve(scalar_node, event.value, event.implicit)
            node = scalar_node(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            if event.anchor is not None:
                self.anchor(event.anchor, node, 1)
            self.add(node, 1)

    def start(self, event: Any) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        kind: type[yaml.CollectionNode]
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(kind, None, event.implicit)
        collection = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.stack.append((collection, event.anchor, [], [1]))

    def end(self, event: Any) -> None:
        collection, anchor, children, size = self.stack.pop()
        collection.end_mark = event.end_mark
        if isinstance(collection, yaml.MappingNode):
            collection.value = list(zip(children[0::2], children[1::2], strict=True))
        else:
            collection.value = children
        if anchor is not None:  # registered at its end, so that a collection cannot contain itself
            self.anchor(anchor, collection, size[0])
        self.add(collection, size[0])

    def alias(self, event: Any) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            raise self.fail(event.start_mark, f"YAML alias *{event.anchor} names no anchor defined before it")
        # Each use counts the whole tree it stands for: that is what a walk of it costs.
        size = self.sizes[id(target)]
        self.aliased += size
        if self.aliased > MAX_ALIAS_NODES:
            raise self.fail(event.start_mark, f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes: refused")
        self.add(target, size)

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail(event.start_mark, f"a second YAML document: {self.what} is one document")

    def anchor(self, anchor: str, node: yaml.Node, size: int) -> None:
        if anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise self.fail(node.start_mark, f"YAML anchor &{anchor} defined twice (first on line {first})")
        self.anchors[anchor] = node
        self.sizes[id(node)] = size

    def add(self, node: yaml.Node, size: int) -> None:
        if self.stack:
            _, _, children, total = self.stack[-1]
            children.append(node)
            total[0] += size
        else:
            self.root = node


# -- reading a composed document against KeySpecs ------------------------------------

STR_TAG = "tag:yaml.org,2002:str"


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def named(keys: tuple[KeySpec, ...]) -> dict[str, KeySpec]:
    return {k.name: k for k in keys}


def type_word(want: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(want, want.__name__)


class NodeReader:
    """Typed values out of YAML nodes, checked against KeySpecs; every error names file:line and the key.

    The inventory and the config file share it, so both say the same things the same way.
    """

    error: type[InventoryError] = InventoryError
    merge_hint = ""  # what to use instead of a YAML merge key (<<)

    def __init__(self, path: str) -> None:
        self.path = path
        self._constructor = yaml.SafeLoader("")

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> InventoryError:
        return self.error(self.path, line_of(node) if node is not None else None, key, problem)

    # -- YAML node helpers -------------------------------------------------

    def mapping(self, node: yaml.Node, key: str, allowed: Mapping[str, KeySpec]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping, got {self.kind(node)}")
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if name == "<<":
                raise self.fail(key_node, where, f"YAML merge keys are not supported{self.merge_hint}")
            if not isinstance(name, str) or name not in allowed:
                raise self.fail(key_node, where, f"unknown key (expected one of: {', '.join(allowed)})")
            if name in seen:
                raise self.fail(key_node, where, f"duplicate key (first set on line {line_of(seen[name])})")
            seen[name] = value_node
        return seen

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.scalar(node, "")
        return "nothing" if value is None else f"{type(value).__name__} {node.value!r}"

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if node.tag == STR_TAG:  # most values: skip the constructor
            return node.value
        construct = self._constructor.yaml_constructors.get(node.tag)
        if construct is None:
            raise self.fail(node, key, f"unsupported YAML tag {node.tag}")
        try:
            return construct(self._constructor, node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise self.fail(node, key, f"bad {node.tag} value: {' '.join(str(exc).split())}") from None

    def value(self, node: yaml.Node, key: str, want: type) -> Any:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            raise self.fail(node, key, f"expected {type_word(want)}, got {self.kind(node)}")
        value = self.scalar(node, key)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise self.fail(node, key, f"expected {type_word(want)}, got {self.kind(node)}")
        return value

    def strings(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of strings, got {self.kind(node)}")
        return tuple(self.text(item, f"{key}[{i}]") for i, item in enumerate(node.value))

    def text(self, node: yaml.Node, key: str) -> str:
        value: str = self.value(node, key, str)
        if not value.strip():
            raise self.fail(node, key, "must not be empty")
        return value

    def read(self, spec: KeySpec, node: yaml.Node, key: str) -> Any:
        """One value, checked against its key's spec."""
        if spec.type is list:
            return self.strings(node, key)
        if spec.type is dict:
            allowed = named(spec.keys)
            fields = self.mapping(node, key, allowed)
            return {name: self.read(allowed[name], value, f"{key}.{name}") for name, value in fields.items()}
        if spec.type is str:
            value: Any = self.text(node, key)
            if spec.choices and value not in spec.choices:
                raise self.fail(node, key, f"expected one of: {', '.join(spec.choices)}; got {value!r}")
            return value
        value = self.value(node, key, spec.type)
        if spec.type is bool:
            return value
        if spec.minimum is not None and spec.maximum is not None and not spec.minimum <= value <= spec.maximum:
            raise self.fail(node, key, f"must be {spec.minimum:g}-{spec.maximum:g}, got {value}")
        if spec.minimum is not None and value < spec.minimum:
            raise self.fail(node, key, f"must be at least {spec.minimum:g}, got {value}")
        if spec.maximum is not None and value > spec.maximum:
            raise self.fail(node, key, f"must be at most {spec.maximum:g}, got {value}")
        if spec.above is not None and not value > spec.above:
            raise self.fail(node, key, f"must be greater than {spec.above:g}, got {value}")
        return value
