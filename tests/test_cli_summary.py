"""The `summary` objects of `status -o json` and `top`, and `top`'s first frame, end to end as a subprocess.

Two simulated hosts (counters only: rates need two samples) and one host that refuses
connections; every aggregate is checked against the domain records of the same document.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vfleet.core.errors import ExitCode


def vfleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inv.yaml"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    path.write_text(
        "hosts:\n"
        "  - {name: s1, driver: sim, options: {flavour: kvm, domains: 8, seed: 5, latency: 0.05}}\n"
        "  - {name: s2, driver: sim, options: {flavour: esxi, domains: 5, seed: 5, latency: 0.05}}\n"
        # nothing listens on port 1: refused at once, so the host is down with no data at all
        "  - {name: dead, driver: xen_xl, address: 127.0.0.1, port: 1, connect_timeout: 5,"
        f" ssh: {{known_hosts: '{known_hosts}'}}}}\n"
    )
    return path


def check_host_summary(host: dict[str, Any], domains: list[dict[str, Any]]) -> None:
    s = host["summary"]
    mine = [d for d in domains if d["host"] == host["name"]]
    running = [d for d in mine if d["state"] == "running"]
    holding = [d for d in mine if d["state"] in ("running", "paused", "shutting-down")]
    assert s["domains"]["total"] == len(mine) == host["domains"]
    assert s["domains"]["running"] == len(running)
    assert sum(n for state, n in s["domains"].items() if state != "total") == len(mine)
    assert s["cpus"] == 32 and s["mem_total_bytes"] == 256 << 30
    assert s["vcpus"] == sum(d["vcpus"] for d in running)
    assert s["vcpu_ratio"] == round(s["vcpus"] / 32, 2)
    assert s["mem_allocated_bytes"] == sum(d["mem_current_bytes"] for d in holding)
    used = [d["mem_used_bytes"] for d in holding if d["mem_used_bytes"] is not None]
    assert s["mem_used_bytes"] == sum(used) and s["mem_used_domains"] == len(used)
    # rates are known (two samples), and the host's CPU % is its running domains' shares summed
    assert all(d["cpu_host_pct"] is not None for d in running)
    assert s["cpu_pct"] == pytest.approx(sum(d["cpu_host_pct"] for d in running), abs=0.1)
    assert s["data_age_s"] is not None


def check_document(doc: dict[str, Any]) -> None:
    hosts = {h["name"]: h for h in doc["hosts"]}
    for name in ("s1", "s2"):
        assert hosts[name]["status"] == "up"
        check_host_summary(hosts[name], doc["domains"])
    dead = hosts["dead"]["summary"]
    assert hosts["dead"]["status"] == "down"
    # nothing is known of a host that never answered: null, never 0
    assert dead["domains"] is None and dead["cpu_pct"] is None and dead["cpus"] is None
    assert dead["vcpu_ratio"] is None and dead["mem_used_bytes"] is None and dead["data_age_s"] is None
    fleet = doc["summary"]
    assert fleet["hosts"]["total"] == 3 and fleet["hosts"]["up"] == 2 and fleet["hosts"]["down"] == 1
    assert fleet["domains"]["total"] == len(doc["domains"]) == 13
    # seed 5 gives off and paused domains too: allocation counts the paused, never the off
    assert fleet["domains"]["off"] == 2 and fleet["domains"]["paused"] == 1
    assert fleet["cpus"] == 64 and fleet["mem_total_bytes"] == 512 << 30
    ups = [hosts["s1"]["summary"], hosts["s2"]["summary"]]
    assert fleet["vcpus"] == sum(s["vcpus"] for s in ups)
    assert fleet["cpu_pct"] == pytest.approx(sum(s["cpu_pct"] for s in ups) / 2, abs=0.1)  # equal capacities
    assert fleet["mem_allocated_bytes"] == sum(s["mem_allocated_bytes"] for s in ups)


def test_status_json_has_a_summary_per_host_and_for_the_fleet(inventory: Path) -> None:
    run = vfleet("-i", str(inventory), "status", "-o", "json", "--interval", "0.3")
    assert run.returncode == ExitCode.UNREACHABLE, run.stderr
    assert "vfleet: dead: " in run.stderr
    doc = json.loads(run.stdout)
    assert doc["schema"] == "vfleet.status/2"
    check_document(doc)


def test_the_first_top_frame_carries_rates_and_the_summary(inventory: Path) -> None:
    run = vfleet("-i", str(inventory), "top", "-b", "-n", "1", "-d", "0.5")
    assert run.returncode == ExitCode.UNREACHABLE, run.stderr
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(frames) == 1 and frames[0]["schema"] == "vfleet.top/2" and frames[0]["iteration"] == 1
    running = [d for d in frames[0]["domains"] if d["state"] == "running"]
    assert running and all(d["cpu_pct"] is not None for d in running)  # before: null until frame 2
    check_document(frames[0])


def test_top_table_frames_open_with_the_fleet_and_host_aggregates(inventory: Path) -> None:
    run = vfleet("-i", str(inventory), "top", "-b", "-n", "2", "-d", "0.3", "-o", "table")
    assert run.returncode == ExitCode.UNREACHABLE, run.stderr
    frames = run.stdout.split("vfleet top · frame ")[1:]
    assert len(frames) == 2
    for number, frame in enumerate(frames, 1):
        lines = frame.splitlines()
        assert lines[0].startswith(f"{number} · ")
        assert lines[1].startswith("hosts 3: 2 up, 1 down · 13 domains: 10 running, 1 paused, 2 off")
        assert lines[2].startswith("cpu ") and "% of 64 CPUs · vCPU " in lines[2] and "/512G total" in lines[2]
        header = lines.index(next(line for line in lines if line.startswith("HOST") and "CPU%" in line and "COMMIT" in line))
        assert header == 4 and lines[header].split() == [
            "HOST", "STATUS", "CPU%", "MEM", "use/alloc/tot", "COMMIT", "CONT%", "DOMS", "HV", "AGE", "PROBLEM"
        ]
        s1, s2, dead = (lines[header + i].split() for i in (1, 2, 3))
        assert s1[:2] == ["s1", "up"] and s1[7] == "kvm" and s2[:2] == ["s2", "up"] and s2[7] == "esxi"
        assert s1[2] != "-" and s1[4].endswith("x")  # CPU % and commit ratio known
        assert s1[6] == "6/8" and s2[6] == "4/5"
        assert dead[:8] == ["dead", "down", "-", "-/-/-", "-", "-", "-", "xen"]  # xen, not its driver's name
        assert any(line.split()[:3] == ["HOST", "HV", "NAME"] for line in lines[header + 4 :])


def test_a_pool_reports_each_servers_summary_against_its_domain_records(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("hosts:\n  - {name: pool, driver: sim, options: {flavour: xapi, nodes: 3, domains: 12, seed: 3}}\n")
    run = vfleet("-i", str(path), "status", "-o", "json", "--interval", "0.5")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    (host,) = doc["hosts"]
    nodes = {n["node"]: n for n in host["nodes"]}
    assert list(nodes) == ["pool-01", "pool-02", "pool-03"]
    assert host["summary"]["cpus"] == sum(n["cpus"] for n in nodes.values())
    for name, node in nodes.items():
        mine = [d for d in doc["domains"] if d["node"] == name]
        running = [d for d in mine if d["state"] == "running"]
        assert node["domains"]["total"] == len(mine) and node["domains"]["running"] == len(running)
        assert node["vcpus"] == sum(d["vcpus"] for d in running)
        assert node["vcpu_ratio"] == round(node["vcpus"] / node["cpus"], 2)
        # each domain's share is of the whole pool's CPUs: on one server it weighs pool/server times more
        scale = host["summary"]["cpus"] / node["cpus"]
        assert node["cpu_pct"] == pytest.approx(sum(d["cpu_host_pct"] for d in running) * scale, abs=0.2)
        assert node["contention_max_pct"] == max((d["contention_pct"] for d in running), default=None)
    halted = [d for d in doc["domains"] if d["state"] == "off"]
    assert halted and all(d["node"] is None for d in halted)  # XAPI: a halted VM runs on no server
    assert sum(n["domains"]["total"] for n in nodes.values()) == len(doc["domains"]) - len(halted)

    run = vfleet("-i", str(path), "top", "-b", "-n", "1", "-d", "0.3", "-o", "table")
    lines = run.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("pool "))
    assert [lines[at + i].split()[:2] for i in (1, 2, 3)] == [["└", f"pool-0{i}"] for i in (1, 2, 3)]
    assert any(line.split()[:3] == ["HOST", "NODE", "HV"] for line in lines)  # the domains' NODE column
