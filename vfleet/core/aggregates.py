"""Per-host and fleet aggregates: what virt-top's and xentop's headers say, for every host.

Pure functions over HostViews, shared by the hosts pane, the host screen, `status -o
json` and `top`. The rule of the models holds for totals too: a total of values no
domain reported is None, never 0, and a ratio whose denominator is unknown (a host
without a CPU count) is None. A host that never answered a poll has no aggregates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vfleet.core.engine import HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import HostStatus, PowerState, Value
from vfleet.core.sanitize import display_width, pad, printable

# Domains that hold host memory: an off or suspended (to disk) domain holds none.
MEMORY_HOLDING = frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTTING_DOWN})


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HostSummary(Value):
    """One host's aggregates at one moment (None = unknown)."""

    host: str
    status: HostStatus
    cpus: int | None  # the host's CPUs (threads), from its facts
    memory_total_bytes: int | None
    domains: int | None  # None: the host never answered a poll
    states: tuple[tuple[PowerState, int], ...] = ()  # every state, in PowerState order
    cpu_pct: float | None = None  # the domains' CPU use, in % of the host's capacity
    cpu_reporting: int = 0  # running domains whose CPU use is known
    vcpus: int | None = None  # vCPUs of the running domains
    mem_used_bytes: int | None = None  # what the domains report as used (guest, RSS or hypervisor)
    mem_used_reporting: int = 0  # domains whose used memory is known
    mem_allocated_bytes: int | None = None  # current allocation of the domains that hold memory
    contention_max_pct: float | None = None
    contention_avg_pct: float | None = None
    contention_reporting: int = 0  # running domains whose contention is known
    data_age_s: float | None = None
    node: str | None = None  # a server of the host (a pool member, a vCenter's ESXi host); None: the whole host

    def count(self, state: PowerState) -> int:
        return next((n for s, n in self.states if s is state), 0)

    @property
    def running(self) -> int | None:
        return None if self.domains is None else self.count(PowerState.RUNNING)

    @property
    def vcpu_ratio(self) -> float | None:
        """vCPUs of running domains per host CPU: the commit ratio (1.0 = one vCPU per CPU)."""
        return ratio(self.vcpus, self.cpus)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class FleetSummary(Value):
    """The fleet's totals over the hosts it was built from."""

    hosts: int
    host_states: tuple[tuple[HostStatus, int], ...]  # every status, in HostStatus order
    reporting_hosts: int  # hosts that answered a poll at least once
    cpus: int | None
    memory_total_bytes: int | None
    domains: int | None
    states: tuple[tuple[PowerState, int], ...] = ()
    cpu_pct: float | None = None  # of the capacity of the hosts that report both CPUs and use
    vcpus: int | None = None
    vcpu_ratio: float | None = None  # over the hosts whose CPU count is known
    mem_used_bytes: int | None = None
    mem_used_reporting: int = 0
    mem_allocated_bytes: int | None = None
    contention_max_pct: float | None = None
    contention_avg_pct: float | None = None
    data_age_s: float | None = None  # the oldest data of any host that has some

    def count(self, state: PowerState) -> int:
        return next((n for s, n in self.states if s is state), 0)

    def hosts_in(self, status: HostStatus) -> int:
        return next((n for s, n in self.host_states if s is status), 0)


def ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _known_sum(values: Iterable[float | None]) -> tuple[float | None, int]:
    """The sum of the known values and how many there were; None when none was known."""
    total, known = 0.0, 0
    for value in values:
        if value is not None:
            total += value
            known += 1
    return (total if known else None), known


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def summarize_host(view: HostView, now: float) -> HostSummary:
    facts, health = view.facts, view.health
    cpus = facts.cpus if facts else None
    memory = facts.memory_bytes if facts else None
    if health.last_ok_at is None:  # never polled: nothing about its domains is known, not even "0"
        return HostSummary(view.name, health.status, cpus, memory, None)
    return _summarize_rows(view.name, None, health.status, cpus, memory, view.rows, health.data_age(now))


