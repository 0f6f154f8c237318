"""Both Xen paths against a REAL Xen 4.17 hypervisor with a Debian dom0, booted in QEMU
(TCG) by testbed/xen-up.sh (image: testbed/xen-image.sh; first build ~1.5 min, boot ~1 min).

- libvirt driver over xen+ssh:// (libxl): listing, lifecycle of a libvirt-defined guest,
  metrics through the per-domain fallback (libxl has no getAllDomainStats).
- xen_xl driver over SSH: listing, xentop metrics, create/pause/unpause/reboot/shutdown/
  force-off of a PV guest from its config, unknown domains.
- both side by side in one `vfleet status -o json`.

The session fixture boots the dom0 once (reusing one that already answers) and stops it at
the end if it started it (VFLEET_XEN_KEEP=1 keeps it running for the next run).
VFLEET_SKIP_XEN=1 skips this module (quick local runs). Otherwise a dom0 that cannot be
brought up skips these tests, or FAILS them under VFLEET_REQUIRE_BACKENDS=1 (make test, CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, need_backend
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import AuthFailed, DomainNotFound
from vfleet.core.models import (
    Domain,
    DomainEvent,
    DomainRef,
    HostConfig,
    HostSnapshot,
    HostStatus,
    PowerState,
    SshSettings,
    Verb,
)

# Building the image from nothing (~95 s) + booting (~60 s) happens inside the first test's setup.
pytestmark = [pytest.mark.timeout(480), pytest.mark.backend("xen")]

TESTBED = ROOT / "testbed"
XEN_DIR = Path(os.environ.get("VFLEET_TESTBED_DIR", ROOT / ".testbed")) / "xen"
LV_GUEST = "lvtiny"  # defined through libvirt: libxl only sees domains it started itself
XL_GUEST = "tiny"  # /etc/xen/tiny.cfg, started with xl
RUNNING_FLAGS = ("r-----", "-b----")


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = shlex.split(value)[0] if value else ""
    return env


def _ssh_argv(xen: dict[str, str], command: str) -> list[str]:
    return [xen["VFLEET_XEN_SSH_WRAPPER"], "-p", xen["VFLEET_XEN_SSH_PORT"], "root@127.0.0.1", command]


def dom0_sync(xen: dict[str, str], command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_ssh_argv(xen, command), capture_output=True, text=True, timeout=timeout)


async def dom0(xen: dict[str, str], command: str, timeout: float = 120) -> tuple[int, str]:
    """Run a command in dom0 (stdout and stderr together) without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *_ssh_argv(xen, command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


RESET = (
    "virsh -c xen:///system destroy {lv} >/dev/null 2>&1; "
    "virsh -c xen:///system undefine {lv} >/dev/null 2>&1; "
    "for d in $(xl list | awk 'NR>2 {{print $(NF-4)}}'); do xl destroy \"$d\"; done; "  # by id: names may hold spaces
    "virsh -q -c xen:///system define /etc/xen/{lv}.xml >/dev/null && xl list"
)


@pytest.fixture(scope="session")
def xen() -> Iterator[dict[str, str]]:
    """The Xen host's .testbed/xen/env, after xen-up.sh; every domU removed, lvtiny defined (off)."""
    if os.environ.get("VFLEET_SKIP_XEN") == "1":
        pytest.skip("VFLEET_SKIP_XEN=1: real Xen tests skipped")
    pid_file = XEN_DIR.parent / "run" / "xen-qemu.pid"
    was_up = pid_file.exists() and Path(f"/proc/{pid_file.read_text().strip() or 0}").exists()
    started = time.monotonic()
    try:
        up = subprocess.run([str(TESTBED / "xen-up.sh")], capture_output=True, text=True, timeout=420)
        failure = None if up.returncode == 0 else f"testbed/xen-up.sh failed:\n{up.stderr[-3000:]}"
    except subprocess.TimeoutExpired as exc:
        failure = f"testbed/xen-up.sh timed out: {exc.stderr!r:.3000}"
    if failure is not None:
        if not was_up:  # never leave a half-booted QEMU behind
            subprocess.run([str(TESTBED / "xen-down.sh")], capture_output=True, timeout=60)
        need_backend(f"Xen dom0 ({failure})", False)
    print(f"\nxen-up.sh: {time.monotonic() - started:.1f} s\n{up.stderr.strip()}", file=sys.stderr)
    env = _read_env(XEN_DIR / "env")
    reset = dom0_sync(env, RESET.format(lv=LV_GUEST))
    assert reset.returncode == 0 and reset.stdout.count("\n") == 2, reset.stdout + reset.stderr  # Domain-0 only
    yield env
    if not was_up and os.environ.get("VFLEET_XEN_KEEP") != "1":
        subprocess.run([str(TESTBED / "xen-down.sh")], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def libvirt_xen(xen: dict[str, str], libvirt_module: Any) -> dict[str, str]:
    return xen


def libvirt_config(xen: dict[str, str], name: str = "xen-lv") -> HostConfig:
    return HostConfig(name=name, driver="libvirt", uri=xen["VFLEET_XEN_LIBVIRT_URI"], poll_interval=1.0,
                      connect_timeout=30, call_timeout=60)


def xl_config(xen: dict[str, str], name: str = "xen-xl") -> HostConfig:
    ssh = SshSettings(agent=False, key_file=xen["VFLEET_XEN_SSH_KEY"], known_hosts=xen["VFLEET_XEN_KNOWN_HOSTS"],
                      config=False)
    return HostConfig(name=name, driver="xen_xl", address="127.0.0.1", port=int(xen["VFLEET_XEN_SSH_PORT"]),
                      user="root", ssh=ssh, options={"config_dir": xen["VFLEET_XEN_CONFIG_DIR"]},
                      poll_interval=1.0, connect_timeout=30, call_timeout=90)


async def lv_state(xen: dict[str, str]) -> str:
    rc, out = await dom0(xen, f"virsh -c xen:///system domstate {LV_GUEST}")
    assert rc == 0, out
    return out.strip()


async def ensure_lvtiny_running(xen: dict[str, str]) -> None:
    state = await lv_state(xen)
    if state == "paused":
        rc, out = await dom0(xen, f"virsh -c xen:///system resume {LV_GUEST}")
    elif state != "running":
        rc, out = await dom0(xen, f"virsh -c xen:///system start {LV_GUEST}")
    else:
        return
    assert rc == 0, out


@pytest.fixture
async def lv_driver(libvirt_xen: dict[str, str]) -> AsyncIterator[Any]:
    from vfleet.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(libvirt_config(libvirt_xen))
    yield driver
    await driver.close()


def by_name(snapshot: HostSnapshot) -> dict[str, Domain]:
    return {d.name: d for d in snapshot.domains}


async def next_event(events: AsyncIterator[DomainEvent], domain: str, kind: str, timeout: float) -> DomainEvent:
    """The next `kind` event of `domain` (others are skipped)."""

    async def _next() -> DomainEvent:
        async for event in events:
            if (event.domain, event.kind) == (domain, kind):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(_next(), timeout)


async def poll_until(driver: Any, predicate: Callable[[HostSnapshot], bool], timeout: float) -> HostSnapshot:
    """Poll until predicate(snapshot) holds. xen_xl polls pace themselves (xentop -d 1 takes 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = await driver.poll()
        if predicate(snapshot):
            return snapshot
        assert time.monotonic() < deadline, f"no such poll within {timeout} s; last: {by_name(snapshot)}"


# -- libvirt driver, xen+ssh:// ---------------------------------------------------------------------


async def test_libvirt_xen_ssh_lists_domain0_and_the_defined_guest(
    libvirt_xen: dict[str, str], lv_driver: Any
) -> None:
    facts = await lv_driver.connect()
    assert facts.hypervisor == "xen" and facts.version is not None and facts.version.startswith("4.17")
    assert facts.cpus == 2 and facts.hostname == "dom0"
    domains = by_name(await lv_driver.poll())
    assert domains["Domain-0"].state is PowerState.RUNNING and domains["Domain-0"].domain_id == 0
    assert LV_GUEST in domains, domains
    # guests started with `xl create` are invisible to libxl: only Domain-0 and ours
    assert set(domains) == {"Domain-0", LV_GUEST}


async def test_libvirt_metrics_come_from_the_per_domain_fallback(
    libvirt_xen: dict[str, str], libvirt_module: Any
) -> None:
    libvirt = libvirt_module
    await ensure_lvtiny_running(libvirt_xen)
    # the premise: libxl really has no bulk stats (otherwise this test would prove nothing)
    def bulk_stats_error() -> int:
        conn = libvirt.open(libvirt_xen["VFLEET_XEN_LIBVIRT_URI"])
        try:
            conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
        except libvirt.libvirtError as exc:
            return int(exc.get_error_code())
        finally:
            conn.close()
        return 0

    assert await asyncio.to_thread(bulk_stats_error) == libvirt.VIR_ERR_NO_SUPPORT

    fleet = Fleet([libvirt_config(libvirt_xen)])

    def busy_guest_has_rates(views: list[HostView]) -> bool:
        rows = {r.domain.name: r for r in views[0].rows}
        row = rows.get(LV_GUEST)
        return row is not None and row.rates.cpu_percent is not None and row.rates.cpu_percent > 0

    async with fleet:
        assert await fleet.wait_until(busy_guest_has_rates, timeout=60), fleet.view("xen-lv").health
        driver = fleet.driver("xen-lv")
        view = fleet.view("xen-lv")
    assert driver is not None and driver._bulk is False  # fell back to per-domain calls
    assert view.health.status is HostStatus.UP
    guest = {r.domain.name: r.domain for r in view.rows}[LV_GUEST]
    assert guest.state is PowerState.RUNNING and guest.vcpus == 1
    assert guest.counters is not None and guest.counters.cpu_time_ns is not None and guest.counters.cpu_time_ns > 0
    assert guest.memory_max_bytes == 128 * 1024 * 1024
    assert guest.memory_current_bytes is not None and guest.memory_current_bytes > 64 * 1024 * 1024
    dom0_row = {r.domain.name: r.domain for r in view.rows}["Domain-0"]
    assert dom0_row.counters is not None and dom0_row.counters.cpu_time_ns


# -- xen_xl driver over SSH ---------------------------------------------------------------------------


@pytest.fixture
async def xl_driver(xen: dict[str, str]) -> AsyncIterator[Any]:
    xen_xl = pytest.importorskip("vfleet.drivers.xen.xl")
    driver = xen_xl.XenXlDriver(xl_config(xen))
    yield driver
    await driver.close()


async def test_xl_lists_domain0_and_guests(xen: dict[str, str], xl_driver: Any) -> None:
    facts = await xl_driver.connect()
    assert facts.hypervisor == "xen" and facts.version is not None and facts.version.startswith("4.17.")
    assert facts.cpus == 2
    await ensure_lvtiny_running(xen)  # a running guest the driver did not start
    domains = by_name(await xl_driver.poll())
    assert domains["Domain-0"].state is PowerState.RUNNING and domains["Domain-0"].domain_id == 0
    assert domains[LV_GUEST].state is PowerState.RUNNING and domains[LV_GUEST].domain_id
    # configured but not running: from /etc/xen/*.cfg
    for name in (XL_GUEST, "tinynet"):
        assert domains[name].state is PowerState.OFF and domains[name].domain_id is None, domains[name]


async def test_xl_lifecycle_and_xentop_metrics(xen: dict[str, str], xl_driver: Any) -> None:
    await xl_driver.connect()
    await dom0(xen, f"xl destroy {XL_GUEST} 2>/dev/null")  # clean slate if an earlier run left it

    result = await xl_driver.perform(Verb.START, DomainRef.named(XL_GUEST))  # xl create /etc/xen/tiny.cfg (~10 s)
    assert result.ok and result.state_after is PowerState.RUNNING, result
    rc, out = await dom0(xen, f"xl list {XL_GUEST}")
    assert rc == 0 and XL_GUEST in out
    first_id = by_name(await xl_driver.poll())[XL_GUEST].domain_id
    assert first_id is not None and first_id > 0

    # xentop's CPU(%) of the busy guest, through the fleet engine (two xentop samples per poll)
    fleet = Fleet([xl_config(xen, "xen-xl-fleet")])

    def busy(views: list[HostView]) -> bool:
        row = {r.domain.name: r for r in views[0].rows}.get(XL_GUEST)
        return row is not None and row.rates.cpu_percent is not None and row.rates.cpu_percent > 0

    async with fleet:
        assert await fleet.wait_until(busy, timeout=60), fleet.view("xen-xl-fleet").health
        row = {r.domain.name: r for r in fleet.view("xen-xl-fleet").rows}[XL_GUEST]
    assert row.domain.counters is not None and row.domain.counters.cpu_time_ns is not None
    assert row.domain.memory_current_bytes == 128 * 1024 * 1024

    result = await xl_driver.perform(Verb.PAUSE, DomainRef.named(XL_GUEST))
    assert result.state_after is PowerState.PAUSED and result.message == "--p---"
    result = await xl_driver.perform(Verb.RESUME, DomainRef.named(XL_GUEST))
    assert result.state_after is PowerState.RUNNING and result.message in RUNNING_FLAGS

    # reboot: the domain is torn down and created again under a new id
    await xl_driver.perform(Verb.REBOOT, DomainRef.named(XL_GUEST))

    def rebooted(s: HostSnapshot) -> bool:
        d = by_name(s)[XL_GUEST]
        return d.domain_id not in (None, first_id) and d.state is PowerState.RUNNING and d.raw_state in RUNNING_FLAGS

    snapshot = await poll_until(xl_driver, rebooted, 90)
    assert by_name(snapshot)[XL_GUEST].domain_id != first_id

    # shutdown: the guest's init powers off and the domain really disappears
    await xl_driver.perform(Verb.SHUTDOWN, DomainRef.named(XL_GUEST))
    await poll_until(xl_driver, lambda s: by_name(s)[XL_GUEST].domain_id is None, 60)
    rc, out = await dom0(xen, f"xl list {XL_GUEST}")
    assert rc != 0 and "invalid domain identifier" in out, out

    result = await xl_driver.perform(Verb.START, DomainRef.named(XL_GUEST))
    assert result.state_after is PowerState.RUNNING
    result = await xl_driver.perform(Verb.FORCE_OFF, DomainRef.named(XL_GUEST))
    assert result.state_after is PowerState.OFF
    rc, out = await dom0(xen, f"xl list {XL_GUEST}")
    assert rc != 0, out


async def test_xl_full_names_uuids_and_uptime(xen: dict[str, str], xl_driver: Any) -> None:
    """Two guests whose names agree in their first 10 characters (xentop's cut), one with spaces:
    each gets its own xentop numbers, its UUID and its uptime; a new UUID after destroy + create,
    under the same key."""
    names = ["ovm-guest-001.example.com", "ovm guest 002.example.com"]
    await xl_driver.connect()
    assert xl_driver.full_names  # Xen 4.17's xentop has -f
    try:
        for name in names:
            rc, out = await dom0(xen, f"xl create /etc/xen/tiny.cfg 'name=\"{name}\"'", timeout=300)  # TCG, loaded
            assert rc == 0, out

        def measured(s: HostSnapshot) -> bool:
            return all(by_name(s)[n].gauges is not None and by_name(s)[n].uptime_s is not None for n in names)

        snapshot = await poll_until(xl_driver, measured, 90)
        rc, listing = await dom0(xen, "xl list -v")
        for name in names:
            domain = by_name(snapshot)[name]
            assert domain.uuid is not None and domain.uuid in listing and domain.key == name
            assert domain.counters is not None and domain.counters.net_rx_bytes is None  # tiny.cfg has no vif
            assert domain.uptime_s is not None and 0 <= domain.uptime_s < 600
        first_uuid = by_name(snapshot)[names[1]].uuid
        rc, out = await dom0(xen, f"xl destroy '{names[1]}' && xl create /etc/xen/tiny.cfg 'name=\"{names[1]}\"'",
                             timeout=300)
        assert rc == 0, out
        again = by_name(await poll_until(xl_driver, lambda s: names[1] in by_name(s), 30))[names[1]]
        assert again.uuid not in (None, first_uuid) and again.key == names[1]
    finally:
        for name in names:
            await dom0(xen, f"xl destroy '{name}' 2>/dev/null")


async def test_xl_console_on_the_busybox_pv_guest(xen: dict[str, str], xl_driver: Any) -> None:
    """`xl console tiny` through vfleet's console session: type a command, see its output, Ctrl+]."""
    import termios

    from test_console_xen import Operator

    from vfleet.core.console import attach

    await xl_driver.connect()
    rc, _ = await dom0(xen, f"xl list {XL_GUEST}")
    started = rc != 0
    if started:
        await xl_driver.perform(Verb.START, DomainRef.named(XL_GUEST))
    term = Operator()
    try:
        stream = await xl_driver.open_console(DomainRef.named(XL_GUEST))
        session = asyncio.create_task(attach(stream, stdin=term.slave, stdout=term.slave))
        deadline = time.monotonic() + 60
        while b"# " not in term.seen:  # the guest may still be booting: Enter until a prompt
            assert time.monotonic() < deadline, term.seen[-500:]
            term.type(b"\r")
            with contextlib.suppress(TimeoutError):
                await term.wait_for(b"# ", timeout=2)
        term.type(b"echo VF$((6*7))\r")
        await term.wait_for(b"VF42", timeout=30)
        term.type(b"\x1d")
        ended = await asyncio.wait_for(session, 20)
        assert ended.how == "escape"
        assert termios.tcgetattr(term.slave) == term.settings
    finally:
        term.close()
        if started:
            await dom0(xen, f"xl destroy {XL_GUEST}")


async def test_xl_unknown_domain_errors(xen: dict[str, str], xl_driver: Any) -> None:
    await xl_driver.connect()
    with pytest.raises(DomainNotFound, match="nosuchdom"):
        await xl_driver.perform(Verb.PAUSE, DomainRef.named("nosuchdom"))
    with pytest.raises(DomainNotFound, match=re.escape("no config file /etc/xen/nosuchdom.cfg")):
        await xl_driver.perform(Verb.START, DomainRef.named("nosuchdom"))


@pytest.fixture
def wrong_known_hosts(xen: dict[str, str], tmp_path: Path) -> Path:
    """A known_hosts naming a DIFFERENT ed25519 key for the dom0's [127.0.0.1]:PORT."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2]
    path = tmp_path / "known_hosts_wrong"
    path.write_text(f"[127.0.0.1]:{xen['VFLEET_XEN_SSH_PORT']} {' '.join(key)}\n")
    return path


async def test_xl_refuses_a_dom0_whose_host_key_is_not_the_known_one(
    xen: dict[str, str], wrong_known_hosts: Path
) -> None:
    xen_xl = pytest.importorskip("vfleet.drivers.xen.xl")
    config = xl_config(xen, "impostor")
    driver = xen_xl.XenXlDriver(replace(config, ssh=replace(config.ssh, known_hosts=str(wrong_known_hosts))))
    try:
        with pytest.raises(AuthFailed, match="host key"):
            await driver.connect()
    finally:
        await driver.close()


# -- both drivers side by side ------------------------------------------------------------------------


async def test_status_json_with_both_drivers_agrees(
    libvirt_xen: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("vfleet.drivers.xen.xl")
    xen = libvirt_xen
    await ensure_lvtiny_running(xen)
    inventory = tmp_path / "xen.yaml"
    inventory.write_text(f"""\
defaults:
  connect_timeout: 30
hosts:
  - name: xen-libvirt
    driver: libvirt
    uri: '{xen["VFLEET_XEN_LIBVIRT_URI"]}'
  - name: xen-xl
    driver: xen_xl
    address: 127.0.0.1
    port: {xen["VFLEET_XEN_SSH_PORT"]}
    user: root
    ssh: {{agent: false, config: false, key_file: '{xen["VFLEET_XEN_SSH_KEY"]}',
           known_hosts: '{xen["VFLEET_XEN_KNOWN_HOSTS"]}'}}
    options: {{config_dir: /etc/xen}}
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vfleet", "-i", str(inventory), "status", "-o", "json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert {h["name"]: h["status"] for h in doc["hosts"]} == {"xen-libvirt": "up", "xen-xl": "up"}
    seen: dict[str, dict[str, dict[str, Any]]] = {"xen-libvirt": {}, "xen-xl": {}}
    for d in doc["domains"]:
        seen[d["host"]][d["name"]] = d
    lv, xl = seen["xen-libvirt"], seen["xen-xl"]
    assert all(d["hypervisor"] == "xen" for d in doc["domains"])
    assert set(lv) == {"Domain-0", LV_GUEST}
    for name in lv:  # what libvirt sees, xl sees the same way
        assert (xl[name]["state"], xl[name]["id"]) == (lv[name]["state"], lv[name]["id"]) == ("running", xl[name]["id"])
        assert xl[name]["vcpus"] == lv[name]["vcpus"]
    # and what only xl sees: the configured guests libxl never started
    assert {n: d["state"] for n, d in xl.items() if n not in lv} == {XL_GUEST: "off", "tinynet": "off"}


# -- libvirt lifecycle last: it leaves lvtiny shut off (the tests above want it running) ----------------


async def test_libvirt_lifecycle_of_a_libvirt_defined_guest(libvirt_xen: dict[str, str], lv_driver: Any) -> None:
    await ensure_lvtiny_running(libvirt_xen)
    await lv_driver.connect()
    events = lv_driver.events()

    result = await lv_driver.perform(Verb.PAUSE, DomainRef.named(LV_GUEST))
    assert result.ok and result.state_after is PowerState.PAUSED
    await next_event(events, LV_GUEST, "suspended", 30)
    assert await lv_state(libvirt_xen) == "paused"

    result = await lv_driver.perform(Verb.RESUME, DomainRef.named(LV_GUEST))
    assert result.state_after is PowerState.RUNNING
    await next_event(events, LV_GUEST, "resumed", 30)

    # a graceful shutdown: the guest's busybox init powers off, libxl reaps the domain
    await lv_driver.perform(Verb.SHUTDOWN, DomainRef.named(LV_GUEST))
    await next_event(events, LV_GUEST, "stopped", 90)
    assert by_name(await lv_driver.poll())[LV_GUEST].state is PowerState.OFF
    rc, out = await dom0(libvirt_xen, f"xl list {LV_GUEST}")
    assert rc != 0 and "invalid domain identifier" in out  # really gone from the hypervisor

    result = await lv_driver.perform(Verb.START, DomainRef.named(LV_GUEST))
    assert result.state_after is PowerState.RUNNING
    await next_event(events, LV_GUEST, "started", 30)
    rc, out = await dom0(libvirt_xen, f"xl list {LV_GUEST}")
    assert rc == 0 and LV_GUEST in out

    result = await lv_driver.perform(Verb.FORCE_OFF, DomainRef.named(LV_GUEST))
    assert result.state_after is PowerState.OFF
    await next_event(events, LV_GUEST, "stopped", 30)
    assert await lv_state(libvirt_xen) == "shut off"


async def test_libvirt_unknown_domain(libvirt_xen: dict[str, str], lv_driver: Any) -> None:
    await lv_driver.connect()
    with pytest.raises(DomainNotFound):
        await lv_driver.perform(Verb.START, DomainRef.named("nosuchdom"))
