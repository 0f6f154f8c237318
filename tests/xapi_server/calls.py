"""RPC dispatch: method name + params -> result, or XapiError.

Order as xapi: unknown method (MESSAGE_METHOD_UNKNOWN), parameter count
(MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received]), session (SESSION_INVALID),
then the call. Field getters/setters, get_record, get_all, get_all_records, get_by_uuid and
get_by_name_label are generic over every class of the definition; the rest is explicit.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from . import devices, events, lifecycle, rrd
from .pool import XapiPool
from .schema import Message, parse_type
from .store import XapiError, now

# Trailing parameters xapi fills with a default when a client omits them (newer params
# of old messages); the definition does not record defaults, so they are listed here.
OPTIONAL_TRAILING = {"session.login_with_password": 2, "VM.snapshot": 1}
SESSIONLESS = {"session.login_with_password", "session.slave_local_login_with_password"}


def call(pool: XapiPool, method: str, params: list[Any], host_index: int) -> Any:
    if method.startswith("Async."):
        return _async(pool, method[len("Async.") :], params, host_index)
    message = _message(pool, method)
    _check_count(method, message, params)
    if method == "session.login_with_password":
        return _login(pool, params, host_index)
    if method not in SESSIONLESS:
        pool.store.check_session(params[0])
    if method == "event.from":
        return events.event_from(pool, params[0], *params[1:])
    if method == "session.logout":
        pool.store.close_session(params[0])
        return ""
    cls, name = method.split(".", 1)
    handler = HANDLERS.get(method)
    if handler is not None:
        return handler(pool, *params[1:])
    return _generic(pool, cls, name, params[1:])


def _message(pool: XapiPool, method: str) -> Message:
    cls, _, name = method.partition(".")
    cdef = pool.store.api.classes.get(cls)
    message = cdef.messages.get(name) if cdef else None
    if message is None:
        raise XapiError("MESSAGE_METHOD_UNKNOWN", method)
    return message


def _check_count(method: str, message: Message, params: list[Any]) -> None:
    expected = len(message.params)
    if not expected - OPTIONAL_TRAILING.get(method, 0) <= len(params) <= expected:
        raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected, len(params))


def _login(pool: XapiPool, params: list[Any], host_index: int) -> str:
    if host_index != pool.master_index():
        raise XapiError("HOST_IS_SLAVE", pool.addresses[pool.master_index()])
    user, password = params[0], params[1]
    if (user, password) != (pool.user, pool.password):
        raise XapiError("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
    originator = params[3] if len(params) > 3 else ""
    return pool.store.open_session(str(user), str(originator), pool.hosts[host_index])


def _generic(pool: XapiPool, cls: str, name: str, args: list[Any]) -> Any:
    store = pool.store
    fields = store.api.cls(cls).fields
    if name == "get_record":
        return store.record(cls, args[0])
    if name == "get_all":
        return store.refs(cls)
    if name == "get_all_records":
        return store.all_records(cls)
    if name == "get_by_uuid":
        found = store.find(cls, uuid=args[0])
        if not found:
            raise XapiError("UUID_INVALID", cls, args[0])
        return found[0]
    if name == "get_by_name_label":
        return store.find(cls, name_label=args[0])
    for prefix in ("get_", "set_", "add_to_", "remove_from_", "add_", "remove_"):
        field_name = name[len(prefix) :]
        if name.startswith(prefix) and field_name in fields:
            return _field_call(pool, cls, prefix, field_name, args)
    raise XapiError("MESSAGE_METHOD_UNKNOWN", f"{cls}.{name}", "not implemented by the vfleet test server")


def _field_call(pool: XapiPool, cls: str, prefix: str, field_name: str, args: list[Any]) -> Any:
    store = pool.store
    with store.lock:
        value = store.record(cls, args[0])[field_name]
        if prefix == "get_":
            return value
        if prefix == "set_":
            store.modify(cls, args[0], **{field_name: _typed(pool, cls, field_name, args[1])})
        elif prefix == "add_to_":
            if args[1] in value:
                raise XapiError("MAP_DUPLICATE_KEY", cls, field_name, args[1], value[args[1]])
            store.modify(cls, args[0], **{field_name: {**value, args[1]: args[2]}})
        elif prefix == "remove_from_":
            store.modify(cls, args[0], **{field_name: {k: v for k, v in value.items() if k != args[1]}})
        elif prefix == "add_":
            store.modify(cls, args[0], **{field_name: value if args[1] in value else [*value, args[1]]})
        else:
            store.modify(cls, args[0], **{field_name: [v for v in value if v != args[1]]})
        if cls == "VM" and field_name == "blocked_operations":
            record = store.get("VM", args[0])
            if not record["is_control_domain"] and not record["is_a_snapshot"] and not record["is_a_template"]:
                store.modify("VM", args[0], allowed_operations=lifecycle.allowed_operations_of(record))
    return ""


def _typed(pool: XapiPool, cls: str, field_name: str, value: Any) -> Any:
    # XML-RPC clients send ints as strings, as xapi does
    kind = parse_type(pool.store.api.cls(cls).fields[field_name].type).kind
    if kind == "int" and isinstance(value, str):
        return int(value)
    return value


def _async(pool: XapiPool, method: str, params: list[Any], host_index: int) -> str:
    message = _message(pool, method)
    cls = method.partition(".")[0]
    # xapi has no Async form of session and task calls, nor of field getters and setters
    if cls in {"session", "task"} or (message.implicit and message.name not in {"create", "destroy"}):
        raise XapiError("MESSAGE_METHOD_UNKNOWN", f"Async.{method}")
    _check_count(method, message, params)
    pool.store.check_session(params[0])
    task = pool.store.add(
        "task",
        {
            "name_label": f"Async.{method}",
            "status": "pending",
            "created": now(),
            "progress": 0.0,
            "resident_on": pool.master_ref(),
            "allowed_operations": ["cancel"],
        },
    )
    busy_vm = _mark_busy(pool, method, params, task)

    def run() -> None:
        if pool.task_delay:
            pool.stopping.wait(pool.task_delay)
        if busy_vm:
            _mark_done(pool, busy_vm, task)
        if pool.store.get("task", task)["status"] == "cancelled":
            return
        try:
            result = call(pool, method, params, host_index)
        except XapiError as error:
            pool.store.modify("task", task, status="failure", error_info=error.description, finished=now(), progress=1.0)
            return
        text = f"<value>{result}</value>" if isinstance(result, str) and result else ""
        pool.store.modify("task", task, status="success", result=text, finished=now(), progress=1.0, allowed_operations=[])

    threading.Thread(target=run, name=f"xapi-task {method}", daemon=True).start()
    return task


def _mark_busy(pool: XapiPool, method: str, params: list[Any], task: str) -> str | None:
    """While an Async VM call is pending, the VM shows it in current_operations and allows
    nothing else (other calls get OTHER_OPERATION_IN_PROGRESS), as in xapi."""
    cls, _, op = method.partition(".")
    if cls != "VM" or len(params) < 2 or op not in pool.store.api.enums["vm_operations"]:
        return None
    vm = params[1]
    with pool.store.lock:
        if vm not in pool.store.objects.get("VM", {}):
            return None
        record = pool.store.get("VM", vm)
        pool.store.modify("VM", vm, current_operations={**record["current_operations"], task: op}, allowed_operations=[])
    return str(vm)


def _mark_done(pool: XapiPool, vm: str, task: str) -> None:
    with pool.store.lock:
        record = pool.store.objects.get("VM", {}).get(vm)
        if record is None:
            return
        operations = {t: op for t, op in record["current_operations"].items() if t != task}
        allowed = record["allowed_operations"] if operations else lifecycle.allowed_operations_of(record)
        pool.store.modify("VM", vm, current_operations=operations, allowed_operations=allowed)


def _task_cancel(pool: XapiPool, task: str) -> str:
    with pool.store.lock:
        record = pool.store.get("task", task)
        if "cancel" not in record["allowed_operations"]:
            raise XapiError("OPERATION_NOT_ALLOWED", f"task {record['status']}: it can no longer be cancelled")
        pool.store.modify("task", task, status="cancelled", finished=now(), allowed_operations=[])
    return ""


def _server_time(pool: XapiPool, host: str) -> Any:
    pool.store.get("host", host)
    return dt.datetime.fromtimestamp(int(pool.clock()), dt.UTC)


HANDLERS: dict[str, Callable[..., Any]] = {
    "VM.start": lifecycle.start,
    "VM.start_on": lambda pool, vm, host, paused, force: lifecycle.start(pool, vm, paused, force, host),
    "VM.clean_shutdown": lifecycle.clean_shutdown,
    "VM.hard_shutdown": lifecycle.hard_shutdown,
    "VM.clean_reboot": lifecycle.clean_reboot,
    "VM.hard_reboot": lifecycle.hard_reboot,
    "VM.pause": lifecycle.pause,
    "VM.unpause": lifecycle.unpause,
    "VM.suspend": lifecycle.suspend,
    "VM.resume": lifecycle.resume,
    "VM.resume_on": lambda pool, vm, host, paused, force: lifecycle.resume(pool, vm, paused, force, host),
    "VM.snapshot": lifecycle.snapshot,
    "VM.checkpoint": lifecycle.checkpoint,
    "VDI.destroy": devices.destroy_vdi,
    "VM.revert": lifecycle.revert,
    "VM.destroy": lifecycle.destroy,
    "VM.pool_migrate": lifecycle.pool_migrate,
    "VM.get_data_sources": lambda pool, vm: rrd.data_sources(pool, "VM", vm),
    "VM.query_data_source": lambda pool, vm, name: rrd.query_data_source(pool, "VM", vm, name),
    "host.get_data_sources": lambda pool, host: rrd.data_sources(pool, "host", host),
    "host.query_data_source": lambda pool, host, name: rrd.query_data_source(pool, "host", host, name),
    # the pool's clock, as clients use it to ask /rrd_updates for "since" in server time
    "host.get_servertime": lambda pool, host: _server_time(pool, host),
    "host.get_server_localtime": lambda pool, host: _server_time(pool, host),
    "event.get_current_id": lambda pool: pool.store.last_event_id(),
    "task.cancel": _task_cancel,
    "task.destroy": lambda pool, task: pool.store.remove("task", task) or "",
}
