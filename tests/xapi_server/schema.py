"""The XAPI definition (xenapi.json): classes, field types and defaults, messages, enums.

The server builds every record from it (each field of the class present, with xapi's
default where the definition gives one), so the shapes it serves cannot drift from the
definition; the conformance tests check values against the same types.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import xmlrpc.client
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# xapi's definition (its shape: testbed/xapi-reference.py) and SDK test pairs, vendored so a clean
# checkout tests the same; VFLEET_XAPI_REFERENCE points at another copy (e.g. the full upstream one).
REFERENCE_DIR = Path(os.environ.get("VFLEET_XAPI_REFERENCE", ROOT / "tests" / "fixtures" / "xapi"))
NULL_REF = "OpaqueRef:NULL"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# xapi's wire form of a datetime, in XML-RPC <dateTime.iso8601> and JSON strings alike
DATE_FORMAT = "%Y%m%dT%H:%M:%SZ"
_INT_TEXT = re.compile(r"-?\d+\Z")


class ReferenceMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    default: str | None
    qualifier: str
    state: str


@dataclass(frozen=True)
class Message:
    name: str
    params: tuple[tuple[str, str], ...]
    result: str
    errors: tuple[str, ...]
    implicit: bool


@dataclass
class ClassDef:
    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)


@dataclass
class Api:
    classes: dict[str, ClassDef]
    enums: dict[str, tuple[str, ...]]

    def cls(self, name: str) -> ClassDef:
        return self.classes[name]

    def class_named(self, name: str) -> ClassDef | None:
        """Class by name, case-insensitively (event classes are lower case on the wire)."""
        lowered = {c.lower(): c for c in self.classes}
        found = lowered.get(name.lower())
        return self.classes[found] if found else None

    def all_errors(self) -> set[str]:
        return {e for c in self.classes.values() for m in c.messages.values() for e in m.errors}


def reference_file(name: str = "xenapi.json") -> Path:
    path = REFERENCE_DIR / name
    if not path.exists():
        raise ReferenceMissing(f"XAPI reference not found: {path} (set VFLEET_XAPI_REFERENCE)")
    return path


@lru_cache(maxsize=1)
def load_api() -> Api:
    raw = json.loads(reference_file().read_text())
    classes: dict[str, ClassDef] = {}
    enums: dict[str, tuple[str, ...]] = {}
    for entry in raw:
        cdef = ClassDef(entry["name"])
        for f in entry["fields"]:
            cdef.fields[f["name"]] = Field(f["name"], f["type"], f.get("default"), f["qualifier"], f["lifecycle"]["state"])
        for m in entry["messages"]:
            params = tuple((p["name"], p["type"]) for p in m["params"])
            errors = tuple(e["name"] for e in m["errors"])
            cdef.messages[m["name"]] = Message(m["name"], params, m["result"][0], errors, bool(m["implicit"]))
        for e in entry["enums"]:
            enums[e["name"]] = tuple(v["name"] for v in e["values"])
        classes[cdef.name] = cdef
    return Api(classes, enums)


# --- types ------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    kind: str  # string int float bool datetime ref record enum set map option void other
    name: str = ""  # class of a ref/record, enum name
    inner: tuple[Type, ...] = ()


def _split_arrow(text: str) -> tuple[str, str]:
    depth = 0
    for i in range(len(text)):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(" -> ", i):
            return text[:i], text[i + 4 :]
    raise ValueError(f"not a map type: {text!r}")


@cache
def parse_type(text: str) -> Type:
    text = text.strip()
    if text in {"string", "int", "float", "bool", "datetime", "void"}:
        return Type(text)
    if text.endswith(" map") and text.startswith("("):
        key, value = _split_arrow(text[1 : -len(") map")])
        return Type("map", inner=(parse_type(key), parse_type(value)))
    for suffix in ("set", "option"):
        if text.endswith(" " + suffix):
            return Type(suffix, inner=(parse_type(text[: -len(suffix) - 1]),))
    if text.startswith("enum "):
        return Type("enum", text[5:])
    if text.endswith(" ref"):
        return Type("ref", text[:-4])
    if text.endswith(" record"):
        return Type("record", text[:-7])
    return Type("other", text)


def default_value(f: Field, api: Api) -> Any:
    """xapi's value of a field nobody set: the definition's default, else the type's zero."""
    t = parse_type(f.type)
    d = f.default
    if t.kind in {"set", "map"}:
        return [] if t.kind == "set" else {}
    if t.kind == "ref":
        return NULL_REF
    if t.kind == "string":
        return json.loads(d) if d and d.startswith('"') else (d or "")
    if t.kind == "int":
        return int(d) if d and _INT_TEXT.match(d) else 0
    if t.kind == "float":
        return float(d) if d else 0.0
    if t.kind == "bool":
        return d == "true"
    if t.kind == "datetime":
        return dt.datetime.strptime(d, DATE_FORMAT).replace(tzinfo=dt.UTC) if d else EPOCH
    if t.kind == "enum":
        values = api.enums[t.name]
        return d if d in values else values[0]
    return None


