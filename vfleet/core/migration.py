"""The pre-flight check of a migration: one verdict per target, printed with the plan.

Each target that policy would send is checked against its destination as the fleet last
saw it: the same driver and hypervisor, a destination in the inventory that is up and
writable, room for the domain (free memory, and the vCPU commit after the move, counting
the targets before it in the same plan: an evacuation fills the destination one by one),
where the disks go (shared or copied) and whether it moves live or offline. A failed
check refuses that target with the reason; the others still go.

Decisions made here (README "Migration"):
- a running or paused domain moves live; it is never shut down implicitly. `--offline`
  (live=False) accepts only domains that are off, as virsh's --offline and govc's cold
  migration do; a domain that is shutting down, crashed or suspended is refused;
- inside a vCenter the destination is one of its servers (`--to vc1/esx-2`): its room is
  that server's own (the per-node aggregates); vCenter's admission control has the last word.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from vfleet.core.aggregates import MEMORY_HOLDING, HostSummary, summarize_host, summarize_nodes
from vfleet.core.engine import HostView
from vfleet.core.models import Domain, HostStatus, MigrateParams, PowerState
from vfleet.core.policy import Decision, find_domain
from vfleet.drivers.base import Capability

# drivers whose host is a cluster manager with servers (nodes): a vCenter, a XAPI pool
NODE_DRIVERS = frozenset({"esxi_api", "xapi"})
MOVABLE = frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.OFF, PowerState.UNKNOWN})
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Verdict:
    refused: str | None  # why this target will not be sent
    notes: str  # what the checks found, for the plan


@dataclass
class _Room:
    """What the destination has left as the plan's targets are placed on it one by one."""

    free: int | None
    vcpus: int | None
    cpus: int | None


def _gib(value: int) -> str:
    return f"{value / GIB:.1f}G"


