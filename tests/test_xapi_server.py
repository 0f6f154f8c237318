"""The XAPI test server, driven only through the unmodified XenAPI client (and raw HTTP for
/rrd_updates and JSON-RPC): sessions, records, lifecycle, devices, tasks, event.from.
The transport side (rrd_updates, TLS, faults) is in test_xapi_server_transport.py."""

from __future__ import annotations

import threading
import time
import xmlrpc.client
from typing import Any

import pytest

from xapi_server import client
from xapi_server.client import failure, rrd_json, vm_named
from xapi_server.fixture import xapi_server_fixture, xapi_server_http_fixture  # noqa: F401
from xapi_server.seed import HOSTILE_NAME
from xapi_server.server import XapiServer


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


# --- lifecycle (vm-lifecycle.md) --------------------------------------------------------

TRANSITIONS = [
    # (VM, call, extra args, power state after)
    ("halted-01", "start", (False, False), "Running"),
    ("halted-01", "start", (True, False), "Paused"),
    ("web-01", "clean_shutdown", (), "Halted"),
    ("web-01", "hard_shutdown", (), "Halted"),
    ("web-01", "clean_reboot", (), "Running"),
    ("web-01", "hard_reboot", (), "Running"),
    ("web-01", "pause", (), "Paused"),
    ("web-01", "suspend", (), "Suspended"),
    ("paused-01", "unpause", (), "Running"),
    ("paused-01", "hard_shutdown", (), "Halted"),
    ("suspended-01", "resume", (False, False), "Running"),
    ("suspended-01", "resume", (True, False), "Paused"),
    ("suspended-01", "hard_shutdown", (), "Halted"),
]
REFUSED = [
    # (VM, call, extra args, error code): the state machine's missing edges
    ("halted-01", "clean_shutdown", (), "VM_BAD_POWER_STATE"),
    ("halted-01", "pause", (), "VM_BAD_POWER_STATE"),
    ("web-01", "start", (False, False), "VM_BAD_POWER_STATE"),
    ("web-01", "unpause", (), "VM_BAD_POWER_STATE"),
    ("web-01", "resume", (False, False), "VM_BAD_POWER_STATE"),
    ("paused-01", "clean_shutdown", (), "VM_BAD_POWER_STATE"),
    ("paused-01", "suspend", (), "VM_BAD_POWER_STATE"),
    ("suspended-01", "start", (False, False), "VM_BAD_POWER_STATE"),
    ("suspended-01", "unpause", (), "VM_BAD_POWER_STATE"),
    ("protected-01", "clean_shutdown", (), "OPERATION_BLOCKED"),
    ("protected-01", "hard_shutdown", (), "OPERATION_BLOCKED"),
    ("debian-12", "start", (False, False), "VM_IS_TEMPLATE"),
    ("web-01 before upgrade", "start", (False, False), "VM_IS_SNAPSHOT"),
    ("Control domain on host: xcp-a", "clean_reboot", (), "OPERATION_NOT_ALLOWED"),
]


@pytest.mark.parametrize(("name", "call", "args", "after"), TRANSITIONS)
def test_power_transitions(xapi_server: XapiServer, name: str, call: str, args: tuple[Any, ...], after: str) -> None:
    x = client.session(xapi_server).xenapi
    vm = vm_named(x, name)
    domid_before = x.VM.get_domid(vm)
    assert getattr(x.VM, call)(vm, *args) == ""
    record = x.VM.get_record(vm)
    assert record["power_state"] == after
    live = after in {"Running", "Paused"}
    assert (record["resident_on"] != "OpaqueRef:NULL") == live
    assert (record["domid"] != "-1") == live
    if call.endswith("reboot"):
        assert record["domid"] != domid_before  # a reboot is a new domain
    if live:
        assert vm in x.host.get_resident_VMs(record["resident_on"])
    else:
        assert all(vm not in h["resident_VMs"] for h in x.host.get_all_records().values())
    assert set(record["allowed_operations"]).isdisjoint(record["blocked_operations"])
    metrics = x.VM_metrics.get_record(record["metrics"])
    assert (metrics["VCPUs_number"] != "0") == live


