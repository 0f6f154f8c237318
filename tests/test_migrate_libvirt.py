"""Live migration between two real libvirtds: the testbed's qemu:///system and a second one.

The second libvirtd runs in its own UTS and mount namespaces (`unshare`): its own hostname
and host UUID (libvirt refuses a migration to the same host), its own /run/libvirt,
/var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /etc/libvirt (with an EMPTY qemu
config dir, so none of the testbed's guests is defined there), and its socket under a temp
dir. The guest is a transient diskless TCG guest booted from the testbed's kernel and
initramfs: nothing to share or copy, so the move needs no --unsafe. The shared guests
vfleet-t1/t2 are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestxml import tcg_guest_xml
from vfleet.core.audit import verify
from vfleet.core.errors import ExitCode

HOST_UUID = "6d2b7c1e-4a5f-4c0b-9d3e-0a1b2c3d4e5f"
START = """set -e
hostname vfleet-mig2
D={d}
for x in run lib cache log; do mkdir -p $D/$x; done
mount --bind $D/run /run/libvirt
mount --bind $D/lib /var/lib/libvirt
mount --bind $D/cache /var/cache/libvirt
mount --bind $D/log /var/log/libvirt
mount --bind $D/etc /etc/libvirt
exec libvirtd --pid-file $D/libvirtd.pid --config $D/etc/libvirtd.conf
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _etc(work: Path) -> Path:
    """A copy of /etc/libvirt's files (not its dirs: no guest or network definitions)."""
    etc = work / "etc"
    (etc / "qemu").mkdir(parents=True)
    for f in Path("/etc/libvirt").iterdir():
        if f.is_file():
            shutil.copy(f, etc / f.name)
    (etc / "libvirtd.conf").write_text(
        f'host_uuid = "{HOST_UUID}"\nlisten_tls = 0\nlisten_tcp = 0\nunix_sock_dir = "{work}/sock"\n'
    )
    qemu = (etc / "qemu.conf").read_text() if (etc / "qemu.conf").exists() else ""
    (etc / "qemu.conf").write_text(qemu + '\nstdio_handler = "file"\n')  # no virtlogd of its own
    return etc


def _wait_open(libvirt: object, uri: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> object:
    end = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the second libvirtd exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            return libvirt.open(uri)  # type: ignore[attr-defined]
        except libvirt.libvirtError:  # type: ignore[attr-defined]
            if time.monotonic() > end:
                pytest.fail(f"the second libvirtd did not answer at {uri} in {timeout:.0f}s: {log.read_text()[-2000:]}")
            time.sleep(0.2)


@pytest.fixture
def second_libvirtd(libvirt_module: object) -> Iterator[tuple[str, object]]:
    if shutil.which("unshare") is None or shutil.which("libvirtd") is None:
        pytest.skip("needs `unshare` (util-linux) and `libvirtd` to start a second libvirtd")
    if os.geteuid() != 0:
        pytest.skip("a second libvirtd in its own namespaces needs root")
    libvirt = libvirt_module
    work = Path(tempfile.mkdtemp(prefix="vfleet-mig-"))
    work.chmod(0o755)
    (work / "sock").mkdir()
    _etc(work)
    caps = Path("/var/cache/libvirt/qemu/capabilities")
    if caps.is_dir():  # the testbed's probe, so this one starts in a fraction of a second
        shutil.copytree(caps, work / "cache/qemu/capabilities")
    log = work / "libvirtd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", START.format(d=work)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    # +unix: the remote driver even inside the source libvirtd (peer-to-peer), which would
    # otherwise open its own qemu:///system and refuse a move "to the same host"
    uri = f"qemu+unix:///system?socket={work}/sock/libvirt-sock"
    conn = None
    try:
        conn = _wait_open(libvirt, uri, proc, log)
        yield uri, conn
    finally:
        try:
            if conn is not None:
                _clear(conn)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            shutil.rmtree(work, ignore_errors=True)


def _clear(conn: object) -> None:
    """Stop and forget what migrated in, so no QEMU outlives the second libvirtd."""
    for dom in conn.listAllDomains(0):  # type: ignore[attr-defined]
        persistent = dom.isPersistent()  # a transient domain is gone once destroyed
        if dom.isActive():
            dom.destroy()
        if persistent:
            dom.undefine()
    conn.close()  # type: ignore[attr-defined]


@pytest.fixture
def transient_guest(testbed: dict[str, str], libvirt_module: object) -> Iterator[tuple[str, object]]:
    libvirt = libvirt_module
    tb = testbed.get("VFLEET_TESTBED_DIR") or os.environ["VFLEET_TESTBED_DIR"]
    work = Path(tempfile.mkdtemp(prefix="vfleet-migg-"))
    work.chmod(0o755)
    name = f"vfleet-mig-{os.getpid()}"
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])  # type: ignore[attr-defined]
    conn.createXML(tcg_guest_xml(name, tb, "169.254.79.12/24", work / "serial.log"), 0)
    try:
        yield name, conn
    finally:
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError:  # type: ignore[attr-defined]
            pass  # it moved away (the other fixture removes it there)
        conn.close()
        shutil.rmtree(work, ignore_errors=True)


