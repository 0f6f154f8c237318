"""Serial consoles, end to end in a real terminal (tmux) on a real QEMU guest.

The shared guests vfleet-t1/t2 log their serial port to a file (no pty to attach to);
these tests boot a transient guest vfleet-con from the testbed's kernel and initramfs
with `<serial type='pty'>` + `<console>` and busybox sh as init on ttyS0, and destroy it
after each test (a transient domain leaves nothing defined).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tmuxterm import TmuxPane

from conftest import ROOT, need_backend

CON = "vfleet-con"


def con_xml(guest_dir: Path) -> str:
    image = guest_dir.parent / "guest"
    return f"""<domain type='qemu'>
  <name>{CON}</name>
  <title>vfleet console test guest (transient)</title>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{image / "vmlinuz"}</kernel>
    <initrd>{image / "initrd.img"}</initrd>
    <cmdline>console=ttyS0 quiet rdinit=/bin/busybox -- sh</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>"""


@pytest.fixture(scope="module")
def _con_connection(testbed: dict[str, str], libvirt_module: object) -> Iterator[object]:
    """One guest for the module (booting takes seconds under TCG); destroyed at the end."""
    import libvirt

    need_backend("tmux", subprocess.run(["tmux", "-V"], capture_output=True, check=False).returncode == 0)
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    with contextlib.suppress(libvirt.libvirtError):  # left over by an interrupted run
        conn.lookupByName(CON).destroy()
    yield conn
    with contextlib.suppress(libvirt.libvirtError):
        conn.lookupByName(CON).destroy()
    conn.close()


@pytest.fixture
def con_guest(_con_connection: object, testbed: dict[str, str]) -> str:
    """The transient console guest, running (created again after a test destroyed it)."""
    import libvirt

    conn = _con_connection
    assert isinstance(conn, libvirt.virConnect)
    try:
        conn.lookupByName(CON)
    except libvirt.libvirtError:
        conn.createXML(con_xml(Path(testbed["VFLEET_GUEST_DIR"])), 0)
    return CON


class Term(TmuxPane):
    patience = 60.0  # a guest may still be booting

    def __init__(self, command: str, tmp: Path) -> None:
        super().__init__("vfleet-con")
        self.tmp = tmp
        # stty -g before and after: the terminal settings must come back exactly
        script = f"stty -g > {tmp}/before; {command}; echo EXIT=$?; stty -g > {tmp}/after; sleep 600"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.session, "-x", "120", "-y", "40", "sh", "-c", script],
            check=True,
            timeout=10,
        )

    def stty_restored(self) -> bool:
        before, after = self.tmp / "before", self.tmp / "after"
        deadline = time.monotonic() + 10
        while not (after.exists() and after.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return before.read_text() == after.read_text() != ""


def vfleet(inventory: Path, audit: Path, *args: str) -> str:
    env = f"PYTHONPATH={shlex.quote(str(ROOT))}"
    words = " ".join(shlex.quote(a) for a in args)
    return f"cd {ROOT} && env {env} {sys.executable} -m vfleet -i {inventory} {words} --audit-log {audit}"


def inventory_for(tmp: Path, uri: str) -> Path:
    path = tmp / "inventory.yaml"
    path.write_text(f"hosts:\n  - name: kvm\n    driver: libvirt\n    uri: \"{uri}\"\n")
    return path


@pytest.fixture
def term_factory(tmp_path: Path) -> Iterator[Callable[[str], Term]]:
    terms: list[Term] = []

    def make(command: str) -> Term:
        terms.append(Term(command, tmp_path))
        return terms[-1]

    yield make
    for term in terms:
        term.kill()


def _session(term: Term) -> None:
    """Wake the guest's shell, run a command, see its output (not just its echo)."""
    term.wait_for(lambda s: "Connected to vfleet-con on kvm. Escape: Ctrl+]" in s, "the banner")
    deadline = time.monotonic() + 60
    while "/ #" not in term.screen():  # the guest may still be booting: Enter until a prompt
        assert time.monotonic() < deadline, term.screen()
        term.keys("Enter")
        time.sleep(1)
    term.text("echo VF$((6*7))")
    term.keys("Enter")
    term.wait_for(lambda s: "VF42" in s.replace("VF$((6*7))", ""), "the command's output")


