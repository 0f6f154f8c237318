"""The XAPI test server, driven only through the unmodified XenAPI client (and raw HTTP for
/rrd_updates and JSON-RPC): sessions, records, lifecycle, events, tasks, metrics, faults."""

from __future__ import annotations

import json
from typing import Any

import pytest
import XenAPI

from xapi_server import client
from xapi_server.fixture import xapi_server_fixture, xapi_server_http_fixture  # noqa: F401
from xapi_server.seed import HOSTILE_NAME
from xapi_server.server import XapiServer


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as caught:
        call(*args)
    return list(caught.value.details)


def vm_named(x: Any, name: str) -> str:
    refs = x.VM.get_by_name_label(name)
    assert len(refs) == 1, name
    return str(refs[0])


def test_login_reads_the_pool_over_tls_with_the_ca_file(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    pool = x.pool.get_record(x.pool.get_all()[0])
    master = x.host.get_record(pool["master"])
    assert master["address"] == "127.0.0.1"
    assert master["API_version_major"] == "2"  # XML-RPC: ints travel as strings
    records = x.VM.get_all_records()
    states = {r["power_state"] for r in records.values() if not r["is_a_template"] and not r["is_control_domain"]}
    assert states == {"Running", "Halted", "Paused", "Suspended"}
    assert sum(r["is_control_domain"] for r in records.values()) == 2
    assert {r["name_label"] for r in records.values()} >= {"web-01", HOSTILE_NAME}
    hosts = {r["resident_on"] for r in records.values() if r["power_state"] == "Running"}
    assert hosts == set(x.host.get_all())


def test_plain_http_serves_the_same_pool(xapi_server_http: XapiServer) -> None:
    assert xapi_server_http.url().startswith("http://")
    x = client.session(xapi_server_http).xenapi
    assert len(x.host.get_all()) == 2


def test_wrong_password_is_session_authentication_failed(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server, login=False)
    details = failure(s.xenapi.login_with_password, "root", "wrong", "1.0", "t")
    assert details[0] == "SESSION_AUTHENTICATION_FAILED"


def test_slave_answers_host_is_slave_with_the_master_address(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server, host_index=1, login=False)
    assert failure(s.xenapi.login_with_password, "root", "vfleet-test", "1.0", "t") == ["HOST_IS_SLAVE", "127.0.0.1"]
    xapi_server.pool.make_master(1)
    old = client.session(xapi_server, host_index=0, login=False)
    assert failure(old.xenapi.login_with_password, "root", "vfleet-test", "1.0", "t") == ["HOST_IS_SLAVE", "127.0.0.2"]
    client.session(xapi_server, host_index=1)  # the new master accepts the login


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
    assert doc["meta"]["rows"] == len(doc["data"]) == 12
    assert doc["data"][0]["t"] == now
    assert client.get(xapi_server, path)[2] == body  # deterministic for one window
