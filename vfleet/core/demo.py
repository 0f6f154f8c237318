"""The built-in demo fleet: simulated KVM, Xen and ESXi hosts and an XCP-ng pool of two servers, 72 domains."""

from __future__ import annotations

from vfleet.core.inventory import Inventory
from vfleet.core.models import HostConfig

# name, flavour, domains, groups, tags
_HOSTS = (
    ("kvm-ams-1", "kvm", 14, ("prod",), ("ams", "kvm")),
    ("kvm-ams-2", "kvm", 12, ("prod",), ("ams", "kvm")),
    ("xen-fra-1", "xen", 10, ("prod",), ("fra", "xen")),
    ("xen-lab-1", "xen", 6, ("lab",), ("lab", "xen")),
    ("esx-fra-1", "esxi", 12, ("prod",), ("fra", "esxi")),
    ("esx-lab-1", "esxi", 6, ("lab",), ("lab", "esxi")),
    # An XCP-ng pool (what the xapi driver reads): its VMs run on two servers, the first overcommitted.
    ("xcp-pool-1", "xapi", 12, ("prod",), ("fra", "xcp")),
)
POOL_NODES = 2
FLAKY_HOST = "xen-lab-1"


def demo_inventory(seed: int = 7, latency: float = 0.05) -> Inventory:
    hosts = tuple(
        HostConfig(
            name=name,
            driver="sim",
            groups=groups,
            tags=frozenset(tags),
            poll_interval=2.0,
            connect_timeout=5.0,
            call_timeout=5.0,
            source="<demo>",
            options={
                "flavour": flavour,
                "domains": count,
                "seed": seed,
                "latency": latency,
                "flaky": name == FLAKY_HOST,
                "nodes": POOL_NODES if flavour == "xapi" else 0,
            },
        )
        for name, flavour, count, groups, tags in _HOSTS
    )
    return Inventory("<demo>", hosts, {"prod": "production hosts", "lab": "lab hosts"})
