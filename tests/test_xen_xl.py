"""The xen_xl driver over real SSH against a test host that replays the real Xen 4.17
session (tests/fixtures/xen-recorded/dom0-session.txt), and the fleet engine over it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import need_backend
from sshhost import XEN_SESSION, Keys, SshTestServer, XenHost, load_session
from vfleet.core.engine import Fleet, HostView
from vfleet.core.errors import (
    ActionFailed,
    AuthFailed,
    DomainNotFound,
    DriverTimeout,
    GarbledOutput,
    PolicyRefused,
    UnsupportedAction,
)
from vfleet.core.models import DomainRef, HostStatus, MemorySource, PowerState, Verb
from vfleet.drivers.registry import create_driver
from vfleet.drivers.xen.xl import XenXlDriver


@pytest.fixture(autouse=True)
def _real_fixture() -> None:
    need_backend(f"real Xen outputs ({XEN_SESSION})", XEN_SESSION.exists())

MIB, KIB = 1024 * 1024, 1024


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
def dom0() -> XenHost:
    return XenHost()


@pytest.fixture
async def server(keys: Keys, tmp_path: Path, dom0: XenHost) -> AsyncIterator[SshTestServer]:
    srv = await SshTestServer(dom0, keys, tmp_path).start()
    yield srv
    await srv.close()


@pytest.fixture
async def driver(server: SshTestServer) -> AsyncIterator[XenXlDriver]:
    drv = create_driver(server.config())
    assert isinstance(drv, XenXlDriver)
    yield drv
    await drv.close()


def at_step(dom0: XenHost, command: str) -> None:
    """Move the replay to just after the real session ran `command`."""
    dom0.position = next(i for i, b in enumerate(dom0.blocks) if b.command == command)


async def test_connect_reads_host_facts(driver: XenXlDriver) -> None:
    facts = await driver.connect()
    assert (facts.hypervisor, facts.version, facts.hostname, facts.cpus) == ("xen", "4.17.7", "dom0", 2)
    assert facts.memory_bytes == 2047 * MIB


async def test_poll_is_one_round_trip_over_the_real_outputs(
    driver: XenXlDriver, dom0: XenHost, server: SshTestServer
) -> None:
    await driver.connect()
    at_step(dom0, "xl create /etc/xen/tinynet.cfg")
    snapshot = await driver.poll()
    assert len(dom0.shell.lines) == 2  # xl info at connect, then the poll: one command line
    assert snapshot.facts is not None and snapshot.facts.cpus == 2
    by_name = {d.name: d for d in snapshot.domains}
    assert set(by_name) == {"Domain-0", "tiny", "tinynet"}
    tinynet = by_name["tinynet"]
    assert (tinynet.state, tinynet.raw_state, tinynet.domain_id, tinynet.vcpus) == (PowerState.RUNNING, "-b----", 2, 1)
    assert tinynet.memory_current_bytes == 131072 * KIB and tinynet.memory_max_bytes == 132096 * KIB
    assert tinynet.memory_used_bytes is None and tinynet.memory_used_source is None  # allocation is not usage
    assert tinynet.counters is not None and tinynet.gauges is not None
    assert tinynet.counters.cpu_time_ns == 8_600_000_000  # xl list's 8.6 s, finer than xentop's 8
    assert (tinynet.counters.net_tx_bytes, tinynet.counters.net_rx_bytes) == (1 * KIB, 1 * KIB)
    # xentop: NETS 1, VBDS 0 (its root is an initramfs): its vif's counters, and no disk counters at all
    assert (tinynet.counters.disk_read_reqs, tinynet.counters.disk_read_bytes) == (None, None)
    assert tinynet.uuid == "d19d6b51-1fd5-44b0-9473-ca542056bb23" and tinynet.key == "tinynet"  # the recorded -v
    assert tinynet.gauges.cpu_percent == pytest.approx(0.7)  # the LAST xentop block, not the first's 0.0
    dom0_row = by_name["Domain-0"]
    assert dom0_row.protected and dom0_row.gauges is not None
    assert dom0_row.gauges.cpu_percent == pytest.approx(8.9 / 2)  # 8.9 % of one pCPU, over 2 vCPUs
    assert server.connections == 1
    assert MemorySource.HYPERVISOR not in {d.memory_used_source for d in snapshot.domains}


async def test_configured_domains_that_are_not_running_are_off(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    snapshot = await driver.poll()  # the session's start: only Domain-0 runs
    states = {d.name: (d.state, d.raw_state) for d in snapshot.domains}
    assert states == {
        "Domain-0": (PowerState.RUNNING, "r-----"),
        "tiny": (PowerState.OFF, "(not running)"),
        "tinynet": (PowerState.OFF, "(not running)"),
    }


async def test_lifecycle_follows_the_real_transcript(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    steps = [
        (Verb.START, "tiny", PowerState.RUNNING, "r-----"),
        (Verb.START, "tinynet", PowerState.RUNNING, "-b----"),
        (Verb.PAUSE, "tiny", PowerState.PAUSED, "--p---"),
        (Verb.RESUME, "tiny", PowerState.RUNNING, "-b----"),
        # After `xl reboot` the real dom0 showed the new domain paused at 0 MB while it is rebuilt.
        (Verb.REBOOT, "tiny", PowerState.PAUSED, "--p---"),
        (Verb.SHUTDOWN, "tiny", PowerState.OFF, "(not running)"),
        (Verb.FORCE_OFF, "tinynet", PowerState.OFF, "(not running)"),
    ]
    for verb, name, state, raw in steps:
        result = await driver.perform(verb, DomainRef.named(name))
        assert (result.ok, result.state_after, result.message) == (True, state, raw), (verb, name, result)
    sent = [line for line in dom0.shell.lines if line.startswith("xl ") and line != "xl list"
            and not line.startswith("xl info")]
    assert sent == [
        "xl create -f /etc/xen/tiny.cfg", "xl create -f /etc/xen/tinynet.cfg", "xl pause -- tiny",
        "xl unpause -- tiny", "xl reboot -- tiny", "xl shutdown -- tiny", "xl destroy -- tinynet",
    ]
    paused_poll = [d for d in (await driver.poll()).domains if d.name == "Domain-0"]
    assert paused_poll[0].state is PowerState.RUNNING


async def test_paused_domain_shows_in_poll(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    at_step(dom0, "xl pause tiny")
    tiny = next(d for d in (await driver.poll()).domains if d.name == "tiny")
    assert (tiny.state, tiny.raw_state, tiny.domain_id) == (PowerState.PAUSED, "--p---", 1)


async def test_unknown_domain_is_domain_not_found(driver: XenXlDriver) -> None:
    await driver.connect()
    with pytest.raises(DomainNotFound, match="pause nosuchdom"):
        await driver.perform(Verb.PAUSE, DomainRef.named("nosuchdom"))
    with pytest.raises(DomainNotFound, match="force-off nosuchdom"):
        await driver.perform(Verb.FORCE_OFF, DomainRef.named("nosuchdom"))


async def test_missing_config_file_names_the_path_and_the_option(driver: XenXlDriver) -> None:
    await driver.connect()
    with pytest.raises(DomainNotFound, match=r"no config file /etc/xen/does-not-exist\.cfg .*config_dir"):
        await driver.perform(Verb.START, DomainRef.named("does-not-exist"))


async def test_start_of_a_running_domain_fails_with_xl_message(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    at_step(dom0, "xl mem-set tiny 96m")
    with pytest.raises(ActionFailed, match=r"`xl create -f /etc/xen/tiny\.cfg` exited with status 3: Parsing config"):
        await driver.perform(Verb.START, DomainRef.named("tiny"))


async def test_names_are_shell_quoted(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    with pytest.raises(ActionFailed):
        await driver.perform(Verb.PAUSE, DomainRef.named("x; rm -rf /"))
    assert dom0.shell.lines[-1] == "xl pause -- 'x; rm -rf /'"


@pytest.mark.parametrize(
    ("verb", "name", "line"),
    [
        (Verb.PAUSE, "-f", "xl pause -- -f"),  # without `--`, xl's getopt reads -f as an option
        (Verb.FORCE_OFF, "-f", "xl destroy -- -f"),  # (for destroy: force, even domain 0)
        (Verb.SHUTDOWN, "--all", "xl shutdown -- --all"),
        (Verb.REBOOT, "-a", "xl reboot -- -a"),
        (Verb.RESUME, "-h", "xl unpause -- -h"),
        (Verb.START, "a=b", "xl create -f /etc/xen/a=b.cfg"),  # a bare path with `=` is a config override
    ],
)
async def test_names_never_become_xl_options(
    driver: XenXlDriver, dom0: XenHost, verb: Verb, name: str, line: str
) -> None:
    await driver.connect()
    with pytest.raises((DomainNotFound, ActionFailed)):
        await driver.perform(verb, DomainRef.named(name))  # the test host knows no such domain
    assert dom0.shell.lines[-1] == line


async def test_an_all_digit_name_is_refused_not_read_as_a_domain_id(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    sent = len(dom0.shell.lines)
    with pytest.raises(ActionFailed, match=r"^xen1: pause 0: xl reads an all-digit name as a domain id"):
        await driver.perform(Verb.PAUSE, DomainRef.named("0"))  # `xl pause 0` would pause Domain-0
    assert len(dom0.shell.lines) == sent  # nothing was sent


async def test_reset_is_unsupported_and_read_only_refuses(server: SshTestServer) -> None:
    driver = XenXlDriver(server.config(), read_only=True)
    await driver.connect()
    try:
        with pytest.raises(UnsupportedAction):
            await driver.perform(Verb.RESET, DomainRef.named("tiny"))
        with pytest.raises(PolicyRefused):
            await driver.perform(Verb.PAUSE, DomainRef.named("tiny"))
    finally:
        await driver.close()


async def test_garbled_and_truncated_poll_output(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    real = dom0._xentop()
    dom0.overrides["xentop -b -i 2 -d 1"] = (real[: len(real) // 2 + 7], "", 0)  # cut inside block 2
    with pytest.raises(GarbledOutput, match="cut short"):
        await driver.poll()
    dom0.overrides["xentop -b -i 2 -d 1"] = (real[: len(real) // 2], "", 0)  # only the first block
    with pytest.raises(GarbledOutput, match="xentop: 1 blocks where 2 were asked for"):
        await driver.poll()
    dom0.overrides["xentop -b -i 2 -d 1"] = (real.replace("1048576", "10485x6"), "", 0)
    with pytest.raises(GarbledOutput, match="not a number"):
        await driver.poll()
    del dom0.overrides["xentop -b -i 2 -d 1"]
    dom0.overrides["xl list -v"] = ("Name ID\n garbage here\n", "", 0)
    with pytest.raises(GarbledOutput, match="xl list: unexpected header"):
        await driver.poll()
    dom0.overrides["xl list -v"] = ("", "xc: error: Could not obtain handle on privileged command interface\n", 1)
    with pytest.raises(ActionFailed, match="`xl list -v` exited with status 1: xc: error"):
        await driver.poll()


async def test_hung_poll_times_out(server: SshTestServer, dom0: XenHost) -> None:
    driver = XenXlDriver(replace(server.config(), call_timeout=0.5))
    await driver.connect()
    dom0.hang = "xentop"
    try:
        started = time.monotonic()
        with pytest.raises(DriverTimeout, match=r"no answer within 0\.5 s"):
            await driver.poll()
        assert time.monotonic() - started < 1.5
    finally:
        await driver.close()


async def test_wrong_host_key_through_the_driver(server: SshTestServer) -> None:
    driver = XenXlDriver(server.config(known_hosts=server.wrong_known_hosts))
    with pytest.raises(AuthFailed, match="does not match"):
        await driver.connect()
    await driver.close()


async def test_fleet_polls_a_xen_host_and_derives_rates(server: SshTestServer, dom0: XenHost) -> None:
    at_step(dom0, "xl create /etc/xen/tinynet.cfg")
    fleet = Fleet([server.config(name="xen1")])

    def two_polls_with_rates(views: list[HostView]) -> bool:
        view = views[0]
        return view.health.polls >= 2 and any(r.rates.cpu_host_percent is not None for r in view.rows)

    async with fleet:
        assert await fleet.wait_until(two_polls_with_rates, timeout=20), fleet.view("xen1").health
        view = fleet.view("xen1")
    assert view.health.status is HostStatus.UP and view.facts is not None and view.facts.hypervisor == "xen"
    rows = {r.domain.name: r for r in view.rows}
    assert set(rows) == {"Domain-0", "tiny", "tinynet"}
    # The replay serves the same real sample twice: CPU time did not move, so 0 %, not None or made up.
    assert rows["tinynet"].rates.cpu_host_percent == 0.0
    assert rows["tinynet"].rates.net_rx_bps == 0.0
    assert server.connections == 1


async def test_poll_and_connect_honour_their_deadline(server: SshTestServer, dom0: XenHost) -> None:
    driver = XenXlDriver(server.config())  # call_timeout 3 s, connect_timeout 5 s
    try:
        await driver.connect()
        dom0.hang = "xentop"
        started = time.monotonic()
        with pytest.raises(DriverTimeout):
            await driver.poll(deadline=started + 0.5)
        assert time.monotonic() - started < 1.0
    finally:
        await driver.close()
    dom0.hang = "xl info"
    late = XenXlDriver(server.config())
    try:
        started = time.monotonic()
        with pytest.raises(DriverTimeout, match="`xl info"):  # SSH login and `xl info` share one budget
            await late.connect(deadline=started + 0.7)
        assert time.monotonic() - started < 1.2
    finally:
        await late.close()


# -- full names, uptime (issue 15) ---------------------------------------------------------

IDENTITY_SESSION = XEN_SESSION.parent / "identity-session.txt"  # testbed/xen-fixtures-identity.sh


def recorded_identity(command: str) -> str:
    return next(b.output for b in load_session(IDENTITY_SESSION) if b.command == command)


async def test_full_names_are_asked_for_where_xentop_offers_them(driver: XenXlDriver, dom0: XenHost) -> None:
    dom0.overrides["xentop -h"] = (recorded_identity("xentop -h"), "", 0)  # the real Xen 4.17 usage
    await driver.connect()
    assert dom0.shell.lines == ["xl info; echo @@VFLEET@@ $?; xentop -h 2>/dev/null; echo @@VFLEET@@ $?"]
    at_step(dom0, "xl create /etc/xen/tinynet.cfg")
    snapshot = await driver.poll()
    assert len(dom0.shell.lines) == 2 and "; xentop -b -f -i 2 -d 1; " in dom0.shell.lines[1]
    assert dom0.shell.lines[1].startswith("xl list -v; echo @@VFLEET@@ $?; xl uptime 2>/dev/null; ")
    assert {d.name for d in snapshot.domains if d.gauges is not None} == {"Domain-0", "tiny", "tinynet"}


async def test_a_xentop_without_full_names_is_asked_as_before(driver: XenXlDriver, dom0: XenHost) -> None:
    dom0.overrides["xentop -h"] = ("Usage: xentop [OPTION]\n-b, --batch  output in batch mode\n", "", 0)
    await driver.connect()
    await driver.poll()
    assert "; xentop -b -i 2 -d 1; " in dom0.shell.lines[-1]


async def test_a_xentop_that_refuses_full_names_is_asked_without_them_next_time(
    driver: XenXlDriver, dom0: XenHost
) -> None:
    dom0.overrides["xentop -h"] = (recorded_identity("xentop -h"), "", 0)
    dom0.overrides["xentop -b -f -i 2 -d 1"] = ("", "xentop: invalid option -- 'f'\n", 1)
    await driver.connect()
    with pytest.raises(ActionFailed, match="`xentop -b -f -i 2 -d 1` exited with status 1: xentop: invalid option"):
        await driver.poll()
    snapshot = await driver.poll()
    assert "; xentop -b -i 2 -d 1; " in dom0.shell.lines[-1] and snapshot.domains


async def test_uptime_and_a_failing_xl_uptime_costs_only_uptime(driver: XenXlDriver, dom0: XenHost) -> None:
    await driver.connect()
    at_step(dom0, "xl create /etc/xen/tinynet.cfg")
    uptimes = {d.name: d.uptime_s for d in (await driver.poll()).domains}
    assert uptimes == {"Domain-0": 55.0, "tiny": None, "tinynet": None}  # the one recorded `xl uptime`
    # tools/xl exits when a domain's start time is gone (torn down meanwhile): what it printed still counts
    header_and_dom0 = "Name                              ID Uptime\nDomain-0                             0  1:00:05\n"
    dom0.overrides["xl uptime"] = (header_and_dom0, "Can not get domain uptime.\n", 255)
    uptimes = {d.name: d.uptime_s for d in (await driver.poll()).domains}
    assert uptimes == {"Domain-0": 3605.0, "tiny": None, "tinynet": None}
    dom0.overrides["xl uptime"] = ("", "Could not list vms.\n", 255)
    assert {d.uptime_s for d in (await driver.poll()).domains} == {None}