def _audit(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("uri_key", ["VFLEET_QEMU_URI", "VFLEET_QEMU_SSH_URI"])
def test_console_types_a_command_and_leaves_with_ctrl_bracket(
    con_guest: str, testbed: dict[str, str], tmp_path: Path, term_factory: Callable[[str], Term], uri_key: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    inventory = inventory_for(tmp_path, testbed[uri_key])
    term = term_factory(vfleet(inventory, audit, "console", con_guest))
    _session(term)
    term.keys("C-]")
    screen = term.wait_for(lambda s: "EXIT=" in s, "the command to end")
    assert "Disconnected from vfleet-con." in screen and "Traceback" not in screen
    assert "EXIT=0" in screen
    assert term.stty_restored()
    records = _audit(audit)
    opened = [r for r in records if r.get("kind") == "console"]
    assert len(opened) == 1
    assert opened[0]["targets"][0]["domain"] == con_guest  # type: ignore[index]
    assert opened[0]["view_only"] is False and opened[0]["face"] == "cli" and opened[0]["user"]
    closed = [r for r in records if r.get("kind") == "close" and r.get("op") == opened[0]["op"]]
    assert len(closed) == 1 and closed[0]["outcome"] == "completed" and closed[0]["seconds"] > 0
    assert [r["result"] for r in records if r["kind"] == "result"] == ["ok"]
    assert "6*7" not in audit.read_text() and "VF" not in audit.read_text()  # never the keystrokes


def test_a_dropped_console_restores_the_terminal(
    con_guest: str, testbed: dict[str, str], tmp_path: Path, term_factory: Callable[[str], Term]
) -> None:
    audit = tmp_path / "audit.jsonl"
    term = term_factory(vfleet(inventory_for(tmp_path, testbed["VFLEET_QEMU_URI"]), audit, "console", con_guest))
    _session(term)
    subprocess.run(["virsh", "-c", testbed["VFLEET_QEMU_URI"], "destroy", con_guest], check=True, capture_output=True)
    screen = term.wait_for(lambda s: "EXIT=" in s, "the command to end")
    assert "Disconnected from vfleet-con: " in screen and "Traceback" not in screen
    assert term.stty_restored()
    records = _audit(audit)
    assert [(r["kind"], r.get("result")) for r in records] == [("console", None), ("result", "closed"), ("close", None)]
    assert records[1]["error"] == "the console was closed by the host"


def test_a_domain_without_a_serial_pty_says_so(testbed: dict[str, str], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    inventory = inventory_for(tmp_path, testbed["VFLEET_QEMU_URI"])
    guest = testbed["VFLEET_GUESTS"].split(",")[0]  # its serial port logs to a file
    done = subprocess.run(
        [sys.executable, "-m", "vfleet", "-i", str(inventory), "console", guest, "--audit-log", str(audit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 8, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no serial console" in lines[0] and guest in lines[0], lines
    assert [r.get("outcome") for r in _audit(audit) if r["kind"] == "close"] == ["failed"]


def test_ambiguous_and_unknown_domains_are_usage_errors(testbed: dict[str, str], tmp_path: Path) -> None:
    uri = testbed["VFLEET_QEMU_URI"]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  - name: a\n    driver: libvirt\n    uri: {uri}\n  - name: b\n    driver: libvirt\n    uri: {uri}\n"
    )
    guest = testbed["VFLEET_GUESTS"].split(",")[0]
    for word, needle in ((guest, "ambiguous"), ("no-such-domain", "no domain named")):
        done = subprocess.run(
            [sys.executable, "-m", "vfleet", "-i", str(inventory), "console", word],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT), "VFLEET_AUDIT_LOG": str(tmp_path / "a.jsonl")},
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and needle in done.stderr
    assert not (tmp_path / "a.jsonl").exists()  # nothing was opened
    for words in (["--host", "b", guest], [f"b:{guest}"]):  # either names one of the two
        done = subprocess.run(
            [sys.executable, "-m", "vfleet", "-i", str(inventory), "console", *words],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT), "VFLEET_AUDIT_LOG": str(tmp_path / "b.jsonl")},
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode != 2 and "ambiguous" not in done.stderr, done.stderr  # resolved, then no pty
    opened = [r for r in _audit(tmp_path / "b.jsonl") if r["kind"] == "console"]
    assert [r["targets"][0]["host"] for r in opened] == ["b", "b"]  # type: ignore[index]


def test_the_tui_hands_the_terminal_over_and_comes_back_as_it_was(
    con_guest: str, testbed: dict[str, str], tmp_path: Path, term_factory: Callable[[str], Term]
) -> None:
    audit = tmp_path / "audit.jsonl"
    inventory = inventory_for(tmp_path, testbed["VFLEET_QEMU_URI"])
    env = f"PYTHONPATH={shlex.quote(str(ROOT))} VFLEET_AUDIT_LOG={audit} TERM=xterm-256color XDG_STATE_HOME={tmp_path}"
    term = term_factory(f"cd {ROOT} && env {env} {sys.executable} -m vfleet -i {inventory}")
    term.wait_for(lambda s: con_guest in s and "vfleet-t2" in s, "the fleet table")
    # a filter and a sort that put the console guest on the last of three rows: the cursor goes there
    sorted_desc = lambda s: "NAME▼" in s and s.index("vfleet-t2") < s.index("vfleet-t1") < s.index(con_guest)  # noqa: E731
    deadline = time.monotonic() + 60
    while not sorted_desc(term.screen()):  # keys sent while the app starts may be dropped: until it takes them
        assert time.monotonic() < deadline, term.screen()
        term.text(":sort name desc\r")
        time.sleep(1)
    term.text("/vfleet-\r")
    term.wait_for(lambda s: "filter 'vfleet-': 3 shown" in s, "the filter")
    term.keys("Down", "Down")
    deadline = time.monotonic() + 30
    while not term.cursor_on(con_guest, "vfleet-t1", "vfleet-t2"):
        assert time.monotonic() < deadline, term.screen()
        time.sleep(0.1)  # another process's screen: nothing to await
    term.keys("o")
    _session(term)
    term.keys("C-]")
    after = term.wait_for(lambda s: "Disconnected from vfleet-con." in s and "vfleet-t2" in s, "the TUI back")
    assert after.index("vfleet-t2") < after.index("vfleet-t1") < after.index(con_guest)  # the same sort
    assert "/ #" not in after and "VF42" not in after  # the console's text is gone: the TUI repainted
    assert "filter 'vfleet-': 3 shown" in after  # the same filter
    term.keys("Enter")  # the domain under the cursor: still the console guest
    term.wait_for(lambda s: con_guest in s and "vfleet-t2" not in s, "the cursor row's detail")
    records = _audit(audit)
    assert [(r["kind"], r.get("face")) for r in records] == [("console", "tui"), ("result", None), ("close", None)]


def test_libvirt_refuses_a_console_on_a_read_only_connection(con_guest: str, testbed: dict[str, str], tmp_path: Path) -> None:
    """--read-only opens libvirt read-only, and libvirt denies consoles there: refused, one line, exit 4."""
    inventory = inventory_for(tmp_path, testbed["VFLEET_QEMU_URI"])
    done = subprocess.run(
        [sys.executable, "-m", "vfleet", "--read-only", "-i", str(inventory), "console", con_guest,
         "--audit-log", str(tmp_path / "audit.jsonl")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refuses consoles" in lines[0] and "read only" in lines[0], lines
    opened = [r for r in _audit(tmp_path / "audit.jsonl") if r["kind"] == "console"]
    assert len(opened) == 1 and opened[0]["view_only"] is True


def test_a_held_console_is_refused_and_force_takes_it_over(
    con_guest: str, testbed: dict[str, str], tmp_path: Path, term_factory: Callable[[str], Term]
) -> None:
    audit = tmp_path / "audit.jsonl"
    inventory = inventory_for(tmp_path, testbed["VFLEET_QEMU_URI"])
    first = term_factory(vfleet(inventory, audit, "console", con_guest, "--safe"))
    _session(first)
    second = subprocess.run(
        [sys.executable, "-m", "vfleet", "-i", str(inventory), "console", con_guest, "--audit-log", str(audit)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode == 1, second.stderr
    assert "in use by another session; --force takes it over" in second.stderr
    (tmp_path / "t2").mkdir()
    taker = Term(vfleet(inventory, audit, "console", con_guest, "--force"), tmp_path / "t2")
    try:
        taker.wait_for(lambda s: "Connected to vfleet-con on kvm." in s, "the forced console")
        screen = first.wait_for(lambda s: "EXIT=" in s, "the first console to be closed")
        assert "Disconnected from vfleet-con: " in screen and first.stty_restored()
        taker.keys("Enter")
        taker.wait_for(lambda s: "/ #" in s, "the shell on the forced console")
        taker.keys("C-]")
        taker.wait_for(lambda s: "EXIT=0" in s, "the forced console to end")
    finally:
        taker.kill()
    opened = [r for r in _audit(audit) if r["kind"] == "console"]
    assert [r["force"] for r in opened] == [False, False, True]
