"""esxi_api driver: an ESXi host or a whole vCenter through the vSphere API (pyVmomi).

pyVmomi is blocking: each host owns one session and a small pool of daemon
threads (drivers/threaded.py, the libvirt driver's shape): login, poll and logout on
one lane, actions on another, so an action never delays a poll. Every call runs by
its deadline; a call that outlives it keeps its thread, and a host whose threads
are all stuck answers DriverBusy. Every socket has a timeout too (login.py: TCP
connect, TLS handshake and each read), so a hung call ends by itself, and logout is
queued behind a stuck call instead of being skipped.

One poll = ONE RetrievePropertiesEx through ContainerViews (every VM and every
HostSystem; vCenter may page a very large answer, which we follow), plus at
most one QueryPerf per realtime interval (20 s) for all powered-on VMs: ESXi
produces a new sample only every 20 s, so asking more often only costs.

TLS is verified by default (system CAs, or tls.ca_file). tls.thumbprint pins
the certificate instead: we check its SHA-256 (or SHA-1) fingerprint ourselves
on every handshake, because pyVmomi's own pinning turns verification off for
the whole SSL context after the first mismatch with the CA check.
tls.insecure is honoured and reported in `warnings`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pyVim import connect as _connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import (
    ActionFailed,
    AuthFailed,
    DomainNotFound,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    NoConsole,
)
from vfleet.core.models import (
    ActionParams,
    ActionResult,
    Domain,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    MigrateParams,
    PowerState,
    SnapshotInfo,
    Verb,
)
from vfleet.drivers.base import LIFECYCLE, Capability, Driver
from vfleet.drivers.esxi import vsnap
from vfleet.drivers.esxi.login import NotVimServer, login, service_version
from vfleet.drivers.esxi.vsphere_map import (
    HOST_PROPERTIES,
    REALTIME_INTERVAL_S,
    RECORDING_FILE,
    VM_PROPERTIES,
    PerfSample,
    domain_from_props,
    facts_from_hosts,
    on_node,
    perf_samples,
    power_state,
    resolve_counters,
    vsphere_json,
)
from vfleet.drivers.threaded import Lane, pool_for
from vfleet.drivers.tls import PinMismatch, login_context, presented_fingerprint

log = logging.getLogger(__name__)
T = TypeVar("T")
LOGOUT_WAIT = 5.0  # close() waits this long for the logout; it still runs later if a call is stuck
PERF_MARGIN = 0.5  # s: with less left after the property read, the QueryPerf waits for the next poll
# pyVmomi's types are generated at run time and its hints are partial (untyped
# constructors, faults without their fields): use it as dynamically typed.
vim: Any = _vim
vmodl: Any = _vmodl
Disconnect: Any = _connect.Disconnect
PC = vmodl.query.PropertyCollector


class _Untrusted(Exception):
    def __init__(self, reason: str, presented: str) -> None:
        super().__init__(reason)
        self.reason, self.presented = reason, presented


# -- the driver --------------------------------------------------------------------


class EsxiApiDriver(Driver):
    kind = "esxi_api"
    capabilities = LIFECYCLE | {Capability.SUSPEND, Capability.SNAPSHOT, Capability.MIGRATION}
    # Verb -> (vSphere method, whether it returns a Task). PAUSE has no vSphere
    # equivalent: it suspends (memory to disk); RESUME powers a suspended VM on.
    METHODS: ClassVar[dict[Verb, tuple[str, bool]]] = {
        Verb.START: ("PowerOnVM_Task", True),
        Verb.FORCE_OFF: ("PowerOffVM_Task", True),
        Verb.SHUTDOWN: ("ShutdownGuest", False),
        Verb.REBOOT: ("RebootGuest", False),
        Verb.RESET: ("ResetVM_Task", True),
        Verb.PAUSE: ("SuspendVM_Task", True),
        Verb.SUSPEND: ("SuspendVM_Task", True),
        Verb.RESUME: ("PowerOnVM_Task", True),
    }

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self._pool = pool_for(config.name, self.endpoint)
        self._si: Any = None
        self._content: Any = None
        self._spec: Any = None
        self._views: list[Any] = []
        self._counters: dict[int, str] = {}
        self._perf: dict[str, PerfSample] = {}  # VM moId -> latest realtime sample
        self._perf_asked: set[str] = set()
        self._perf_at = float("-inf")
        self._by_name: dict[str, list[Any]] = {}
        self._by_uuid: dict[str, Any] = {}
        self._about = ""
        self._vcenter = False  # a vCenter: VMs run on its servers (nodes) and migrate between them
        self._nodes: dict[str, Any] = {}  # server name -> HostSystem, from the last poll
        self.warnings: list[str] = []  # shown as a badge: e.g. TLS verification is off
        self.calls: Counter[str] = Counter()  # SOAP round trips by method, for diagnostics and tests
        self._recording: dict[str, Any] | None = None  # the raw answers of a poll, while recording

    @property
    def endpoint(self) -> str:
        return f"{self.config.address}:{self._port}"

    @property
    def _port(self) -> int:
        return self.config.port or 443

    # -- plumbing -----------------------------------------------------------------

    async def _call(self, lane: Lane, what: str, fn: Callable[[], T], deadline: float) -> T:
        return await self._pool.call(lane, what, fn, deadline=deadline, translate=self._translate)

    def _translate(self, exc: Exception, what: str) -> DriverError:
        host, where = self.host, self.endpoint
        if isinstance(exc, PinMismatch):
            return AuthFailed(host, f"TLS certificate of {where} does not match tls.thumbprint: {exc}")
        if isinstance(exc, _Untrusted):
            return AuthFailed(
                host,
                f"TLS certificate of {where} is not trusted ({exc.reason}); it presented SHA-256 {exc.presented}. "
                "Set tls.ca_file to its CA bundle, or pin it with tls.thumbprint after checking that "
                "fingerprint on the host (or, at your own risk, tls.insecure: true)",
            )
        if isinstance(exc, vim.fault.InvalidLogin):
            return AuthFailed(host, f"login as {self.config.user!r} refused by {where}: wrong user name or password")
        if isinstance(exc, vim.fault.NotAuthenticated):
            return HostUnreachable(host, f"{what}: the session on {where} is no longer valid; reconnecting")
        if isinstance(exc, vim.fault.RestrictedVersion):
            return ActionFailed(
                host,
                f"{what}: refused by the license on {where} (RestrictedVersion: the free ESXi license makes the "
                "API read-only); use the esxi_ssh driver for actions on this host",
            )
        if isinstance(exc, vim.fault.InvalidPowerState):
            return ActionFailed(host, f"{what}: not possible while the VM is {exc.existingState}")
        if isinstance(exc, vim.fault.NoPermission):
            return ActionFailed(
                host, f"{what}: permission denied: user {self.config.user!r} lacks the privilege {exc.privilegeId}"
            )
        if isinstance(exc, vim.fault.ToolsUnavailable):
            return ActionFailed(host, f"{what}: VMware Tools are not running in the guest (use force-off or reset)")
        if isinstance(exc, vmodl.fault.ManagedObjectNotFound):
            return DomainNotFound(host, f"{what}: the VM no longer exists")
        if isinstance(exc, vmodl.MethodFault):
            return ActionFailed(host, f"{what}: {type(exc).__name__}: {exc.msg or 'no message'}")
        if isinstance(exc, NotVimServer):
            return HostUnreachable(host, f"{what}: {where}: {exc}")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return DriverTimeout(host, f"{what}: {where} did not answer in time ({exc or 'socket timeout'})")
        if isinstance(exc, (OSError, http.client.HTTPException)):
            return HostUnreachable(host, f"{what}: cannot reach {where}: {exc}")
        return HostUnreachable(host, f"{what}: {where}: {exc}")  # e.g. "is down or is not a VIM server"

    def _counting(self, si: Any) -> None:
        """Count SOAP round trips by method (cheap, and lets tests prove one call per poll)."""
        stub = si._stub
        invoke = stub.InvokeMethod

        def counted(mo: Any, info: Any, args: Any) -> Any:
            self.calls[info.wsdlName] += 1
            return invoke(mo, info, args)

        stub.InvokeMethod = counted

    # -- connection ---------------------------------------------------------------

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        context, warnings = login_context(self.config, self.kind)
        self.warnings = warnings
        for warning in warnings:
            log.warning("%s: %s", self.host, warning)
        si, facts = await self._pool.call(
            Lane.CONTROL,
            "login",
            lambda: self._open(context, deadline),
            deadline=deadline,
            translate=self._translate,
            discard=lambda opened: self._logout(opened[0]),  # a login that succeeds after we gave up
        )
        self._si = si
        return facts

    def _open(self, context: ssl.SSLContext, deadline: float) -> tuple[Any, HostFacts]:
        cfg = self.config
        assert cfg.address and cfg.password_env and cfg.user
        try:
            # a timeout of 0 would make the socket non-blocking: keep a sliver
            version = service_version(cfg.address, self._port, context, max(0.05, self.seconds_left(deadline)))
            si = login(
                cfg.address,
                self._port,
                cfg.user,
                os.environ[cfg.password_env],  # read here only; never stored or logged
                context,
                # each socket operation of every later call: longer than the call's own
                # deadline, so a hung call is first reported (DriverTimeout, then DriverBusy)
                # and only later frees its thread, never racing the caller's timeout
                max(1.0, 2 * cfg.call_timeout),
                version,
            )
        except PinMismatch:
            raise
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            presented = presented_fingerprint(cfg.address, self._port, max(0.1, self.seconds_left(deadline)))
            raise _Untrusted(reason, presented) from exc
        try:
            return si, self._setup(si)
        except BaseException:
            self._logout(si)  # logged in, but the rest failed: no session left behind
            raise

    def _setup(self, si: Any) -> HostFacts:
        cfg = self.config
        self._counting(si)
        content = self._content = si.RetrieveContent()
        self._about = str(content.about.fullName)
        self._vcenter = str(content.about.apiType) == "VirtualCenter"
        views = content.viewManager
        vm_view = views.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        host_view = views.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        self._views = [vm_view, host_view]
        self._spec = _filter_spec(
            ((vm_view, vim.VirtualMachine, VM_PROPERTIES), (host_view, vim.HostSystem, HOST_PROPERTIES))
        )
        self._counters = resolve_counters(
            (c.groupInfo.key, c.nameInfo.key, str(c.rollupType), c.key) for c in content.perfManager.perfCounter
        )
        _vms, hosts = self._retrieve()
        return facts_from_hosts(self._about, hosts.values(), cfg.address or self.host, vcenter=self._vcenter)

    async def close(self) -> None:
        """Log out; behind a stuck call the logout is queued, never skipped (a leaked session stays on vCenter)."""
        si, self._si = self._si, None
        if si is None:
            return
        await self._pool.finally_run("logout", lambda: self._logout(si), wait=LOGOUT_WAIT, translate=self._translate)

    def _logout(self, si: Any) -> None:
        views, self._views = self._views, []
        for view in views:
            with contextlib.suppress(Exception):
                view.DestroyView()
        with contextlib.suppress(Exception):  # best effort: the session may be gone already
            Disconnect(si)  # logs the session out, then drops the pooled connections
        with contextlib.suppress(Exception):
            si._stub.DropConnections()

    # -- polling ------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._si is None:
            raise HostUnreachable(self.host, "not connected")
        return self._si

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        """The property read and the QueryPerf share one deadline."""
        deadline = self.due(deadline)
        self._connected()
        return await self._call(Lane.CONTROL, "poll", lambda: self._read_snapshot(deadline), deadline)

    def _retrieve(self, deadline: float | None = None) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
        """ONE RetrievePropertiesEx for every VM and host (plus continuation pages, if any)."""
        collector = self._content.propertyCollector
        result = collector.RetrievePropertiesEx([self._spec], PC.RetrieveOptions())
        vms: dict[Any, dict[str, Any]] = {}
        hosts: dict[Any, dict[str, Any]] = {}
        while result is not None:
            for item in result.objects:
                props = {p.name: p.val for p in item.propSet}
                (vms if isinstance(item.obj, vim.VirtualMachine) else hosts)[item.obj] = props
                if self._recording is not None:
                    self._recording["objects"].append({"obj": vsphere_json(item.obj), "props": vsphere_json(props)})
            if result.token and deadline is not None and time.monotonic() > deadline:
                with contextlib.suppress(Exception):  # let the server free the rest of the answer
                    collector.CancelRetrievePropertiesEx(result.token)
                raise DriverTimeout(self.host, f"poll: deadline passed after {len(vms)} VMs of a paged answer")
            result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
        return vms, hosts

    def _read_snapshot(self, deadline: float) -> HostSnapshot:
        vms, hosts = self._retrieve(deadline)
        taken_at, now = time.monotonic(), datetime.now(UTC)
        running = [vm for vm, p in vms.items() if power_state(p.get("runtime.powerState"))[0] is PowerState.RUNNING]
        if deadline - time.monotonic() > PERF_MARGIN:
            self._refresh_perf(running, taken_at)
        else:  # the budget went on the property read: keep the last samples, ask again next poll
            log.debug("%s: no time left for QueryPerf this poll", self.host)
        pairs = [(vm, domain_from_props(props, now, self._perf.get(vm._moId))) for vm, props in vms.items()]
        if self._vcenter:
            self._nodes = {str(p.get("name")): h for h, p in hosts.items() if p.get("name")}
            names = {h._moId: name for name, h in self._nodes.items()}
            pairs = [(vm, on_node(d, names, getattr(vms[vm].get("runtime.host"), "_moId", ""))) for vm, d in pairs]
        self._index(pairs)
        facts = facts_from_hosts(self._about, hosts.values(), self.config.address or self.host, vcenter=self._vcenter)
        return HostSnapshot(self.host, taken_at, tuple(d for _vm, d in pairs if d is not None), facts)

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """One poll's PropertyCollector objects and QueryPerf answer (asked for afresh), as JSON."""
        deadline = self.due(deadline)
        self._connected()
        recording: dict[str, Any] = {
            "about": {"fullName": self._about, "apiType": "VirtualCenter" if self._vcenter else "HostAgent"},
            "counters": {str(key): name for key, name in self._counters.items()},
            "objects": [],
            "perf": None,
        }
        self._perf_at, self._perf_asked = float("-inf"), set()  # a recording holds a perf answer too

        def read() -> HostSnapshot:
            self._recording = recording
            try:
                recording["now"] = datetime.now(UTC).isoformat()
                return self._read_snapshot(deadline)
            finally:
                self._recording = None

        await self._call(Lane.CONTROL, "poll", read, deadline)
        return {RECORDING_FILE: json.dumps(recording, indent=1, ensure_ascii=False)}

    def _index(self, pairs: Iterable[tuple[Any, Domain | None]]) -> None:
        """Names and UUIDs -> VM objects, for actions."""
        by_name: dict[str, list[Any]] = {}
        by_uuid: dict[str, Any] = {}
        for vm, domain in pairs:
            if domain is None:
                continue
            by_name.setdefault(domain.name, []).append(vm)
            if domain.uuid:
                by_uuid[domain.uuid] = vm
        self._by_name, self._by_uuid = by_name, by_uuid  # swapped whole: actions read them from other threads

    def _refresh_perf(self, running: list[Any], now: float) -> None:
        """One QueryPerf for all running VMs, only when a new 20 s sample can exist or a VM is new."""
        ids = {vm._moId for vm in running}
        self._perf = {k: v for k, v in self._perf.items() if k in ids}
        self._perf_asked &= ids  # a VM powered on again needs a fresh sample
        if not running or not self._counters:
            return
        if now - self._perf_at < REALTIME_INTERVAL_S and ids <= self._perf_asked:
            return
        metric_ids = [vim.PerformanceManager.MetricId(counterId=key, instance="") for key in self._counters]
        query = vim.PerformanceManager.QuerySpec
        specs = [query(entity=vm, metricId=metric_ids, intervalId=REALTIME_INTERVAL_S, maxSample=1) for vm in running]
        self._perf_at, self._perf_asked = now, ids
        try:
            answer = self._content.perfManager.QueryPerf(specs)
        except vmodl.MethodFault as exc:  # no statistics is not a failed poll: gauges stay None
            log.info("%s: QueryPerf failed (%s); no realtime metrics this interval", self.host, type(exc).__name__)
            return
        plain = [vsphere_json(entity_metric) for entity_metric in answer or ()]
        if self._recording is not None:
            self._recording["perf"] = plain
        self._perf.update(perf_samples(plain, self._counters))

    # -- actions ------------------------------------------------------------------

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        domain = target.name
        deadline = self.due(deadline)
        self._connected()
        what = f"{verb.value} {domain}"
        # The task wait stops a little before the deadline, so we report the task's fate.
        task_wait = max(0.5, self.seconds_left(deadline) - 1.0)
        state, raw, note = await self._call(
            Lane.ACTION, what, lambda: self._act(verb, target.key, what, task_wait), deadline
        )
        return ActionResult(self.host, domain, verb, ok=True, state_after=state, message=note or raw)

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        deadline, what = self.due(deadline), f"{verb.value} {params.name} of {target.name}"
        task_wait = max(0.5, self.seconds_left(deadline) - 1.0)  # as _perform: report the task's fate
        if isinstance(params, MigrateParams):
            what = f"migrate {target.name} to {params.destination}"
            state, raw = await self._call(
                Lane.ACTION, what, lambda: self._migrate(target.key, params, what, task_wait), deadline
            )
            return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=raw)

        def run() -> tuple[PowerState, str]:
            vm = self._find(target.key)
            vsnap.apply(self._content.propertyCollector, self.host, vm, verb, params, task_wait)
            return power_state(vm.runtime.powerState)

        state, raw = await self._call(Lane.ACTION, what, run, deadline)
        return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=raw)

    def _migrate(self, key: str, params: MigrateParams, what: str, task_wait: float) -> tuple[PowerState, str]:
        """vMotion (running) or cold migration (off) to another server of this vCenter: RelocateVM_Task,
        which vCenter and vcsim both serve; the disks stay on their (shared) datastore."""
        if not self._vcenter:
            raise ActionFailed(self.host, f"{what}: {self.endpoint} is a single ESXi host; only a vCenter migrates")
        if params.to_host != self.host or not params.node:
            raise ActionFailed(self.host, f"{what}: name a server of this vCenter (--to {self.host}/SERVER)")
        server = self._nodes.get(params.node)
        if server is None:
            known = ", ".join(sorted(self._nodes)) or "none"
            raise ActionFailed(self.host, f"{what}: no server named {params.node!r} in this vCenter (known: {known})")
        vm = self._find(key)
        spec = vim.vm.RelocateSpec(host=server, pool=server.parent.resourcePool)
        _wait_for_task(vm.RelocateVM_Task(spec), task_wait, self.host, what)
        state, _raw = power_state(vm.runtime.powerState)
        return state, f"now on {vm.runtime.host.name}"

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        what = f"snapshots of {target.name}"
        return await self._call(
            Lane.ACTION,
            what,
            lambda: vsnap.listing(self._content.propertyCollector, self._find(target.key)),
            self.due(deadline),
        )

    def _act(self, verb: Verb, domain: str, what: str, task_wait: float) -> tuple[PowerState, str, str]:
        vm = self._find(domain)
        before, _ = power_state(vm.runtime.powerState)
        if verb is Verb.RESUME and before is not PowerState.SUSPENDED:
            # RESUME maps to PowerOn, which would also boot a VM that is off: refuse that.
            raise ActionFailed(self.host, f"{what}: only a suspended VM can be resumed (it is {before.value})")
        method, is_task = self.METHODS[verb]
        answer = getattr(vm, method)()
        if is_task:
            _wait_for_task(answer, task_wait, self.host, what)
        state, raw = power_state(vm.runtime.powerState)
        if verb is Verb.SHUTDOWN and state is PowerState.RUNNING:
            return PowerState.SHUTTING_DOWN, raw, "guest shutdown requested; the guest is shutting down"
        if verb is Verb.REBOOT:
            return state, raw, "guest reboot requested"
        return state, raw, ""

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        """The vSphere API has no serial console: say where one is (VMRC, a network serial port)."""
        deadline = self.due(deadline)
        self._connected()
        links = await self._call(
            Lane.ACTION, f"console {target.name}", lambda: self._console_links(target.key), deadline
        )
        raise NoConsole(
            self.host,
            f"{target.name}: no serial console over the vSphere API; "
            + ("its VMRC link and network serial port follow" if len(links) > 1 else "its VMRC link follows"),
            links=links,
        )

    def _console_links(self, key: str) -> tuple[str, ...]:
        vm = self._find(key)
        ticket = self._content.sessionManager.AcquireCloneTicket()  # single use, short-lived
        where = self.config.address if self._port == 443 else self.endpoint
        links = [f"vmrc://clone:{ticket}@{where}/?moid={vm._moId}"]
        for device in vm.config.hardware.device if vm.config else ():
            backing = getattr(device, "backing", None)
            if isinstance(device, _vim.vm.device.VirtualSerialPort) and isinstance(
                backing, _vim.vm.device.VirtualSerialPort.URIBackingInfo
            ):
                links.append(f"serial: {backing.serviceURI} ({backing.direction})")
        return tuple(links)

    def _find(self, domain: str) -> Any:
        vm = self._lookup(domain)
        if vm is None:  # not seen yet (no poll, or new): read the names once more
            now = datetime.now(UTC)
            self._index((vm, domain_from_props(props, now, None)) for vm, props in self._retrieve()[0].items())
            vm = self._lookup(domain)
        if vm is None:
            raise DomainNotFound(self.host, f"no VM named {domain!r} on {self.endpoint}")
        return vm

    def _lookup(self, domain: str) -> Any:
        if domain in self._by_uuid:
            return self._by_uuid[domain]
        matches = self._by_name.get(domain, [])
        if len(matches) > 1:  # vCenter allows the same name in different folders
            raise ActionFailed(self.host, f"{len(matches)} VMs are named {domain!r}; name the VM by its UUID instead")
        return matches[0] if matches else None


def _wait_for_task(task: Any, timeout: float, host: str, what: str) -> Any:
    """Poll the task's state (one small read each time, backing off) until it ends or time is up."""
    deadline, delay = time.monotonic() + timeout, 0.02
    while True:
        info = task.info
        if info.state == vim.TaskInfo.State.success:
            return info.result
        if info.state == vim.TaskInfo.State.error:
            raise info.error
        if time.monotonic() >= deadline:
            raise DriverTimeout(host, f"{what}: task {info.key} still {info.state} after {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _filter_spec(targets: Iterable[tuple[Any, Any, tuple[str, ...]]]) -> Any:
    """A FilterSpec reading the given properties of every object in each ContainerView."""
    object_specs, prop_specs = [], []
    for view, kind, properties in targets:
        traverse = PC.TraversalSpec(name=f"view-{kind.__name__}", path="view", skip=False, type=vim.view.ContainerView)
        object_specs.append(PC.ObjectSpec(obj=view, skip=True, selectSet=[traverse]))
        prop_specs.append(PC.PropertySpec(type=kind, pathSet=list(properties), all=False))
    return PC.FilterSpec(objectSet=object_specs, propSet=prop_specs)
