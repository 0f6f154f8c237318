"""The pool a test talks to: its database, its two host addresses, who is master, the
credentials, the clock that drives /rrd_updates, and the fault hooks."""

from __future__ import annotations

import datetime as dt
import fnmatch
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import devices
from .seed import Seeded, add_vm, seed_hosts, seed_pool
from .store import Store


@dataclass
class Faults:
    """Fault hooks. Patterns are method names with shell wildcards ('VM.get_all_records',
    'event.*', '/rrd_updates' for the metrics URL)."""

    hung: dict[str, threading.Event] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    down_hosts: set[int] = field(default_factory=set)  # their listeners close every connection
    delays: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hang(self, pattern: str) -> threading.Event:
        """Calls matching pattern block until `release(pattern)` (or the server stops)."""
        with self.lock:
            return self.hung.setdefault(pattern, threading.Event())

    def release(self, pattern: str | None = None) -> None:
        with self.lock:
            for key in [pattern] if pattern else list(self.hung):
                event = self.hung.pop(key, None) if key else None
                if event:
                    event.set()

    def delay(self, pattern: str, seconds: float) -> None:
        """Calls matching pattern answer only after `seconds` (0 removes the delay)."""
        with self.lock:
            if seconds > 0:
                self.delays[pattern] = seconds
            else:
                self.delays.pop(pattern, None)

    def drop(self, pattern: str, times: int = 1) -> None:
        """The next `times` calls matching pattern get their connection closed, no answer."""
        with self.lock:
            self.drops[pattern] = self.drops.get(pattern, 0) + times

    def wait_if_hung(self, method: str, stopping: threading.Event) -> None:
        with self.lock:
            events = [e for p, e in self.hung.items() if fnmatch.fnmatchcase(method, p)]
            delay = max((d for p, d in self.delays.items() if fnmatch.fnmatchcase(method, p)), default=0.0)
        if delay:
            stopping.wait(delay)
        for event in events:
            event.wait()

    def take_drop(self, method: str) -> bool:
        with self.lock:
            for pattern, left in self.drops.items():
                if left > 0 and fnmatch.fnmatchcase(method, pattern):
                    self.drops[pattern] = left - 1
                    return True
        return False


class XapiPool:
    def __init__(
        self, addresses: tuple[str, str], user: str = "root", password: str = "vfleet-test", seed: bool = True
    ) -> None:
        self.store = Store()
        self.addresses = addresses  # host index -> IP address the host listens on
        self.user = user
        self.password = password
        # seed=False: the pool and its hosts only (spec replays bring their own VMs)
        self.seeded: Seeded = seed_pool(self.store, addresses) if seed else seed_hosts(self.store, addresses)
        self.sr = self.network = "OpaqueRef:NULL"
        devices.seed_storage(self)
        self._seed_devices()
        self.faults = Faults()
        self.clock: Callable[[], float] = time.time
        self.rrd_numbers_as_strings = False  # newer xapi sends rrd_updates numbers as strings
        self.rrd_legacy_json = False  # older xapi: rrd_updates JSON with unquoted keys ({meta: ...})
        self.task_delay = 0.0  # seconds an Async task stays pending before it runs
        self.max_event_wait = 30.0  # cap on event.from timeouts (keeps test teardown short)
        self._domid = 100
        self.calls: list[str] = []  # every method called (and "/rrd_updates"), in order
        # (protocol, method, parameter count, response body) of every RPC answer, when on
        self.wire_log: list[tuple[str, str, int, bytes]] = []
        self.keep_wire = False
        self.stopping = threading.Event()

    def _seed_devices(self) -> None:
        vms = self.store.all_records("VM")
        for ref, record in vms.items():
            if record["is_control_domain"]:
                devices.set_live(self, ref, True)  # dom0: a text console, no disks of its own
            elif not record["is_a_snapshot"]:
                devices.attach_new_devices(self, ref, record["power_state"] in {"Running", "Paused"})
        for ref, record in vms.items():
            if record["is_a_snapshot"]:
                devices.snapshot_disks(self, record["snapshot_of"], ref)

    @property
    def hosts(self) -> list[str]:
        return self.seeded.hosts

    def master_ref(self) -> str:
        return str(self.store.get("pool", self.seeded.pool)["master"])

    def master_index(self) -> int:
        return self.hosts.index(self.master_ref())

    def make_master(self, index: int) -> None:
        """Designate another host as master: the old master now answers HOST_IS_SLAVE."""
        self.store.modify("pool", self.seeded.pool, master=self.hosts[index])

    def host_down(self, index: int, down: bool = True) -> None:
        """A host that stopped answering: its connections close before TLS, and xapi marks
        it not live (host_metrics.live); `host_down(i, False)` brings it back."""
        with self.faults.lock:
            (self.faults.down_hosts.add if down else self.faults.down_hosts.discard)(index)
        metrics = self.store.get("host", self.hosts[index])["metrics"]
        self.store.modify("host_metrics", metrics, live=not down)

    def add_guests(self, count: int, prefix: str = "bulk") -> list[str]:
        """count more running guests, alternately on each host, one in three busy (for scale)."""
        refs = []
        for i in range(count):
            ref = add_vm(self.store, f"{prefix}-{i:05d}", "Running", self.hosts[i % 2], domid=self.next_domid(),
                         guest_ip=f"10.1.{i // 250}.{i % 250 + 1}")
            devices.attach_new_devices(self, ref, live=True)
            self.seeded.load[self.store.get("VM", ref)["uuid"]] = "busy" if i % 3 == 0 else "idle"
            refs.append(ref)
        return refs

    def next_domid(self) -> int:
        with self.store.lock:
            self._domid += 1
            return self._domid

    def rekey(self, old: str, new: str) -> None:
        """Give an object the reference a fixture expects (everywhere it is mentioned)."""
        self.store.rekey(old, new)
        seeded = self.seeded
        seeded.hosts = [new if h == old else h for h in seeded.hosts]
        seeded.pool = new if seeded.pool == old else seeded.pool
        seeded.vms = {name: new if r == old else r for name, r in seeded.vms.items()}

    def add_certificate(self, host: str, fingerprint: str, not_before: dt.datetime, not_after: dt.datetime) -> str:
        """A host's TLS certificate, as xapi lists it (Certificate of type host)."""
        cert = self.store.add(
            "Certificate",
            {"type": "host", "host": host, "fingerprint": fingerprint, "not_before": not_before, "not_after": not_after},
        )
        self.store.modify("host", host, certificates=[*self.store.get("host", host)["certificates"], cert])
        return cert

    def record_call(self, method: str) -> None:
        with self.store.lock:
            self.calls.append(method)

    def log_wire(self, protocol: str, method: str, param_count: int, body: bytes) -> None:
        if self.keep_wire:
            with self.store.lock:
                self.wire_log.append((protocol, method, param_count, body))

    def vm(self, name: str) -> str:
        """Reference of the VM with this name_label."""
        return self.store.by_name("VM", name)
