"""An in-process SSH test host: a real asyncssh server on 127.0.0.1 with real host
keys and public-key auth, answering the drivers' commands from recorded outputs.

XenHost replays the real Xen 4.17 session in tests/fixtures/xen-recorded/dom0-session.txt:
it keeps a position in the transcript, so after `xl pause tiny` the next `xl list`
is the one the real dom0 printed after that command. A tiny shell splits command
lines on `;`, understands `echo ... $?` and drops `2>/dev/null`.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncssh

from vfleet.core.models import HostConfig, SshSettings
from vfleet.drivers.ssh.transport import PGID_PREFIX

ROOT = Path(__file__).resolve().parent.parent
# A copy of ../shared/fixtures/xen: real outputs of a Xen 4.17 dom0 (see its README).
XEN_SESSION = Path(__file__).parent / "fixtures" / "xen-recorded" / "dom0-session.txt"
ESXI_FIXTURES = Path(__file__).parent / "fixtures" / "esxi"
# What xl writes to stderr (fprintf(stderr, ...) in tools/xl); everything else is stdout.
_XL_STDERR = re.compile(r"^(Parsing config from |Shutting down domain |Rebooting domain |Waiting for |Domain \d+ has been)")

Answer = tuple[str, str, int]  # stdout, stderr, exit status


@dataclass(frozen=True)
class Block:
    command: str  # normalised: no `time`, no `-w`, shell-tokenised and re-joined
    output: str
    rc: int


def words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";<>&|")
    lexer.whitespace_split = True
    return list(lexer)


def normalise(command: str) -> str:
    tokens = [t for t in words(command) if t not in ("time", "-w")]
    return " ".join(tokens)


def xl_operands(command: str) -> str:
    """What xl's getopt_long makes of a command line: `xl pause -- NAME` is `xl pause NAME`,
    `xl create -f PATH` is `xl create PATH` (the recorded session used the short forms)."""
    tokens = words(command)
    if len(tokens) >= 3 and tokens[0] == "xl" and (tokens[2] == "--" or tokens[1:3] == ["create", "-f"]):
        tokens = tokens[:2] + tokens[3:]
    return " ".join(tokens)


def load_session(path: Path = XEN_SESSION) -> list[Block]:
    blocks = []
    for chunk in re.split(r"^### dom0\$ ", path.read_text(), flags=re.M)[1:]:
        command, _, rest = chunk.partition("\n")
        output, _, rc = rest.rpartition("[rc=")
        output = re.sub(r"\nreal\t.*", "\n", output, flags=re.S)  # the shell's `time` report
        blocks.append(Block(normalise(command), output.rstrip("\n") + "\n" if output.strip() else "", int(rc.split("]")[0])))
    return blocks


class Backend(Protocol):
    async def run(self, command: str) -> Answer: ...


class Shell:
    """Just enough sh for the drivers' command lines."""

    PID = 4242  # what `$$` expands to

    def __init__(self, answer: Callable[[str], Awaitable[Answer]], join: Callable[[list[str]], str] = " ".join) -> None:
        self.answer = answer
        self.join = join  # shlex.join keeps quoted words with spaces whole for hosts that parse arguments
        self.lines: list[str] = []  # every command line received, in order, without the transport's pid echo
        self.kills: list[str] = []  # kill commands of abandoned commands

    async def run(self, command: str) -> Answer:
        if command.startswith("kill -TERM -"):
            self.kills.append(command)
            return "", "", 0
        self.lines.append(command.removeprefix(PGID_PREFIX))
        out, err, status = [], [], 0
        parts: list[list[str]] = [[]]
        for token in words(command):
            if token == ";":
                parts.append([])
            else:
                parts[-1].append(token)
        for part in filter(None, parts):
            quiet = part[-2:] == [">", "/dev/null"] and len(part) > 2 and part[-3] == "2"
            if quiet:
                part = part[:-3]
            if part[0] == "echo":
                values = {"$?": str(status), "$$": str(self.PID)}
                out.append(" ".join(values.get(w, w) for w in part[1:]) + "\n")
                continue
            o, e, status = await self.answer(self.join(part))
            out.append(o)
            if not quiet:
                err.append(e)
        return "".join(out), "".join(err), status


