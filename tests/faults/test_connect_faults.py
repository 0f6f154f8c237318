"""Hosts that cannot be reached, or barely: refused, black-holed, silent after TCP accept,
hung after login, and behind a slow lossy link; all in one inventory beside healthy hosts,
watched through `vfleet top --batch` and `vfleet status` at the same time (one run, many
assertions: the waits overlap instead of adding up)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from faults.harness import FRESH, HEALTHY, POLL, FakeHost, NetFault, Vfleet, free_port, stale_healthy, write_inventory

FAULTY = ("refused", "blackhole", "nobanner", "hung")
TIMEOUT = 3  # connect_timeout and call_timeout of the faulty hosts


@dataclass
class Run:
    frames: list[dict[str, Any]]
    top_exit: int
    status_exit: int
    status: dict[str, Any]
    status_stderr: str
    hung: FakeHost


@pytest.fixture(scope="module")
def run(
    testbed: dict[str, str], healthy: list[dict[str, Any]], fakes: Callable[..., FakeHost],
    nets: Callable[..., NetFault], blackhole_address: str, tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    tmp = tmp_path_factory.mktemp("connect-faults")
    hung = fakes("hung", poll="hang")
    slow_host = fakes("slow-origin")
    # 300 ms each way, 256 kbit/s, and a 0.2-1 s stall on 5 % of segments (a lost segment's RTO)
    link = nets("proxy", target_port=slow_host.port, delay=0.3, rate=32_000, stall_prob=0.05)
    slow = slow_host.entry(name="slow", port=link.port, connect_timeout=15, call_timeout=10)
    # the proxy forwards to the origin's port, so the key the client sees is the origin's
    slow_host.keys.trust(link.port, slow_host.keys.host_key(slow_host.name))
    entries = [
        *healthy,
        {"name": "kvm", "driver": "libvirt", "uri": testbed["VFLEET_QEMU_URI"]},
        slow_host.keys.ssh_entry("refused", "xen_xl", free_port()),
        {**slow_host.keys.ssh_entry("blackhole", "xen_xl", 22), "address": blackhole_address},
        slow_host.keys.ssh_entry("nobanner", "xen_xl", nets("nobanner").port),
        hung.entry(),
        slow,
    ]
    inventory = write_inventory(tmp / "fleet.yaml", entries, connect_timeout=TIMEOUT, call_timeout=TIMEOUT)
    top = Vfleet("-i", str(inventory), "top", "--batch", "-d", str(POLL), "-n", "16", stderr_file=tmp / "top.err")
    status = Vfleet("-i", str(inventory), "status", "-o", "json", stderr_file=tmp / "status.err")
    status_exit = status.finish(60)
    top_exit = top.finish(60)
    return Run(top.frames(), top_exit, status_exit, json.loads(status.stdout()), status.stderr(), hung)


def hosts_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in doc["hosts"]}


def first_frame(run: Run, host: str, status: str) -> int | None:
    for frame in run.frames:
        if hosts_of(frame)[host]["status"] == status:
            return int(frame["iteration"])
    return None


def test_refused_host_is_down_at_once(run: Run) -> None:
    host = hosts_of(run.status)["refused"]
    assert host["status"] == "down" and "refused" in host["error"].lower(), host
    down_at = first_frame(run, "refused", "down")
    assert down_at is not None and down_at <= 2, [hosts_of(f)["refused"] for f in run.frames[:3]]


@pytest.mark.parametrize("name", ["blackhole", "nobanner"])
def test_silent_host_is_down_after_its_connect_timeout(run: Run, name: str) -> None:
    host = hosts_of(run.status)[name]
    assert host["status"] == "down" and f"{TIMEOUT} s" in host["error"], host
    # Frames come every second from 1 s on: the timeout shows within the connect timeout
    # plus two frames, and stays shown while the host is retried (down or connecting again).
    seen = [hosts_of(f)[name] for f in run.frames]
    assert all(h["status"] in ("connecting", "down") for h in seen), seen
    assert all(f"{TIMEOUT} s" in (h["error"] or "") for h in seen[TIMEOUT + 1 :]), seen


def test_hung_command_makes_the_host_stale(run: Run) -> None:
    host = hosts_of(run.status)["hung"]
    assert host["status"] in ("stale", "degraded") and host["error"], host
    assert host["domains"] == 0 and host["data_age_s"] is None
    late = [hosts_of(f)["hung"] for f in run.frames[TIMEOUT + 3 :]]
    assert late and all(h["status"] in ("stale", "degraded") and h["error"] for h in late), late


def test_abandoned_commands_are_killed_on_the_host(run: Run) -> None:
    """Closing the channel leaves the remote command running (sshd does not stop it): a poll
    the client gave up on, by its timeout or because vfleet is exiting (`top -n` done,
    `status` settled), must also be killed, or every hung poll leaves a process behind."""
    polls = run.hung.events("start", "poll")
    gone = sorted(e["n"] for e in run.hung.events("gone"))
    killed = {e["n"] for e in run.hung.events("killed")}
    assert len(polls) >= 3 and len(gone) >= 3, (polls, gone)
    # every vfleet process of the run has exited by now: its kills had to go out before
    assert not [n for n in gone if n not in killed], (gone, killed)


def test_slow_lossy_link_still_gives_correct_data(run: Run) -> None:
    host = hosts_of(run.status)["slow"]
    assert host["status"] == "up", host
    names = {d["name"] for d in run.status["domains"] if d["host"] == "slow"}
    assert names == {"Domain-0", "tiny", "tinynet"}
    up_at = first_frame(run, "slow", "up")
    assert up_at is not None
    later = [hosts_of(f)["slow"] for f in run.frames if f["iteration"] > up_at]
    assert all(h["status"] in ("up", "stale") for h in later), later
    assert sum(h["status"] == "up" for h in later) >= len(later) * 0.7, later


def test_healthy_hosts_keep_fresh_data_beside_every_fault(run: Run) -> None:
    assert len(run.frames) == 16 and run.top_exit == 3
    assert stale_healthy(run.frames, (*HEALTHY, "kvm")) == [], f"data older than {FRESH} s"
    assert {h: hosts_of(run.status)[h]["status"] for h in (*HEALTHY, "kvm")} == dict.fromkeys((*HEALTHY, "kvm"), "up")


def test_status_exits_3_and_names_each_unreachable_host_once(run: Run) -> None:
    assert run.status_exit == 3, run.status_stderr
    lines = run.status_stderr.strip().splitlines()
    named = sorted(m.group(1) for line in lines if (m := re.match(r"vfleet: ([\w-]+): ", line)))
    assert named == sorted(FAULTY), run.status_stderr


def test_error_lines_do_not_repeat_the_host_name(run: Run) -> None:
    """`vfleet: xen2: xen2: ...` (issue 10, smaller items): one host prefix per line."""
    lines = run.status_stderr.strip().splitlines()
    repeated = [line for line in lines if re.match(r"vfleet: ([\w-]+): \1: ", line)]
    assert repeated == [], repeated
    errors = [h["error"] for h in run.status["hosts"] if h["error"]]
    assert not [e for e in errors if re.match(r"([\w-]+): \1: ", e)], errors