def has_nodes(view: HostView) -> bool:
    """A pool or cluster: its facts list servers, or its domains say which server they run on."""
    return bool(view.facts and view.facts.nodes) or any(row.domain.node is not None for row in view.rows)


def summarize_nodes(view: HostView, now: float) -> tuple[HostSummary, ...]:
    """One summary per server of a pool or cluster: the facts' nodes in order, then any other
    node a domain names. A domain on no node (an XCP-ng VM that is halted) counts in none.
    () for a host without nodes, and for one that never answered a poll."""
    if view.health.last_ok_at is None:
        return ()
    facts = view.facts
    known = {n.name: n for n in facts.nodes} if facts else {}
    groups: dict[str, list[DomainRow]] = {name: [] for name in known}
    for row in view.rows:
        node = row.domain.node
        if node is not None:
            groups.setdefault(node, []).append(row)
    # Domain CPU shares are of the whole host's capacity; a node's is that times host/node.
    host_cpus = facts.cpus if facts else None
    age = view.health.data_age(now)
    summaries = []
    for name in [*known, *sorted(n for n in groups if n not in known)]:
        node_facts = known.get(name)
        cpus = node_facts.cpus if node_facts else None
        memory = node_facts.memory_bytes if node_facts else None
        scale = host_cpus / cpus if host_cpus and cpus else None
        summaries.append(_summarize_rows(view.name, name, view.health.status, cpus, memory, groups[name], age, scale))
    return tuple(summaries)


def _summarize_rows(
    host: str,
    node: str | None,
    status: HostStatus,
    cpus: int | None,
    memory: int | None,
    rows: Sequence[DomainRow],
    data_age: float | None,
    cpu_scale: float | None = 1.0,
) -> HostSummary:
    """The aggregates of some domains (a host's, or a node's) on `cpus` CPUs; `cpu_scale` turns
    the sum of their shares of the host into a share of these CPUs (None: unknown)."""
    counts = dict.fromkeys(PowerState, 0)
    # One pass with plain locals: the hosts pane runs this for every host on every poll.
    running = holding = 0
    cpu, cpu_known, vcpus, vcpus_known = 0.0, 0, 0, 0
    used, used_known, allocated, allocated_known = 0, 0, 0, 0
    contention: list[float] = []
    is_running = PowerState.RUNNING
    for row in rows:
        domain = row.domain
        state = domain.state
        counts[state] += 1
        if state not in MEMORY_HOLDING:
            continue
        holding += 1
        if domain.memory_used_bytes is not None:
            used += domain.memory_used_bytes
            used_known += 1
        if domain.memory_current_bytes is not None:
            allocated += domain.memory_current_bytes
            allocated_known += 1
        if state is not is_running:
            continue
        running += 1
        rates = row.rates
        if rates.cpu_host_percent is not None:
            cpu += rates.cpu_host_percent
            cpu_known += 1
        if domain.vcpus is not None:
            vcpus += domain.vcpus
            vcpus_known += 1
        if rates.contention_percent is not None:
            contention.append(rates.contention_percent)
    # Nothing running uses no CPU: 0 is known then. Per-domain shares are each capped
    # at 100; sampling jitter must not push their sum past the host (or node) either.
    cpu_pct = None
    if not running:
        cpu_pct = 0.0
    elif cpu_known and cpu_scale is not None:
        cpu_pct = min(100.0, cpu * cpu_scale)
    return HostSummary(
        host=host,
        status=status,
        cpus=cpus,
        memory_total_bytes=memory,
        domains=len(rows),
        states=tuple(counts.items()),
        cpu_pct=cpu_pct,
        cpu_reporting=cpu_known,
        vcpus=vcpus if vcpus_known or not running else None,
        mem_used_bytes=used if used_known or not holding else None,
        mem_used_reporting=used_known,
        mem_allocated_bytes=allocated if allocated_known or not holding else None,
        contention_max_pct=max(contention) if contention else None,
        contention_avg_pct=sum(contention) / len(contention) if contention else None,
        contention_reporting=len(contention),
        data_age_s=data_age,
        node=node,
    )


