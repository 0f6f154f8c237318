"""Client side of the fault suite (shared with bench/faults.py): fake hosts, bad networks,
black holes, inventories, and `vfleet` run as a real process and watched from /proc.

Every helper process prints JSON lines on stdout; a reader thread keeps them with their
arrival time, so a test waits for "the host received the 3rd pause" rather than sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import asyncssh
import yaml

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "PYTHONUNBUFFERED": "1"}
Event = dict[str, Any]
POLL = 1.0  # seconds: every case polls at this interval; "fresh" means data younger than 2 of them
FRESH = 2 * POLL
HEALTHY = ("xen-ok", "esx-ok", "lv-test")  # the healthy hosts of the suite's `healthy` fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines:
    """A child's stdout, one JSON (or plain) line at a time, timestamped on arrival."""

    def __init__(self, stream: Any) -> None:
        self.items: list[Event] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            if not isinstance(item, dict):  # a line of pretty JSON or a table: text only
                item = {}
            item.setdefault("t", time.monotonic())
            item["_at"] = time.monotonic()
            item["_raw"] = line
            with self._cond:
                self.items.append(item)
                self._cond.notify_all()
        with self._cond:
            self.items.append({"ev": "eof", "_at": time.monotonic()})
            self._cond.notify_all()

    def wait(self, check: Callable[[list[Event]], Any], timeout: float, what: str) -> Any:
        """Block until check(items) is truthy; return its value, or fail naming `what`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check(self.items)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; saw {self.items[-5:]}")
                self._cond.wait(left)


def _spawn(args: list[str], *, stdout: Any = subprocess.PIPE, stderr: Any = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=stdout, stderr=stderr, env=ENV, cwd=ROOT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Keyring:
    """One client key, one host key per fake host, and the known_hosts file naming them all."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        client = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = self._write("client_key", client.export_private_key().decode())
        self._write("client_key.pub", client.export_public_key().decode())
        self.known_hosts = self._write("known_hosts", "")

    def _write(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text)
        path.chmod(0o600)
        return str(path)

    def host_key(self, name: str) -> str:
        """The host's key file, made once: a restarted host must show the same key."""
        path = self.dir / f"{name}.host_key"
        if not path.exists():
            self._write(path.name, asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode())
        return str(path)

    def trust(self, port: int, key_file: str) -> None:
        public = asyncssh.read_private_key(key_file).export_public_key().decode().strip()
        line = f"[127.0.0.1]:{port} {public}\n"
        with open(self.known_hosts, "a+") as handle:
            handle.seek(0)
            if line not in handle.read():
                handle.write(line)

    def ssh_entry(self, name: str, driver: str, port: int, **extra: Any) -> dict[str, Any]:
        """An inventory entry; `extra` overrides or adds keys (name, port, timeouts ...)."""
        return {
            "name": name, "driver": driver, "address": "127.0.0.1", "port": port, "user": "root",
            "ssh": {"agent": False, "config": False, "key_file": self.client_key, "known_hosts": self.known_hosts},
        } | extra


