"""Host and fleet aggregates over hand-built views: every number computed by hand, None kept None."""

from __future__ import annotations

import pytest

from vfleet.core.aggregates import (
    fleet_summary_record,
    has_nodes,
    host_summary_record,
    memory_text,
    node_lines,
    node_summary_record,
    short_bytes,
    summarize_fleet,
    summarize_host,
    summarize_nodes,
    summary_cells,
)
from vfleet.core.engine import HostView
from vfleet.core.metrics import DomainRow
from vfleet.core.models import (
    Domain,
    DomainRates,
    HostConfig,
    HostFacts,
    HostHealth,
    HostStatus,
    MemorySource,
    NodeFacts,
    PowerState,
)

GIB = 1 << 30
NOW = 1000.0


def row(
    host: str,
    name: str,
    state: PowerState = PowerState.RUNNING,
    *,
    vcpus: int | None = 2,
    alloc: int | None = 4 * GIB,
    used: int | None = GIB,
    host_cpu: float | None = 10.0,
    contention: float | None = None,
    node: str | None = None,
) -> DomainRow:
    domain = Domain(
        node=node,
        name=name,
        state=state,
        raw_state=state.value,
        vcpus=vcpus,
        memory_current_bytes=alloc,
        memory_used_bytes=used,
        memory_used_source=MemorySource.GUEST if used is not None else None,
    )
    return DomainRow(host, "kvm", domain, DomainRates(cpu_host_percent=host_cpu, contention_percent=contention), frozenset(), 0.0)


def view(
    name: str,
    rows: list[DomainRow],
    *,
    cpus: int | None = 16,
    memory: int | None = 64 * GIB,
    status: HostStatus = HostStatus.UP,
    polled: bool = True,
    connected: bool = True,
) -> HostView:
    facts = HostFacts("kvm", cpus=cpus, memory_bytes=memory) if connected else None
    health = HostHealth(status, last_ok_at=NOW - 2.0 if polled else None)
    return HostView(HostConfig(name=name, driver="libvirt"), health, facts, tuple(rows), False, frozenset(), 1)


def kvm1() -> HostView:
    return view(
        "kvm1",
        [
            row("kvm1", "web-1", host_cpu=11.875, contention=1.0),
            row("kvm1", "web-2", host_cpu=2.5, used=None, contention=3.0),
            row("kvm1", "db-1", vcpus=8, used=2 * GIB, host_cpu=25.0),
            row("kvm1", "paused-1", PowerState.PAUSED, used=None, host_cpu=None),
            row("kvm1", "off-1", PowerState.OFF, vcpus=4, used=None, host_cpu=None),
        ],
    )


def test_a_host_summary_matches_the_hand_computed_numbers() -> None:
    s = summarize_host(kvm1(), NOW)
    assert s.domains == 5 and s.running == 3
    assert s.count(PowerState.PAUSED) == 1 and s.count(PowerState.OFF) == 1
    assert s.cpu_pct == pytest.approx(39.375) and s.cpu_reporting == 3
    assert s.vcpus == 12 and s.vcpu_ratio == pytest.approx(0.75)  # running only: 2 + 2 + 8 on 16 CPUs
    # used: what the domains report (web-1 1 GiB, db-1 2 GiB); allocated: running and paused, not off
    assert s.mem_used_bytes == 3 * GIB and s.mem_used_reporting == 2
    assert s.mem_allocated_bytes == 16 * GIB and s.memory_total_bytes == 64 * GIB
    assert s.contention_max_pct == 3.0 and s.contention_avg_pct == 2.0 and s.contention_reporting == 2
    assert s.data_age_s == 2.0
    assert summary_cells(s) == ("39.4", "3.0G/16G/64G", "0.75x", "3.0", "3/5")


def test_a_host_without_a_cpu_count_has_no_commit_ratio_never_zero() -> None:
    s = summarize_host(view("x", [row("x", "a", host_cpu=None)], cpus=None, memory=None), NOW)
    assert s.vcpus == 2
    assert s.vcpu_ratio is None and s.cpu_pct is None and s.memory_total_bytes is None
    record = host_summary_record(s)
    assert record["vcpu_ratio"] is None and record["cpu_pct"] is None and record["mem_total_bytes"] is None
    assert summary_cells(s) == ("-", "1.0G/4.0G/-", "-", "-", "1/1")


