"""Headless commands end to end, as a cron job runs them: a subprocess, stdout, stderr, exit code."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodexml import PAUSED, RUNNING, SHUTOFF, many, write_node
from vfleet.core.errors import ExitCode


def vfleet(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_importing_the_cli_does_not_load_textual_or_backends() -> None:
    code = (
        "import sys; from vfleet.cli import main;"
        "rc = main(['--demo', 'status', '--interval', '0', '-o', 'json']);"
        "loaded = [m for m in ('textual', 'libvirt', 'pyVmomi') if m in sys.modules];"
        "print('LOADED', loaded, file=sys.stderr); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode in (ExitCode.OK, ExitCode.UNREACHABLE), run.stderr
    assert "LOADED []" in run.stderr


def test_demo_status_json_follows_the_schema() -> None:
    run = vfleet("--demo", "status", "-o", "json", "--interval", "0.3")
    assert run.returncode in (ExitCode.OK, ExitCode.UNREACHABLE), run.stderr  # the demo has a flaky host
    doc = json.loads(run.stdout)
    assert doc["schema"] == "vfleet.status/2"
    assert {h["hypervisor"] for h in doc["hosts"] if h["status"] == "up"} >= {"kvm", "esxi"}
    assert len(doc["domains"]) >= 40
    running = [d for d in doc["domains"] if d["state"] == "running" and not d["stale"]]
    assert running and all(d["cpu_pct"] is not None for d in running)
    off = [d for d in doc["domains"] if d["state"] == "off"]
    assert off and all(d["cpu_pct"] is None and d["mem_used_bytes"] is None for d in off)


def test_status_table_and_csv_against_test_driver_hosts(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    nodes = [write_node(tmp_path / f"n{i}.xml", [(f"h{i}-web", RUNNING), (f"h{i}-db", SHUTOFF), (f"h{i}-etl", PAUSED)])
             for i in range(2)]
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n" + "".join(
        f"  - {{name: t{i}, driver: libvirt, uri: 'test://{n}', tags: [t{i}tag]}}\n" for i, n in enumerate(nodes)))
    run = vfleet("-i", str(inv), "status", "--interval", "0")
    assert run.returncode == ExitCode.OK, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:4] == ["HOST", "HV", "NAME", "STATE"]
    assert len(lines) == 7 and run.stderr == ""

    run = vfleet("-i", str(inv), "status", "--interval", "0", "-o", "csv", "--state", "paused", "--tag", "t1tag")
    assert run.returncode == ExitCode.OK, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(r["host"], r["name"], r["state"]) for r in rows] == [("t1", "h1-etl", "paused")]


def test_unknown_host_and_bad_filters_are_usage_errors(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - {name: s1, driver: sim}\n")
    for args, words in (
        (("--host", "nope"), "no host matches 'nope'"),
        (("--group", "nope"), "no group named 'nope'"),
        (("--state", "sleepy"), "filter term 'state:sleepy': unknown state 'sleepy'"),
        (("--filter", "cpu>>5"), "filter term 'cpu>>5': bad comparison"),
        (("--filter", "colour>5"), "unknown filter field 'colour'"),
        (("--filter", "size:big"), "unknown filter term 'size:'"),
        (("--filter", "state:on|bogus"), "filter term 'state:on|bogus': unknown state 'bogus'"),
        (("--filter", "web !"), "filter term '!': nothing after '!'"),
    ):
        run = vfleet("-i", str(inv), "status", *args)
        assert run.returncode == ExitCode.USAGE, (args, run.stderr)
        assert run.stdout == "" and words in run.stderr and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_status_top_and_act_share_the_filter_grammar(tmp_path: Path) -> None:
    """`!` negation, `a|b` alternatives, case-insensitive globs; act reads a bare word as a name glob."""
    pytest.importorskip("libvirt")
    a = write_node(tmp_path / "a.xml", [("Web-1", RUNNING), ("web-10", PAUSED), ("db-1", SHUTOFF)])
    b = write_node(tmp_path / "b.xml", [("WEB-3", RUNNING), ("etl-1", RUNNING)])
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n"
                   f"  - {{name: Kvm-A, driver: libvirt, uri: 'test://{a}', tags: [Prod]}}\n"
                   f"  - {{name: kvm-b, driver: libvirt, uri: 'test://{b}'}}\n")

    def shown(*args: str) -> list[str]:
        run = vfleet("-i", str(inv), "status", "--interval", "0", "-o", "csv", *args)
        assert run.returncode == ExitCode.OK, (args, run.stderr)
        return sorted(r["name"] for r in csv.DictReader(io.StringIO(run.stdout)))

    assert shown("--filter", "web|DB !state:off") == ["WEB-3", "Web-1", "web-10"]
    assert shown("--filter", "host:KVM-a name:WEB-*") == ["Web-1", "web-10"]
    assert shown("--host", "kvm-A", "--host", "KVM-B", "--filter", "state:running|paused !etl|db") == [
        "WEB-3", "Web-1", "web-10"]
    assert shown("--tag", "prod", "--state", "paused|off") == ["db-1", "web-10"]

    run = vfleet("-i", str(inv), "top", "-b", "-d", "0.2", "-n", "1", "--filter", "!host:kvm-a state:ON")
    assert run.returncode == ExitCode.OK, run.stderr
    assert sorted(d["name"] for d in json.loads(run.stdout)["domains"]) == ["WEB-3", "etl-1"]

    run = vfleet("-i", str(inv), "act", "start", "web-1|DB-*", "!state:running", "--multiple", "--dry-run",
                 "-o", "json", "--audit-log", str(tmp_path / "audit.jsonl"))
    assert run.returncode == ExitCode.OK, run.stderr
    assert sorted(p["domain"] for p in json.loads(run.stdout)["plan"]) == ["db-1"]  # web-10: not a substring


def test_missing_inventory_is_a_one_line_usage_error(tmp_path: Path) -> None:
    run = vfleet("-i", str(tmp_path / "none.yaml"), "status")
    assert run.returncode == ExitCode.USAGE
    assert run.stderr == f"vfleet: {tmp_path / 'none.yaml'}: no such file\n"


def test_missing_optional_backend_names_what_to_install(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - {name: esx, driver: esxi_api, address: 127.0.0.1, user: u, password_env: P}\n")
    code = ("import sys; sys.modules['pyVmomi'] = None; from vfleet.cli import main;"
            f"sys.exit(main(['-i', {str(inv)!r}, 'status']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == ExitCode.MISSING_DEPENDENCY
    assert run.stderr.startswith("vfleet: the esxi_api driver needs the Python module 'pyVmomi': pip install")
    assert run.stderr.count("\n") == 1


def test_top_batch_streams_ndjson_frames() -> None:
    run = vfleet("--demo", "top", "--batch", "-d", "0.3", "-n", "3", "--host", "kvm-*")
    assert run.returncode == ExitCode.OK, run.stderr
    frames = [json.loads(line) for line in run.stdout.splitlines()]
    assert [f["iteration"] for f in frames] == [1, 2, 3]
    assert all(f["schema"] == "vfleet.top/2" for f in frames)
    assert {d["host"] for d in frames[-1]["domains"]} == {"kvm-ams-1", "kvm-ams-2"}
    assert any(d["cpu_pct"] is not None for d in frames[-1]["domains"])


def test_top_requires_batch_and_sane_numbers() -> None:
    assert vfleet("--demo", "top").returncode == ExitCode.USAGE
    assert vfleet("--demo", "top", "-b", "-d", "0").returncode == ExitCode.USAGE
    assert vfleet("--demo", "top", "-b", "-n", "0").returncode == ExitCode.USAGE


def test_status_names_many_domains_quickly(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    node = write_node(tmp_path / "big.xml", many("vm", 500))
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"hosts:\n  - {{name: big, driver: libvirt, uri: 'test://{node}'}}\n")
    run = vfleet("-i", str(inv), "status", "-o", "json", "--interval", "0.2")
    assert run.returncode == ExitCode.OK, run.stderr
    assert len(json.loads(run.stdout)["domains"]) == 500
