"""A static exposition of the agreed `vfleet export` metric families, served by prometheus_client.

Stands in for `vfleet export` in the read-path tests until the exporter is on
main: the values are chosen by the test, so what a source reads can be checked
against them exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from promstack import free_port

HOST_LABELS = ("host", "hypervisor", "driver")
DOMAIN_LABELS = ("host", "domain", "domain_key", "hypervisor", "driver")


@dataclass
class FakeDomain:
    name: str
    key: str
    state: str = "running"
    vcpus: int = 2
    memory_max_bytes: int = 2 << 30
    memory_used_bytes: int | None = 1 << 30
    uptime_seconds: float = 100.0
    cpu_ratio: float = 0.25
    contention_ratio: float = 0.01
    disk_read_bytes_per_second: float = 1000.0
    disk_write_bytes_per_second: float = 2000.0
    network_receive_bytes_per_second: float = 300.0
    network_transmit_bytes_per_second: float = 400.0


@dataclass
class FakeHost:
    name: str
    hypervisor: str = "kvm"
    driver: str = "libvirt"
    status: str = "up"
    cpus: int = 8
    memory_bytes: int = 16 << 30
    poll_age: float = 1.0  # seconds before each scrape the "exporter" last polled the host
    domains: list[FakeDomain] = field(default_factory=list)


class FakeExporter:
    """Serves `hosts` as gauges; set_hosts() replaces the exposition, stop() kills the endpoint."""

    def __init__(self, hosts: list[FakeHost]) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self._hosts = hosts
        self.registry.register(self)  # type: ignore[arg-type]
        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_hosts(self, hosts: list[FakeHost]) -> None:
        self._hosts = hosts

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def collect(self) -> Any:
        """A custom collector: the families are rebuilt on every scrape from the current hosts."""
        reg = CollectorRegistry()
        g: dict[str, Gauge] = {}

        def gauge(name: str, labels: tuple[str, ...]) -> Gauge:
            if name not in g:
                g[name] = Gauge(name, name.replace("_", " "), labels, registry=reg)
            return g[name]

        now = time.time()
        for h in self._hosts:
            hl = (h.name, h.hypervisor, h.driver)
            gauge("vfleet_host_info", (*HOST_LABELS, "version")).labels(*hl, "9.0").set(1)
            gauge("vfleet_host_up", HOST_LABELS).labels(*hl).set(1 if h.status == "up" else 0)
            gauge("vfleet_host_status", (*HOST_LABELS, "status")).labels(*hl, h.status).set(1)
            gauge("vfleet_host_last_poll_timestamp_seconds", HOST_LABELS).labels(*hl).set(now - h.poll_age)
            gauge("vfleet_host_data_age_seconds", HOST_LABELS).labels(*hl).set(h.poll_age)
            gauge("vfleet_host_cpus", HOST_LABELS).labels(*hl).set(h.cpus)
            gauge("vfleet_host_memory_bytes", HOST_LABELS).labels(*hl).set(h.memory_bytes)
            for d in h.domains:
                dl = (h.name, d.name, d.key, h.hypervisor, h.driver)
                gauge("vfleet_domain_info", (*DOMAIN_LABELS, "state")).labels(*dl, d.state).set(1)
                for family in (
                    "vcpus",
                    "memory_max_bytes",
                    "memory_used_bytes",
                    "uptime_seconds",
                    "cpu_ratio",
                    "contention_ratio",
                    "disk_read_bytes_per_second",
                    "disk_write_bytes_per_second",
                    "network_receive_bytes_per_second",
                    "network_transmit_bytes_per_second",
                ):
                    value = getattr(d, family)
                    if value is not None:
                        gauge(f"vfleet_domain_{family}", DOMAIN_LABELS).labels(*dl).set(value)
        return reg.collect()
