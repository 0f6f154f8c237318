"""A fake hypervisor host as its own process: the project's asyncssh test host (real SSH,
real host key and public-key auth) on a fixed port, so a test can SIGKILL it mid-poll or
mid-action and start it again on the same port with the same key.

    python -m faults.fakehost --dir D --name N --kind xen|esxi [--port P] [--guests a,b]

Keys are files in D (D/N.host_key, D/client_key.pub), written by the harness. Faults
come from D/N.json, re-read on every command so a test can change them mid-run:

    poll:          normal | hang | garbled | truncated | huge | overflow  (poll commands only)
    delay:         seconds before answering a poll command
    action_delay:  seconds before answering an action command
    die_on_action: SIGKILL ourselves when the Nth action command arrives (0: never)
    huge_mb:       size of the `huge` answer (default 200)

Each session is modelled on sshd: its shell leads a process group (`$$` is its pgid),
closing the channel does not stop the command, `kill -TERM -PGID` does. Every step is
reported on stdout as one JSON line: start (with kind poll/action/other), done, gone
(the client closed the channel first), killed, exited (ended after its channel was gone)
and dying, so tests await what the host saw instead of sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh

from faults.xlhost import XlDom0
from sshhost import Answer, Backend, EsxiHost

POLL = {"xen": re.compile(r"xentop -b"), "esxi": re.compile(r"vmsvc/get(allvms|\.summary)")}
ACTION = {
    "xen": re.compile(r"^xl (create|shutdown|reboot|pause|unpause|destroy) "),
    "esxi": re.compile(r"^(vim-cmd vmsvc/power\.|esxcli vm process kill)"),
}
CHUNK = 1 << 20
SHELL_PID_ECHO = re.compile(r"^echo ([^;]*?)\$\$; ")  # `echo MARK $$; COMMAND`: the shell's pid first
KILL_GROUP = re.compile(r"\bkill -(?:TERM|15|KILL|9) -(\d+)\b")
# What a confused tool might say on stderr: terminal escapes that retitle and clear the screen.
GARBAGE_STDERR = "\x1b]0;PWNED-GARBLED\x07\x1b[31mxentop: \x1b[2Jcannot read domain table\x1b[0m\n"


class Host:
    def __init__(self, args: argparse.Namespace) -> None:
        self.dir, self.name, self.kind = Path(args.dir), args.name, args.kind
        guests = [g for g in args.guests.split(",") if g] if args.guests is not None else None
        self.backend: Backend
        if args.kind == "xen":
            self.backend = self.xl = XlDom0(guests if guests is not None else ["tiny", "tinynet"])
        else:
            self.backend = EsxiHost()
        self.count = 0
        self.actions = 0
        self.live: dict[int, asyncio.Future[Any]] = {}  # pgid -> the command still running
        self.rng = random.Random(7)

    def control(self) -> dict[str, Any]:
        try:
            value = json.loads((self.dir / f"{self.name}.json").read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def emit(self, **event: object) -> None:
        sys.stdout.write(json.dumps({"t": time.monotonic(), **event}) + "\n")
        sys.stdout.flush()

    def classify(self, command: str) -> tuple[str, str]:
        """("poll" | "action" | "other", the part of the command line that decided it)."""
        parts = [part.strip() for part in command.split(";")]
        for kind, pattern in (("action", ACTION[self.kind]), ("poll", POLL[self.kind])):
            found = next((part for part in parts if pattern.search(part)), None)
            if found is not None:
                return kind, found
        return "other", command

    async def serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """One session, as sshd runs it: a shell that leads its own process group (pgid = $$).

        Like sshd, closing the channel does not stop the command: it runs on until it ends
        or `kill -TERM -PGID` arrives on another channel ("gone" then "killed" or "exited").
        """
        command = process.command or ""
        self.count += 1
        n = pgid = self.count + 10_000
        prefix = SHELL_PID_ECHO.match(command)
        if prefix:  # the shell echoes its pid before the command runs, even one that hangs
            process.stdout.write(f"{prefix.group(1)}{pgid}\n".encode())
            command = command[prefix.end() :]
        command = command.replace("$$", str(pgid))
        kind, op = self.classify(command)
        self.emit(ev="start", n=n, cmd=command, kind=kind, op=op)
        kill = KILL_GROUP.search(command)
        if kill:
            process.exit(self.kill(int(kill.group(1))))
            return
        control = self.control()
        if kind == "action":
            self.actions += 1
            if self.actions == control.get("die_on_action"):
                self.emit(ev="dying", n=n)
                os.kill(os.getpid(), signal.SIGKILL)
        work = asyncio.ensure_future(self.answer(command, kind, control, process))
        self.live[pgid] = work
        work.add_done_callback(lambda task: self.ended(pgid, task))
        closed = asyncio.ensure_future(process.channel.wait_closed())
        done, _ = await asyncio.wait({work, closed}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:  # the client closed the channel; the command runs on
            self.emit(ev="gone", n=n)
            return
        closed.cancel()
        if work.cancelled():  # killed by its process group: the shell reports the signal
            with contextlib.suppress(OSError, asyncssh.Error):
                process.exit_with_signal("TERM")
            return
        if work.exception() is not None:  # the client went away while we streamed
            return
        try:
            out, err, status = work.result()
            if out:
                process.stdout.write(out)
            if err:
                process.stderr.write(err)
            process.exit(status)
        except (OSError, asyncssh.Error) as exc:  # the client went away while we wrote
            self.emit(ev="gone", n=n, why=repr(exc))
            return
        self.emit(ev="done", n=n, status=status)

    def ended(self, pgid: int, task: asyncio.Future[Any]) -> None:
        self.live.pop(pgid, None)
        if task.cancelled():
            self.emit(ev="killed", n=pgid)
        else:
            self.emit(ev="exited", n=pgid, error=repr(task.exception()) if task.exception() else None)

    def kill(self, pgid: int) -> int:
        """`kill -TERM -PGID`: end that session's command; 1 (no such process) if it is gone."""
        work = self.live.get(pgid)
        if work is None:
            return 1
        work.cancel()
        return 0

    async def answer(
        self, command: str, kind: str, control: dict[str, Any], process: asyncssh.SSHServerProcess[bytes]
    ) -> tuple[bytes, bytes, int]:
        mode = control.get("poll", "normal") if kind == "poll" else "normal"
        if kind == "poll" and control.get("delay"):
            await asyncio.sleep(float(control["delay"]))
        if kind == "action" and control.get("action_delay"):
            await asyncio.sleep(float(control["action_delay"]))
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "huge":
            await self.stream_huge(process, int(control.get("huge_mb", 200)))
            return b"", b"", 0
        if self.kind == "xen":
            self.xl.overflow = mode == "overflow"
        out, err, status = await self.backend.run(command)
        return self.fault(mode, (out, err, status))

    def fault(self, mode: str, answer: Answer) -> tuple[bytes, bytes, int]:
        out, err, status = answer
        data = out.encode()
        if mode == "truncated":  # the connection dropped mid-answer: cut inside a line
            return data[: len(data) * 3 // 5], err.encode(), status
        if mode == "garbled":  # every line but the shell's markers replaced by junk
            lines = [
                line if line.startswith(b"@@VFLEET") else self.junk(len(line)) for line in data.split(b"\n")
            ]
            return b"\n".join(lines), GARBAGE_STDERR.encode(), status
        return data, err.encode(), status

    def junk(self, size: int) -> bytes:
        # Valid UTF-8 (ASCII with control characters and escapes): text a parser must refuse,
        # not bytes the SSH layer refuses before the driver sees them.
        return bytes(self.rng.choice(range(1, 128)) for _ in range(size)).replace(b"\n", b"\x1b")

    async def stream_huge(self, process: asyncssh.SSHServerProcess[bytes], megabytes: int) -> None:
        """`megabytes` MB of plausible xl list rows, written as the client takes them."""
        row = b"tiny                                         1   128     1     -b----       7.8\n"
        chunk = row * (CHUNK // len(row))
        sent = 0
        while sent < megabytes * 1_000_000:
            process.stdout.write(chunk)
            await process.stdout.drain()
            sent += len(chunk)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kind", choices=sorted(POLL), default="xen")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--guests", help="comma-separated guest names (xen)")
    args = parser.parse_args()
    host = Host(args)
    directory = Path(args.dir)
    key = asyncssh.read_private_key(str(directory / f"{args.name}.host_key"))
    authorized = asyncssh.read_authorized_keys(str(directory / "client_key.pub"))
    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", args.port, server_host_keys=[key], authorized_client_keys=authorized,
        process_factory=host.serve, encoding=None, reuse_address=True,
    )
    host.emit(ev="ready", port=server.sockets[0].getsockname()[1], pid=os.getpid())
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