def test_unreported_values_stay_unknown_and_nothing_running_is_a_known_zero() -> None:
    quiet = summarize_host(view("q", [row("q", "a", used=None, host_cpu=None, vcpus=None, alloc=None)]), NOW)
    assert quiet.cpu_pct is None and quiet.vcpus is None and quiet.vcpu_ratio is None
    assert quiet.mem_used_bytes is None and quiet.mem_allocated_bytes is None and quiet.contention_max_pct is None
    assert memory_text(quiet) == "-/-/64G"
    idle = summarize_host(view("i", [row("i", "a", PowerState.OFF, used=None, host_cpu=None)]), NOW)
    assert idle.cpu_pct == 0.0 and idle.vcpus == 0 and idle.vcpu_ratio == 0.0
    assert idle.mem_used_bytes == 0 and idle.mem_allocated_bytes == 0


def test_a_host_that_never_answered_has_no_aggregates_at_all() -> None:
    down = summarize_host(view("d", [], status=HostStatus.DOWN, polled=False, connected=False), NOW)
    assert down.domains is None and down.running is None and down.cpu_pct is None and down.vcpus is None
    assert down.cpus is None and down.data_age_s is None
    record = host_summary_record(down)
    assert record["domains"] is None and record["cpu_pct"] is None and record["mem_used_bytes"] is None
    assert summary_cells(down) == ("-", "-/-/-", "-", "-", "-")


def test_a_connected_host_not_polled_yet_knows_its_size_but_not_its_domains() -> None:
    s = summarize_host(view("c", [], status=HostStatus.CONNECTING, polled=False), NOW)
    assert s.cpus == 16 and s.memory_total_bytes == 64 * GIB
    assert s.domains is None and s.vcpu_ratio is None


def test_fleet_totals_weigh_cpu_by_capacity_and_skip_what_is_unknown() -> None:
    big = summarize_host(kvm1(), NOW)  # 16 CPUs, 39.375 %
    small = summarize_host(
        view("small", [row("small", "a", vcpus=4, host_cpu=50.0, contention=5.0)], cpus=4, memory=8 * GIB), NOW
    )
    sizeless = summarize_host(view("nosize", [row("nosize", "b", host_cpu=None)], cpus=None, memory=None), NOW)
    down = summarize_host(view("down", [], status=HostStatus.DOWN, polled=False, connected=False), NOW)
    fleet = summarize_fleet([big, small, sizeless, down])
    assert fleet.hosts == 4 and fleet.hosts_in(HostStatus.UP) == 3 and fleet.hosts_in(HostStatus.DOWN) == 1
    assert fleet.reporting_hosts == 3
    assert fleet.cpus == 20 and fleet.memory_total_bytes == 72 * GIB
    # (39.375 % of 16 + 50 % of 4) / 20 CPUs; the host of unknown size cannot weigh in
    assert fleet.cpu_pct == pytest.approx((0.39375 * 16 + 0.5 * 4) / 20 * 100)
    assert fleet.vcpus == 12 + 4 + 2
    assert fleet.vcpu_ratio == pytest.approx((12 + 4) / 20)  # its 2 vCPUs are on CPUs nobody counted
    assert fleet.domains == 7 and fleet.count(PowerState.RUNNING) == 5
    assert fleet.mem_used_bytes == 3 * GIB + GIB + GIB and fleet.mem_used_reporting == 4
    assert fleet.mem_allocated_bytes == 16 * GIB + 4 * GIB + 4 * GIB
    assert fleet.contention_max_pct == 5.0
    assert fleet.contention_avg_pct == pytest.approx((1.0 + 3.0 + 5.0) / 3)  # per domain, not per host
    assert fleet.data_age_s == 2.0
    record = fleet_summary_record(fleet)
    assert record["hosts"] == {
        "total": 4,
        "connecting": 0,
        "up": 3,
        "stale": 0,
        "degraded": 0,
        "down": 1,
        "auth-failed": 0,
    }
    assert record["domains"]["total"] == 7 and record["domains"]["running"] == 5 and record["cpus"] == 20


def test_an_empty_or_silent_fleet_has_unknown_totals() -> None:
    fleet = summarize_fleet([summarize_host(view("d", [], status=HostStatus.DOWN, polled=False, connected=False), NOW)])
    assert fleet.domains is None and fleet.cpu_pct is None and fleet.cpus is None and fleet.vcpu_ratio is None
    assert fleet.data_age_s is None
    assert summarize_fleet([]).hosts == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0, "0B"),
        (512 * 1024 * 1024, "512M"),
        (1013.8 * 1024 * 1024, "1.0G"),  # never "1013.8M" cut to "1013.8": the unit stays
        (1.5 * GIB, "1.5G"),
        (12 * GIB, "12G"),
        (999 * GIB, "999G"),
        (1.5 * 1024 * GIB, "1.5T"),
    ],
)
def test_short_bytes_keeps_the_unit_within_five_characters(value: float | None, text: str) -> None:
    assert short_bytes(value) == text
    assert len(text) <= 5


