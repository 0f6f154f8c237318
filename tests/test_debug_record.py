"""`vfleet debug record HOST --out DIR` against real backends: the QEMU guests through libvirt over SSH,
a Xen dom0 and a free ESXi through the SSH test hosts (real and documented outputs), a vCenter (vcsim),
and sim. For each: nothing that identifies the site is left in any file, the recording replays through
the driver's own parsing into the domains `vfleet status -o json` shows, and only its owner can read it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conftest import need_backend
from sshhost import EsxiHost, Keys, SshTestServer, XenHost
from vcsim_fixture import PASSWORD, USER, VCSIM_BIN, Vcsim, start_vcsim
from vfleet.core import inventory
from vfleet.core.scrub import Scrubber
from vfleet.drivers.replay import replay
from vfleet.drivers.sim import HOSTILE_NAMES

SECRET = "Rec0rd-S3cret-p4ss"
VCSIM_ENV = "VFLEET_RECORD_VCSIM_PASSWORD"


async def vfleet(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """The CLI in a subprocess: the SSH test hosts answer from this test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def ssh_host(name: str, driver: str, server: SshTestServer, extra: str = "") -> str:
    return (f"  - name: {name}\n    driver: {driver}\n    address: 127.0.0.1\n    port: {server.port}\n"
            f"    user: root\n    ssh: {{agent: false, config: false, key_file: '{server.key_file}',"
            f" known_hosts: '{server.known_hosts}'}}\n{extra}")


