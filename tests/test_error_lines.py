"""Error lines name their host once: `vfleet: xen2: cannot reach ...`, never `xen2: xen2: ...`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from vfleet.core.errors import DriverError, GarbledOutput, HostUnreachable, host_line


def test_a_message_that_already_names_the_host_is_not_prefixed_again() -> None:
    inner = HostUnreachable("xen2", "cannot reach 10.0.0.2:22")
    outer = DriverError("xen2", str(inner))
    assert str(outer) == "xen2: cannot reach 10.0.0.2:22"
    assert outer.message == "cannot reach 10.0.0.2:22"
    assert str(GarbledOutput("xen2", "xen2: xen2: poll output: empty")) == "xen2: poll output: empty"
    # another host's name, or the host name inside the text, is kept
    assert str(DriverError("xen2", "xen1: migrate to xen2: refused")) == "xen2: xen1: migrate to xen2: refused"
    assert host_line("xen2", "xen2: down") == host_line("xen2", "down") == "xen2: down"


def test_status_names_an_unreachable_host_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        "hosts:\n"
        f"  - {{name: xen2, driver: xen_xl, address: 127.0.0.1, port: {port}, connect_timeout: 3,\n"
        f"     ssh: {{agent: false, config: false, known_hosts: '{known_hosts}'}}}}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "vfleet", "-i", str(inventory), "status"], capture_output=True, text=True, timeout=60
    )
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"vfleet: xen2: cannot reach 127.0.0.1:{port}"), run.stderr
    assert lines[0].count("xen2") == 1, run.stderr