def blank_record(class_name: str, api: Api | None = None) -> dict[str, Any]:
    api = api or load_api()
    return {name: default_value(f, api) for name, f in api.cls(class_name).fields.items()}


# --- checking wire values against a type (used by the conformance tests) ----------


def check_value(type_text: str, value: Any, api: Api, wire: str, where: str = "") -> list[str]:
    """Problems of a decoded wire value against a definition type; wire is 'xmlrpc' or 'json'."""
    return _check(parse_type(type_text), value, api, wire, where or type_text)


def _check(t: Type, v: Any, api: Api, wire: str, where: str) -> list[str]:
    bad = [f"{where}: {v!r} is not {t.kind} {t.name}".rstrip()]
    if t.kind in {"string", "void"}:
        return [] if isinstance(v, str) and (t.kind == "string" or v == "") else bad
    if t.kind == "int":
        if wire == "xmlrpc":  # xapi sends 64-bit ints as decimal strings
            return [] if isinstance(v, str) and _INT_TEXT.match(v) else bad
        return [] if isinstance(v, int) and not isinstance(v, bool) else bad
    if t.kind == "float":
        return [] if isinstance(v, float) else bad
    if t.kind == "bool":
        return [] if isinstance(v, bool) else bad
    if t.kind == "datetime":
        text = v.value if isinstance(v, xmlrpc.client.DateTime) else v
        if wire == "xmlrpc" and not isinstance(v, xmlrpc.client.DateTime):
            return bad
        try:
            dt.datetime.strptime(str(text), DATE_FORMAT)
        except ValueError:
            return bad
        return []
    if t.kind == "ref":
        return [] if isinstance(v, str) and v.startswith("OpaqueRef:") else bad
    if t.kind == "enum":
        return [] if isinstance(v, str) and v in api.enums[t.name] else bad
    if t.kind == "set":
        if not isinstance(v, list):
            return bad
        return [p for i, item in enumerate(v) for p in _check(t.inner[0], item, api, wire, f"{where}[{i}]")]
    if t.kind == "map":
        if not isinstance(v, dict):
            return bad
        problems: list[str] = []
        key_type, value_type = t.inner
        for k, item in v.items():
            # map keys travel as strings whatever their type
            key_problems = _check(key_type, k, api, "xmlrpc" if key_type.kind == "int" else wire, f"{where} key")
            problems += key_problems + _check(value_type, item, api, wire, f"{where}[{k!r}]")
        return problems
    if t.kind == "record":
        return check_record(t.name, v, api, wire, where)
    return []


def check_record(class_name: str, record: Any, api: Api, wire: str, where: str = "") -> list[str]:
    where = where or class_name
    cdef = api.class_named(class_name)
    if cdef is None:
        return [f"{where}: no class {class_name}"]
    if not isinstance(record, dict):
        return [f"{where}: record is {type(record).__name__}"]
    problems = [f"{where}.{k}: no such field on {cdef.name}" for k in record if k not in cdef.fields]
    for name, f in cdef.fields.items():
        if name not in record:
            problems.append(f"{where}.{name}: missing")
        elif f.type == "<class> record":
            continue  # event.snapshot: checked against the event's class by the caller
        else:
            problems += _check(parse_type(f.type), record[name], api, wire, f"{where}.{name}")
    return problems
