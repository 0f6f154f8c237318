"""Headless output with hostile remote text: table, CSV and stderr show it escaped, JSON keeps it exact.

The hostile names come from the sim driver's `hostile` option; the remote stderr
from a real SSH session to the asyncssh test host.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

from sshhost import Keys, SshTestServer, XenHost
from vfleet.core.errors import ExitCode
from vfleet.core.sanitize import display_width, printable
from vfleet.drivers.sim import HOSTILE_NAMES

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
DOMAINS = 12  # more than HOSTILE_NAMES: the rest keep their ordinary names


def safe(text: str) -> bool:
    """Nothing but line breaks that a terminal would act on, nothing that would not show."""
    return all(c == "\n" or unicodedata.category(c) not in HIDDEN for c in text)


def vfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=60,
                          encoding="utf-8", errors="surrogateescape", cwd=ROOT)


def hostile_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(f"hosts:\n  - {{name: evil, driver: sim, options: {{hostile: true, domains: {DOMAINS},"
                    " latency: 0.01}}\n")
    return path


def test_status_table_shows_hostile_names_escaped_one_row_each(tmp_path: Path) -> None:
    run = vfleet("-i", str(hostile_inventory(tmp_path)), "status", "--interval", "0")
    assert run.returncode == ExitCode.OK, run.stderr
    assert safe(run.stdout), run.stdout
    lines = run.stdout.splitlines()
    assert len(lines) == 1 + DOMAINS  # a name's line break does not split its row
    for name in HOSTILE_NAMES:
        assert sum(printable(name) in line for line in lines) == 1, name
    assert "ev\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED" in run.stdout
    assert "Wébserver" in run.stdout and "数据库" in run.stdout  # printable non-ASCII stays readable
    # columns line up in terminal cells, wide CJK names included: STATE starts at one place
    state_at = {display_width(line[: line.index(" running") if " running" in line else line.index(" paused")])
                for line in lines[1:]}
    assert len(state_at) == 1, state_at


def test_status_csv_escapes_and_json_keeps_the_exact_strings(tmp_path: Path) -> None:
    inv = str(hostile_inventory(tmp_path))
    run = vfleet("-i", inv, "status", "--interval", "0", "-o", "csv")
    assert run.returncode == ExitCode.OK, run.stderr
    assert safe(run.stdout) and run.stdout.count("\n") == 1 + DOMAINS
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    names = [r["name"] for r in rows]
    assert all(printable(n) in names for n in HOSTILE_NAMES)
    assert {r["raw_state"] for r in rows} <= {"running\\x1b[0m", "paused\\x1b[0m", "shut off\\x1b[0m"}

    run = vfleet("-i", inv, "status", "--interval", "0", "-o", "json")
    assert run.returncode == ExitCode.OK, run.stderr
    assert run.stdout.isascii()  # \u escapes for everything else: exact, and inert on a terminal
    doc = json.loads(run.stdout)
    assert set(HOSTILE_NAMES) <= {d["name"] for d in doc["domains"]}
    assert {d["raw_state"][-4:] for d in doc["domains"]} == {"\x1b[0m"}
    assert doc["hosts"][0]["version"] == "9.0.0\u202e"


def test_top_table_frames_are_escaped(tmp_path: Path) -> None:
    run = vfleet("-i", str(hostile_inventory(tmp_path)), "top", "-b", "-o", "table", "-d", "0.2", "-n", "2")
    assert run.returncode == ExitCode.OK, run.stderr
    assert safe(run.stdout) and "ev\\x1b]0;PWNED-TITLE" in run.stdout
    # two frames and the blank line between; a frame: 3 lines of fleet header, a blank line, the
    # hosts' table (header and 1 host), a blank line, the domains' table (header and its rows)
    assert run.stdout.count("\n") == 2 * (3 + 1 + 2 + 1 + 1 + DOMAINS) + 1


def test_inventory_errors_quoting_hostile_text_are_escaped(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text('hosts:\n  - {name: "a\\e]0;T\\a", driver: sim, "b\\e[2J": 1}\n')
    run = vfleet("-i", str(inv), "status")
    assert run.returncode == ExitCode.USAGE
    assert run.stderr.startswith(f"vfleet: {inv}:2: hosts[a\\x1b]0;T\\x07].b\\x1b[2J: unknown key")
    assert safe(run.stderr) and run.stderr.count("\n") == 1


def test_log_records_are_escaped_once_the_cli_set_logging_up(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  - {name: s1, driver: sim}\n")
    code = ("import logging, sys; from vfleet.cli import main;"
            f"rc = main(['-v', '-i', {str(inv)!r}, 'inventory', 'check']);"
            "log = logging.getLogger('vfleet.drivers.x');"
            "log.warning('%s: said %s', 'h1', '\\x1b]0;PWNED\\x07\\u202e');"
            "exc = RuntimeError('boom \\x1b[2J');"
            "log.info('poll failed', exc_info=(RuntimeError, exc, None)); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == ExitCode.OK, run.stderr
    assert "vfleet: WARNING: vfleet.drivers.x: h1: said \\x1b]0;PWNED\\x07\\u202e\n" in run.stderr
    assert "RuntimeError: boom \\x1b[2J" in run.stderr
    assert safe(run.stderr), run.stderr


async def test_remote_stderr_in_a_host_error_is_escaped(tmp_path: Path) -> None:
    """`xl info` fails on the dom0 with escapes on stderr: `status` names the host, escaped, exit 3."""
    xen = XenHost(overrides={"xl info": ("", "\x1b[2J\x1b]0;PWNED\x07libxl: \u202ecannot connect\n", 1)})
    server = await SshTestServer(xen, Keys.generate(), tmp_path).start()
    try:
        inv = tmp_path / "xen.yaml"
        inv.write_text(
            f"hosts:\n  - name: xen1\n    driver: xen_xl\n    address: 127.0.0.1\n    port: {server.port}\n"
            f"    user: root\n    ssh: {{agent: false, config: false, key_file: '{server.key_file}',"
            f" known_hosts: '{server.known_hosts}'}}\n")
        # an async subprocess: the SSH test host answers from this very event loop
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vfleet", "-vv", "-i", str(inv), "status", "--interval", "0", "--timeout", "10",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.close()
    stderr = err.decode()
    assert proc.returncode == ExitCode.UNREACHABLE, stderr
    line = "vfleet: xen1: `xl info` exited with status 1: \\x1b[2J\\x1b]0;PWNED\\x07libxl: \\u202ecannot connect\n"
    assert stderr.endswith(line)  # escaped, and the host named once
    assert safe(stderr), stderr
    assert out.decode().splitlines()[0].startswith("HOST")
