"""Test-side helpers: an unmodified XenAPI session to the test server, raw HTTP calls,
the error of a XenAPI call, a VM by name, /rrd_updates as JSON at a fixed pool clock."""

from __future__ import annotations

import json
import ssl
import urllib.request
import xmlrpc.client
from typing import Any

import pytest
import XenAPI

from .server import XapiServer


def tls_context(server: XapiServer) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=str(server.cert.cert)) if server.cert else None


def session(server: XapiServer, host_index: int = 0, login: bool = True) -> Any:
    """A XenAPI.Session verifying the server's certificate against its CA file."""
    context = tls_context(server)
    transport = xmlrpc.client.SafeTransport(context=context) if context else None
    client = XenAPI.Session(server.url(host_index), transport=transport)
    if login:
        client.xenapi.login_with_password(server.pool.user, server.pool.password, "1.0", "vfleet-tests")
    return client


def get(server: XapiServer, path: str, host_index: int = 0, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET."""
    request = urllib.request.Request(server.url(host_index) + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=tls_context(server), timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def jsonrpc(server: XapiServer, method: str, params: list[Any], version: str = "2.0", request_id: Any = 1) -> Any:
    """The decoded JSON-RPC answer (result or error object), raw."""
    body: dict[str, Any] = {"method": method, "params": params, "id": request_id}
    if version == "2.0":
        body["jsonrpc"] = "2.0"
    request = urllib.request.Request(
        server.url() + "/jsonrpc", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=tls_context(server), timeout=10) as answer:
        return json.loads(answer.read())


def failure(call: Any, *args: Any) -> list[str]:
    """The ErrorDescription of a call that must fail."""
    with pytest.raises(XenAPI.Failure) as caught:
        call(*args)
    return list(caught.value.details)


def vm_named(x: Any, name: str) -> str:
    """The one VM of this name_label, asked through the client."""
    refs = x.VM.get_by_name_label(name)
    assert len(refs) == 1, name
    return str(refs[0])

# the pool clock rrd_json pins: /rrd_updates windows end exactly here
NOW = 1_800_000_000


def rrd_json(server: XapiServer, s: Any, host_index: int = 0, start: int = NOW - 60) -> dict[str, Any]:
    server.pool.clock = lambda: NOW
    path = f"/rrd_updates?start={start}&host=true&cf=AVERAGE&interval=5&json=true&session_id={s._session}"
    status, content_type, body = get(server, path, host_index)
    assert status == 200 and content_type == "application/json"
    return dict(json.loads(body))


def column(doc: dict[str, Any], entry: str) -> list[Any]:
    i = doc["meta"]["legend"].index(entry)
    return [row["values"][i] for row in doc["data"]]
