"""xapi's two wire encodings of results and errors.

XML-RPC: every answer is a struct {Status, Value | ErrorDescription}; strings travel as bare
<value>text</value> (as xapi writes them), ints as decimal strings, datetimes as
<dateTime.iso8601>YYYYMMDDTHH:MM:SSZ</dateTime.iso8601>, void as "".
JSON-RPC: v2.0 answers {jsonrpc, result | error{code, message, data}, id}; v1.0 answers
{result, error: [code, params...], id}; ints are numbers, datetimes strings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any
from xml.sax.saxutils import escape

from .schema import DATE_FORMAT


def xml_value(v: Any) -> str:
    if isinstance(v, bool):
        return f"<value><boolean>{int(v)}</boolean></value>"
    if isinstance(v, int):
        return f"<value>{v}</value>"
    if isinstance(v, float):
        return f"<value><double>{_float_text(v)}</double></value>"
    if isinstance(v, dt.datetime):
        return f"<value><dateTime.iso8601>{v.strftime(DATE_FORMAT)}</dateTime.iso8601></value>"
    if isinstance(v, dict):
        members = "".join(f"<member><name>{escape(str(k))}</name>{xml_value(x)}</member>" for k, x in v.items())
        return f"<value><struct>{members}</struct></value>"
    if isinstance(v, list | tuple):
        return f"<value><array><data>{''.join(xml_value(x) for x in v)}</data></array></value>"
    if v is None:
        return "<value></value>"
    return f"<value>{escape(str(v))}</value>"


def _float_text(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def _xml_response(struct: dict[str, Any]) -> bytes:
    body = f"<?xml version='1.0'?>\n<methodResponse><params><param>{xml_value(struct)}</param></params></methodResponse>"
    return body.encode("utf-8")


def xml_success(value: Any) -> bytes:
    return _xml_response({"Status": "Success", "Value": value})


def xml_failure(description: list[str]) -> bytes:
    return _xml_response({"Status": "Failure", "ErrorDescription": description})


def json_ready(v: Any) -> Any:
    """Python values -> JSON values as xapi writes them (dates as strings, map keys as strings)."""
    if isinstance(v, dt.datetime):
        return v.strftime(DATE_FORMAT)
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_ready(x) for x in v]
    if v is None:
        return ""
    return v


def json_success(request_id: Any, version: str, value: Any) -> bytes:
    if version == "2.0":
        body: dict[str, Any] = {"jsonrpc": "2.0", "result": json_ready(value), "id": request_id}
    else:
        body = {"result": json_ready(value), "error": None, "id": request_id}
    return json.dumps(body).encode()


def json_failure(request_id: Any, version: str, description: list[str]) -> bytes:
    if version == "2.0":
        error = {"code": 1, "message": description[0], "data": description[1:]}
        body: dict[str, Any] = {"jsonrpc": "2.0", "error": error, "id": request_id}
    else:
        body = {"result": None, "error": description, "id": request_id}
    return json.dumps(body).encode()
