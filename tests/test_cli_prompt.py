"""The CLI's confirmation prompt: off the event loop, and one Ctrl-C ends it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vfleet.cli.prompt import ask


async def test_the_prompt_leaves_the_loop_running(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end, "r"))
    ticks = 0

    async def poller() -> None:  # stands in for the hosts' polling while the operator reads
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def operator() -> None:
        while ticks < 20:  # noqa: ASYNC110 - the ticks are the thing observed
            await asyncio.sleep(0.01)
        os.write(write_end, b"yes\n")

    polling = asyncio.create_task(poller())
    typing = asyncio.create_task(operator())
    try:
        answer = await asyncio.wait_for(ask("go? "), 10)
    finally:
        polling.cancel()
        await typing
        os.close(write_end)
    assert answer == "yes" and ticks >= 20


def running_demo_domain() -> str:
    run = subprocess.run([sys.executable, "-m", "vfleet", "--demo", "status", "-o", "json", "--interval", "0",
                          "--host", "kvm-ams-1"], capture_output=True, text=True, timeout=60, check=True)
    return next(d["name"] for d in json.loads(run.stdout)["domains"] if d["state"] == "running")


def test_one_ctrl_c_at_the_prompt_exits_130_and_records_it(tmp_path: Path) -> None:
    name = running_demo_domain()
    audit = tmp_path / "audit.jsonl"
    main, tty = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vfleet", "--demo", "act", "shutdown", name, "--host", "kvm-ams-1",
         "--audit-log", str(audit)],
        stdin=tty, stdout=subprocess.PIPE, stderr=tty, close_fds=True,
    )
    os.close(tty)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"[y/N]" not in seen:
            assert time.monotonic() < deadline, f"no prompt; saw {seen!r}"
            try:
                seen += os.read(main, 4096)
            except OSError:
                pytest.fail(f"the process ended before asking; saw {seen!r}")
        proc.send_signal(signal.SIGINT)  # what one Ctrl-C at the terminal does
        assert proc.wait(timeout=10) == 130
    finally:
        proc.kill()
        os.close(main)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["kind"], r["reason"]) for r in records] == [("refused", "interrupted at the confirmation")]


def test_act_on_a_host_that_is_down_exits_3_not_4(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts:\n  - name: xen-dead\n    driver: xen_xl\n    address: 127.0.0.1\n    port: 1\n"
                         "    connect_timeout: 2\n")
    run = subprocess.run([sys.executable, "-m", "vfleet", "-i", str(inventory), "act", "pause", "web1", "--yes",
                          "--audit-log", str(tmp_path / "audit.jsonl")],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 3, run.stderr
    assert "xen-dead" in run.stderr and "nothing was done" in run.stderr
    assert "Traceback" not in run.stderr