class Preflight:
    """Checks the targets of one migration plan in order; holds what earlier targets took."""

    def __init__(self, views: Mapping[str, HostView], params: MigrateParams) -> None:
        self.views = views
        self.params = params
        self._room: _Room | None = None

    def check(self, source: HostView, domain: Domain) -> Verdict:
        p = self.params
        dest = self.views.get(p.to_host)
        if dest is None:
            return Verdict(f"{p.to_host}: no such host in the inventory", "")
        refused = self._route(source, dest, domain) or self._mode(domain)
        if refused:
            return Verdict(refused, "")
        notes = [self._driver_note(source, dest)]
        room = self._capacity(dest, domain, notes)
        if room:
            return Verdict(room, "; ".join(notes))
        notes.append(self._storage_note(source))
        notes.append("live" if domain.state in (PowerState.RUNNING, PowerState.PAUSED) else "offline (it is off)")
        return Verdict(None, "; ".join(notes))

    def _route(self, source: HostView, dest: HostView, domain: Domain) -> str | None:
        p = self.params
        if dest.read_only:
            return f"{dest.name}: read-only: migrate refused"
        if p.node is not None:
            if source.config.driver not in NODE_DRIVERS:
                return f"{source.name}: the {source.config.driver} driver has no servers to move between (--to HOST)"
            if dest.name != source.name:
                return f"a vCenter or pool moves VMs between its own servers only: {domain.name} is on {source.name}"
            if domain.node == p.node:
                return f"{domain.name} already runs on {p.destination}"
        elif dest.name == source.name:
            return f"{domain.name} is already on {dest.name}" + (
                " (name a server inside it: --to HOST/SERVER)" if source.config.driver in NODE_DRIVERS else ""
            )
        if dest.config.driver != source.config.driver:
            return (
                f"{source.name} ({source.config.driver}) and {dest.name} ({dest.config.driver}): "
                "domains move only between hosts of one driver"
            )
        kinds = {v.facts.hypervisor for v in (source, dest) if v.facts is not None}
        if len(kinds) > 1:
            return f"{source.name} and {dest.name} run different hypervisors ({' and '.join(sorted(kinds))})"
        if dest.health.status is not HostStatus.UP:
            error = f" ({dest.health.last_error})" if dest.health.last_error else ""
            return f"{dest.name} is {dest.health.status.value}{error}: not reachable"
        if dest.capabilities and Capability.MIGRATION not in dest.capabilities:
            reason = dest.unsupported.get(Capability.MIGRATION)
            return f"{dest.name}: the {dest.config.driver} driver cannot migrate" + (f": {reason}" if reason else "")
        return None

    def _mode(self, domain: Domain) -> str | None:
        state = domain.state
        if state not in MOVABLE:
            return f"{domain.name} is {state.value}: migrate a domain that is running, paused or off"
        if not self.params.live and state in (PowerState.RUNNING, PowerState.PAUSED):
            return f"{domain.name} is {state.value}: --offline moves only domains that are off (shut it down first)"
        return None

    def _driver_note(self, source: HostView, dest: HostView) -> str:
        kind = source.facts.hypervisor if source.facts else source.config.driver
        where = f"{dest.name} up" if self.params.node is None else f"server {self.params.node}"
        return f"same driver {source.config.driver} ({kind}); {where}"

    def _capacity(self, dest: HostView, domain: Domain, notes: list[str]) -> str | None:
        where = dest.name if self.params.node is None else self.params.destination
        if self._room is None:
            summary: HostSummary | None = summarize_host(dest, time.monotonic())
            if self.params.node is not None:  # the server's own room, not its cluster's
                nodes = summarize_nodes(dest, time.monotonic())
                summary = next((n for n in nodes if n.node == self.params.node), None)
            if summary is None:
                notes.append(f"capacity: no figures for server {self.params.node} (its cluster checks)")
                return None
            total, used = summary.memory_total_bytes, summary.mem_allocated_bytes
            free = None if total is None or used is None else total - used
            self._room = _Room(free, summary.vcpus, summary.cpus)
        room = self._room
        if domain.state not in MEMORY_HOLDING:
            notes.append("capacity: holds no memory while off")
            return None
        need = domain.memory_current_bytes or domain.memory_max_bytes
        if room.free is None or need is None:
            notes.append(f"memory: {'free memory on ' + where if room.free is None else 'its size'} unknown")
        elif need > room.free:
            return f"{where} has {_gib(max(0, room.free))} free, {domain.name} needs {_gib(need)}"
        else:
            room.free -= need
            notes.append(f"memory {_gib(need)}, {_gib(room.free)} free after")
        if room.vcpus is not None and domain.vcpus is not None:
            room.vcpus += domain.vcpus
            if room.cpus:
                notes.append(f"vCPU commit {room.vcpus / room.cpus:.2f} after")
        return None

    def _storage_note(self, source: HostView) -> str:
        if self.params.node is not None:
            where = "storage repository" if source.config.driver == "xapi" else "datastore"
            return f"storage: stays on its {where} (shared by the servers)"
        if self.params.copy_storage:
            return "storage: copied (--copy-storage-all)" if source.config.driver == "libvirt" else "storage: copied"
        return "storage: must be shared by both hosts (else --copy-storage)"


def with_uri(params: MigrateParams, views: Mapping[str, HostView]) -> MigrateParams:
    """The destination's URI (and data channel) from the inventory, for the source driver to connect to."""
    dest = views.get(params.to_host)
    if dest is None or params.to_uri:
        return params
    data = dest.config.options.get("migration_uri")
    return replace(params, to_uri=dest.config.uri, data_uri=data if isinstance(data, str) and data else None)


def preflight(
    views: Mapping[str, HostView], decisions: tuple[Decision, ...], params: MigrateParams
) -> tuple[tuple[Decision, ...], MigrateParams]:
    """Each decision policy would send, checked (refused with the reason, or annotated); the params with the URI."""
    check = Preflight(views, params)
    checked = []
    for decision in decisions:
        source = views.get(decision.target.host)
        domain = find_domain(source, decision.target) if source is not None and decision.dispatch else None
        if source is None or domain is None:
            checked.append(decision)
            continue
        verdict = check.check(source, domain)
        checked.append(replace(decision, refused=verdict.refused, notes=verdict.notes))
    return tuple(checked), with_uri(params, views)
