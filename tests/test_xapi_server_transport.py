"""The XAPI test server's transport side: /rrd_updates (JSON, strings, legacy, XML, auth),
TLS (CA file, pins, per-host and CA-signed certificates), fault hooks, JSON-RPC envelopes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
import xmlrpc.client
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import XenAPI
from cryptography import x509

from xapi_server import client
from xapi_server.certs import make_cert
from xapi_server.client import NOW, column, rrd_json, vm_named
from xapi_server.fixture import xapi_server_fixture, xapi_server_http_fixture  # noqa: F401
from xapi_server.seed import HOSTILE_NAME
from xapi_server.server import XapiServer

# --- /rrd_updates -----------------------------------------------------------------------


def test_rrd_updates_json_has_contention_for_busy_and_idle_vms(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    now = 1_800_000_000
    xapi_server.pool.clock = lambda: now
    path = f"/rrd_updates?start={now - 60}&host=true&cf=AVERAGE&interval=5&json=true&session_id={s._session}"
    status, _, body = client.get(xapi_server, path)
    assert status == 200
    doc = json.loads(body)
    legend = doc["meta"]["legend"]
    web = s.xenapi.VM.get_uuid(vm_named(s.xenapi, "web-01"))
    assert f"AVERAGE:vm:{web}:runstate_full_contention" in legend
    assert doc["meta"]["rows"] == len(doc["data"]) == 13  # t >= start, both ends included
    assert doc["data"][0]["t"] == now
    assert client.get(xapi_server, path)[2] == body  # deterministic for one window


def test_rrd_updates_contention_busy_versus_idle(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    doc = rrd_json(xapi_server, s, host_index=1)
    x = s.xenapi
    idle, busy = x.VM.get_uuid(vm_named(x, "db-01")), x.VM.get_uuid(xapi_server.pool.vm(HOSTILE_NAME))
    for uuid in (idle, busy):
        for source in ("cpu0", "memory", "memory_target", "memory_internal_free" if uuid == idle else "memory",
                       "vbd_xvda_read", "vbd_xvda_write", "vbd_xvda_read_latency", "vif_0_rx", "vif_0_tx",
                       "runstate_full_contention", "runstate_partial_contention"):
            assert f"AVERAGE:vm:{uuid}:{source}" in doc["meta"]["legend"]
    contention = {
        uuid: [f + p for f, p in zip(column(doc, f"AVERAGE:vm:{uuid}:runstate_full_contention"),
                                     column(doc, f"AVERAGE:vm:{uuid}:runstate_partial_contention"), strict=True)]
        for uuid in (idle, busy)
    }
    assert max(contention[idle]) < 0.001 and min(contention[busy]) > 0.03
    assert min(column(doc, f"AVERAGE:vm:{busy}:cpu0")) > 0.5 > max(column(doc, f"AVERAGE:vm:{idle}:cpu0"))
    host = x.host.get_uuid(xapi_server.pool.hosts[1])
    assert f"AVERAGE:host:{host}:memory_free_kib" in doc["meta"]["legend"]
    assert len(doc["meta"]["legend"]) == doc["meta"]["columns"] == len(doc["data"][0]["values"])
    assert [row["t"] for row in doc["data"]] == list(range(NOW, NOW - 61, -5))  # newest first
    assert doc["meta"]["start"] == NOW - 55  # xapi: the first sample slot after start


def test_rrd_updates_advance_with_time_and_pause_stops_cpu(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    web = vm_named(s.xenapi, "web-01")
    entry = f"AVERAGE:vm:{s.xenapi.VM.get_uuid(web)}:cpu0"
    earlier = column(rrd_json(xapi_server, s, start=NOW - 600), entry)
    assert len(earlier) == 120 and len(set(earlier)) > 50  # moves sample to sample
    s.xenapi.VM.pause(web)
    assert set(column(rrd_json(xapi_server, s), entry)) == {0.0}
    s.xenapi.VM.hard_shutdown(web)
    assert entry not in rrd_json(xapi_server, s)["meta"]["legend"]


def test_rrd_updates_numbers_as_strings(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    xapi_server.pool.rrd_numbers_as_strings = True
    doc = rrd_json(xapi_server, s)
    values = doc["data"][0]["values"]
    assert values and all(isinstance(v, str) for v in values)
    assert isinstance(doc["meta"]["end"], int) and isinstance(doc["data"][0]["t"], int)  # as xapi: only values
    xapi_server.pool.rrd_numbers_as_strings = False
    as_numbers = rrd_json(xapi_server, s)["data"][0]["values"]
    assert all(isinstance(v, float) for v in as_numbers)
    assert [float(v) for v in values] == as_numbers


def test_rrd_updates_legacy_json_and_nan_before_start(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    web = xapi_server.pool.vm("web-01")
    metrics = xapi_server.pool.store.record("VM", web)["metrics"]
    xapi_server.pool.store.modify("VM_metrics", metrics, start_time=dt.datetime.fromtimestamp(NOW - 20, dt.UTC))
    entry = f"AVERAGE:vm:{s.xenapi.VM.get_uuid(web)}:cpu0"
    xapi_server.pool.rrd_numbers_as_strings = True
    strict = rrd_json(xapi_server, s)
    started = column(strict, entry)
    assert started[:5] != ["NaN"] * 5 and started[5:] == ["NaN"] * 8  # no samples before the domain started
    xapi_server.pool.rrd_legacy_json = True
    status, _, body = client.get(xapi_server, f"/rrd_updates?start={NOW - 60}&host=true&json=true&session_id={s._session}")
    assert status == 200 and body.startswith(b"{meta: {start:")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    quoted = re.sub(rb"([{,])(meta|start|step|end|rows|columns|legend|data|t|values):", rb'\1"\2":', body)
    legacy = json.loads(quoted)  # bare NaN is what Python's json accepts too
    assert legacy["meta"]["legend"] == strict["meta"]["legend"]
    assert [str(v) if v == v else "NaN" for v in column(legacy, entry)][5:] == ["NaN"] * 8
    assert b"e+09" in body  # memory in xcp-rrdd's %0.5g form


def test_rrd_updates_xml_form_and_auth(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    xapi_server.pool.clock = lambda: NOW
    query = f"/rrd_updates?start={NOW - 30}&host=true&cf=AVERAGE&interval=5&session_id={s._session}"
    status, content_type, body = client.get(xapi_server, query, headers={"Accept": "text/xml"})
    assert status == 200 and content_type == "text/xml"
    root = ElementTree.fromstring(body)
    legend = [e.text for e in root.iter("entry")]
    rows = root.findall("./data/row")
    assert len(rows) == int(root.findtext("./meta/rows") or 0) == 7
    assert all(len(row.findall("v")) == len(legend) == int(root.findtext("./meta/columns") or 0) for row in rows)
    assert client.get(xapi_server, query.replace(s._session, "OpaqueRef:bad"))[0] == 401
    basic = "Basic " + base64.b64encode(b"root:vfleet-test").decode()
    no_session = query.replace(f"&session_id={s._session}", "")
    assert client.get(xapi_server, no_session, headers={"Authorization": basic})[0] == 200
    wrong = "Basic " + base64.b64encode(b"root:nope").decode()
    assert client.get(xapi_server, no_session, headers={"Authorization": wrong})[0] == 401
    assert client.get(xapi_server, "/rrd_updates?host=true&session_id=" + s._session)[0] == 400


# --- TLS and faults ---------------------------------------------------------------------


def test_tls_needs_the_right_ca_and_the_pin_matches(xapi_server: XapiServer, tmp_path: Path) -> None:
    other = make_cert(tmp_path / "other", ("127.0.0.1",))
    wrong = ssl.create_default_context(cafile=str(other.cert))
    s = XenAPI.Session(xapi_server.url(), transport=xmlrpc.client.SafeTransport(context=wrong))
    with pytest.raises(ssl.SSLCertVerificationError):
        s.xenapi.login_with_password("root", "vfleet-test", "1.0", "t")
    assert xapi_server.cert is not None
    served = ssl.get_server_certificate(("127.0.0.1", xapi_server.port))
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest() == xapi_server.cert.sha256
    # the member presents its own certificate, the one its Certificate record lists
    member = ssl.get_server_certificate(("127.0.0.2", xapi_server.port))
    member_sha = hashlib.sha256(ssl.PEM_cert_to_DER_cert(member)).hexdigest()
    assert member_sha == xapi_server.cert.hosts[1].sha256 != xapi_server.cert.sha256
    x = client.session(xapi_server).xenapi
    [listed] = x.host.get_certificates(xapi_server.pool.hosts[1])
    record = x.Certificate.get_record(listed)
    assert (record["type"], record["fingerprint"]) == ("host", xapi_server.cert.hosts[1].thumbprint)
    context = client.tls_context(xapi_server)
    assert context is not None
    with socket.create_connection(("127.0.0.2", xapi_server.port)) as raw, context.wrap_socket(raw, server_hostname="127.0.0.2"):
        pass


def test_ca_signed_host_certificates(tmp_path: Path) -> None:
    with XapiServer(tmp_path, ca_signed=True) as server:
        assert server.cert is not None
        leaf = x509.load_pem_x509_certificate(server.cert.hosts[1].cert.read_bytes())
        assert leaf.issuer.rfc4514_string() == "CN=vfleet test pool CA" != leaf.subject.rfc4514_string()
        for index in (0, 1):  # the CA file alone verifies every host
            with socket.create_connection((f"127.0.0.{index + 1}", server.port)) as raw:
                context = client.tls_context(server)
                assert context is not None
                with context.wrap_socket(raw, server_hostname=f"127.0.0.{index + 1}") as tls:
                    der = tls.getpeercert(binary_form=True)
            assert der is not None and hashlib.sha256(der).hexdigest() == server.cert.hosts[index].sha256
        x = client.session(server).xenapi
        assert x.pool.get_all()


class DeadlineTransport(xmlrpc.client.SafeTransport):
    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = 0.5
        return connection


def test_hang_and_drop_faults(xapi_server: XapiServer) -> None:
    s = XenAPI.Session(xapi_server.url(), transport=DeadlineTransport(context=client.tls_context(xapi_server)))
    s.xenapi.login_with_password("root", "vfleet-test", "1.0", "t")
    xapi_server.pool.faults.hang("VM.get_all_records")
    with pytest.raises(TimeoutError):
        s.xenapi.VM.get_all_records()
    xapi_server.pool.faults.release("VM.get_all_records")
    xapi_server.pool.faults.hang("/rrd_updates")
    request = urllib.request.Request(f"{xapi_server.url()}/rrd_updates?start=0&session_id={s._session}")
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(request, context=client.tls_context(xapi_server), timeout=0.5)
    xapi_server.pool.faults.release()
    xapi_server.pool.faults.delay("host.get_all", 0.3)  # under the 0.5 s deadline
    started = time.monotonic()
    s.xenapi.host.get_all()
    assert time.monotonic() - started >= 0.3
    xapi_server.pool.faults.delay("host.get_all", 0)
    s2 = client.session(xapi_server)
    assert s2.xenapi.VM.get_all_records()
    # xmlrpc.client resends once when a kept-alive connection drops: drop both tries
    xapi_server.pool.faults.drop("host.get_all", times=2)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        s2.xenapi.host.get_all()
    assert len(s2.xenapi.host.get_all()) == 2  # only those two were dropped
    xapi_server.pool.faults.drop("host.get_all", times=1)
    assert len(s2.xenapi.host.get_all()) == 2  # one drop: the client's resend succeeds


def test_a_host_that_is_down(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    xapi_server.pool.host_down(1)
    metrics = s.xenapi.host.get_metrics(xapi_server.pool.hosts[1])
    assert s.xenapi.host_metrics.get_live(metrics) is False
    with pytest.raises(OSError):  # reset before the TLS handshake
        client.get(xapi_server, f"/rrd_updates?start=0&session_id={s._session}", host_index=1)
    xapi_server.pool.host_down(1, False)
    assert client.get(xapi_server, f"/rrd_updates?start=0&session_id={s._session}", host_index=1)[0] == 200


def test_a_large_pool_for_scale(tmp_path: Path) -> None:
    with XapiServer(tmp_path, tls=False, extra_vms=300) as server:
        s = client.session(server)
        started = time.perf_counter()
        records = s.xenapi.VM.get_all_records()
        elapsed = time.perf_counter() - started
        assert len(records) == 11 + 300  # the seeded VMs (dom0s, template, snapshot too) and the bulk
        doc = json.loads(client.get(server, f"/rrd_updates?start=-30&json=true&session_id={s._session}", 1)[2])
        assert sum(":vm:" in e and e.endswith(":cpu0") for e in doc["meta"]["legend"]) >= 150
        assert elapsed < 20  # a sanity bound on a shared machine, not a benchmark


def test_jsonrpc_envelopes_and_malformed_requests(xapi_server: XapiServer) -> None:
    v2 = client.jsonrpc(xapi_server, "session.login_with_password", ["root", "vfleet-test", "1.0", "t"], "2.0", 7)
    assert set(v2) == {"jsonrpc", "result", "id"} and v2["id"] == 7
    v1 = client.jsonrpc(xapi_server, "session.login_with_password", ["root", "nope"], "1.0", "xyz")
    assert v1 == {"result": None, "error": ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"], "id": "xyz"}
    bad = client.jsonrpc(xapi_server, "VM.get_record", [v2["result"], "OpaqueRef:x"], "2.0", 8)
    assert bad == {"jsonrpc": "2.0", "error": {"code": 1, "message": "HANDLE_INVALID", "data": ["VM", "OpaqueRef:x"]}, "id": 8}
    ints = client.jsonrpc(xapi_server, "VM.get_domid", [v2["result"], xapi_server.pool.vm("web-01")])
    assert ints["result"] == 11  # JSON-RPC carries ints as numbers
    xml_session = client.session(xapi_server)._session  # one session serves both protocols
    assert client.jsonrpc(xapi_server, "VM.get_domid", [xml_session, xapi_server.pool.vm("web-01")])["result"] == 11
    request = urllib.request.Request(xapi_server.url() + "/jsonrpc", data=b'{"jsonrpc": "2.0", "method": "session.logout", "id": 0}')
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=client.tls_context(xapi_server), timeout=10)
    assert caught.value.code == 500 and b"Jsonrpc.Malformed_method_request" in caught.value.read()
    request = urllib.request.Request(xapi_server.url() + "/", data=b"<methodCall><methodName>session.logout</methodName>")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=client.tls_context(xapi_server), timeout=10)
    assert caught.value.code == 500
