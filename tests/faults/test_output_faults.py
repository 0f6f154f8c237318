"""Hosts that answer, but badly: garbled and truncated output, a counter too large for a
float (a sample that makes the engine raise, then good samples again), and domain names
carrying escape sequences or a leading `-`. One inventory with healthy hosts beside them,
watched through `top --batch` and `status` in every format at once."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import need_backend
from faults.harness import ENV, HEALTHY, POLL, ROOT, FakeHost, Vfleet, run_vfleet, stale_healthy, write_inventory

EVIL = "ev\x1b]0;PWNED-TITLE\x07\x1b[31mRED"  # sets the terminal title, then paints red
DASH = "-f"  # an option to xl unless it comes after `--`
# C0 controls but newline and tab, DEL, and C1 controls: nothing of these may reach a terminal
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FRAMES = 18


@dataclass
class Run:
    inventory: Path
    frames: list[dict[str, Any]]
    outputs: dict[str, tuple[int, str, str]]  # format -> (exit, stdout, stderr) of `status`
    names: FakeHost
    overflow: FakeHost
    phases: dict[str, float] = field(default_factory=dict)  # "bad", "good" -> when the switch was made


def drive_overflow(host: FakeHost, phases: dict[str, float]) -> None:
    """Good samples, then 2 polls with a counter no float can hold, then good ones again."""

    def served(count: int) -> Callable[[list[dict[str, Any]]], bool]:
        return lambda items: sum(1 for e in items if e.get("ev") == "start" and e.get("kind") == "poll") >= count

    host.wait(served(2), "2 good polls", timeout=30)
    host.set(poll="overflow")
    phases["bad"] = time.monotonic()
    before = len(host.events("start", "poll"))
    with contextlib.suppress(AssertionError):  # a host whose poller died asks no more: go on
        host.wait(served(before + 2), "2 polls with the overflowing counter", timeout=6)
    phases["bad_polls"] = len(host.events("start", "poll")) - before
    host.set()
    phases["good"] = time.monotonic()


@pytest.fixture(scope="module")
def run(healthy: list[dict[str, Any]], fakes: Callable[..., FakeHost], tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("output-faults")
    garbled = fakes("garbled", poll="garbled")
    truncated = fakes("truncated", poll="truncated")
    names = fakes("names", guests=["tiny", DASH, EVIL])
    overflow = fakes("overflow")
    entries = [*healthy, garbled.entry(), truncated.entry(), names.entry()]
    inventory = write_inventory(tmp / "fleet.yaml", entries, connect_timeout=3, call_timeout=3)
    # The overflow host is watched by `top` alone: its phases count polls, and polls of
    # the `status` runs would eat them.
    with_overflow = write_inventory(tmp / "top.yaml", [*entries, overflow.entry()], connect_timeout=3, call_timeout=3)
    phases: dict[str, float] = {}
    driver = threading.Thread(target=drive_overflow, args=(overflow, phases), daemon=True)
    driver.start()
    top = Vfleet("-i", str(with_overflow), "top", "--batch", "-d", str(POLL), "-n", str(FRAMES),
                 stderr_file=tmp / "top.err")
    outputs = {}
    for fmt in ("json", "table", "csv"):
        outputs[fmt] = run_vfleet("-i", str(inventory), "status", "-o", fmt, stderr_file=tmp / f"status-{fmt}.err")
    top.finish(60)
    driver.join(30)
    return Run(inventory, top.frames(), outputs, names, overflow, phases)


def hosts_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in doc["hosts"]}


@pytest.mark.parametrize("name", ["garbled", "truncated"])
def test_unreadable_host_is_not_called_up(run: Run, name: str) -> None:
    """Every poll fails fast: `status` must not print the host `up` with 0 domains, exit 0."""
    code, out, err = run.outputs["json"]
    host = hosts_of(json.loads(out))[name]
    assert host["status"] in ("degraded", "down") and host["error"], host
    assert code == 3 and re.search(rf"^vfleet: {name}: ", err, re.M), (code, err)
    late = [hosts_of(f)[name] for f in run.frames[3:]]
    assert all(h["status"] != "up" and h["error"] for h in late), late


def test_remote_text_never_reaches_the_terminal_raw(run: Run) -> None:
    for fmt in ("table", "csv"):
        _code, out, err = run.outputs[fmt]
        assert "RED" in out, out  # the evil domain is listed ...
        assert not CONTROL.findall(out), f"{fmt}: {sorted(set(CONTROL.findall(out)))!r}"  # ... but defanged
    for fmt, (_code, _out, err) in run.outputs.items():
        assert not CONTROL.findall(err), f"status -o {fmt} stderr: {err!r}"


def test_json_keeps_the_exact_names(run: Run) -> None:
    _code, out, _err = run.outputs["json"]
    names = {d["name"] for d in json.loads(out)["domains"] if d["host"] == "names"}
    assert names == {"Domain-0", "tiny", DASH, EVIL}


def test_a_sample_that_makes_the_engine_raise_is_shown_and_the_host_recovers(run: Run) -> None:
    assert run.phases.get("bad_polls", 0) >= 1, f"the overflow host served no bad sample: {run.phases}"
    seen = [hosts_of(f)["overflow"] for f in run.frames]
    shown = [(h["status"], h["data_age_s"], h["error"]) for h in seen]
    bad = [h for h in seen if h["error"]]
    assert bad, f"the sample that made the engine raise was never shown: {shown}"
    assert all(h["status"] != "up" for h in bad), shown  # and the host is not called up meanwhile
    assert seen[-1]["status"] == "up" and seen[-1]["error"] is None and seen[-1]["domains"] == 3, seen


def test_healthy_hosts_keep_fresh_data_beside_bad_output(run: Run) -> None:
    assert len(run.frames) == FRAMES
    assert stale_healthy(run.frames) == []
    _code, out, _err = run.outputs["json"]
    assert {h: hosts_of(json.loads(out))[h]["status"] for h in HEALTHY} == dict.fromkeys(HEALTHY, "up")


def test_a_leading_dash_is_a_name_not_an_option(run: Run, tmp_path: Path) -> None:
    code, out, err = run_vfleet("-i", str(run.inventory), "act", "pause", "--yes", "--host", "names", "-o", "json",
                                "--timeout", "10", "--", DASH, stderr_file=tmp_path / "act.err", timeout=30)
    sent = [c for c in run.names.commands("action") if c.startswith("xl pause")]
    assert sent == [f"xl pause -- {DASH}"], sent
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    assert result["domain"] == DASH and result["result"] == "ok" and result["state_after"] == "paused"


def test_escape_sequences_do_not_retitle_the_terminal(run: Run) -> None:
    need_backend("tmux", shutil.which("tmux") is not None)
    session = f"vfleet-faults-{uuid.uuid4().hex[:8]}"
    inventory = run.inventory.with_name("names-only.yaml")
    names_entry = run.names.entry()
    write_inventory(inventory, [names_entry], connect_timeout=3, call_timeout=3)
    command = f"cd {ROOT} && exec env PYTHONPATH={ENV['PYTHONPATH']} {sys.executable} -m vfleet -i {inventory}"
    tmux = ["tmux"]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True,
                   timeout=10)
    try:
        deadline = time.monotonic() + 30
        screen = ""
        while "tiny" not in screen:
            assert time.monotonic() < deadline, f"the names host never showed its domains; screen:\n{screen}"
            time.sleep(0.2)  # another process's terminal: nothing to await but its output
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                                    check=True, timeout=10).stdout
        title = subprocess.run([*tmux, "display-message", "-p", "-t", session, "#{pane_title}"], capture_output=True,
                               text=True, check=True, timeout=10).stdout
        assert "PWNED" not in title, title
        # shown as text (escaped), not swallowed by the terminal as a title change
        assert "PWNED" in screen, screen
    finally:
        subprocess.run([*tmux, "kill-session", "-t", session], check=False, capture_output=True, timeout=10)


def test_200_mb_of_output_is_cut_off_with_a_clear_error(
    healthy: list[dict[str, Any]], fakes: Callable[..., FakeHost], tmp_path: Path
) -> None:
    firehose = fakes("firehose", poll="huge", huge_mb=200)
    path = write_inventory(tmp_path / "fleet.yaml", [*healthy, firehose.entry(call_timeout=30)], connect_timeout=3)
    status = Vfleet("-i", str(path), "status", "--interval", "0", "-o", "json", stderr_file=tmp_path / "status.err")
    code = status.finish(90)
    hosts = hosts_of(json.loads(status.stdout()))
    assert hosts["firehose"]["status"] != "up", hosts["firehose"]
    assert re.search(r"(?i)too (large|long|much)|exceed|limit|\bcap\b|\d+ ?(MB|MiB)", hosts["firehose"]["error"] or ""), (
        hosts["firehose"])
    assert code == 3 and {h: hosts[h]["status"] for h in HEALTHY} == dict.fromkeys(HEALTHY, "up"), status.stderr()
    # 200 MB once read whole cost ~890 MB of RSS; a capped read costs a few MB over the ~60 MB baseline
    assert status.peak_rss < 250_000, f"peak RSS {status.peak_rss / 1024:.0f} MiB"
