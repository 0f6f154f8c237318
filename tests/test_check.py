"""`vfleet check` as a monitoring system runs it: a subprocess, one status line with perfdata,
long output, exit 0/1/2/3; on the demo fleet, on sim hosts that hang or have hostile names,
and on a real QEMU guest that is shut down mid-test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vfleet.cli import check as cli_check
from vfleet.core.check import METRICS
from vfleet.core.demo import FLAKY_HOST

STEADY = ("--host", "kvm-ams-*", "--host", "esx-*")  # the demo without its flaky host
# The Monitoring Plugins perfdata grammar: 'label'=value[UOM];[warn];[crit];[min];[max]
NUM = r"-?[0-9.]+"
RANGE = r"@?(?:~|-?[0-9.]+)?:?(?:-?[0-9.]+)?"
PERF = re.compile(
    rf"(?P<label>'(?:[^']|'')+'|[^ '=]+)=(?P<value>{NUM})(?P<uom>%|s|B|c)?"
    rf"(?:;(?P<warn>{RANGE})?(?:;(?P<crit>{RANGE})?(?:;(?P<min>{NUM})?(?:;(?P<max>{NUM})?)?)?)?)?"
)


def check(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def plugin(run: subprocess.CompletedProcess[str]) -> tuple[str, str, dict[str, dict[str, Any]], list[str]]:
    """Status word, summary, perfdata by label (parsed back strictly), long-output lines."""
    first, *long = run.stdout.rstrip("\n").split("\n")
    head = re.fullmatch(r"VFLEET (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]*?)(?: \| (.*))?", first)
    assert head, f"not a plugin status line: {first!r}"
    perf: dict[str, dict[str, Any]] = {}
    rest = head[3] or ""
    while rest:
        item = PERF.match(rest)
        assert item, f"bad perfdata at {rest[:60]!r}"
        label = item["label"]
        label = label[1:-1].replace("''", "'") if label.startswith("'") else label
        perf[label] = {k: item[k] or None for k in ("value", "uom", "warn", "crit", "min", "max")}
        rest = rest[item.end():]
        assert rest == "" or rest.startswith(" "), f"perfdata items are space-separated: {rest[:40]!r}"
        rest = rest[1:]
    assert all("|" not in line for line in long)
    return head[1], head[2], perf, long


def test_ok_with_perfdata_per_host_and_per_domain() -> None:
    run = check("--demo", "check", *STEADY, "-w", "cpu=0:100", "-c", "cpu=0:100", "-m", "memory",
                "-w", "memory=100", "-c", "memory=100")
    assert run.returncode == 0, run.stdout + run.stderr
    status, summary, perf, long = plugin(run)
    assert (status, long) == ("OK", [])
    assert summary.startswith("4/4 hosts up, ")
    assert perf["hosts_up"] == {"value": "4", "uom": None, "warn": None, "crit": None, "min": "0", "max": "4"}
    cpu = perf["kvm-ams-1 cpu"]
    assert (cpu["uom"], cpu["warn"], cpu["crit"], cpu["min"], cpu["max"]) == ("%", "0:100", "0:100", "0", "100")
    assert 0 <= float(cpu["value"]) <= 100
    assert perf["kvm-ams-1 age"]["uom"] == "s" and perf["kvm-ams-1 age"]["warn"] == "~:10"  # the config's default
    assert perf["esx-fra-1 memory"]["warn"] == "100"

    run = check("--demo", "check", "--host", "kvm-ams-2", "--per", "domain", "-m", "net", "-w", "disk=5e12")
    assert run.returncode == 0, run.stdout + run.stderr
    _, _, perf, _ = plugin(run)
    domains = [label for label in perf if label.endswith(" net")]
    assert 0 < len(domains) <= 12 and all(label.startswith("kvm-ams-2/") for label in domains)  # net known
    assert all(perf[label]["uom"] == "B" and perf[label]["warn"] is None for label in domains)  # graphed only
    assert {perf[label]["warn"] for label in perf if label.endswith(" disk")} == {"5000000000000"}  # no exponent


def test_per_node_judges_each_pool_server_and_a_single_host_as_itself() -> None:
    run = check("--demo", "check", "--host", "xcp-pool-1", "--host", "kvm-ams-1", "--per", "node",
                "-m", "cpu", "-m", "contention", "-m", "net", "-w", "cpu=0:100", "-c", "cpu=0:100", "-o", "json")
    doc = json.loads(run.stdout)
    labels = {p["label"] for p in doc["perfdata"]}
    assert {"xcp-pool-1/xcp-01 cpu", "xcp-pool-1/xcp-02 cpu", "kvm-ams-1 cpu"} <= labels
    assert "xcp-pool-1 cpu" not in labels  # the pool is judged by its servers, not as one
    contention = {p["label"]: p["value"] for p in doc["perfdata"] if p["label"].endswith(" contention")}
    assert set(contention) >= {"xcp-pool-1/xcp-01 contention", "xcp-pool-1/xcp-02 contention"}  # both report it
    assert {p["label"].split(" ")[0] for p in doc["perfdata"] if p["label"].endswith(" net")} == {
        "xcp-pool-1/xcp-01", "xcp-pool-1/xcp-02", "kvm-ams-1"}  # rates: the sum over each server's domains
    run = check("--demo", "check", "--host", "xcp-pool-1", "--per", "node", "-m", "contention",
                "-w", "contention=~:0", "-o", "json")
    doc = json.loads(run.stdout)
    assert doc["status"] == "WARNING" and run.returncode == 1
    assert {(p["host"], p["node"], p["domain"]) for p in doc["problems"]} <= {
        ("xcp-pool-1", "xcp-01", None), ("xcp-pool-1", "xcp-02", None)}
    assert doc["problems"][0]["message"].startswith("contention ")


def test_warning_from_an_inside_range_and_its_long_output() -> None:
    run = check("--demo", "check", "--host", "kvm-ams-1", "--per", "domain", "--state", "running",
                "-m", "cpu", "-w", "@0:100", "-c", "~:")
    assert run.returncode == 1, run.stdout + run.stderr
    status, summary, perf, long = plugin(run)
    assert status == "WARNING"
    assert long and all(re.fullmatch(r"WARNING: kvm-ams-1/\S+: cpu [0-9.]+% \(inside @0:100\)", line) for line in long)
    assert len(long) == sum(label.endswith(" cpu") for label in perf)  # every running domain with a known cpu
    assert summary.startswith(f"{len(long)} problems (" if len(long) > 1 else "kvm-ams-1/")


def test_critical_when_domains_are_not_in_the_expected_state() -> None:
    run = check("--demo", "check", *STEADY, "--expect", "running", "-m", "disk")
    assert run.returncode == 2, run.stdout + run.stderr
    status, _, _, long = plugin(run)
    assert status == "CRITICAL"
    assert long and all(re.fullmatch(r"CRITICAL: \S+/\S+: (off|paused|suspended|crashed|shutting-down), "
                                     r"expected running", line) for line in long)
    doc = json.loads(check("--demo", "check", *STEADY, "--expect", "running|paused", "-m", "disk",
                           "-o", "json").stdout)
    assert doc["schema"] == "vfleet.check/1" and doc["status"] == "CRITICAL" and doc["exit_code"] == 2
    assert {p["check"] for p in doc["problems"]} == {"state"}
    assert all(p["message"].startswith("off, expected paused|running") for p in doc["problems"])


def test_a_selector_matching_nothing_is_critical_when_a_state_is_expected() -> None:
    run = check("--demo", "check", "--host", "kvm-ams-1", "--name", "no-such-*", "--expect", "running", "-m", "disk")
    assert run.returncode == 2 and "no domain matches" in run.stdout


def test_config_thresholds_apply_when_no_range_is_given(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("thresholds:\n  memory: {warn: 0.001, crit: 100}\n")
    run = check("--demo", "--config", str(config), "check", "--host", "kvm-ams-1", "-m", "memory")
    assert run.returncode == 1, run.stdout + run.stderr
    _, _, perf, long = plugin(run)
    assert perf["kvm-ams-1 memory"]["warn"] == "~:0.001" and perf["kvm-ams-1 memory"]["crit"] == "~:100"
    assert long == [f"WARNING: kvm-ams-1: memory {perf['kvm-ams-1 memory']['value']}% (outside ~:0.001)"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("-w", "cpu=10:5"), "the start 10 is above the end 5"),
        (("-c", "cpu=x"), "bad threshold range 'x'"),
        (("-w", "80"), "say which metric"),
        (("-w", "load=5"), "no metric 'load'"),
        (("--per", "vm"), "invalid choice: 'vm'"),
        (("--no-such-option",), "unrecognized arguments"),
        (("-m", "cpu", "--interval", "0"), "need two polls"),
        (("--expect", "sleeping"), "sleeping"),
        (("--view", "nope"), "nope"),
    ],
)
def test_bad_options_are_unknown_exit_3(args: tuple[str, ...], said: str) -> None:
    run = check("--demo", "check", *args)
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stdout.startswith("VFLEET UNKNOWN - ") and run.stdout.count("\n") == 1
    assert said in run.stdout and "Traceback" not in run.stderr


def test_an_unreadable_inventory_is_unknown(tmp_path: Path) -> None:
    run = check("-i", str(tmp_path / "none.yaml"), "check")
    assert run.returncode == 3 and run.stdout == f"VFLEET UNKNOWN - {tmp_path / 'none.yaml'}: no such file\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [\n")
    run = check("-i", str(bad), "check", "-o", "json")
    assert run.returncode == 3 and json.loads(run.stdout)["status"] == "UNKNOWN"


def test_a_host_that_does_not_answer_in_time_is_unknown_and_named(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n"
                   "  - {name: quick, driver: sim, options: {domains: 3}}\n"
                   "  - {name: stuck, driver: sim, options: {domains: 3, latency: 60}, connect_timeout: 120}\n")
    started = time.monotonic()
    run = check("-i", str(inv), "check", "-m", "memory", "-t", "3")
    assert time.monotonic() - started < 30  # the plugin ends by its timeout, not the host's
    assert run.returncode == 3, run.stdout + run.stderr
    status, summary, perf, long = plugin(run)
    assert status == "UNKNOWN" and "no answer in time from stuck" in summary
    assert long == ["UNKNOWN: stuck: did not answer in time"]
    assert "quick age" in perf and "stuck age" not in perf


def test_hosts_down_are_critical_and_names_cannot_break_the_format(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n"
                   "  - {name: \"ho st|x=y'z\", driver: sim, options: {domains: 6, hostile: true, latency: 0.01}}\n"
                   "  - {name: gone, driver: libvirt, uri: 'test:///no/such/file.xml'}\n")
    run = check("-i", str(inv), "check", "--per", "domain", "-m", "memory", "-w", "~:", "-c", "~:")
    assert run.returncode == 2, run.stdout + run.stderr
    status, _, perf, long = plugin(run)  # parses strictly: no stray |, =, quote or newline
    assert status == "CRITICAL"
    assert [line for line in long if line.startswith("CRITICAL: gone: ")], long
    labels = [label for label in perf if label.endswith(" memory")]
    assert labels and all(label.startswith("ho st\\x7cx_y'z/") for label in labels)
    assert len(run.stdout.split("\n")) == len(long) + 2  # the status line, the long output, the final newline


def test_light_lists_match_the_core() -> None:
    assert tuple(METRICS) == cli_check.METRICS


def test_demo_flaky_host_is_not_in_the_steady_set() -> None:
    assert not FLAKY_HOST.startswith(("kvm-ams-", "esx-"))


@pytest.mark.usefixtures("libvirt_module")
def test_a_real_guest_shut_down_mid_test_goes_critical(testbed: dict[str, str], tmp_path: Path) -> None:
    import libvirt

    guest = testbed["VFLEET_GUESTS"].split(",")[0]
    inv = tmp_path / "kvm.yaml"
    inv.write_text(f"hosts:\n  - {{name: kvm, driver: libvirt, uri: '{testbed['VFLEET_QEMU_URI']}'}}\n")
    args = ("-i", str(inv), "check", "--name", guest, "--expect", "running", "--per", "domain", "-m", "disk")
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    dom = conn.lookupByName(guest)
    try:
        if not dom.isActive():  # another test left it off: this one starts from running
            dom.create()
        run = check(*args)
        assert run.returncode == 0, run.stdout + run.stderr
        assert plugin(run)[0] == "OK"

        dom.destroy()  # pulled out from under the monitor
        run = check(*args)
        assert run.returncode == 2, run.stdout + run.stderr
        status, _, _, long = plugin(run)
        assert status == "CRITICAL" and long == [f"CRITICAL: kvm/{guest}: off, expected running"]
    finally:
        if not dom.isActive():
            dom.create()  # leave it running, as found
        deadline = time.monotonic() + 60
        while dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
        conn.close()
    run = check(*args)
    assert run.returncode == 0, run.stdout + run.stderr


def _view(name: str, status: str, *, ok_ago: float | None, error: str | None = None) -> Any:
    from vfleet.core.engine import HostView
    from vfleet.core.models import HostConfig, HostHealth, HostStatus

    health = HostHealth(HostStatus(status), last_error=error, last_ok_at=None if ok_ago is None else 1000.0 - ok_ago,
                        polls=0 if ok_ago is None else 3)
    return HostView(HostConfig(name=name, driver="sim"), health, None, (), False, frozenset(), 1)


@pytest.mark.parametrize(
    ("status", "ok_ago", "error", "expected", "lines"),
    [
        ("up", 1.0, None, "OK", []),
        ("up", 30.0, None, "WARNING", ["WARNING: h: age 30s (outside ~:10)"]),
        ("up", 90.0, None, "CRITICAL", ["CRITICAL: h: age 90s (outside ~:60)"]),
        ("degraded", 1.0, "h: poll: timed out", "WARNING", ["WARNING: h: degraded: poll: timed out"]),
        ("stale", 25.0, None, "WARNING", ["WARNING: h: stale", "WARNING: h: age 25s (outside ~:10)"]),
        ("down", None, "h: connection refused", "CRITICAL", ["CRITICAL: h: down: connection refused"]),
        ("auth-failed", None, "h: permission denied", "CRITICAL", ["CRITICAL: h: auth-failed: permission denied"]),
        ("connecting", None, None, "UNKNOWN", ["UNKNOWN: h: no poll answered"]),
    ],
)
def test_each_host_health_maps_to_a_plugin_state(
    status: str, ok_ago: float | None, error: str | None, expected: str, lines: list[str]
) -> None:
    from vfleet.core import check as core
    from vfleet.core.ranges import above
    from vfleet.core.selector import Selector

    spec = core.Spec({"age": core.Limits(above(10), above(60))})
    outcome = core.evaluate([_view("h", status, ok_ago=ok_ago, error=error)], Selector.parse(""), spec, now=1000.0)
    assert outcome.state.name == expected
    assert outcome.plugin_output().splitlines()[1:] == lines