def pool() -> HostView:
    """A pool of 32 CPUs: n1 16 CPUs, n2 and n3 8 each; CPU shares are of the whole pool's 32."""
    nodes = (NodeFacts("n1", 16, 64 * GIB), NodeFacts("n2", 8, 32 * GIB), NodeFacts("n3", 8, 32 * GIB))
    rows = [
        row("p", "a", vcpus=4, host_cpu=10.0, contention=2.0, node="n1"),  # 20 % of n1
        row("p", "b", vcpus=8, used=2 * GIB, host_cpu=5.0, contention=6.0, node="n1"),  # 10 % of n1
        row("p", "c", vcpus=2, host_cpu=2.5, node="n2"),  # 10 % of n2
        row("p", "halted", PowerState.OFF, used=None, host_cpu=None),  # runs nowhere
        row("p", "e", host_cpu=5.0, node="n9"),  # on a server the facts do not list
    ]
    base = view("p", rows, cpus=32, memory=128 * GIB)
    return HostView(base.config, base.health, HostFacts("xen", cpus=32, memory_bytes=128 * GIB, nodes=nodes),
                    base.rows, False, frozenset(), 1)


def test_each_node_of_a_pool_is_summarized_on_its_own_capacity() -> None:
    host = summarize_host(pool(), NOW)
    assert host.domains == 5 and host.cpu_pct == pytest.approx(22.5)
    n1, n2, n3, n9 = summarize_nodes(pool(), NOW)
    assert [n.node for n in (n1, n2, n3, n9)] == ["n1", "n2", "n3", "n9"]  # the facts' order, then the rest
    assert (n1.domains, n1.running, n1.cpus, n1.memory_total_bytes) == (2, 2, 16, 64 * GIB)
    assert n1.cpu_pct == pytest.approx(30.0)  # (10 + 5) % of 32 CPUs is 30 % of 16
    assert n1.vcpus == 12 and n1.vcpu_ratio == pytest.approx(0.75)
    assert n1.mem_used_bytes == 3 * GIB and n1.mem_allocated_bytes == 8 * GIB
    assert n1.contention_max_pct == 6.0 and n1.contention_avg_pct == 4.0
    assert n2.cpu_pct == pytest.approx(10.0) and n2.vcpu_ratio == pytest.approx(0.25)
    assert n2.contention_max_pct is None  # nobody reported it: unknown, not 0
    assert n3.domains == 0 and n3.cpu_pct == 0.0 and n3.vcpus == 0  # an idle server: known zeros
    assert n9.cpus is None and n9.cpu_pct is None and n9.cpu_reporting == 1 and n9.vcpu_ratio is None
    assert sum(n.domains or 0 for n in (n1, n2, n3, n9)) == 4  # the halted VM counts in no node
    record = node_summary_record(n1)
    assert next(iter(record)) == "node" and record["node"] == "n1"
    assert {k: v for k, v in record.items() if k != "node"} == host_summary_record(n1)
    assert record["cpu_pct"] == 30.0 and record["domains"]["running"] == 2


def test_a_single_host_has_no_nodes_and_a_silent_pool_none_yet() -> None:
    assert summarize_nodes(kvm1(), NOW) == () and not has_nodes(kvm1())
    assert has_nodes(pool())
    silent = pool()
    silent = HostView(silent.config, HostHealth(HostStatus.CONNECTING), silent.facts, (), False, frozenset(), 1)
    assert summarize_nodes(silent, NOW) == ()


def test_node_lines_align_a_header_and_a_line_per_server() -> None:
    lines = node_lines(summarize_nodes(pool(), NOW))
    assert lines[0].split() == ["NODE", "CPU%", "MEM", "use/alloc/tot", "COMMIT", "CONT%", "DOMS"]
    assert lines[1].split() == ["n1", "30.0", "3.0G/8.0G/64G", "0.75x", "6.0", "2/2"]
    assert lines[3].split() == ["n3", "0.0", "0B/0B/32G", "0.00x", "-", "0/0"]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert node_lines(()) == []


def test_a_hostile_server_name_is_escaped_in_node_lines() -> None:
    base = pool()
    rows = (row("p", "x", node="esx\x1b]0;PWNED\x07-1"),)
    hostile = HostView(base.config, base.health, base.facts, rows, False, frozenset(), 1)
    lines = node_lines(summarize_nodes(hostile, NOW))
    assert "\x1b" not in "".join(lines) and "esx\\x1b]0;PWNED\\x07-1" in lines[-1]
