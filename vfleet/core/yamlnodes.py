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
from collections.abc import Callable
from typing import Any

import yaml

from vfleet.core.errors import InventoryError

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


def read(path: str) -> str:
    """The file's text; refuses what is not a regular file, too large or not UTF-8."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise InventoryError(path, None, "", "no such file") from None
    except OSError as exc:
        raise InventoryError(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((word for test, word in _KINDS if test(info.st_mode)), "not a regular file")
            raise InventoryError(path, None, "", f"is {kind}, not a regular file: an inventory must be a file")
        data = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise InventoryError(path, None, "", f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise InventoryError(
            path, None, "", f"larger than {MAX_BYTES // 2**20} MiB: too large for an inventory (split the fleet)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise InventoryError(
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


def compose(text: str, path: str) -> yaml.Node | None:
    """The document's root node (None for an empty document), with every error as file:line."""
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader checks every character here
        builder = _Builder(path, loader.resolve)
        builder.run(loader.get_event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context} started on line {exc.context_mark.line + 1})"
        problem = " ".join(str(exc.problem or exc).split())
        raise InventoryError(path, line, "", f"YAML syntax error: {problem}{context}") from None
    except yaml.reader.ReaderError as exc:
        # The position counts characters for the pure-Python reader, bytes for libyaml.
        if exc.encoding == "unicode":
            line = text.count("\n", 0, exc.position) + 1
        else:
            line = text.encode().count(b"\n", 0, exc.position) + 1
        raise InventoryError(path, line, "", f"YAML error: {' '.join(exc.reason.split())}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(path, None, "", f"YAML error: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return builder.root


class _Builder:
    """Nodes from events, as PyYAML's Composer builds them, without recursion.

    Events are typed Any: libyaml's and the pure-Python parser's carry different Mark types.
    """

    def __init__(self, path: str, resolve: Callable[..., str]) -> None:
        self.path = path
        self.resolve = resolve
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
        return InventoryError(self.path, mark.line + 1 if mark is not None else None, "", problem)

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
            raise self.fail(event.start_mark, "a second YAML document: an inventory is one document")

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