@dataclass
class XenHost:
    """One dom0, replaying the real session; tests may override or hang commands."""

    blocks: list[Block] = field(default_factory=load_session)
    config_files: tuple[str, ...] = ("tiny.cfg", "tinynet.cfg")
    position: int = 0
    overrides: dict[str, Answer] = field(default_factory=dict)
    hang: str | None = None  # a command that never answers
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.shell = Shell(self.answer)

    async def run(self, command: str) -> Answer:
        return await self.shell.run(command)

    async def answer(self, command: str) -> Answer:
        if command in self.overrides:
            return self.overrides[command]
        command = xl_operands(command)
        if self.hang is not None and command.startswith(self.hang):
            await asyncio.Event().wait()  # cancelled when the client closes the channel
        if command.startswith("ls -1 "):
            return "".join(f"{name}\n" for name in self.config_files), "", 0
        if command == "xl list":
            return self._xl_list(), "", 0
        if command.startswith("xentop -b"):
            return self._xentop(), "", 0
        if command == "xl info":
            return self._after(lambda b: b.command == "xl info").output, "", 0
        return self._action(command)

    def _after(self, want: Callable[[Block], bool]) -> Block:
        """The first matching block after the current position, else the last one before it."""
        later = [b for b in self.blocks[self.position + 1:] if want(b)]
        if later:
            return later[0]
        return [b for b in self.blocks[: self.position + 1] if want(b)][-1]

    def _xl_list(self) -> str:
        block = self._after(lambda b: b.command == "xl list" or re.fullmatch(r"xl list [\w-]+", b.command) is not None)
        if block.command == "xl list":
            return block.output
        # `xl list NAME` after the last action: merge its row into the full list before it.
        index = self.blocks.index(block)
        full = [b for b in self.blocks[:index] if b.command == "xl list"][-1].output.splitlines()
        row = block.output.splitlines()[1]
        name = row.split()[0]
        merged = [row if line.split()[0] == name else line for line in full]
        return "\n".join(merged) + "\n"

    def _xentop(self) -> str:
        block = self._after(lambda b: b.command.startswith("xentop -b"))
        if "-i 2" in block.command:
            return block.output
        return block.output * 2  # a one-iteration capture: serve it as both blocks

    def _action(self, command: str) -> Answer:
        matches = [i for i, b in enumerate(self.blocks) if b.command == command]
        if not matches:
            return "", f"sh: 1: {command.split()[0]}: not found\n", 127
        later = [i for i in matches if i > self.position]
        index = later[0] if later else matches[-1]
        block = self.blocks[index]
        if block.rc != 0:
            return "", block.output, block.rc  # an error changes nothing
        self.position = index
        err = "".join(line for line in block.output.splitlines(keepends=True) if _XL_STDERR.match(line))
        out = "".join(line for line in block.output.splitlines(keepends=True) if not _XL_STDERR.match(line))
        return out, err, 0


@dataclass
class Keys:
    host: asyncssh.SSHKey
    other_host: asyncssh.SSHKey
    client: asyncssh.SSHKey
    stranger: asyncssh.SSHKey  # a client key the server does not authorise

    @classmethod
    def generate(cls) -> Keys:
        return cls(*(asyncssh.generate_private_key("ssh-ed25519") for _ in range(4)))


