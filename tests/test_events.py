"""`vfleet events`: NDJSON events from real processes, real libvirtd, the xen_xl SSH test host."""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need_backend
from sshhost import XEN_SESSION, Keys, SshTestServer, XenHost
from vfleet.cli.main import main
from vfleet.core.engine import Fleet
from vfleet.core.events import SCHEMA, EventStream, dumps
from vfleet.core.models import DomainEvent, HostConfig

VFLEET = [sys.executable, "-m", "vfleet"]


def run_main(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


class Follower:
    """A `vfleet events` process whose lines are read by a thread, so a test can wait for one."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*VFLEET, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, want: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The next event with every field of `want` (the ones before it are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no event like {want} within {timeout} s; saw {self.seen[-5:]}") from None
            assert line is not None, f"the stream ended before {want}: {self.stderr()}"
            event = json.loads(line)  # every line is one whole JSON document
            self.seen.append(event)
            if all(event.get(k) == v for k, v in want.items()):
                return event

    def rest(self, timeout: float) -> list[dict[str, Any]]:
        """Every event until the process ends (it must, within timeout)."""
        self.proc.wait(timeout)
        out = []
        while (line := self.lines.get(timeout=timeout)) is not None:
            out.append(json.loads(line))
        self.seen += out
        return out

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def follower() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for f in started:
        f.close()


# -- the demo fleet: the command itself ---------------------------------------------------


def test_without_follow_prints_the_state_now_and_exits() -> None:
    code, events = run_main("--demo", "events")
    status = io.StringIO()
    main(["--demo", "status", "-o", "json", "--interval", "0"], out=status)
    domains = {(d["host"], d["uuid"]): d["state"] for d in json.loads(status.getvalue())["domains"]}
    assert code == 0 and all(e["schema"] == SCHEMA for e in events)
    assert {(e["host"], e["domain_key"]): e["state"] for e in events if e["type"] == "domain"} == domains
    assert {e["event"] for e in events} == {"snapshot"}
    hosts = [e for e in events if e["type"] == "host"]
    assert len(hosts) == len({h for h, _ in domains}) and {h["status"] for h in hosts} == {"up"}


def test_filter_terms_and_filters_select_events() -> None:
    _, everything = run_main("--demo", "events")
    code, paused = run_main("--demo", "events", "--filter", "state:paused", "--host", "xen-*")
    want = {e["domain"] for e in everything if e["type"] == "domain" and e["state"] == "paused"}
    want = {d for d in want if d.startswith("xen-")}
    assert code == 0 and want  # the demo has paused Xen domains: the filter has something to keep
    assert {e["domain"] for e in paused if e["type"] == "domain"} == want
    assert {e["host"] for e in paused if e["type"] == "host"} == {"xen-fra-1", "xen-lab-1"}


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo", "events", "-n", "0"], out=io.StringIO()) == 2
    assert main(["--demo", "events", "--snapshot"], out=io.StringIO()) == 2
    assert "--snapshot goes with --follow" in capsys.readouterr().err


def test_hostile_names_never_reach_the_terminal_raw() -> None:
    host = HostConfig(name="kvm\x1b]0;owned\x07", driver="sim")
    stream = EventStream([host])
    name = "web\x1b[2J\u202eevil\r\n"
    [event] = stream.lifecycle(DomainEvent(host.name, name, "stopped", "crashed\x1b[31m", None, 1.0), 0.0)
    line = dumps(event)
    assert line.isascii() and line.isprintable()
    assert json.loads(line)["domain"] == name  # escaped, not lost


def test_actions_of_another_process_appear_with_their_audit_id(tmp_path: Path, follower: list[Follower]) -> None:
    log = tmp_path / "audit.jsonl"  # not there yet: the follower reads it from its start once it appears
    events = Follower("--demo", "events", "--follow", "--audit-log", str(log), "-n", "3", "--host", "kvm-ams-2")
    follower.append(events)
    for domain in ("kvm-ams-1-web01", "kvm-ams-2-db01"):  # the first is filtered out by --host
        act = subprocess.run(
            [*VFLEET, "--demo", "act", "pause", domain, "--yes", "--audit-log", str(log)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert act.returncode == 0, act.stderr
    intent, result, close = events.rest(timeout=30)  # -n 3: it stops by itself
    assert events.proc.returncode == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    op = next(r["op"] for r in records if r.get("kind") == "intent" and r["targets"][0]["host"] == "kvm-ams-2")
    assert [(e["type"], e["event"], e["op"]) for e in (intent, result, close)] == [
        ("action", "intent", op),
        ("action", "result", op),
        ("action", "close", op),
    ]
    assert intent["verb"] == "pause" and intent["targets"][0]["domain"] == "kvm-ams-2-db01"
    assert (result["result"], result["state_after"], result["user"]) == ("ok", "paused", records[0]["user"])
    assert close["outcome"] == "completed"
    assert not {"hash", "prev", "mac"} & {k for e in (intent, result, close) for k in e}


def test_sigint_ends_the_stream_cleanly(follower: list[Follower]) -> None:
    events = Follower("--demo", "events", "--follow", "--snapshot")
    follower.append(events)
    events.wait_for({"type": "domain", "event": "snapshot"}, timeout=30)
    events.proc.send_signal(signal.SIGINT)
    events.rest(timeout=20)
    assert events.proc.returncode == 0
    assert "Traceback" not in events.stderr()


def test_a_reader_that_leaves_ends_the_stream_at_once() -> None:
    """`vfleet events --follow | head -1`: head leaves, the follower must not wait for an event to notice."""
    shell = subprocess.run(
        ["bash", "-c", f'{" ".join(VFLEET)} --demo events --follow --snapshot | head -1; echo "${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    first, code = shell.stdout.splitlines()
    assert json.loads(first)["schema"] == SCHEMA and code == "0"
    assert shell.stderr == ""


def test_a_closed_pipe_is_noticed_without_any_write() -> None:
    proc = subprocess.Popen(  # a filter nothing matches: it never writes
        [*VFLEET, "--demo", "events", "--follow", "--filter", "name:no-such-domain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader leaves
        proc.wait(timeout=15)
        assert proc.returncode == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- xen_xl: state changes derived from polls, and a host going down ----------------------


@pytest.fixture
async def xen(tmp_path: Path) -> AsyncIterator[tuple[SshTestServer, XenHost]]:
    need_backend(f"real Xen outputs ({XEN_SESSION})", XEN_SESSION.exists())
    dom0 = XenHost()
    server = await SshTestServer(dom0, Keys.generate(), tmp_path).start()
    yield server, dom0
    await server.close()


def at_step(dom0: XenHost, command: str) -> None:
    dom0.position = next(i for i, b in enumerate(dom0.blocks) if b.command == command)


async def test_xen_xl_state_changes_are_derived_and_a_lost_host_is_a_health_event(
    xen: tuple[SshTestServer, XenHost],
) -> None:
    server, dom0 = xen
    config = server.config(name="xen1")
    stream = EventStream([config])
    seen: list[dict[str, Any]] = []

    async def until(fleet: Fleet, want: dict[str, Any], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(all(e.get(k) == v for k, v in want.items()) for e in seen):
            assert time.monotonic() < deadline, f"no event like {want}; saw {seen}"
            seen.extend(stream.observe(fleet.views(), time.monotonic(), time.time()))
            await asyncio.sleep(0.1)

    async with Fleet([config], read_only=True) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, 20)
        assert stream.observe(fleet.views(), time.monotonic(), time.time()) == []  # the first poll is the baseline
        at_step(dom0, "xl create /etc/xen/tinynet.cfg")  # tiny and tinynet boot
        await until(fleet, {"domain": "tiny", "event": "started"})
        at_step(dom0, "xl pause tiny")
        await until(fleet, {"domain": "tiny", "event": "suspended"})
        await server.close()  # the dom0 goes away
        await until(fleet, {"type": "host", "event": "health", "status": "down"})
    tiny = [(e["event"], e["previous"], e["state"], e["derived"]) for e in seen if e.get("domain") == "tiny"]
    assert tiny == [("started", "off", "running", True), ("suspended", "running", "paused", True)]
    assert {e["domain"] for e in seen if e["type"] == "domain"} == {"tiny", "tinynet"}  # Domain-0 did not change
    down = next(e for e in seen if e["type"] == "host")
    assert down["previous"] in ("up", "degraded") and down["error"] and down["driver"] == "xen_xl"


# -- a real QEMU guest under libvirtd: announced lifecycle events, in order, once -----------


def test_real_guest_lifecycle_events_in_order_without_derived_duplicates(
    testbed: dict[str, str], libvirt_module: object, tmp_path: Path, follower: list[Follower]
) -> None:
    import libvirt

    uri, name = testbed["VFLEET_QEMU_URI"], testbed["VFLEET_GUESTS"].split(",")[0]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"hosts:\n  - name: qemu\n    driver: libvirt\n    uri: {uri}\n    poll_interval: 1\n")
    conn = libvirt.open(uri)
    dom = conn.lookupByName(name)
    try:
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            dom.create()
        events = Follower("-i", str(inventory), "events", "--follow", "--snapshot", "--name", name)
        follower.append(events)
        events.wait_for({"type": "domain", "event": "snapshot", "domain": name, "state": "running"}, 60)
        steps = [
            (dom.suspend, "suspended", "paused", "paused"),
            (dom.resume, "resumed", "unpaused", "running"),
            (dom.destroy, "stopped", "destroyed", "off"),
            (dom.create, "started", "booted", "running"),
        ]
        for act, kind, detail, state in steps:
            act()
            event = events.wait_for({"type": "domain", "domain": name, "event": kind}, 60)
            assert (event["detail"], event["state"], event["derived"]) == (detail, state, False)
            assert event["domain_key"] == dom.UUIDString() and event["driver"] == "libvirt"
        # Polls saw every change too: past the grace they must not come out as derived copies.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and events.proc.poll() is None:
            time.sleep(0.2)
        events.proc.send_signal(signal.SIGINT)
        events.rest(timeout=20)
        assert events.proc.returncode == 0
    finally:
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            dom.create()  # leave the testbed as we found it
        conn.close()
    mine = [e for e in events.seen if e["type"] == "domain" and e["event"] != "snapshot"]
    # libvirt says more than we asked for (destroy: shutdown/host first; create: resumed
    # first, as QEMU starts paused): ours come in order among them, each once.
    said = [(e["event"], e["detail"]) for e in mine]
    wanted = [(kind, detail) for _, kind, detail, _ in steps]
    rest = iter(said)
    assert all(step in rest for step in wanted), said  # a subsequence: in this order
    assert len(said) <= 2 * len(wanted), said  # and no repeats
    assert not any(e["derived"] for e in mine)


async def test_a_change_no_announced_event_explains_comes_out_derived_after_the_grace() -> None:
    """The sim announces events; this stream never hears them (as if the event stream was down)."""
    from dataclasses import replace

    from vfleet.core.demo import demo_inventory
    from vfleet.core.models import DomainRef, PowerState, Verb

    host = replace(next(h for h in demo_inventory().hosts if h.name == "kvm-ams-1"), poll_interval=0.2)
    stream = EventStream([host], grace=1.0)
    async with Fleet([host]) as fleet:
        assert await fleet.wait_until(lambda v: v[0].health.polls >= 1, 20)
        assert stream.observe(fleet.views(), time.monotonic(), time.time()) == []  # the baseline
        target = next(r.domain for r in fleet.view(host.name).rows if r.domain.state is PowerState.RUNNING)
        driver = fleet.driver(host.name)
        assert driver is not None
        assert (await driver.perform(Verb.PAUSE, DomainRef.of(target))).ok
        seen_at, out = None, []
        deadline = time.monotonic() + 20
        while not out and time.monotonic() < deadline:
            now = time.monotonic()
            out = stream.observe(fleet.views(), now, time.time())
            rows = {r.domain.key: r.domain.state for r in fleet.view(host.name).rows}
            if seen_at is None and rows[target.key] is PowerState.PAUSED:
                seen_at = now
            await asyncio.sleep(0.05)
    assert seen_at is not None and out, "the poll never showed the pause"
    assert [(e["domain"], e["event"], e["derived"], e["previous"]) for e in out] == [
        (target.name, "suspended", True, "running")
    ]
    assert now - seen_at >= 1.0 - 0.1  # held for the grace first: an announced event could have explained it