class FakeHost:
    """tests/faults/fakehost.py as a child process that can be killed and restarted."""

    def __init__(self, keys: Keyring, name: str, kind: str = "xen", guests: list[str] | None = None,
                 **control: Any) -> None:
        self.keys, self.name, self.kind, self.guests = keys, name, kind, guests
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: Lines | None = None
        self.runs: list[Lines] = []  # one per start, so a restart does not hide the dead run's commands
        self.set(**control)
        keys.host_key(name)

    @property
    def driver(self) -> str:
        return "xen_xl" if self.kind == "xen" else "esxi_ssh"

    def set(self, **control: Any) -> None:
        """Change the faults; the host reads them on its next command."""
        path = self.keys.dir / f"{self.name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(control))
        tmp.rename(path)

    def start(self) -> FakeHost:
        args = [sys.executable, "-m", "faults.fakehost", "--dir", str(self.keys.dir), "--name", self.name,
                "--kind", self.kind, "--port", str(self.port)]
        if self.guests is not None:
            args += ["--guests", ",".join(self.guests)]
        self.proc = _spawn(args)
        self.lines = Lines(self.proc.stdout)
        self.runs.append(self.lines)
        ready = self.lines.wait(lambda items: next((i for i in items if i.get("ev") in ("ready", "eof")), None),
                                30, f"fake host {self.name} to listen")
        if ready.get("ev") != "ready":
            raise AssertionError(f"fake host {self.name} did not start: {self.lines.items}")
        self.port = int(ready["port"])
        self.keys.trust(self.port, self.keys.host_key(self.name))
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye on the wire, exactly as a crashed host."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        _stop(self.proc)

    def entry(self, **extra: Any) -> dict[str, Any]:
        return self.keys.ssh_entry(self.name, self.driver, self.port) | extra

    def events(self, ev: str | None = None, kind: str | None = None) -> list[Event]:
        return [e for run in self.runs for e in list(run.items)
                if (ev is None or e.get("ev") == ev) and (kind is None or e.get("kind") == kind)]

    def wait(self, check: Callable[[list[Event]], Any], what: str, timeout: float = 30) -> Any:
        assert self.lines is not None
        return self.lines.wait(check, timeout, f"{self.name}: {what}")

    def commands(self, kind: str) -> list[str]:
        """The poll or action commands received (without the shell prefix around them)."""
        return [str(e["op"]) for e in self.events("start", kind)]


class NetFault:
    """tests/faults/netfault.py: a delaying, throttling, stalling proxy, or a silent listener."""

    def __init__(self, *args: str) -> None:
        self.proc = _spawn([sys.executable, "-m", "faults.netfault", *args])
        self.lines = Lines(self.proc.stdout)
        ready = self.lines.wait(lambda items: next((i for i in items if i.get("ev") in ("ready", "eof")), None),
                                30, f"netfault {args[0]} to listen")
        if ready.get("ev") != "ready":
            raise AssertionError(f"netfault {args} did not start")
        self.port = int(ready["port"])

    @classmethod
    def proxy(cls, target_port: int, *, delay: float, rate: float, stall_prob: float) -> NetFault:
        return cls("proxy", "--target", f"127.0.0.1:{target_port}", "--delay", str(delay), "--rate", str(rate),
                   "--stall-prob", str(stall_prob))

    @classmethod
    def nobanner(cls) -> NetFault:
        return cls("nobanner")

    def stop(self) -> None:
        _stop(self.proc)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def netns_available() -> bool:
    probe = f"vfprobe{os.getpid()}"
    try:
        ok = _ip("netns", "add", probe).returncode == 0
    except OSError:
        return False
    _ip("netns", "del", probe)
    return ok


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """An address routed into a network namespace that does not forward: SYNs vanish.

    The namespace and veth are named after our pid, and the /24 is picked from the pid
    too, so engineers and CI jobs on one machine do not collide; both go on exit.
    """
    for attempt in range(40):
        slot = (os.getpid() + attempt) % 200 + 20
        ns, veth = f"vfbh{slot}", f"vfbh{slot}"
        if _ip("netns", "add", ns).returncode != 0:
            continue  # taken by a neighbour
        steps = [
            ("link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b"),
            ("link", "set", f"{veth}b", "netns", ns),
            ("addr", "add", f"10.213.{slot}.1/30", "dev", f"{veth}a"),
            ("link", "set", f"{veth}a", "up"),
            ("-n", ns, "addr", "add", f"10.213.{slot}.2/30", "dev", f"{veth}b"),
            ("-n", ns, "link", "set", f"{veth}b", "up"),
            ("route", "add", f"10.214.{slot}.0/24", "via", f"10.213.{slot}.2"),
        ]
        failed = next((r for r in (_ip(*s) for s in steps) if r.returncode != 0), None)
        if failed is not None:
            _ip("netns", "del", ns)
            _ip("link", "del", f"{veth}a")
            raise AssertionError(f"cannot build the black hole: {failed.args}: {failed.stderr.strip()}")
        try:
            yield f"10.214.{slot}.9"
        finally:
            _ip("route", "del", f"10.214.{slot}.0/24")
            _ip("link", "del", f"{veth}a")
            _ip("netns", "del", ns)
        return
    raise AssertionError("no free slot for a black-hole namespace")