class SshTestServer:
    """A real SSH server on 127.0.0.1:random port; counts connections.

    `floods` maps a command to a number of bytes of stdout streamed as the client reads
    them (never built in memory); `flood_sent` counts what was written. A backend's
    negative exit status -N ends the command with signal N instead (like a kill -N).
    """

    def __init__(self, backend: Backend, keys: Keys, directory: Path) -> None:
        self.backend, self.keys, self.directory = backend, keys, directory
        self.floods: dict[str, int] = {}
        # command -> an interactive handler (a console): it gets the process, PTY and all
        self.interactive: dict[str, Callable[[asyncssh.SSHServerProcess[str]], Awaitable[None]]] = {}
        self.flood_sent = 0
        self.connections = 0
        self.open: list[asyncssh.SSHServerConnection] = []
        self.port = 0
        self._server: asyncssh.SSHAcceptor | None = None

    async def start(self) -> SshTestServer:
        outer = self

        class _Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                outer.connections += 1
                outer.open.append(conn)

        authorized = asyncssh.import_authorized_keys(self.keys.client.export_public_key().decode())
        self._server = await asyncssh.create_server(
            _Server, "127.0.0.1", 0, server_host_keys=[self.keys.host], authorized_client_keys=authorized,
            process_factory=self._serve, encoding="utf-8",
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.key_file = self._write("client_key", self.keys.client.export_private_key().decode())
        self.stranger_key_file = self._write("stranger_key", self.keys.stranger.export_private_key().decode())
        self.known_hosts = self._write("known_hosts", self.known_line(self.keys.host))
        self.wrong_known_hosts = self._write("wrong_known_hosts", self.known_line(self.keys.other_host))
        self.other_known_hosts = self._write("other_known_hosts", f"[127.0.0.1]:1 {_public(self.keys.host)}\n")
        return self

    def known_line(self, key: asyncssh.SSHKey) -> str:
        return f"[127.0.0.1]:{self.port} {_public(key)}\n"

    def _write(self, name: str, text: str) -> str:
        path = self.directory / f"{name}-{self.port}"
        path.write_text(text)
        path.chmod(0o600)
        return str(path)

    async def _serve(self, process: asyncssh.SSHServerProcess[str]) -> None:
        handler = self.interactive.get(process.command or "")
        if handler is not None:
            await handler(process)
            return
        flood = self.floods.get((process.command or "").removeprefix(PGID_PREFIX))
        if flood is not None:
            await self._flood(process, flood)
            return
        task = asyncio.ensure_future(self.backend.run(process.command or ""))
        closed = asyncio.ensure_future(process.channel.wait_closed())
        done, _ = await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:  # the client gave up (timeout): stop the "command"
            task.cancel()
            released = getattr(self.backend, "released", None)
            if isinstance(released, asyncio.Event):
                released.set()
            return
        closed.cancel()
        out, err, status = task.result()
        process.stdout.write(out)
        process.stderr.write(err)
        if status < 0:
            process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        else:
            process.exit(status)

    async def _flood(self, process: asyncssh.SSHServerProcess[str], size: int) -> None:
        line = "x" * 1023 + "\n"
        block = line * 64
        try:
            while self.flood_sent < size:
                process.stdout.write(block)
                self.flood_sent += len(block)
                await process.stdout.drain()  # flow control: only as fast as the client reads
            process.exit(0)
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            pass  # the client stopped reading and closed the channel

    def config(self, name: str = "xen1", driver: str = "xen_xl", **ssh: object) -> HostConfig:
        settings = {"agent": False, "key_file": self.key_file, "known_hosts": self.known_hosts, "config": False}
        settings.update(ssh)
        return HostConfig(
            name=name, driver=driver, address="127.0.0.1", port=self.port, user="root",
            ssh=SshSettings(**settings),  # type: ignore[arg-type]
            poll_interval=0.3, connect_timeout=5.0, call_timeout=3.0,
        )

    async def drop_connections(self) -> None:
        for conn in self.open:
            conn.close()
            await conn.wait_closed()
        self.open.clear()

    async def close(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


@dataclass
class EsxiHost:
    """A free-license ESXi host answering from tests/fixtures/esxi (hand-written, see its README)."""

    power: dict[int, str] = field(default_factory=lambda: {1: "poweredOn", 2: "poweredOff", 3: "poweredOn",
                                                            4: "suspended"})
    wedged: set[int] = field(default_factory=set)  # power.off fails and a soft kill is ignored
    broken_disk: set[int] = field(default_factory=lambda: {2})  # power.on fails with a fault block
    overrides: dict[str, Answer] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # command prefix -> seconds a slow host takes
    snapshots: dict[int, list[EsxiSnap]] = field(default_factory=dict)  # vmid -> its snapshots, oldest first
    current: dict[int, int] = field(default_factory=dict)  # vmid -> current snapshot id
    next_snapshot: int = 1
    # What `esxtop -b` prints (None: not installed): a real capture, see tests/fixtures/esxi/README.md.
    esxtop: str | None = field(default_factory=lambda: (ESXI_FIXTURES / "esxtop-batch.csv").read_text())
    esxtop_runs: list[str] = field(default_factory=list)  # the esxtop command lines, pipe included

    def __post_init__(self) -> None:
        self.shell = Shell(self.answer, join=shlex.join)

    async def run(self, command: str) -> Answer:
        return await self.shell.run(command)

    def fixture(self, name: str) -> str:
        return (ESXI_FIXTURES / name).read_text()

    def summary(self, vmid: int) -> str:
        text = self.fixture(f"summary-{vmid}.txt")
        return re.sub(r'powerState = "\w+"', f'powerState = "{self.power[vmid]}"', text)

    def name(self, vmid: int) -> str:
        found = re.search(r'^      name = "(.*)",$', self.fixture(f"summary-{vmid}.txt"), flags=re.M)
        assert found
        return found.group(1)

    def processes(self) -> str:
        return "".join(
            f"{self.name(v)}\n   World ID: {2100000 + v}\n   Process ID: 0\n   VMX Cartel ID: {2099999 + v}\n"
            f"   Display Name: {self.name(v)}\n   Config File: /vmfs/volumes/ds1/{self.name(v)}/{self.name(v)}.vmx\n\n"
            for v, state in self.power.items() if state == "poweredOn"
        )

    async def answer(self, command: str) -> Answer:
        for prefix, seconds in self.delays.items():
            if command.startswith(prefix):
                await asyncio.sleep(seconds)  # the host is slow to answer (not the test waiting)
        if command in self.overrides:
            return self.overrides[command]
        facts = {"esxcli system version get": "version.txt", "esxcli system hostname get": "hostname.txt",
                 "esxcli hardware cpu global get": "cpu.txt", "esxcli hardware memory get": "memory.txt",
                 "vim-cmd vmsvc/getallvms": "getallvms.txt"}
        if command in facts:
            return self.fixture(facts[command]), "", 0
        if command.startswith("TERM=xterm esxtop "):
            return await self._esxtop(command)
        if command == "esxcli vm process list":
            return self.processes(), "", 0
        kill = re.fullmatch(r"esxcli vm process kill --type (\w+) --world-id (\d+)", command)
        if kill:
            vmid = int(kill.group(2)) - 2100000
            if vmid not in self.power or self.power[vmid] != "poweredOn":
                return f"Unable to find world {kill.group(2)}\n", "", 1
            if kill.group(1) != "soft" or vmid not in self.wedged:
                self.power[vmid] = "poweredOff"
            return "", "", 0
        if command.startswith("vim-cmd vmsvc/snapshot.") or command.startswith("vim-cmd vmsvc/get.snapshotinfo"):
            return self._snapshot(shlex.split(command))
        op = re.fullmatch(r"vim-cmd vmsvc/([\w.]+) (\d+)", command)
        if op is None:
            return "", f"sh: {command.split()[0]}: not found\n", 127
        verb, vmid = op.group(1), int(op.group(2))
        if vmid not in self.power:
            return self.fixture("unknown-vm.txt").replace('"99"', f'"{vmid}"'), "", 1
        if verb == "get.summary":
            return self.summary(vmid), "", 0
        return self._power(verb, vmid)

    async def _esxtop(self, command: str) -> Answer:
        """`esxtop ... | awk PROGRAM`: the driver's filter runs here on the capture, with busybox
        awk (ESXi's) where installed, else the system's awk."""
        self.esxtop_runs.append(command)
        missing = "" if self.esxtop is not None else "sh: esxtop: not found\n"
        stages = pipeline(command)
        out, err, status = await run_filters(stages[1:], self.esxtop or "")
        return out, missing + err, status

    def _power(self, verb: str, vmid: int) -> Answer:
        state = self.power[vmid]
        if verb == "power.on":
            if vmid in self.broken_disk:
                return self.fixture("power-on-fault.txt"), "", 1
            if state == "poweredOn":
                return _invalid("Powering on VM:\nPower on failed", "poweredOff", state), "", 1
            self.power[vmid] = "poweredOn"
            return "Powering on VM:\n", "", 0
        if verb == "power.off":
            if state == "poweredOff":
                return self.fixture("power-off-invalid-state.txt"), "", 1
            if vmid in self.wedged:
                return ("Powering off VM:\nPower off failed: (vim.fault.TaskInProgress) {\n"
                        "   faultCause = (vmodl.MethodFault) null,\n   faultMessage = (vmodl.LocalizableMessage) [],\n"
                        "   task = 'vim.Task:haTask-4-vim.VirtualMachine.powerOff-118',\n"
                        '   msg = "The operation is not allowed in the current state."\n}\n'), "", 1
            self.power[vmid] = "poweredOff"
            return "Powering off VM:\n", "", 0
        if state != "poweredOn":
            heads = {"power.shutdown": "Shutdown guest failed", "power.reboot": "Reboot guest failed",
                     "power.reset": "Reset failed", "power.suspend": "Suspend failed"}
            return _invalid(heads.get(verb, "Operation failed"), "poweredOn", state), "", 1
        if verb == "power.shutdown":
            self.power[vmid] = "poweredOff"
        elif verb == "power.suspend":
            self.power[vmid] = "suspended"
            return "Suspending VM:\n", "", 0
        return "", "", 0

    # vim-cmd's snapshot.* and get.snapshotinfo, in the layout real hosts print (tests/fixtures/esxi/README.md)
    def _tree(self, vmid: int, head: str) -> str:
        snaps = self.snapshots.get(vmid, [])
        if not snaps:
            return f"{head}:\n"
        lines = [f"{head}:", "|-ROOT"]

        def walk(parent: int | None, depth: int) -> None:
            children = [s for s in snaps if s.parent == parent]
            for index, snap in enumerate(children):
                dashes = "--" * depth
                if depth > 1 or index > 0:
                    lines.append(f"{'--' * (depth - 1)}|-{'CHILD' if depth > 1 else 'ROOT'}")
                lines.extend([f"{dashes}Snapshot Name        : {snap.name}", f"{dashes}Snapshot Id        : {snap.id}",
                              f"{dashes}Snapshot Desciption  : {snap.description}",
                              f"{dashes}Snapshot Created On  : {snap.created}",
                              f"{dashes}Snapshot State       : {snap.state}"])
                walk(snap.id, depth + 1)

        walk(None, 1)
        return "\n".join(lines) + "\n"

    def _info(self, vmid: int) -> str:
        snaps = self.snapshots.get(vmid, [])
        if not snaps:
            return "(vim.vm.SnapshotInfo) null\n"
        roots = "".join(
            f"      (vim.vm.SnapshotTree) {{\n         snapshot = 'vim.vm.Snapshot:{vmid}-snapshot-{s.id}',\n"
            f"         vm = 'vim.VirtualMachine:{vmid}',\n         name = \"{s.name}\",\n         id = {s.id},\n"
            f"         childSnapshotList = <unset>\n      }},\n"
            for s in snaps if s.parent is None
        )
        current = self.current.get(vmid)
        return (f"(vim.vm.SnapshotInfo) {{\n   currentSnapshot = 'vim.vm.Snapshot:{vmid}-snapshot-{current}',\n"
                f"   rootSnapshotList = (vim.vm.SnapshotTree) [\n{roots}   ]\n}}\n")

    def _snapshot(self, args: list[str]) -> Answer:
        verb, vmid = args[1].removeprefix("vmsvc/"), int(args[2])
        if vmid not in self.power:
            return self.fixture("unknown-vm.txt").replace('"99"', f'"{vmid}"'), "", 1
        snaps = self.snapshots.setdefault(vmid, [])
        if verb == "get.snapshotinfo":
            return self._info(vmid), "", 0
        if verb == "snapshot.get":
            return self._tree(vmid, "Get Snapshot"), "", 0
        if verb == "snapshot.create":
            name, description, memory = args[3], args[4], args[5] == "1"
            state = "powered on" if memory and self.power[vmid] == "poweredOn" else "powered off"
            snap = EsxiSnap(self.next_snapshot, name, description, _esxi_time(), state, self.current.get(vmid))
            self.next_snapshot += 1
            snaps.append(snap)
            self.current[vmid] = snap.id
            return "Create Snapshot:\n", "", 0
        found = [s for s in snaps if s.id == int(args[3])]
        if not found:
            return (f"{verb.split('.')[1].capitalize()} Snapshot:\nSnapshot not found\n"), "", 1
        snap = found[0]
        if verb == "snapshot.revert":
            self.current[vmid] = snap.id
            self.power[vmid] = "poweredOn" if snap.state == "powered on" else "poweredOff"
            return self._tree(vmid, "Revert Snapshot"), "", 0
        for child in snaps:  # remove: the children move up to its parent
            if child.parent == snap.id:
                child.parent = snap.parent
        snaps.remove(snap)
        if self.current.get(vmid) == snap.id:
            self.current.pop(vmid)
            if snap.parent is not None:
                self.current[vmid] = snap.parent
        return self._tree(vmid, "Remove Snapshot"), "", 0


def pipeline(command: str) -> list[list[str]]:
    """`a x | b y` -> [["a", "x"], ["b", "y"]] (quoted words stay whole)."""
    stages: list[list[str]] = [[]]
    for word in shlex.split(command):
        if word == "|":
            stages.append([])
        else:
            stages[-1].append(word)
    return stages


async def run_filters(stages: list[list[str]], text: str) -> Answer:
    """Run the filter stages of a host pipeline on `text` (awk: as busybox where installed, as on ESXi)."""
    data, errors = text.encode(), ""
    for stage in stages:
        if stage[0] != "awk":
            return "", f"sh: {stage[0]}: not found\n", 127
        argv = ["busybox", *stage] if shutil.which("busybox") else stage
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        data, err = await process.communicate(data)
        errors += err.decode()
        if process.returncode:
            return data.decode(), errors, process.returncode
    return data.decode(), errors, 0


@dataclass
class EsxiSnap:
    id: int
    name: str
    description: str
    created: str  # as vim-cmd prints it: M/D/YYYY H:MM:SS on the host's (UTC) clock
    state: str  # "powered on" (taken with the memory of a running VM) or "powered off"
    parent: int | None


def _esxi_time() -> str:
    now = time.gmtime()
    return f"{now.tm_mon}/{now.tm_mday}/{now.tm_year} {now.tm_hour}:{now.tm_min:02d}:{now.tm_sec:02d}"


def _invalid(head: str, requested: str, existing: str) -> str:
    return (f"{head}: (vim.fault.InvalidPowerState) {{\n   faultCause = (vmodl.MethodFault) null,\n"
            f"   faultMessage = (vmodl.LocalizableMessage) [],\n   requestedState = \"{requested}\",\n"
            f"   existingState = \"{existing}\",\n"
            f'   msg = "The attempted operation cannot be performed in the current state ({existing})."\n}}\n')