@pytest.mark.parametrize(("name", "call", "args", "code"), REFUSED)
def test_refused_transitions(xapi_server: XapiServer, name: str, call: str, args: tuple[Any, ...], code: str) -> None:
    x = client.session(xapi_server).xenapi
    vm = vm_named(x, name)
    before = x.VM.get_record(vm)
    details = failure(getattr(x.VM, call), vm, *args)
    assert details[0] == code
    if code == "VM_BAD_POWER_STATE":
        assert details[1] == vm and details[3] == before["power_state"].lower()
    if code == "OPERATION_BLOCKED":
        assert details == ["OPERATION_BLOCKED", vm, "protected by the vfleet test pool"]
    assert x.VM.get_record(vm) == before


def test_snapshot_revert_and_destroy(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    web = vm_named(x, "web-01")
    snap = x.VM.snapshot(web, "before test")
    record = x.VM.get_record(snap)
    assert (record["is_a_snapshot"], record["snapshot_of"], record["power_state"]) == (True, web, "Halted")
    assert isinstance(record["snapshot_time"], xmlrpc.client.DateTime)
    assert snap in x.VM.get_snapshots(web)
    x.VM.revert(snap)
    assert x.VM.get_power_state(web) == "Halted"  # disk snapshots bring the VM back halted
    assert failure(x.VM.destroy, xapi_server.pool.vm("db-01"))[0] == "VM_BAD_POWER_STATE"
    x.VM.destroy(snap)
    assert snap not in x.VM.get_snapshots(web)
    assert failure(x.VM.get_record, snap) == ["HANDLE_INVALID", "VM", snap]
    assert failure(x.VM.destroy, vm_named(x, "protected-01"))[0] == "OPERATION_BLOCKED"


def test_snapshot_tree_and_checkpoints(xapi_server: XapiServer) -> None:
    """xapi's snapshot tree: a new snapshot hangs under the VM's parent and becomes it;
    revert moves the VM under the snapshot; a checkpoint reverts to Suspended."""
    x = client.session(xapi_server).xenapi
    vm = vm_named(x, "halted-01")
    a = x.VM.snapshot(vm, "a")
    b = x.VM.snapshot(vm, "b")
    assert (x.VM.get_parent(a), x.VM.get_parent(b), x.VM.get_parent(vm)) == ("OpaqueRef:NULL", a, b)
    assert x.VM.get_children(a) == [b] and x.VM.get_children(b) == [vm]
    x.VM.revert(a)
    assert x.VM.get_parent(vm) == a and sorted(x.VM.get_children(a)) == sorted([b, vm])
    x.VM.destroy(a)
    assert x.VM.get_parent(b) == x.VM.get_parent(vm) == "OpaqueRef:NULL"
    assert failure(x.VM.checkpoint, vm, "c")[0] == "VM_BAD_POWER_STATE"  # a checkpoint needs memory
    x.VM.start(vm, False, False)
    c = x.VM.checkpoint(vm, "c")
    assert x.VM.get_power_state(c) == "Suspended"
    x.VM.revert(c)
    assert x.VM.get_power_state(vm) == "Suspended" and x.VM.get_resident_on(vm) == "OpaqueRef:NULL"


def test_devices_disks_nics_consoles_follow_the_lifecycle(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    web, halted = vm_named(x, "web-01"), vm_named(x, "halted-01")
    [vbd] = x.VM.get_VBDs(web)
    attachment = x.VBD.get_record(vbd)
    assert (attachment["device"], attachment["type"], attachment["currently_attached"]) == ("xvda", "Disk", True)
    disk = x.VDI.get_record(attachment["VDI"])
    assert disk["SR"] in x.SR.get_all() and disk["is_a_snapshot"] is False
    [vif] = x.VM.get_VIFs(web)
    assert x.VIF.get_device(vif) == "0" and vif in x.network.get_VIFs(x.VIF.get_network(vif))
    [console] = x.VM.get_consoles(web)
    assert x.console.get_protocol(console) == "rfb"
    assert x.console.get_location(console).startswith("https://127.0.0.1/console?uuid=")
    dom0 = x.VM.get_by_name_label("Control domain on host: xcp-b")[0]
    assert [x.console.get_protocol(c) for c in x.VM.get_consoles(dom0)] == ["vt100"]
    assert x.VM.get_consoles(halted) == [] and x.VBD.get_currently_attached(x.VM.get_VBDs(halted)[0]) is False
    x.VM.start(halted, False, False)
    assert len(x.VM.get_consoles(halted)) == 1 and x.VBD.get_currently_attached(x.VM.get_VBDs(halted)[0]) is True
    # a snapshot owns snapshots of the disks; destroying it leaves them, VDI.destroy removes them
    snap = x.VM.snapshot(web, "disks")
    [snap_vbd] = x.VM.get_VBDs(snap)
    snap_disk = x.VBD.get_VDI(snap_vbd)
    assert x.VDI.get_is_a_snapshot(snap_disk) is True and x.VDI.get_snapshot_of(snap_disk) == attachment["VDI"]
    assert x.VM.get_VIFs(snap) == [] and x.VM.get_consoles(snap) == []
    x.VM.destroy(snap)
    assert failure(x.VBD.get_record, snap_vbd)[0] == "HANDLE_INVALID"
    assert x.VDI.get_VBDs(snap_disk) == []
    x.VDI.destroy(snap_disk)
    assert snap_disk not in x.VDI.get_all()
    assert failure(x.VDI.destroy, attachment["VDI"]) == ["VDI_IN_USE", attachment["VDI"], "destroy"]


def test_pool_migrate_moves_the_vm_and_its_metrics(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    x = s.xenapi
    web = vm_named(x, "web-01")
    host0, host1 = xapi_server.pool.hosts
    x.VM.pool_migrate(web, host1, {"live": "true"})
    assert x.VM.get_resident_on(web) == host1
    assert web in x.host.get_resident_VMs(host1) and web not in x.host.get_resident_VMs(host0)
    uuid = x.VM.get_uuid(web)
    legend0 = rrd_json(xapi_server, s, host_index=0)["meta"]["legend"]
    legend1 = rrd_json(xapi_server, s, host_index=1)["meta"]["legend"]
    assert not any(uuid in e for e in legend0) and any(uuid in e for e in legend1)
    assert failure(x.VM.pool_migrate, vm_named(x, "halted-01"), host0, {})[0] == "VM_BAD_POWER_STATE"


def test_parameter_count_and_handles(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    web = vm_named(x, "web-01")
    assert failure(x.VM.start, web) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "4", "2"]
    assert failure(x.VM.get_record, "OpaqueRef:nothing") == ["HANDLE_INVALID", "VM", "OpaqueRef:nothing"]
    halted = vm_named(x, "halted-01")
    assert failure(x.VM.start_on, halted, "OpaqueRef:no-host", False, False) == ["HANDLE_INVALID", "host", "OpaqueRef:no-host"]
    assert x.VM.get_power_state(halted) == "Halted"
    x.VM.start_on(halted, xapi_server.pool.hosts[1], False, False)
    assert x.VM.get_resident_on(halted) == xapi_server.pool.hosts[1]
    assert failure(x.VM.frobnicate, web)[0] == "MESSAGE_METHOD_UNKNOWN"
    assert failure(x.Async.VM.get_record, web) == ["MESSAGE_METHOD_UNKNOWN", "Async.VM.get_record"]
    assert failure(x.Async.session.logout) == ["MESSAGE_METHOD_UNKNOWN", "Async.session.logout"]


def test_control_domains_templates_snapshots_are_flagged(xapi_server: XapiServer) -> None:
    records = client.session(xapi_server).xenapi.VM.get_all_records()
    dom0 = [r for r in records.values() if r["is_control_domain"]]
    assert sorted(r["resident_on"] for r in dom0) == sorted(xapi_server.pool.hosts)
    assert {r["domid"] for r in dom0} == {"0"}
    templates = [r["name_label"] for r in records.values() if r["is_a_template"]]
    assert sorted(templates) == ["debian-12", "web-01 before upgrade"]  # xapi: snapshots are templates
    assert [r["name_label"] for r in records.values() if r["is_a_snapshot"]] == ["web-01 before upgrade"]
    guests = [r for r in records.values() if not (r["is_control_domain"] or r["is_a_template"] or r["is_a_snapshot"])]
    assert len(guests) == 7


def test_hostile_name_arrives_intact_over_both_protocols(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    vm = xapi_server.pool.vm(HOSTILE_NAME)
    assert s.xenapi.VM.get_name_label(vm) == HOSTILE_NAME
    assert len(HOSTILE_NAME) > 300 and "\u009b" in HOSTILE_NAME and "\u202e" in HOSTILE_NAME
    assert client.jsonrpc(xapi_server, "VM.get_name_label", [s._session, vm])["result"] == HOSTILE_NAME


# --- tasks ------------------------------------------------------------------------------


def wait_task(x: Any, task: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # poll interval inside a deadline
        record = x.task.get_record(task)
        if record["status"] != "pending":
            return dict(record)
        time.sleep(0.02)
    raise AssertionError("task still pending")


def test_async_calls_return_tasks(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    xapi_server.pool.task_delay = 0.3
    web = vm_named(x, "web-01")
    task = x.Async.VM.pause(web)
    assert x.task.get_status(task) == "pending"
    assert x.VM.get_current_operations(web) == {task: "pause"}
    assert x.VM.get_allowed_operations(web) == []
    assert failure(x.VM.clean_shutdown, web) == ["OTHER_OPERATION_IN_PROGRESS", "VM", web, task]
    done = wait_task(x, task)
    assert x.VM.get_current_operations(web) == {}
    assert "unpause" in x.VM.get_allowed_operations(web)
    assert (done["status"], done["result"], done["error_info"]) == ("success", "", [])
    assert x.VM.get_power_state(web) == "Paused"
    failed = wait_task(x, x.Async.VM.pause(web))
    assert failed["status"] == "failure" and failed["error_info"][0] == "VM_BAD_POWER_STATE"
    pending = x.Async.VM.unpause(web)
    x.task.cancel(pending)
    assert wait_task(x, pending)["status"] == "cancelled"
    assert x.VM.get_power_state(web) == "Paused"  # the cancelled call never ran
    assert failure(x.task.cancel, pending)[0] == "OPERATION_NOT_ALLOWED"
    snap_task = wait_task(x, x.Async.VM.snapshot(web, "async snap"))
    snap = snap_task["result"].removeprefix("<value>").removesuffix("</value>")
    assert x.VM.get_is_a_snapshot(snap) is True


# --- event.from -------------------------------------------------------------------------


def event_from(x: Any, *args: Any) -> dict[str, Any]:
    return dict(getattr(x.event, "from")(*args))


def test_event_from_token_flow_and_class_filter(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    first = event_from(x, ["vm"], "", 5.0)
    assert {e["operation"] for e in first["events"]} == {"add"}
    assert len(first["events"]) == int(first["valid_ref_counts"]["vm"]) == len(x.VM.get_all())
    web = vm_named(x, "web-01")
    x.VM.pause(web)
    x.host.set_name_description(xapi_server.pool.hosts[0], "not a vm")
    second = event_from(x, ["vm"], first["token"], 5.0)
    assert [(e["class"], e["operation"], e["ref"], e["snapshot"]["power_state"]) for e in second["events"]] == [
        ("vm", "mod", web, "Paused")
    ]
    started = time.monotonic()
    third = event_from(x, ["vm"], second["token"], 0.3)
    assert third["events"] == [] and 0.25 < time.monotonic() - started < 5


def test_event_from_wakes_on_a_change(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    token = event_from(x, ["vm"], "", 1.0)["token"]
    web = xapi_server.pool.vm("web-01")

    def change_once_waiting() -> None:
        deadline = time.monotonic() + 10
        while xapi_server.pool.calls.count("event.from") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        xapi_server.pool.store.modify("VM", web, name_description="woken")

    changer = threading.Thread(target=change_once_waiting)
    changer.start()
    started = time.monotonic()
    batch = event_from(x, ["vm"], token, 20.0)
    changer.join()
    assert time.monotonic() - started < 10
    assert [e["snapshot"]["name_description"] for e in batch["events"]] == ["woken"]


def test_expired_event_token_is_events_lost_then_resync(xapi_server: XapiServer) -> None:
    x = client.session(xapi_server).xenapi
    token = event_from(x, ["vm"], "", 1.0)["token"]
    xapi_server.pool.store.expire_event_tokens()
    assert failure(getattr(x.event, "from"), ["vm"], token, 1.0) == ["EVENTS_LOST"]
    fresh = event_from(x, ["vm"], "", 1.0)
    assert len(fresh["events"]) == len(x.VM.get_all())
    assert event_from(x, ["vm"], fresh["token"], 0.1)["events"] == []
    assert failure(getattr(x.event, "from"), ["vm"], "garbage", 1.0) == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "garbage"]


def test_expired_session_makes_the_client_log_in_again(xapi_server: XapiServer) -> None:
    s = client.session(xapi_server)
    old = s._session
    xapi_server.pool.store.expire_sessions()
    assert client.jsonrpc(xapi_server, "VM.get_all", [old])["error"]["message"] == "SESSION_INVALID"
    s.xenapi.VM.get_all()  # XenAPI answers SESSION_INVALID by logging in again
    assert s._session != old
    assert xapi_server.pool.calls.count("session.login_with_password") == 2
