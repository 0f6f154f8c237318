"""Check one RPC answer, as it travelled, against the XAPI definition: the message exists,
its parameter count fits, a result has the message's result type (field names and types of
records, enum values, refs, sets, maps, 64-bit ints as strings in XML-RPC, datetimes), and
an error's code is one the definition names (or one of xapi's generic errors below).
"""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

from .calls import OPTIONAL_TRAILING
from .schema import Api, check_record, check_value

# Errors xapi raises from its RPC layer for any call, so xenapi.json lists them on no
# message; each is named in xapi's api_errors.ml and wire-protocol.md.
GENERIC_ERRORS = {
    "SESSION_INVALID": "any call with an unknown or logged-out session",
    "HANDLE_INVALID": "any call given a reference to no object",
    "UUID_INVALID": "get_by_uuid of an unknown uuid",
    "MESSAGE_PARAMETER_COUNT_MISMATCH": "the RPC layer, before the call",
    "MESSAGE_METHOD_UNKNOWN": "the RPC layer, before the call",
    "OPERATION_BLOCKED": "xapi_vm_lifecycle: an operation in blocked_operations",
    "VM_IS_SNAPSHOT": "xapi_vm_lifecycle: an operation a snapshot cannot do",
    "EVENT_FROM_TOKEN_PARSE_FAILURE": "event.from given a token it cannot read",
    "MAP_DUPLICATE_KEY": "add_to_<map> of a key already there (wire-protocol.md)",
}


def decode(protocol: str, body: bytes) -> tuple[bool, Any]:
    """(succeeded, value or [code, *params]) of an answer body; problems raise ValueError."""
    if protocol == "xmlrpc":
        (answer,), _ = xmlrpc.client.loads(body)
        if not isinstance(answer, dict):
            raise ValueError(f"not an xapi XML-RPC answer: {answer!r}")
        if answer.get("Status") == "Success" and "Value" in answer:
            return True, answer["Value"]
        if answer.get("Status") == "Failure" and "ErrorDescription" in answer:
            return False, answer["ErrorDescription"]
        raise ValueError(f"not an xapi XML-RPC answer: {answer!r}")
    answer = json.loads(body)
    if protocol == "json2.0":
        if answer.get("jsonrpc") != "2.0" or "id" not in answer or ("result" in answer) == ("error" in answer):
            raise ValueError(f"not a JSON-RPC 2.0 answer: {answer!r}")
        if "result" in answer:
            return True, answer["result"]
        error = answer["error"]
        if not isinstance(error.get("code"), int) or not error["code"] or not isinstance(error.get("data"), list):
            raise ValueError(f"bad JSON-RPC 2.0 error object: {error!r}")
        return False, [error["message"], *error["data"]]
    if set(answer) != {"result", "error", "id"}:
        raise ValueError(f"not a JSON-RPC 1.0 answer: {answer!r}")
    if answer["error"] is None:
        return True, answer["result"]
    if answer["result"] is not None:
        raise ValueError("JSON-RPC 1.0 error with a result")
    return False, answer["error"]


def check_answer(api: Api, protocol: str, method: str, param_count: int, body: bytes) -> list[str]:
    where = f"{protocol} {method}"
    try:
        ok, value = decode(protocol, body)
    except ValueError as error:
        return [f"{where}: {error}"]
    wire = "xmlrpc" if protocol == "xmlrpc" else "json"
    if not ok:
        return _check_error(api, where, value)
    name = method.removeprefix("Async.")
    cls, _, message_name = name.partition(".")
    message = api.classes[cls].messages.get(message_name) if cls in api.classes else None
    if message is None:
        return [f"{where}: succeeded but the definition has no such message"]
    expected = len(message.params)
    problems = []
    if not expected - OPTIONAL_TRAILING.get(name, 0) <= param_count <= expected:
        problems.append(f"{where}: {param_count} parameters, the definition has {expected}")
    if method.startswith("Async."):
        return problems + check_value("task ref", value, api, wire, where)
    if message.result == "an event batch":
        return problems + check_event_batch(api, value, wire, where)
    return problems + check_value(message.result, value, api, wire, where)


def _check_error(api: Api, where: str, description: Any) -> list[str]:
    if not isinstance(description, list) or not description or not all(isinstance(p, str) for p in description):
        return [f"{where}: error description {description!r} is not a list of strings"]
    code = description[0]
    if code in api.all_errors() or code in GENERIC_ERRORS:
        return []
    return [f"{where}: error {code} is not in the definition"]


def check_event_batch(api: Api, batch: Any, wire: str, where: str) -> list[str]:
    if not isinstance(batch, dict) or set(batch) != {"events", "valid_ref_counts", "token"}:
        return [f"{where}: event batch keys {sorted(batch) if isinstance(batch, dict) else batch!r}"]
    problems = check_value("string", batch["token"], api, wire, f"{where}.token")
    problems += check_value("(string -> int) map", batch["valid_ref_counts"], api, wire, f"{where}.valid_ref_counts")
    for i, event in enumerate(batch["events"]):
        here = f"{where}.events[{i}]"
        record = dict(event)
        snapshot = record.pop("snapshot", None)
        fields = api.cls("event").fields
        problems += [f"{here}.{k}: no such field on event" for k in record if k not in fields]
        problems += [p for k, v in record.items() if k in fields for p in check_value(fields[k].type, v, api, wire, f"{here}.{k}")]
        cdef = api.class_named(str(record.get("class", "")))
        if cdef is None:
            problems.append(f"{here}: no class {record.get('class')!r}")
        elif snapshot is not None:
            problems += check_record(cdef.name, snapshot, api, wire, f"{here}.snapshot")
        elif record.get("operation") != "del":
            problems.append(f"{here}: {record.get('operation')} event without a snapshot")
    return problems
