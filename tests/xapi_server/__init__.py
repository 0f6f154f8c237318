"""A faithful XAPI (XCP-ng / XenServer) pool for tests: the real `XenAPI` client talks to it.

Start one (or the pytest fixtures of `xapi_server.fixture`: `xapi_server` over TLS,
`xapi_server_http` over plain HTTP; import them as its docstring says):

    from xapi_server.server import XapiServer
    with XapiServer(tmp_path, tls=True) as srv:
        srv.url(0)            # "https://127.0.0.1:PORT": host 0, the master
        srv.url(1)            # "https://127.0.0.2:PORT": host 1, a slave (same port)
        srv.port, srv.cert    # srv.cert.cert = CA file trusting every host; .sha256, .sha1,
                              # .thumbprint (AB:CD:..) = the master's pin; srv.cert.hosts[i] =
                              # host i's own self-signed cert (.cert, .sha256, .thumbprint), as
                              # XCP-ng hosts each have one; each host's Certificate record lists it
        srv.pool.user, srv.pool.password       # "root", "vfleet-test"

Client side (only the unmodified XenAPI package):

    ctx = ssl.create_default_context(cafile=str(srv.cert.cert))
    session = XenAPI.Session(srv.url(), transport=xmlrpc.client.SafeTransport(context=ctx))
    session.xenapi.login_with_password("root", "vfleet-test", "1.0", "vfleet")

Wire: XML-RPC at / (ints as decimal strings, datetimes as <dateTime.iso8601>
YYYYMMDDTHH:MM:SSZ, Status/Value/ErrorDescription), JSON-RPC 1.0 and 2.0 at /jsonrpc,
GET /rrd_updates?session_id=..&start=..&host=true&cf=AVERAGE&interval=5&json=true (XML
without json; HTTP basic auth with the pool's credentials also works); only the VMs
resident on the host asked (host 1's at srv.url(1)).

The pool (`srv.pool`, an `XapiPool`) — see seed.py for the VMs and their names:
    pool.store                 the database: .record(cls, ref), .modify(cls, ref, **fields),
                               .add(cls, fields), .remove(cls, ref), .find(cls, **match)
    pool.vm("web-01")          a VM's reference by name; pool.hosts = [host0, host1] refs
    pool.seeded.load           vm uuid -> "busy" | "idle" (how its rrd numbers move)
    pool.calls                 every method called, in order ("/rrd_updates" for metrics)
    pool.clock = lambda: T     the time /rrd_updates samples up to (default time.time)
    pool.rrd_numbers_as_strings = True    rrd_updates JSON values as strings ("0.5", as current
                                          xapi writes them; t and meta stay numbers)
    pool.rrd_legacy_json = True           rrd_updates "JSON" as older xapi wrote it: unquoted
                                          keys, bare values ({meta: {start:..},data:[{t:..,values:[..]}]})
    pool.task_delay = 0.5      Async tasks stay "pending" this long
    pool.make_master(1)        host 1 becomes master: logins at host 0 get HOST_IS_SLAVE [127.0.0.2]
    pool.store.expire_event_tokens()   every event.from token so far -> EVENTS_LOST
    pool.store.expire_sessions()       every session -> SESSION_INVALID (also ends event.from waits)
    pool.faults.hang("VM.get_all_records")   matching calls block until faults.release(...)
    pool.faults.drop("event.from", times=1)  matching calls get the connection closed
    pool.faults.delay("VM.*", 2.0)           matching calls answer 2 s late (0 removes it)
    pool.host_down(1)          host 1 closes every connection, host_metrics.live false
    pool.add_guests(500)       more running guests (also XapiServer(..., extra_vms=500))
    XapiServer(..., ca_signed=True)   host certificates signed by one CA (srv.cert.cert)
    (patterns are fnmatch patterns over method names; "/rrd_updates" for the metrics URL)

Errors as xapi: SESSION_AUTHENTICATION_FAILED, SESSION_INVALID, HOST_IS_SLAVE [master IP],
HANDLE_INVALID [class, ref], MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, got],
MESSAGE_METHOD_UNKNOWN, VM_BAD_POWER_STATE [vm, expected, actual], VM_IS_TEMPLATE,
VM_IS_SNAPSHOT, OPERATION_NOT_ALLOWED (control domains), OPERATION_BLOCKED [vm, reason]
(blocked_operations: xapi's error for them; xenapi.json lists only OPERATION_NOT_ALLOWED),
OTHER_OPERATION_IN_PROGRESS [VM, vm, task] (while an Async call on the VM is pending),
VDI_IN_USE, MAP_DUPLICATE_KEY, EVENTS_LOST, EVENT_FROM_TOKEN_PARSE_FAILURE [token].

Also as xapi: snapshots are templates too (is_a_template and is_a_snapshot), VM.parent /
children form the snapshot tree, checkpoints are Suspended snapshots; each guest has a disk
(VBD xvda -> VDI on a shared SR), a VIF and, while running, a console; VM.destroy leaves
the VDIs (VDI.destroy removes them); tasks go pending -> success / failure / cancelled
with result "<value>ref</value>". XapiServer(..., seed=False) serves the pool and its hosts
only (for fixtures that bring their own objects). xapi_server.client has helpers: a
verifying XenAPI session, raw GET, raw JSON-RPC.

Records are built from tests/fixtures/xapi/xenapi.json (the shape of xapi's definition; every field of the class,
xapi's defaults); set VFLEET_XAPI_REFERENCE to its folder if it lives elsewhere.
"""
