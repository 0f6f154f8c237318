"""`vfleet status` end to end over real backends, one of them unreachable and one hung."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodexml import many, write_node
from vfleet.core.errors import ExitCode


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung libvirtd)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_json_over_real_guests_test_hosts_and_dead_hosts(
    testbed: dict[str, str], libvirt_module: object, tmp_path: Path, black_hole: int
) -> None:
    guests = testbed["VFLEET_GUESTS"].split(",")
    local = write_node(tmp_path / "local.xml", many("loc", 300))
    remote = write_node(tmp_path / "remote.xml", many("rem", 50))
    ssh = (f"test+ssh://root@127.0.0.1:{testbed['VFLEET_SSH_PORT']}{remote}"
           f"?keyfile={testbed['VFLEET_SSH_KEY']}&command={testbed['VFLEET_SSH_WRAPPER']}")
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(f"""\
defaults:
  connect_timeout: 3
groups:
  lab: {{tags: [lab]}}
hosts:
  - {{name: kvm-real, driver: libvirt, uri: '{testbed["VFLEET_QEMU_URI"]}', groups: [lab]}}
  - {{name: test-local, driver: libvirt, uri: 'test://{local}'}}
  - {{name: test-ssh, driver: libvirt, uri: '{ssh}', connect_timeout: 20}}
  - {{name: refused, driver: libvirt, uri: 'qemu+tcp://127.0.0.1:{free_port()}/system'}}
  - {{name: hung, driver: libvirt, uri: 'qemu+tcp://127.0.0.1:{black_hole}/system'}}
""")
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "vfleet", "-i", str(inventory), "status", "-o", "json"],
                         capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert run.returncode == ExitCode.UNREACHABLE == 3, run.stderr
    doc = json.loads(run.stdout)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert {n: hosts[n]["status"] for n in hosts} == {
        "kvm-real": "up", "test-local": "up", "test-ssh": "up", "refused": "down", "hung": "down"}
    assert "refused" in hosts["refused"]["error"].lower() or "connect" in hosts["refused"]["error"].lower()
    assert "3 s" in hosts["hung"]["error"]
    by_host: dict[str, list[dict[str, object]]] = {}
    for d in doc["domains"]:
        by_host.setdefault(str(d["host"]), []).append(d)
    assert len(by_host["test-local"]) == 300 and len(by_host["test-ssh"]) == 50
    real = {d["name"]: d for d in by_host["kvm-real"]}
    for name in guests:
        assert real[name]["state"] == "running" and real[name]["hypervisor"] == "kvm"
        assert real[name]["cpu_pct"] is not None and real[name]["tags"] == ["lab"]
    # the real host's aggregates: its own CPU count, its running guests' shares and vCPUs
    summary = hosts["kvm-real"]["summary"]
    running = [d for d in by_host["kvm-real"] if d["state"] == "running"]
    assert summary["cpus"] and summary["domains"]["running"] == len(running) >= len(guests)
    assert summary["cpu_pct"] == pytest.approx(sum(float(d["cpu_host_pct"] or 0) for d in running), abs=0.1)
    assert summary["vcpu_ratio"] == round(sum(int(d["vcpus"]) for d in running) / summary["cpus"], 2)
    assert hosts["refused"]["summary"]["domains"] is None and hosts["refused"]["summary"]["cpu_pct"] is None
    # stderr: one line per unreachable host, naming it
    lines = run.stderr.strip().splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == ["hung", "refused"], run.stderr
    # the hung host costs its own connect timeout, not more, and holds nobody back
    assert elapsed < 3 + 1 + 8, elapsed
