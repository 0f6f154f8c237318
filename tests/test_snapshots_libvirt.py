"""libvirt internal snapshots on a real QEMU (TCG) guest of our own.

The guest is a third one, made here from the testbed's kernel and initramfs with a
blank qcow2 disk of its own, and undefined at the end: vfleet-t1/t2 stay untouched.
The test guest has no shell on its console (its serial port is a log file), so the
revert is checked on the disk: with the guest off, `qemu-io` writes a pattern, we
snapshot, write another, revert, and read the first one back.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from guestxml import tcg_guest_xml
from vfleet.core.errors import ActionFailed, ExitCode
from vfleet.core.models import DomainRef, HostConfig, PowerState, SnapshotParams, Verb
from vfleet.drivers.libvirt.driver import LibvirtDriver

MARK_AT = "8M"  # the guest's /init reads and writes the first 2 MiB only


@pytest.fixture(scope="module")
def guest(testbed: dict[str, str], libvirt_module: object) -> Iterator[tuple[str, Path]]:
    import libvirt

    tb = testbed.get("VFLEET_TESTBED_DIR") or os.environ["VFLEET_TESTBED_DIR"]
    work = Path(tempfile.mkdtemp(prefix="vfleet-snap-"))
    work.chmod(0o755)  # QEMU runs as another user on qemu:///system
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    name = f"vfleet-snap-{os.getpid()}"
    conn = libvirt.open(testbed["VFLEET_QEMU_URI"])
    dom = conn.defineXML(tcg_guest_xml(name, tb, "169.254.79.10/24", work / "serial.log", disk))
    try:
        dom.create()
        yield name, disk
    finally:
        if dom.isActive():
            dom.destroy()
        for snap in dom.listAllSnapshots(0):
            snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
        dom.undefine()
        conn.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def qemu_io(disk: Path, command: str) -> str:
    done = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(disk)], capture_output=True, text=True)
    return done.stdout + done.stderr


async def wait_state(driver: LibvirtDriver, name: str, want: PowerState, timeout: float = 60) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        states = {d.name: d.state for d in (await driver.poll()).domains}
        if states.get(name) is want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} did not become {want.value}")


async def test_create_list_revert_delete_on_a_real_guest(testbed: dict[str, str], guest: tuple[str, Path]) -> None:
    name, disk = guest
    driver = LibvirtDriver(HostConfig(name="qemu", driver="libvirt", uri=testbed["VFLEET_QEMU_URI"], call_timeout=60))
    await driver.connect()
    try:
        uuid = next(d.uuid for d in (await driver.poll()).domains if d.name == name)
        ref = DomainRef(name, uuid or name)
        # a running guest: libvirt's internal snapshot needs its memory, and we say so
        with pytest.raises(ActionFailed, match="add --memory"):
            await driver.perform(Verb.SNAPSHOT_CREATE, ref, params=SnapshotParams("live"))
        made = await driver.perform(Verb.SNAPSHOT_CREATE, ref, params=SnapshotParams("live", memory=True))
        assert made.ok and made.state_after is PowerState.RUNNING
        (live,) = await driver.snapshots(ref)
        assert live.name == "live" and live.memory is True and live.current and live.state == "running"
        assert live.created is not None and abs(time.time() - live.created) < 300

        # off: a disk-only snapshot, and the revert checked on the disk itself
        await driver.perform(Verb.FORCE_OFF, ref)
        await wait_state(driver, name, PowerState.OFF)
        assert "wrote" in qemu_io(disk, f"write -P 0x41 {MARK_AT} 4k")
        made = await driver.perform(Verb.SNAPSHOT_CREATE, ref, params=SnapshotParams("cold", memory=True))
        assert made.ok and made.state_after is PowerState.OFF
        assert "wrote" in qemu_io(disk, f"write -P 0x42 {MARK_AT} 4k")  # written after the snapshot
        assert "Pattern verification failed" in qemu_io(disk, f"read -P 0x41 {MARK_AT} 4k")
        listed = await driver.snapshots(ref)
        assert [(s.name, s.memory, s.parent, s.current) for s in listed] == [
            ("live", True, None, False),
            ("cold", False, "live", True),
        ]
        reverted = await driver.perform(Verb.SNAPSHOT_REVERT, ref, params=SnapshotParams("cold"))
        assert reverted.ok and reverted.state_after is PowerState.OFF
        back = qemu_io(disk, f"read -P 0x41 {MARK_AT} 4k")
        assert "read 4096/4096" in back and "failed" not in back  # the later write is gone

        # back to the running snapshot: the guest runs again, from its saved memory
        again = await driver.perform(Verb.SNAPSHOT_REVERT, ref, params=SnapshotParams("live"))
        assert again.ok and again.state_after is PowerState.RUNNING
        with pytest.raises(ActionFailed, match="nope"):
            await driver.perform(Verb.SNAPSHOT_DELETE, ref, params=SnapshotParams("nope"))
        for snap in ("cold", "live"):
            gone = await driver.perform(Verb.SNAPSHOT_DELETE, ref, params=SnapshotParams(snap))
            assert gone.ok
        assert await driver.snapshots(ref) == ()
    finally:
        await driver.close()


def vfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def test_snapshot_commands_on_a_real_guest(testbed: dict[str, str], guest: tuple[str, Path], tmp_path: Path) -> None:
    name, _disk = guest
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(f"hosts:\n  - name: kvm\n    driver: libvirt\n    uri: {testbed['VFLEET_QEMU_URI']}\n"
                         f"    protected_domains: ['vfleet-t*']\n")
    audit = tmp_path / "audit.jsonl"
    base = ("-i", str(inventory), "snapshot")
    opts = ("--audit-log", str(audit), "-o", "json")

    made = vfleet(*base, "create", name, "--name", "pre-patch-{date}", "--memory", "--yes", *opts)
    assert made.returncode == ExitCode.OK, made.stderr
    snap = f"pre-patch-{datetime.now():%Y-%m-%d}"
    document = json.loads(made.stdout)
    assert document["params"] == {"snapshot": snap, "memory": True}
    assert [(r["domain"], r["result"]) for r in document["results"]] == [(name, "ok")]

    listed = vfleet(*base, "list", name, "-o", "json")
    assert listed.returncode == ExitCode.OK, listed.stderr
    (row,) = json.loads(listed.stdout)["snapshots"]
    assert (row["domain"], row["snapshot"], row["memory"], row["current"]) == (name, snap, True, True)
    table = vfleet(*base, "list", name)
    assert table.stdout.split("\n")[0].split() == ["HOST", "DOMAIN", "SNAPSHOT", "CREATED", "PARENT", "CURRENT",
                                                   "MEMORY", "STATE"]
    assert snap in table.stdout

    # destructive: no terminal and no --yes is refused; a protected domain is refused; a dry run sends nothing
    asked = vfleet(*base, "revert", name, "--name", snap, *opts)
    assert asked.returncode == ExitCode.REFUSED and "add --yes" in asked.stderr
    guarded = vfleet(*base, "delete", "vfleet-t1", "--name", snap, "--yes", *opts)
    assert guarded.returncode == ExitCode.REFUSED
    assert "protected" in json.loads(guarded.stdout)["results"][0]["message"]
    dry = vfleet(*base, "delete", name, "--name", snap, "--dry-run", *opts)
    assert dry.returncode == ExitCode.OK and json.loads(dry.stdout)["confirmation"] == "type-name"

    reverted = vfleet(*base, "revert", name, "--name", snap, "--yes", *opts)
    assert reverted.returncode == ExitCode.OK, reverted.stderr
    gone = vfleet(*base, "delete", name, "--name", snap, "--yes", *opts)
    assert gone.returncode == ExitCode.OK, gone.stderr
    assert json.loads(vfleet(*base, "list", name, "-o", "json").stdout)["snapshots"] == []

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [(r["kind"], r.get("verb"), r.get("params", {}).get("snapshot")) for r in records if r["kind"] != "close"]
    assert ("intent", "snapshot-create", snap) in kinds and ("intent", "snapshot-revert", snap) in kinds
    assert ("refused", "snapshot-revert", snap) in kinds  # not confirmed: on record, with its parameters
    assert ("result", "snapshot-delete", snap) in kinds
