"""A stateful Xen dom0 for the fault suite, speaking exactly the recorded xl/xentop formats.

The replaying XenHost of sshhost.py follows one recorded transcript, so it knows only
the recorded domains and commands. Fault cases need more: many guests for bulk actions,
names such as `-f` or ones carrying escape sequences, and actions in any order. This
host keeps a table of domains and prints it with the printf formats of tools/xl and
tools/xentop; the header lines, Domain-0's figures and `xl info` are the recorded ones
(tests/fixtures/xen-recorded/dom0-session.txt), and `check_formats` proves at start that
our formats reproduce the recorded rows byte for byte.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field

from sshhost import XEN_SESSION, Answer, Shell, load_session, uuid_of, xl_list_verbose

XL_ROW = "%-40s %5d %5d %5d     %s %9.1f"  # tools/xl/xl_list.c list_domains()
XENTOP_ROW = "%10.10s %6s %10d %6.1f %10d %6.1f %10d %9.1f %5d %4d %8d %8d %4d %8d %8d %8d %10d %10d %4d"
INVALID = "{name} is an invalid domain identifier (rc=-6)\n"  # recorded: `xl pause nosuchdom`
NO_CONFIG = "Parsing config from {path}\nFailed to read config file {path}: No such file or directory\n"
_RECORDED_XL_ROW = "tiny                                         1   128     1     r-----       0.3"
_RECORDED_XENTOP_ROW = (
    "      tiny --b---          7    0.0     131072    6.3     132096       6.3     1    0        0        0"
    "    0        0        0        0          0          0    0"
)


@dataclass
class Guest:
    name: str
    domid: int
    paused: bool = False
    mem_mib: int = 128
    vcpus: int = 1
    cpu_base: float = 7.0  # seconds of CPU at `since`
    since: float = field(default_factory=time.monotonic)

    def cpu_seconds(self, now: float) -> float:
        # A running guest burns ~5 % of a CPU, like the recorded idle busybox domU.
        return self.cpu_base if self.paused else self.cpu_base + 0.05 * (now - self.since)

    def set_paused(self, paused: bool, now: float) -> None:
        self.cpu_base, self.since, self.paused = self.cpu_seconds(now), now, paused


def _recorded(command: str) -> str:
    return next(b.output for b in load_session(XEN_SESSION) if b.command == command)


def check_formats() -> None:
    """Our printf formats must give the recorded rows, or every fault case tests a fiction."""
    ours = XL_ROW % ("tiny", 1, 128, 1, "r-----", 0.3)
    top = XENTOP_ROW % ("tiny", "--b---", 7, 0.0, 131072, 6.3, 132096, 6.3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert ours == _RECORDED_XL_ROW, (ours, _RECORDED_XL_ROW)
    assert top == _RECORDED_XENTOP_ROW, (top, _RECORDED_XENTOP_ROW)
    session = XEN_SESSION.read_text()
    assert _RECORDED_XL_ROW in session and _RECORDED_XENTOP_ROW in session


class XlDom0:
    """`xl info`, `xl list`, `xentop -b -i 2 -d 1`, `ls -1 DIR` and the lifecycle verbs."""

    def __init__(self, guests: list[str], config_dir: str = "/etc/xen") -> None:
        check_formats()
        self.info = _recorded("xl info")
        recorded_list = _recorded("xl list").splitlines()
        recorded_top = _recorded("xentop -b -i 2 -d 1").splitlines()
        self.list_header, self.dom0_row = recorded_list[0], recorded_list[1]
        self.top_header, self.dom0_top = recorded_top[0], recorded_top[1]
        self.config_dir = config_dir.rstrip("/")
        self.configs = set(guests)
        self.guests = {name: Guest(name, domid) for domid, name in enumerate(guests, start=1)}
        self.next_id = len(guests) + 1
        self.shell = Shell(self.answer)
        self.overflow = False  # serve a CPU time too large for a float (a malformed counter)

    async def run(self, command: str) -> Answer:
        return await self.shell.run(command)

    def xl_list(self) -> str:
        now = time.monotonic()
        rows = [self.list_header, self.dom0_row]
        for g in self.guests.values():
            flags = "--p---" if g.paused else "-b----"
            line = XL_ROW % (g.name, g.domid, g.mem_mib, g.vcpus, flags, g.cpu_seconds(now))
            if self.overflow:
                line = re.sub(r"\d+\.\d$", "9" * 400 + ".0", line)
            rows.append(line)
        return "\n".join(rows) + "\n"

    def xentop(self) -> str:
        now = time.monotonic()
        block = [self.top_header, self.dom0_top]
        for g in self.guests.values():
            state = "----p-" if g.paused else "--b---"
            block.append(
                XENTOP_ROW
                % (g.name, state, int(g.cpu_seconds(now)), 0.0 if g.paused else 5.0, g.mem_mib * 1024, 6.3,
                   g.mem_mib * 1024 + 1024, 6.3, g.vcpus, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            )
        return "\n".join(block * 2) + "\n"  # `-i 2`: two blocks

    async def answer(self, command: str) -> Answer:
        words = shlex.split(command)
        if command == "xl info":
            return self.info, "", 0
        if command == "xl list":
            return self.xl_list(), "", 0
        if command == "xl list -v":
            return xl_list_verbose(self.xl_list(), uuid_of({})), "", 0
        if command.startswith("xentop -b"):
            return self.xentop(), "", 0
        if words[:2] == ["ls", "-1"]:
            return "".join(f"{name}.cfg\n" for name in sorted(self.configs)), "", 0
        if len(words) >= 3 and words[0] == "xl":
            return self.action(words[1], words[2:])
        return "", f"sh: 1: {words[0] if words else command}: not found\n", 127

    def action(self, verb: str, args: list[str]) -> Answer:
        # xl parses options with getopt: a name starting with `-` is an option unless after `--`.
        if args[0] == "--":
            args = args[1:]
        elif args[0].startswith("-"):
            return "", f"xl: invalid option -- '{args[0][1:2]}'\nUsage: xl [-vf] {verb} <Domain>\n", 2
        target = args[0]
        now = time.monotonic()
        if verb == "create":
            name = target.rsplit("/", 1)[-1].removesuffix(".cfg")
            if name not in self.configs:
                return "", NO_CONFIG.format(path=target), 1
            if name not in self.guests:
                self.guests[name] = Guest(name, self.next_id, cpu_base=0.0)
                self.next_id += 1
            return "", f"Parsing config from {target}\n", 0
        guest = self.guests.get(target)
        if guest is None:
            return "", INVALID.format(name=target), 1
        if verb in ("pause", "unpause"):
            guest.set_paused(verb == "pause", now)
            return "", "", 0
        if verb in ("shutdown", "destroy"):
            del self.guests[target]
            chatter = f"Shutting down domain {guest.domid}\n" if verb == "shutdown" else ""
            return "", chatter, 0
        if verb == "reboot":
            guest.domid, self.next_id = self.next_id, self.next_id + 1
            return "", f"Rebooting domain {guest.domid}\n", 0
        return "", f"xl: unknown command '{verb}'\n", 1