def write_inventory(path: Path, hosts: list[dict[str, Any]], **defaults: Any) -> Path:
    document: dict[str, Any] = {"hosts": hosts}
    if defaults:
        document["defaults"] = defaults
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=False))
    return path


# -- vfleet itself, as a real process ---------------------------------------------


class Vfleet:
    """`python -m vfleet ARGS` with stdout read line by line (timestamped) and stderr kept."""

    started: ClassVar[list[Vfleet]] = []  # for reap(): a failed test must not leave one running

    def __init__(self, *args: str, stderr_file: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.stderr_file = stderr_file
        self._err = open(stderr_file, "wb")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vfleet", *args], stdout=subprocess.PIPE, stderr=self._err,
            env={**ENV, **(env or {})}, cwd=ROOT,
        )
        self.pid = self.proc.pid
        self.lines = Lines(self.proc.stdout)
        self.peak_rss = 0  # kB, from wait4's rusage
        Vfleet.started.append(self)

    @classmethod
    def reap(cls) -> None:
        """Kill whatever a test left running (its assertion failed before finish())."""
        for left in cls.started:
            if left.proc.returncode is None:
                left.proc.kill()
                left.proc.wait(10)
                left._err.close()
        cls.started.clear()

    def frames(self) -> list[Event]:
        return [i for i in self.lines.items if "hosts" in i]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def running(self) -> bool:
        """Still running? Does not reap it (finish() does, for the rusage)."""
        if self.proc.returncode is not None:
            return False
        found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return found is None

    def finish(self, timeout: float) -> int:
        """Wait for the exit (reaping it ourselves for its peak RSS); fail if it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.peak_rss = usage.ru_maxrss
                break
            time.sleep(0.05)  # another process: there is nothing to await but its exit
        else:
            self.proc.kill()
            self.proc.wait()
            self._err.close()
            raise AssertionError(
                f"`vfleet {' '.join(self.args)}` did not exit within {timeout:g} s; stderr: {self.stderr()[-2000:]}"
            )
        self._err.close()
        self.lines.wait(lambda items: items and items[-1].get("ev") == "eof", 10, "vfleet's stdout to close")
        return int(self.proc.returncode)

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def stdout(self) -> str:
        return "".join(i.get("_raw", "") for i in self.lines.items)


def run_vfleet(*args: str, stderr_file: Path, timeout: float = 60) -> tuple[int, str, str]:
    """Run to the end; returns exit status, stdout (raw text) and stderr."""
    try:
        proc = subprocess.run([sys.executable, "-m", "vfleet", *args], capture_output=True, env=ENV, cwd=ROOT,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode("utf-8", "replace")
        raise AssertionError(f"`vfleet {' '.join(args)}` did not exit within {timeout:g} s; stderr: {err[-2000:]}") from None
    stderr_file.write_bytes(proc.stderr)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


# -- /proc ---------------------------------------------------------------------------


def threads(pid: int) -> int:
    return _status_field(pid, "Threads")


def rss_kib(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def _status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def descendants(pid: int) -> list[int]:
    """Every live (non-zombie) process below pid: the `ssh` children libvirt starts, say."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def sample(pid: int) -> dict[str, int]:
    return {"threads": threads(pid), "sockets": sockets(pid), "children": len(descendants(pid)),
            "rss_kib": rss_kib(pid)}


# -- `top --batch` frames ----------------------------------------------------------------


def stale_healthy(frames: list[dict[str, Any]], names: tuple[str, ...] = HEALTHY, skip: int = 3) -> list[str]:
    """Frames (after the first `skip`) where a healthy host was not up with fresh data."""
    bad = []
    for frame in frames[skip:]:
        for host in frame["hosts"]:
            if host["name"] in names and (host["status"] != "up" or (host["data_age_s"] or 0) >= FRESH):
                bad.append(f"frame {frame['iteration']}: {host['name']} {host['status']} age {host['data_age_s']}")
    return bad