def _names(conn: object) -> set[str]:
    return {d.name() for d in conn.listAllDomains(0)}  # type: ignore[attr-defined]


def test_live_migration_to_a_second_libvirtd(
    testbed: dict[str, str], second_libvirtd: tuple[str, object], transient_guest: tuple[str, object], tmp_path: Path
) -> None:
    import libvirt

    dest_uri, dest = second_libvirtd
    name, source = transient_guest
    port = _free_port()
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(
        "hosts:\n"
        f"  - name: kvm1\n    driver: libvirt\n    uri: {testbed['VFLEET_QEMU_URI']}\n"
        "    protected_domains: ['vfleet-t*']\n"
        f"  - name: kvm2\n    driver: libvirt\n    uri: '{dest_uri}'\n"
        f"    options: {{migration_uri: 'tcp://127.0.0.1:{port}'}}\n"
    )
    audit = tmp_path / "audit.jsonl"
    assert name in _names(source) and name not in _names(dest)
    run = subprocess.run(
        [sys.executable, "-m", "vfleet", "-i", str(inventory), "migrate", name, "--to", "kvm2", "--yes",
         "-o", "json", "--audit-log", str(audit)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )
    assert run.returncode == ExitCode.OK, run.stderr
    (result,) = json.loads(run.stdout)["results"]
    assert (result["domain"], result["result"]) == (name, "ok"), result

    moved = dest.lookupByName(name)  # type: ignore[attr-defined]
    state, reason = moved.state()
    assert (state, reason) == (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED)  # moved live
    assert name not in _names(source)  # transient: gone from the source, not merely stopped
    assert dest.getHostname() == "vfleet-mig2"  # type: ignore[attr-defined]

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    (intent,) = [r for r in records if r["kind"] == "intent"]
    assert intent["verb"] == "migrate"
    assert intent["params"] == {"to": "kvm2", "live": True, "copy_storage": False}
    (sent,) = [t for t in intent["targets"] if t["plan"] == "send"]
    assert "same driver libvirt" in sent["preflight"]
    (done,) = [r for r in records if r["kind"] == "result"]
    assert done["params"]["to"] == "kvm2" and done["result"] == "ok"
    assert verify(audit).ok


def test_flags_follow_the_domain_and_the_params(libvirt_module: object) -> None:
    import libvirt

    from vfleet.core.models import MigrateParams
    from vfleet.drivers.libvirt.driver import migrate_flags

    p2p, live, off = libvirt.VIR_MIGRATE_PEER2PEER, libvirt.VIR_MIGRATE_LIVE, libvirt.VIR_MIGRATE_OFFLINE
    keep = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    plain = MigrateParams("kvm2")
    assert migrate_flags(plain, active=True, persistent=False) == p2p | live
    assert migrate_flags(plain, active=True, persistent=True) == p2p | live | keep
    offline = MigrateParams("kvm2", live=False)
    assert migrate_flags(offline, active=False, persistent=True) == p2p | off | keep
    copied = MigrateParams("kvm2", copy_storage=True)
    assert migrate_flags(copied, active=True, persistent=True) == p2p | live | keep | libvirt.VIR_MIGRATE_NON_SHARED_DISK
