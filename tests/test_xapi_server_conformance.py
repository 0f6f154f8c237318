"""Every answer the XAPI test server gives is checked, as it travelled, against xenapi.json:
a broad session over XML-RPC (the unmodified XenAPI client) and JSON-RPC 1.0 / 2.0 is
recorded at the wire and each answer goes through xapi_server.conformance.check_answer."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from xapi_server import client
from xapi_server.conformance import check_answer, check_event_batch
from xapi_server.fixture import xapi_server_fixture, xapi_server_http_fixture  # noqa: F401
from xapi_server.schema import check_record, load_api
from xapi_server.server import XapiServer

SERVED_CLASSES = [
    "VM", "VM_metrics", "VM_guest_metrics", "host", "host_metrics", "pool", "Certificate", "VBD", "VDI", "VIF", "SR",
    "network", "console", "session", "task",
]


def attempt(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except XenAPI.Failure as failure:
        return failure.details


def wait_task(x: Any, task: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = x.task.get_record(task)
        if record["status"] != "pending":
            return dict(record)
        time.sleep(0.02)
    raise AssertionError(f"task {task} still pending")


def exercise_xmlrpc(server: XapiServer) -> None:
    """A broad session through the XenAPI client: reads, every field getter, every
    lifecycle call, errors, tasks, events, data sources."""
    s = client.session(server)
    x = s.xenapi
    api = load_api()
    for cls in SERVED_CLASSES:
        proxy = getattr(x, cls)
        if "get_all" not in api.cls(cls).messages:  # session: xapi lists no sessions
            refs = [s._session]
        else:
            refs = proxy.get_all()
            proxy.get_all_records()
        for ref in refs[:3]:
            proxy.get_record(ref)
        if refs:
            for name in api.cls(cls).fields:
                getattr(proxy, f"get_{name}")(refs[0])
            proxy.get_by_uuid(proxy.get_uuid(refs[0]))
    pool = server.pool
    web, halted, paused = pool.vm("web-01"), pool.vm("halted-01"), pool.vm("paused-01")
    x.VM.get_by_name_label("web-01")
    for call, args in [
        (x.VM.start, (halted, False, False)),
        (x.VM.clean_reboot, (halted,)),
        (x.VM.hard_reboot, (halted,)),
        (x.VM.pause, (halted,)),
        (x.VM.unpause, (halted,)),
        (x.VM.suspend, (halted,)),
        (x.VM.resume, (halted, False, False)),
        (x.VM.clean_shutdown, (halted,)),
        (x.VM.hard_shutdown, (paused,)),
        (x.VM.pool_migrate, (web, pool.hosts[1], {"live": "true"})),
        (x.VM.start, (halted, False, False)),  # VM_BAD_POWER_STATE
        (x.VM.clean_shutdown, (pool.vm("protected-01"),)),  # OPERATION_BLOCKED
        (x.VM.start, (pool.vm("debian-12"), False, False)),  # VM_IS_TEMPLATE
        (x.VM.clean_shutdown, (x.VM.get_by_name_label("Control domain on host: xcp-a")[0],)),
        (x.VM.get_record, ("OpaqueRef:no-such-vm",)),  # HANDLE_INVALID
        (x.VM.start, (halted,)),  # MESSAGE_PARAMETER_COUNT_MISMATCH
        (x.VM.no_such_message, (halted,)),  # MESSAGE_METHOD_UNKNOWN
        (x.VM.add_to_blocked_operations, (halted, "start", "test")),
        (x.VM.add_to_blocked_operations, (halted, "start", "again")),  # MAP_DUPLICATE_KEY
        (x.VM.remove_from_blocked_operations, (halted, "start")),
        (x.VM.set_name_description, (halted, "described")),
        (x.VM.get_data_sources, (web,)),
        (x.VM.query_data_source, (web, "cpu0")),
        (x.host.get_data_sources, (pool.hosts[0],)),
        (x.host.query_data_source, (pool.hosts[0], "cpu_avg")),
        (x.event.get_current_id, ()),
        (x.host.get_servertime, (pool.hosts[0],)),
        (x.host.get_server_localtime, (pool.hosts[1],)),
        (x.VM.start_on, (paused, pool.hosts[1], False, False)),
        (x.VM.suspend, (web,)),
        (x.VM.resume_on, (web, pool.hosts[0], False, False)),
    ]:
        attempt(call, *args)
    snap = x.VM.snapshot(web, "conformance snapshot")
    x.VM.revert(snap)
    snap_disks = [x.VBD.get_VDI(vbd) for vbd in x.VM.get_VBDs(snap)]
    x.VM.destroy(snap)
    for vdi in snap_disks:
        x.VDI.destroy(vdi)
    attempt(x.VDI.destroy, x.VBD.get_VDI(x.VM.get_VBDs(pool.vm("db-01"))[0]))  # VDI_IN_USE
    ok_task = x.Async.VM.start(halted, False, False)
    bad_task = x.Async.VM.unpause(halted)
    for task in (ok_task, bad_task):
        wait_task(x, task)
        x.task.get_status(task)
        x.task.get_result(task)
        x.task.get_error_info(task)
        x.task.cancel(task)
        x.task.destroy(task)
    event_from = getattr(x.event, "from")
    batch = event_from(["*"], "", 1.0)
    x.VM.set_name_description(web, "changed")
    event_from(["vm", "task"], batch["token"], 1.0)
    attempt(event_from, ["vm"], "not-a-token", 1.0)
    server.pool.store.expire_event_tokens()
    attempt(event_from, ["vm"], batch["token"], 1.0)
    x.VM.destroy(halted) if x.VM.get_power_state(halted) == "Halted" else x.VM.hard_shutdown(halted)
    attempt(client.session(server, host_index=1, login=False).xenapi.login_with_password, "root", "x", "1.0", "t")
    attempt(client.session(server, login=False).xenapi.login_with_password, "root", "wrong", "1.0", "t")
    s.xenapi.session.logout()


def exercise_jsonrpc(server: XapiServer, version: str) -> None:
    login = client.jsonrpc(server, "session.login_with_password", ["root", "vfleet-test", "1.0", "t"], version)
    session = login["result"]
    for cls in SERVED_CLASSES[:-2]:
        client.jsonrpc(server, f"{cls}.get_all_records", [session], version)
    web = server.pool.vm("web-01")
    client.jsonrpc(server, "VM.get_record", [session, web], version)
    client.jsonrpc(server, "VM.get_snapshot_time", [session, server.pool.vm("web-01 before upgrade")], version)
    client.jsonrpc(server, "VM.pause", [session, web], version)
    client.jsonrpc(server, "VM.pause", [session, web], version)  # VM_BAD_POWER_STATE
    client.jsonrpc(server, "VM.get_record", [session, "OpaqueRef:none"], version)
    client.jsonrpc(server, "Async.VM.unpause", [session, web], version)
    batch = client.jsonrpc(server, "event.from", [session, ["vm"], "", 1.0], version)["result"]
    client.jsonrpc(server, "event.from", [session, ["vm", "task"], batch["token"], 1.0], version)
    client.jsonrpc(server, "session.logout", [session], version)
    client.jsonrpc(server, "VM.get_all", [session], version)  # SESSION_INVALID


@pytest.fixture
def recorded(xapi_server: XapiServer) -> XapiServer:
    xapi_server.pool.keep_wire = True
    exercise_xmlrpc(xapi_server)
    exercise_jsonrpc(xapi_server, "2.0")
    exercise_jsonrpc(xapi_server, "1.0")
    return xapi_server


def test_every_answer_matches_the_definition(recorded: XapiServer) -> None:
    api = load_api()
    log = recorded.pool.wire_log
    problems = [p for protocol, method, count, body in log for p in check_answer(api, protocol, method, count, body)]
    assert problems == [], "\n".join(problems[:40])
    # the session really covered the ground: all protocols, the served classes' getters, errors
    assert {protocol for protocol, *_ in log} == {"xmlrpc", "json2.0", "json1.0"}
    methods = {method for _, method, _, _ in log}
    assert len(methods) > 250
    assert {f"{cls}.get_all_records" for cls in SERVED_CLASSES if cls != "session"} <= methods
    bodies = b"".join(body for *_, body in log)
    for code in (b"VM_BAD_POWER_STATE", b"OPERATION_BLOCKED", b"VM_IS_TEMPLATE", b"HANDLE_INVALID",
                 b"MESSAGE_PARAMETER_COUNT_MISMATCH", b"MESSAGE_METHOD_UNKNOWN", b"SESSION_INVALID",
                 b"HOST_IS_SLAVE", b"SESSION_AUTHENTICATION_FAILED", b"EVENTS_LOST", b"MAP_DUPLICATE_KEY",
                 b"OPERATION_NOT_ALLOWED", b"EVENT_FROM_TOKEN_PARSE_FAILURE", b"VDI_IN_USE"):
        assert code in bodies, code


def test_the_checker_catches_a_wrong_answer(xapi_server: XapiServer) -> None:
    """The conformance check can fail: a record with a foreign field, a bad enum, an int as
    an XML-RPC int, a missing field, an unknown error are each reported."""
    api = load_api()
    s = client.session(xapi_server)
    record = dict(s.xenapi.VM.get_record(xapi_server.pool.vm("web-01")))
    assert check_record("VM", record, api, "xmlrpc") == []
    for change, expected in [
        ({"nonsense": "1"}, "no such field"),
        ({"power_state": "Sleeping"}, "is not enum"),
        ({"domid": 11}, "is not int"),
        ({"resident_on": "host0"}, "is not ref"),
        ({"snapshot_time": "yesterday"}, "is not datetime"),
    ]:
        problems = check_record("VM", {**record, **change}, api, "xmlrpc")
        assert any(expected in p for p in problems), (change, problems)
    del record["uuid"]
    assert any("missing" in p for p in check_record("VM", record, api, "xmlrpc"))
    bad_error = b'{"jsonrpc": "2.0", "error": {"code": 1, "message": "NO_SUCH_ERROR", "data": []}, "id": 1}'
    assert check_answer(api, "json2.0", "VM.get_record", 2, bad_error) == ["json2.0 VM.get_record: error NO_SUCH_ERROR is not in the definition"]
    batch = {"events": [{"id": "1", "class": "vm", "operation": "mod", "ref": "OpaqueRef:x"}], "valid_ref_counts": {}, "token": ""}
    assert any("without a snapshot" in p for p in check_event_batch(api, batch, "xmlrpc", "e"))


def test_the_vendored_reference_is_the_upstream_one() -> None:
    """tests/fixtures/xapi is xapi's definition minus its prose and its SDK pairs unchanged (when the full
    reference is on this machine: ../shared/reference/xapi or $VFLEET_XAPI_UPSTREAM)."""
    root = Path(__file__).resolve().parents[1]
    upstream = Path(os.environ.get("VFLEET_XAPI_UPSTREAM", root.parent / "shared" / "reference" / "xapi"))
    if not (upstream / "xenapi.json").exists():
        pytest.skip(f"no upstream XAPI reference at {upstream}")
    vendored = root / "tests" / "fixtures" / "xapi"
    spec = importlib.util.spec_from_file_location("xapi_reference", root / "testbed" / "xapi-reference.py")
    assert spec is not None and spec.loader is not None
    vendor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor)
    assert json.loads((vendored / "xenapi.json").read_text()) == vendor.shape(
        json.loads((upstream / "xenapi.json").read_text())
    )
    pairs = Path("sdk-component-test", "spec", "xapi-24")
    names = sorted(p.name for p in (upstream / pairs).glob("*.json"))
    assert names and names == sorted(p.name for p in (vendored / pairs).glob("*.json"))
    for name in names:
        assert (vendored / pairs / name).read_bytes() == (upstream / pairs / name).read_bytes(), name
