"""The HTTP(S) front: one listener per host of the pool, same port, own loopback address
(127.0.0.1 = host 0, 127.0.0.2 = host 1), as a real pool whose hosts share port 443; each
host presents its own self-signed certificate (listed in its Certificate records).

Routes: POST / (XML-RPC), POST /jsonrpc (JSON-RPC 1.0 / 2.0), GET /rrd_updates.
Malformed requests get xapi's HTTP 500 page; a bad session on /rrd_updates gets 401.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import calls, rrd, wire
from .certs import PoolCerts, make_pool_certs
from .pool import XapiPool
from .seed import HOST_NAMES
from .store import XapiError

ADDRESSES = ("127.0.0.1", "127.0.0.2")


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], owner: XapiServer, host_index: int) -> None:
        self.owner = owner
        self.host_index = host_index
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.host_index in self.owner.pool.faults.down_hosts:
            request.close()  # a host that is down: the connection ends before any answer
            return
        # the TLS handshake runs in the connection's thread, never in the accept loop
        contexts = self.owner.tls_contexts
        if contexts:
            context = contexts[self.host_index]
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Listener

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms a call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def pool(self) -> XapiPool:
        return self.server.owner.pool

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _http_500(self, detail: str) -> None:
        # xapi's answer to a request it cannot parse at the HTTP/RPC level
        text = detail.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        body = f"<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred.<h1> Additional information </h1>{text}</body></html>"
        self.close_connection = True
        self._send(500, body.encode(), "text/html")

    def _faulted(self, method: str) -> bool:
        """Apply the fault hooks; True when the connection was dropped."""
        self.pool.record_call(method)
        self.pool.faults.wait_if_hung(method, self.pool.stopping)
        if self.pool.faults.take_drop(method):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        return False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = urlsplit(self.path).path
        if path in {"/", "/RPC2"}:
            self._xmlrpc(body)
        elif path == "/jsonrpc":
            self._jsonrpc(body)
        else:
            self._send(404, b"not found", "text/plain")

    def _xmlrpc(self, body: bytes) -> None:
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=False)
        except Exception as error:  # xapi answers any parse failure with its 500 page
            self._http_500(f"Xmlrpc.Parse_error({error!r})")
            return
        if method is None:
            self._http_500("Xmlrpc.Parse_error(no methodName)")
            return
        if self._faulted(method):
            return
        try:
            result = calls.call(self.pool, method, _plain(list(params)), self.server.host_index)
            answer = wire.xml_success(result)
        except XapiError as error:
            answer = wire.xml_failure(error.description)
        self.pool.log_wire("xmlrpc", method, len(params), answer)
        self._send(200, answer, "text/xml")

    def _jsonrpc(self, body: bytes) -> None:
        try:
            request = json.loads(body)
            method, params, request_id = request["method"], request["params"], request["id"]
            if not isinstance(method, str) or not isinstance(params, list) or request_id is None:
                raise ValueError("method, params or id")
        except (ValueError, KeyError, TypeError) as error:
            self._http_500(f"Jsonrpc.Malformed_method_request({error!r})")
            return
        version = "2.0" if request.get("jsonrpc") == "2.0" else "1.0"
        if self._faulted(method):
            return
        try:
            result = calls.call(self.pool, method, params, self.server.host_index)
            answer = wire.json_success(request_id, version, result)
        except XapiError as error:
            answer = wire.json_failure(request_id, version, error.description)
        self.pool.log_wire("json" + version, method, len(params), answer)
        self._send(200, answer, "application/json")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/rrd_updates":
            self._send(404, b"not found", "text/plain")
            return
        if self._faulted("/rrd_updates"):
            return
        params = parse_qs(parts.query)
        if not self._authorised(params):
            self._send(401, b"Unauthorised", "text/plain")
            return
        try:
            query = rrd.parse_query(params, self.headers.get("Accept", ""))
        except ValueError as error:
            self._send(400, str(error).encode(), "text/plain")
            return
        content_type, body = rrd.updates(self.pool, self.server.host_index, query)
        self._send(200, body, content_type)


    def _authorised(self, params: dict[str, list[str]]) -> bool:
        """A session_id query parameter, or HTTP basic auth with the pool's credentials."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return (user, password) == (self.pool.user, self.pool.password)
        try:
            self.pool.store.check_session((params.get("session_id") or [""])[0])
        except XapiError:
            return False
        return True


def _plain(value: Any) -> Any:
    """XML-RPC request values -> plain Python (dates as text, as xapi parses them)."""
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class XapiServer:
    """A two-host XAPI pool on 127.0.0.1 / 127.0.0.2, one random port, TLS or plain HTTP."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = True,
        user: str = "root",
        password: str = "vfleet-test",
        seed: bool = True,
        ca_signed: bool = False,
        extra_vms: int = 0,
    ) -> None:
        """ca_signed: host certificates signed by one test CA instead of self-signed each;
        extra_vms: that many more running guests (bulk-00000..), for scale tests."""
        self.workdir = workdir
        self.pool = XapiPool(ADDRESSES, user, password, seed)
        self.pool.add_guests(extra_vms)
        self.cert: PoolCerts | None = None
        self.tls_contexts: list[ssl.SSLContext] = []  # host index -> its listener's context
        if tls:
            self.cert = make_pool_certs(workdir, tuple(zip(HOST_NAMES, ADDRESSES, strict=True)), ca_signed)
            for host_ref, host_cert in zip(self.pool.hosts, self.cert.hosts, strict=True):
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(host_cert.cert, host_cert.key)
                self.tls_contexts.append(context)
                self.pool.add_certificate(host_ref, host_cert.thumbprint, host_cert.not_before, host_cert.not_after)
        self.listeners: list[_Listener] = []
        self.threads: list[threading.Thread] = []
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    def url(self, host_index: int = 0) -> str:
        return f"{self.scheme}://{ADDRESSES[host_index]}:{self.port}"

    def start(self) -> XapiServer:
        for _ in range(50):
            first = _Listener((ADDRESSES[0], 0), self, 0)
            port = first.server_address[1]
            try:
                second = _Listener((ADDRESSES[1], port), self, 1)
            except OSError:
                first.server_close()
                continue
            self.listeners, self.port = [first, second], int(port)
            break
        else:
            raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
        for listener in self.listeners:
            thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.pool.stopping.set()
        self.pool.faults.release()
        with self.pool.store.lock:
            self.pool.store.changed.notify_all()
        for listener in self.listeners:
            listener.shutdown()
            listener.server_close()
        for thread in self.threads:
            thread.join(timeout=5)

    def __enter__(self) -> XapiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
