"""The blocking side of the xapi driver: XenAPI sessions over a verified TLS context,
/rrd_updates over the same session, and xapi's error arrays made into vfleet errors.

Everything here runs on the driver's threads (drivers/threaded.py), never on the event loop.
Each socket has a timeout, so a hung call ends by itself and frees its thread.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.parse
import xml.parsers.expat
import xmlrpc.client
from collections.abc import Sequence
from typing import Any

import XenAPI

from vfleet.core.errors import ActionFailed, AuthFailed, DomainNotFound, DriverError, DriverTimeout, HostUnreachable
from vfleet.core.sanitize import printable
from vfleet.drivers.tls import PinMismatch

ORIGINATOR = "vfleet"
# Error codes that mean "the VM is not there" and those that mean "not now / not allowed".
_MISSING = frozenset({"HANDLE_INVALID", "UUID_INVALID", "VM_NOT_FOUND"})
_REFUSED_NOW = frozenset(
    {"VM_BAD_POWER_STATE", "OPERATION_NOT_ALLOWED", "OPERATION_BLOCKED", "OTHER_OPERATION_IN_PROGRESS",
     "VM_IS_TEMPLATE", "VM_MISSING_PV_DRIVERS", "VM_LACKS_FEATURE", "VM_LACKS_FEATURE_SHUTDOWN",
     "VM_HOST_INCOMPATIBLE_VERSION", "HOST_NOT_ENOUGH_FREE_MEMORY", "VM_REQUIRES_SR"}
)


class XapiFailure(Exception):
    """xapi's error array (code first, then parameters), kept whole for messages and __cause__."""

    def __init__(self, details: Sequence[object]) -> None:
        self.details = [str(d) for d in details] or ["UNKNOWN_ERROR"]
        super().__init__(self.details)

    @property
    def code(self) -> str:
        return self.details[0]

    @property
    def params(self) -> list[str]:
        return self.details[1:]


class Untrusted(Exception):
    """The certificate failed verification (not a pin mismatch): reason and presented fingerprint."""

    def __init__(self, reason: str, presented: str) -> None:
        super().__init__(reason)
        self.reason, self.presented = reason, presented


class _Transport(xmlrpc.client.SafeTransport):
    """XML-RPC over our verified TLS context, with a timeout on every socket operation."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(context=context)
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


def url_host(address: str) -> str:
    """An address as it goes into a URL: IPv6 literals in brackets."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def open_session(address: str, port: int, context: ssl.SSLContext, timeout: float) -> Any:
    """A XenAPI session object (not logged in) for https://address:port/."""
    return XenAPI.Session(f"https://{url_host(address)}:{port}/", transport=_Transport(context, timeout))


def login(session: Any, user: str, password: str) -> None:
    call(lambda: session.xenapi.login_with_password(user, password, "2.0", ORIGINATOR))


def session_ref(session: Any) -> str:
    return str(session._session)


def attach(address: str, port: int, context: ssl.SSLContext, timeout: float, ref: str) -> Any:
    """Another client on an existing session (one per thread: a client holds one HTTP connection)."""
    session = open_session(address, port, context, timeout)
    session._session = ref
    return session


def logout(session: Any) -> None:
    with contextlib.suppress(Exception):  # best effort: the session may be gone already
        session.xenapi.session.logout()
    close_transport(session)


def close_transport(session: Any) -> None:
    transport = getattr(session, "transport", None)
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()


def call(fn: Any) -> Any:
    """Run one XenAPI call, turning its Failure into XapiFailure (the details kept)."""
    try:
        return fn()
    except XenAPI.Failure as failure:
        raise XapiFailure(failure.details) from failure