def summarize_fleet(hosts: Sequence[HostSummary]) -> FleetSummary:
    statuses = dict.fromkeys(HostStatus, 0)
    for host in hosts:
        statuses[host.status] += 1
    reporting = [h for h in hosts if h.domains is not None]
    states = dict.fromkeys(PowerState, 0)
    for host in reporting:
        for state, n in host.states:
            states[state] += n
    cpus, _ = _known_sum(h.cpus for h in hosts)
    # CPU use weighted by capacity, over the hosts that report both (a host of
    # unknown size cannot say how much of the fleet it uses).
    sized = [(h.cpu_pct, h.cpus) for h in reporting if h.cpus and h.cpu_pct is not None]
    used_cpus = sum(pct * cpus for pct, cpus in sized if pct is not None and cpus)
    capacity = sum(cpus or 0 for _, cpus in sized)
    committed = [h for h in reporting if h.cpus and h.vcpus is not None]
    contention = [h for h in reporting if h.contention_reporting]
    contention_n = sum(h.contention_reporting for h in contention)
    ages = [h.data_age_s for h in reporting if h.data_age_s is not None]
    return FleetSummary(
        hosts=len(hosts),
        host_states=tuple(statuses.items()),
        reporting_hosts=len(reporting),
        cpus=_int(cpus),
        memory_total_bytes=_int(_known_sum(h.memory_total_bytes for h in hosts)[0]),
        domains=sum(h.domains or 0 for h in reporting) if reporting else None,
        states=tuple(states.items()),
        cpu_pct=used_cpus / capacity if capacity else None,
        vcpus=_int(_known_sum(h.vcpus for h in reporting)[0]),
        vcpu_ratio=ratio(sum(h.vcpus or 0 for h in committed), sum(h.cpus or 0 for h in committed)),
        mem_used_bytes=_int(_known_sum(h.mem_used_bytes for h in reporting)[0]),
        mem_used_reporting=sum(h.mem_used_reporting for h in reporting),
        mem_allocated_bytes=_int(_known_sum(h.mem_allocated_bytes for h in reporting)[0]),
        contention_max_pct=max((h.contention_max_pct or 0.0 for h in contention), default=None),
        contention_avg_pct=(
            sum((h.contention_avg_pct or 0.0) * h.contention_reporting for h in contention) / contention_n
            if contention_n
            else None
        ),
        data_age_s=max(ages, default=None),
    )


# -- records for the JSON schema (vfleet.status/2, vfleet.top/2) ----------------------


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _state_counts(states: tuple[tuple[PowerState, int], ...], total: int | None) -> dict[str, int] | None:
    if total is None:
        return None
    return {"total": total, **{state.value: n for state, n in states}}


def _common_record(s: HostSummary | FleetSummary) -> dict[str, Any]:
    return {
        "cpus": s.cpus,
        "mem_total_bytes": s.memory_total_bytes,
        "cpu_pct": _round(s.cpu_pct),
        "vcpus": s.vcpus,
        "vcpu_ratio": _round(s.vcpu_ratio, 2),
        "mem_used_bytes": s.mem_used_bytes,
        "mem_used_domains": s.mem_used_reporting,
        "mem_allocated_bytes": s.mem_allocated_bytes,
        "domains": _state_counts(s.states, s.domains),
        "contention_max_pct": _round(s.contention_max_pct, 2),
        "contention_avg_pct": _round(s.contention_avg_pct, 2),
        "data_age_s": _round(s.data_age_s),
    }


def host_summary_record(s: HostSummary) -> dict[str, Any]:
    return _common_record(s)


def node_summary_record(s: HostSummary) -> dict[str, Any]:
    """One node of a host's `nodes` list: its name, then the host summary's fields."""
    return {"node": s.node, **_common_record(s)}


def fleet_summary_record(s: FleetSummary) -> dict[str, Any]:
    return {"hosts": {"total": s.hosts, **{status.value: n for status, n in s.host_states}}, **_common_record(s)}


# -- text, the same in the hosts pane, the host screen and `top -o table` -------------


