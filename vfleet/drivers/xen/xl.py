"""xen_xl driver: a Xen dom0 with the xl toolstack, over SSH.

A poll is one command line (one channel, one round trip): xl list for states,
xentop for counters (its last block: the first one's CPU(%) is always 0.0), xl
info for host facts and the config directory for domains that are off. Options:
config_dir (default /etc/xen), where `start` finds NAME.cfg.

Domain names reach xl as operands, never as options: `xl pause -- NAME` (xl parses its
arguments with getopt_long, which ends options at `--`) and `xl create -f PATH` (a
path holding `=` would otherwise be read as a config override). xl reads an all-digit
name as a domain id, so such names are refused rather than risk acting on another domain.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import ActionFailed, DomainNotFound
from vfleet.core.models import ActionResult, DomainRef, HostConfig, HostFacts, HostSnapshot, PowerState, Verb
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.ssh.batch import join, split_sections
from vfleet.drivers.ssh.console import SshPtyConsole
from vfleet.drivers.ssh.record import COMMANDS_FILE, write_blocks
from vfleet.drivers.ssh.transport import MAX_OUTPUT, CommandResult, SshTransport, first_line, raise_for
from vfleet.drivers.xen import UNSUPPORTED
from vfleet.drivers.xen.parse import (
    NOT_RUNNING,
    build_domains,
    config_names,
    parse_xentop,
    parse_xl_info,
    parse_xl_list,
    xl_power_state,
)

XENTOP = "xentop -b -i 2 -d 1"
# What xl prints on stderr when all is well (progress, not trouble).
_XL_CHATTER = re.compile(
    r"^(Parsing config from |Shutting down domain \d+|Rebooting domain \d+|Waiting for \d+ domains"
    r"|Domain \d+ has been shut down)"
)
_NO_DOMAIN = re.compile(r"is an invalid domain identifier")
_NO_CONFIG = re.compile(r"Failed to read config file")
_VERB_COMMANDS = {
    Verb.SHUTDOWN: "shutdown",
    Verb.REBOOT: "reboot",
    Verb.PAUSE: "pause",
    Verb.RESUME: "unpause",
    Verb.FORCE_OFF: "destroy",
}


class XenXlDriver(Driver):
    kind = "xen_xl"
    # No RESET: `xl trigger NAME reset` works for HVM guests only and has no real capture to test against.
    capabilities = frozenset(
        {
            Capability.START,
            Capability.SHUTDOWN,
            Capability.REBOOT,
            Capability.PAUSE,
            Capability.RESUME,
            Capability.FORCE_OFF,
            Capability.CONSOLE,
        }
    )
    unsupported = UNSUPPORTED
    max_output = MAX_OUTPUT  # bytes per command (the poll's four outputs together)

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self.ssh = SshTransport(config, max_output=self.max_output)
        config_dir = config.options.get("config_dir", "/etc/xen")
        self.config_dir = str(config_dir).rstrip("/") or "/"
        parts = ["xl list", XENTOP, "xl info", f"ls -1 {shlex.quote(self.config_dir)} 2>/dev/null"]
        self.poll_command = join(parts)

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        await self.ssh.connect(deadline=deadline)
        return await self._facts(deadline)

    async def _facts(self, deadline: float) -> HostFacts:
        result = await self.ssh.run_checked("xl info", deadline=deadline)
        return parse_xl_info(result.stdout, self.host)

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """What connect() reads for the host facts and one poll's command line, verbatim."""
        deadline = self.due(deadline)
        with self.ssh.recorded() as commands:
            await self._facts(deadline)
            await self.poll(deadline=deadline)
        return {COMMANDS_FILE: write_blocks(commands)}

    async def close(self) -> None:
        await self.ssh.close()

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        result = await self.ssh.run(self.poll_command, deadline=self.due(deadline))
        taken_at = time.monotonic()
        sections = split_sections(result.stdout, 4, self.host)
        names = ("xl list", XENTOP, "xl info")
        for (status, _text), name in zip(sections, names, strict=False):
            if status != 0:
                detail = first_line(result.stderr) or "no message"
                raise ActionFailed(self.host, f"`{name}` exited with status {status}: {detail}")
        if result.stderr.strip():
            raise ActionFailed(self.host, f"poll wrote to stderr: {first_line(result.stderr)}")
        rows = parse_xl_list(sections[0][1], self.host)
        top = parse_xentop(sections[1][1], self.host)
        facts = parse_xl_info(sections[2][1], self.host)
        configured = config_names(sections[3][1]) if sections[3][0] == 0 else []
        return HostSnapshot(self.host, taken_at, build_domains(rows, top, configured, taken_at), facts)

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        domain = target.name
        deadline = self.due(deadline)
        result = await self.ssh.run(self.action_command(verb, domain), deadline=deadline)
        self._check(result, verb, domain)
        state, raw = await self._state_of(domain, deadline)
        return ActionResult(self.host, domain, verb, ok=True, state_after=state, message=raw)

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        """`xl console -- NAME` in a PTY on the host's SSH connection; xl has no force or safe mode."""
        domain = target.name
        if domain.isdigit():
            raise ActionFailed(self.host, f"console {domain}: xl reads an all-digit name as a domain id")
        columns, lines = shutil.get_terminal_size()
        process = await self.ssh.open_terminal(
            f"xl console -- {shlex.quote(domain)}",
            term_type=os.environ.get("TERM") or "xterm",
            term_size=(columns, lines),
            deadline=self.due(deadline),
        )
        return SshPtyConsole(self.host, f"console of {domain}", process)

    def action_command(self, verb: Verb, domain: str) -> str:
        """The xl command line for `verb` on `domain`; the name can never become an option."""
        if verb is Verb.START:
            return f"xl create -f {shlex.quote(f'{self.config_dir}/{domain}.cfg')}"
        if domain.isdigit():
            raise ActionFailed(
                self.host,
                f"{verb.value} {domain}: xl reads an all-digit name as a domain id; "
                "rename the domain to act on it with vfleet",
            )
        return f"xl {_VERB_COMMANDS[verb]} -- {shlex.quote(domain)}"

    def _check(self, result: CommandResult, verb: Verb, domain: str) -> None:
        output = result.stderr + result.stdout
        if result.exit_status != 0 and _NO_DOMAIN.search(output):
            raise DomainNotFound(self.host, f"{verb.value} {domain}: no running domain of that name")
        if result.exit_status != 0 and _NO_CONFIG.search(output):
            raise DomainNotFound(
                self.host,
                f"start {domain}: no config file {self.config_dir}/{domain}.cfg "
                f"(set the host's config_dir option if the configs live elsewhere)",
            )
        raise_for(self.host, result, _XL_CHATTER)

    async def _state_of(self, domain: str, deadline: float) -> tuple[PowerState, str]:
        """Read the state back; a domain xl no longer lists is off."""
        result = await self.ssh.run_checked("xl list", deadline=deadline)
        for row in parse_xl_list(result.stdout, self.host):
            if row.name == domain:
                return xl_power_state(row.flags), row.flags
        return PowerState.OFF, NOT_RUNNING