def wait_task(session: Any, task: str, timeout: float, host: str, what: str) -> Any:
    """Poll an Async task (one small read each time, backing off) until it ends or time is up."""
    deadline, delay = time.monotonic() + timeout, 0.02
    try:
        while True:
            status = str(call(lambda: session.xenapi.task.get_status(task)))
            if status == "success":
                return call(lambda: session.xenapi.task.get_result(task))
            if status in ("failure", "cancelled"):
                raise XapiFailure(call(lambda: session.xenapi.task.get_error_info(task)) or [status.upper()])
            if time.monotonic() >= deadline:
                raise DriverTimeout(host, f"{what}: task still {status} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    finally:
        with contextlib.suppress(Exception):  # the server expires tasks anyway
            session.xenapi.task.destroy(task)


def rrd_updates(address: str, port: int, context: ssl.SSLContext, timeout: float, ref: str, start: int) -> str:
    """One /rrd_updates answer (JSON) for the VMs resident on the host at `address`, and that host."""
    query = urllib.parse.urlencode(
        {"session_id": ref, "start": start, "host": "true", "json": "true", "cf": "AVERAGE", "interval": 5}
    )
    connection = http.client.HTTPSConnection(url_host(address).strip("[]"), port, timeout=timeout, context=context)
    try:
        connection.request("GET", f"/rrd_updates?{query}", headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"/rrd_updates answered HTTP {response.status} {response.reason}")
        return body.decode("utf-8", errors="replace")
    finally:
        connection.close()


def dump(value: Any) -> str:
    """A decoded answer as JSON text (record mode): xmlrpc DateTime objects as their string."""
    return json.dumps(value, indent=1, default=lambda v: str(getattr(v, "value", v)))


def details_text(details: Sequence[str]) -> str:
    return printable(json.dumps(list(details)))


def translate(exc: Exception, what: str, *, host: str, endpoint: str, user: str | None) -> DriverError:
    """xapi's error arrays and transport failures in vfleet's error tree; the message keeps the array."""
    if isinstance(exc, XenAPI.Failure):
        exc = XapiFailure(exc.details)
    if isinstance(exc, XapiFailure):
        code, array = exc.code, details_text(exc.details)
        if code == "SESSION_AUTHENTICATION_FAILED":
            return AuthFailed(host, f"login as {user!r} refused by {endpoint}: wrong user name or password ({array})")
        if code in ("SESSION_INVALID", "SESSION_NOT_REGISTERED"):
            return HostUnreachable(host, f"{what}: the session on {endpoint} is no longer valid; reconnecting")
        if code == "HOST_IS_SLAVE":
            return HostUnreachable(host, f"{what}: {endpoint} is a pool member, not the master ({array})")
        if code in _MISSING:
            return DomainNotFound(host, f"{what}: no such object on {endpoint} ({array})")
        if code == "VM_BAD_POWER_STATE" and len(exc.params) >= 3:
            return ActionFailed(
                host, f"{what}: the VM is {exc.params[2]}, this needs it {exc.params[1]} ({array})"
            )
        if code in _REFUSED_NOW:
            return ActionFailed(host, f"{what}: refused by xapi: {array}")
        if code == "RBAC_PERMISSION_DENIED":
            return ActionFailed(host, f"{what}: user {user!r} lacks the role for this ({array})")
        return ActionFailed(host, f"{what}: xapi error {array}")
    if isinstance(exc, PinMismatch):
        return AuthFailed(host, f"TLS certificate of {endpoint} does not match tls.thumbprint: {exc}")
    if isinstance(exc, Untrusted):
        return AuthFailed(
            host,
            f"TLS certificate of {endpoint} is not trusted ({exc.reason}); it presented SHA-256 {exc.presented}. "
            "Set tls.ca_file to its CA bundle, or pin it with tls.thumbprint after checking that "
            "fingerprint on the pool master (`openssl x509 -fingerprint -sha256 -in /etc/xensource/xapi-ssl.pem`)",
        )
    if isinstance(exc, xmlrpc.client.Fault) and exc.faultCode == 401:  # XenAPI: SESSION_INVALID, no login to redo
        return HostUnreachable(host, f"{what}: the session on {endpoint} is no longer valid; reconnecting")
    if isinstance(exc, xmlrpc.client.Fault):
        return HostUnreachable(host, f"{what}: {endpoint}: {printable(exc.faultString)}")
    if isinstance(exc, xmlrpc.client.ProtocolError):
        return HostUnreachable(host, f"{what}: {endpoint} answered HTTP {exc.errcode} {printable(exc.errmsg)}")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DriverTimeout(host, f"{what}: {endpoint} did not answer in time ({exc or 'socket timeout'})")
    if isinstance(exc, ssl.SSLError):
        return HostUnreachable(host, f"{what}: TLS with {endpoint} failed: {exc}")
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return HostUnreachable(host, f"{what}: cannot reach {endpoint}: {printable(str(exc))}")
    if isinstance(exc, (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError)):
        return HostUnreachable(host, f"{what}: {endpoint} is not a XAPI server (unreadable answer: {exc})")
    return HostUnreachable(host, f"{what}: {endpoint}: {printable(str(exc))}")