def hypervisor_family(driver: str) -> str:
    """What a host runs, before it said so itself: xen_xl -> xen, esxi_api -> esxi, libvirt -> libvirt."""
    return driver.split("_", 1)[0]


def hypervisor_label(view: HostView) -> str:
    return view.facts.hypervisor if view.facts else hypervisor_family(view.config.driver)


def short_bytes(value: float | None) -> str:
    """At most four characters and a unit, every unit kept: 512M, 1.5G, 12G, 1.0T."""
    if value is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 999.5 or unit == "T":
            return f"{value:.1f}{unit}" if abs(value) < 9.95 and unit != "B" else f"{value:.0f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def pct_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def memory_text(s: HostSummary | FleetSummary) -> str:
    """used/allocated/total; used is "-" when no domain reports it (allocation never poses as usage)."""
    return f"{short_bytes(s.mem_used_bytes)}/{short_bytes(s.mem_allocated_bytes)}/{short_bytes(s.memory_total_bytes)}"


def domains_text(s: HostSummary | FleetSummary) -> str:
    """running/all."""
    if s.domains is None:
        return "-"
    return f"{s.count(PowerState.RUNNING)}/{s.domains}"


def states_text(s: HostSummary | FleetSummary) -> str:
    """Every state that has a domain: "3 running, 1 off" (or "none")."""
    if s.domains is None:
        return "unknown (no poll answered yet)"
    parts = [f"{n} {state.value}" for state, n in s.states if n]
    return ", ".join(parts) if parts else "none"


# The columns both faces show for a host (after its name and status, before its
# hypervisor). What moves on every poll comes first: a terminal update rewrites a line
# from its start up to the last changed cell, so a CPU % far to the right costs more.
SUMMARY_COLUMNS = (
    ("cpu", "CPU%"),  # of the host's capacity
    ("mem", "MEM use/alloc/tot"),
    ("commit", "COMMIT"),  # vCPU per CPU
    ("cont", "CONT%"),  # the worst domain's
    ("doms", "DOMS"),  # running/all
)


def summary_cells(s: HostSummary | FleetSummary) -> tuple[str, ...]:
    return (
        pct_text(s.cpu_pct),
        memory_text(s),
        ratio_text(s.vcpu_ratio),
        pct_text(s.contention_max_pct),
        domains_text(s),
    )


def fleet_lines(s: FleetSummary) -> list[str]:
    """Two header lines, as virt-top and xentop open: hosts and domains, then capacity and use."""
    statuses = ", ".join(f"{n} {status.value}" for status, n in s.host_states if n) or "none"
    domains = "no domain data" if s.domains is None else f"{s.domains} domains: {states_text(s)}"
    cpus = "" if s.cpus is None else f" of {s.cpus} CPUs"
    vcpus = "-" if s.vcpus is None else str(s.vcpus)
    contention = (
        "-"
        if s.contention_max_pct is None
        else f"max {s.contention_max_pct:.1f}% avg {pct_text(s.contention_avg_pct)}%"
    )
    return [
        f"hosts {s.hosts}: {statuses} · {domains}",
        f"cpu {pct_text(s.cpu_pct)}%{cpus} · vCPU {vcpus} ({ratio_text(s.vcpu_ratio)})"
        f" · mem {short_bytes(s.mem_used_bytes)} used/{short_bytes(s.mem_allocated_bytes)} alloc"
        f"/{short_bytes(s.memory_total_bytes)} total · contention {contention}",
    ]


def node_rows(nodes: Sequence[HostSummary]) -> list[list[str]]:
    """A row of cells per node: its name (escaped), then the summary's cells."""
    return [[printable(n.node or "-"), *summary_cells(n)] for n in nodes]


def node_lines(nodes: Sequence[HostSummary]) -> list[str]:
    """A pool's or cluster's servers as aligned lines under a header (the host screen's "nodes")."""
    if not nodes:
        return []
    headers = ["NODE", *(title for _, title in SUMMARY_COLUMNS)]
    rows = node_rows(nodes)
    widths = [max(display_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  ".join(pad(cell, width, right=i > 0) for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in [headers, *rows]
    ]