def write_inventory(tmp_path: Path, hosts: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text("defaults: {connect_timeout: 20, call_timeout: 15}\nhosts:\n" + hosts)
    return path


async def record_and_status(inv: Path, host: str, out: Path, *flags: str) -> tuple[dict[str, str], list[dict[str, object]]]:
    """Record HOST into `out`; its rows in `vfleet status -o json`; the recording's files, checked."""
    code, stdout, stderr = await vfleet("debug", "record", host, "--out", str(out), "-i", str(inv), *flags)
    assert code == 0, stderr
    assert stdout == f"{out}\n"
    assert re.match(rf"recorded {re.escape(host)} \(\w+\): \d+ domains in \d+ files? .*scrubbed", stderr), stderr
    code, stdout, stderr = await vfleet("-i", str(inv), "status", "-o", "json", "--interval", "0", "--host", host)
    assert code == 0, stderr
    rows = [r for r in json.loads(stdout)["domains"] if r["host"] == host]
    return read_recording(out), rows


def read_recording(out: Path) -> dict[str, str]:
    """The files of a recording, after checking its permissions and manifest."""
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    files = {p.name: p for p in out.iterdir()}
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    manifest = json.loads(files.pop("manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]].read_bytes()).hexdigest() == entry["sha256"]
    texts = {name: path.read_text() for name, path in files.items()}
    assert manifest.pop("format") == "vfleet.recording/1"  # the one fixed word (vcsim's user is "vfleet")
    texts["manifest.json"] = json.dumps(manifest)
    return texts


def assert_absent(files: dict[str, str], *values: str) -> None:
    """No file holds any of the values as a word (as grep -wi would find it)."""
    for name, text in files.items():
        for value in values:
            assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE), (name, value)


async def replayed(inv: Path, host: str, files: dict[str, str]) -> dict[str, str]:
    config = next(h for h in inventory.load(inv).hosts if h.name == host)
    snapshot = await replay(config, files)
    return {d.name: d.state.value for d in snapshot.domains}


def states(rows: list[dict[str, object]]) -> dict[str, str]:
    return {str(r["name"]): str(r["state"]) for r in rows}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
async def xen(keys: Keys, tmp_path: Path) -> AsyncIterator[SshTestServer]:
    server = await SshTestServer(XenHost(), keys, tmp_path).start()
    yield server
    await server.close()


@pytest.fixture
def esx_host() -> EsxiHost:
    host = EsxiHost()
    # An annotation holding a password, as real ones sometimes do: it must not leave the machine.
    summary = host.summary(1).replace('annotation = ""', f'annotation = "root password: {SECRET}; from root@127.0.0.1"')
    assert SECRET in summary
    host.overrides["vim-cmd vmsvc/get.summary 1"] = (summary, "", 0)
    return host


@pytest.fixture
async def esx(keys: Keys, tmp_path: Path, esx_host: EsxiHost) -> AsyncIterator[SshTestServer]:
    server = await SshTestServer(esx_host, keys, tmp_path).start()
    yield server
    await server.close()


async def test_libvirt_over_ssh(testbed: dict[str, str], libvirt_module: object, tmp_path: Path) -> None:
    uri = testbed["VFLEET_QEMU_SSH_URI"]
    inv = write_inventory(tmp_path, f"  - {{name: kvm-lab, driver: libvirt, uri: '{uri}'}}\n")
    files, rows = await record_and_status(inv, "kvm-lab", tmp_path / "rec")
    assert set(files) == {"libvirt-calls.json", "manifest.json"}
    calls = [c["call"] for c in json.loads(files["libvirt-calls.json"])]
    assert calls == ["host facts", "getAllDomainStats", "snapshot facts"]
    assert_absent(files, "127.0.0.1", "root", "kvm-lab")
    guests = testbed["VFLEET_GUESTS"].split(",")
    assert set(guests) <= set(states(rows))
    assert await replayed(inv, "kvm-lab", files) == states(rows)
    # the guests' names are in their disk paths and tap devices too: --scrub-names takes them all
    files, rows = await record_and_status(inv, "kvm-lab", tmp_path / "named", "--scrub-names")
    assert_absent(files, *guests)
    placeholders = Scrubber(domain_names=states(rows))
    assert await replayed(inv, "kvm-lab", files) == {placeholders.scrub(n): s for n, s in states(rows).items()}


async def test_xen_xl(xen: SshTestServer, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, ssh_host("xen1", "xen_xl", xen))
    files, rows = await record_and_status(inv, "xen1", tmp_path / "rec")
    commands = files["commands.txt"]
    assert commands.startswith("### host$ xl info\n") and "\n### host$ xl list; echo @@VFLEET@@ $?; xentop" in commands
    assert_absent(files, "127.0.0.1", "root", "xen1", "dom0")  # dom0: the name xl info gives the host
    assert states(rows)["tiny"] == "off"
    assert await replayed(inv, "xen1", files) == states(rows)


async def test_xen_xl_with_names_scrubbed(xen: SshTestServer, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, ssh_host("xen1", "xen_xl", xen))
    files, rows = await record_and_status(inv, "xen1", tmp_path / "rec", "--scrub-names")
    names = states(rows)
    assert_absent(files, *(n for n in names if n != "Domain-0"))  # every Xen host has a Domain-0
    placeholders = Scrubber(domain_names=names)  # the same names give the same placeholders
    assert await replayed(inv, "xen1", files) == {placeholders.scrub(n): s for n, s in names.items()}
    assert json.loads(files["manifest.json"])["scrubbed"]["domain-name"] == len(names) - 1


async def test_esxi_ssh(esx: SshTestServer, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, ssh_host("esx-ssh", "esxi_ssh", esx))
    files, rows = await record_and_status(inv, "esx-ssh", tmp_path / "rec", "--scrub-names")
    assert "vim-cmd vmsvc/get.summary 1" in files["commands.txt"]
    assert "vim-cmd vmsvc/snapshot.get 1" in files["commands.txt"]  # the every-tenth-poll part too
    names = states(rows)
    assert {"web01", "db server (primary)"} <= set(names)
    assert_absent(files, SECRET, "127.0.0.1", "root", "esx-ssh", "192.168.10.1", "esx01.lab.example.com", "esx01",
                  *names)
    scrubbed = json.loads(files["manifest.json"])["scrubbed"]
    assert scrubbed["token"] == 1 and scrubbed["ip"] >= 4 and scrubbed["domain-name"] == len(names)
    assert scrubbed["address"] == 1 and scrubbed["user"] == 1 and scrubbed["hostname"] == 3  # FQDN, label, domain
    placeholders = Scrubber(domain_names=names)
    assert await replayed(inv, "esx-ssh", files) == {placeholders.scrub(n): s for n, s in names.items()}


@pytest.fixture(scope="module")
def vcenter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    pytest.importorskip("pyVmomi")
    need_backend(f"vcsim ({VCSIM_BIN})", VCSIM_BIN.exists())
    sim = start_vcsim(tmp_path_factory.mktemp("vcsim"), "-model", "vpx", "-vm", "3", "-cluster-hosts", "2")
    yield sim
    sim.stop()


async def test_esxi_api_on_a_vcenter(vcenter: Vcsim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VCSIM_ENV, PASSWORD)
    inv = write_inventory(
        tmp_path,
        f"  - name: vc-lab\n    driver: esxi_api\n    address: {vcenter.address}\n    port: {vcenter.port}\n"
        f"    user: {USER}\n    password_env: {VCSIM_ENV}\n    tls: {{thumbprint: '{vcenter.sha256}'}}\n",
    )
    files, rows = await record_and_status(inv, "vc-lab", tmp_path / "rec")
    recording = json.loads(files["vsphere-poll.json"])
    assert recording["about"]["apiType"] == "VirtualCenter" and recording["perf"] is not None
    assert_absent(files, PASSWORD, vcenter.address, USER, "vc-lab")
    assert len(rows) == len([o for o in recording["objects"] if o["obj"]["_moref"].startswith("VirtualMachine:")])
    config = next(h for h in inventory.load(inv).hosts if h.name == "vc-lab")
    snapshot = await replay(config, files)
    assert {d.name: (d.state.value, d.node) for d in snapshot.domains} == {
        str(r["name"]): (str(r["state"]), r["node"]) for r in rows}


async def test_sim_with_hostile_names(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, "  - {name: lab-sim, driver: sim, options: {domains: 12, hostile: true}}\n")
    files, rows = await record_and_status(inv, "lab-sim", tmp_path / "rec")
    names = [d["name"] for d in json.loads(files["sim-poll.json"])["domains"]]
    assert set(HOSTILE_NAMES) <= set(names)  # exact, JSON-escaped where JSON must
    assert "\x1b" not in files["sim-poll.json"] and "\u202e" not in files["sim-poll.json"]
    assert_absent(files, "lab-sim")  # sim names its domains HOST-ROLE: the host's name goes from them too
    host = json.loads(files["manifest.json"])["host"]
    assert await replayed(inv, "lab-sim", files) == {n.replace("lab-sim", host): s for n, s in states(rows).items()}
    code, _out, err = await vfleet("debug", "record", "lab-sim", "--out", str(tmp_path / "n"), "-i", str(inv),
                                   "--scrub-names")
    assert code == 0 and "\x1b" not in err
    scrubbed = read_recording(tmp_path / "n")["sim-poll.json"]
    assert not any(json.dumps(n)[1:-1] in scrubbed for n in HOSTILE_NAMES if len(n) >= 3)


async def test_errors_say_what_and_exit_distinctly(tmp_path: Path, esx: SshTestServer) -> None:
    inv = write_inventory(
        tmp_path,
        "  - {name: lab-sim, driver: sim, options: {domains: 2}}\n"
        "  - {name: gone, driver: esxi_ssh, address: 127.0.0.1, port: 1, user: root,"
        f" ssh: {{agent: false, config: false, known_hosts: '{esx.known_hosts}'}}}}\n",
    )
    code, out, err = await vfleet("debug", "record", "nosuch", "--out", str(tmp_path / "a"), "-i", str(inv))
    assert (code, out) == (2, "") and f"{inv}: no host named 'nosuch' (hosts: lab-sim, gone)" in err
    code, out, err = await vfleet("debug", "record", "gone", "--out", str(tmp_path / "b"), "-i", str(inv))
    assert (code, out) == (3, "") and err.startswith("vfleet: gone: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "b").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    # refused before connecting: the unreachable host would exit 3
    code, out, err = await vfleet("debug", "record", "gone", "--out", str(full), "-i", str(inv))
    assert (code, out) == (4, "") and "not empty" in err and "--force" in err
    code, _out, err = await vfleet("debug", "record", "lab-sim", "--out", str(full / "notes.txt"), "-i", str(inv))
    assert code == 2 and "not a directory" in err
    for _ in range(2):  # --force replaces a recording, and leaves what is not part of it
        code, out, err = await vfleet("debug", "record", "lab-sim", "--out", str(full), "-i", str(inv), "--force")
        assert code == 0, err
    assert sorted(os.listdir(full)) == ["manifest.json", "notes.txt", "sim-poll.json"]
    assert stat.S_IMODE(full.stat().st_mode) == 0o700


async def test_a_hostile_name_in_command_output_reads_back(keys: Keys, tmp_path: Path) -> None:
    """A VM name made of the recording format's own markers and terminal escapes: quoted, never obeyed."""
    host = EsxiHost()
    hostile = "[rc=0] ### host$ \x1b]0;PWNED\x07\x1b[2J"
    plain = host.name(3)
    host.overrides["vim-cmd vmsvc/get.summary 3"] = (host.summary(3).replace(f'"{plain}"', f'"{hostile}"'), "", 0)
    host.overrides["esxcli vm process list"] = (host.processes().replace(plain, hostile), "", 0)
    server = await SshTestServer(host, keys, tmp_path).start()
    try:
        inv = write_inventory(tmp_path, ssh_host("esx-ssh", "esxi_ssh", server))
        files, rows = await record_and_status(inv, "esx-ssh", tmp_path / "rec")
    finally:
        await server.close()
    assert hostile in states(rows)
    assert f"\n\\{hostile}\n" in files["commands.txt"]  # the process list's line, quoted
    assert await replayed(inv, "esx-ssh", files) == states(rows)
