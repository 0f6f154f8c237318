"""xen_xl driver: a Xen dom0 with the xl toolstack, over SSH.

A poll is one command line (one channel, one round trip): `xl list -v` for states
and UUIDs, `xl uptime`, xentop for counters (its last block: the first one's CPU(%)
is always 0.0; with -f for full names where `xentop -h` offers it, which connect
asks in the same round trip as `xl info`), xl info for host facts and the config
directory for domains that are off. Options: config_dir (default /etc/xen), where
`start` finds NAME.cfg.

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
from vfleet.core.errors import ActionFailed, DomainNotFound, GarbledOutput
from vfleet.core.models import ActionResult, DomainRef, HostConfig, HostFacts, HostSnapshot, PowerState, Verb
from vfleet.drivers.base import Capability, Driver
from vfleet.drivers.ssh.batch import SEPARATOR, join, split_sections
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
    parse_xl_uptime,
    xentop_has_full_names,
    xl_power_state,
)

XENTOP = "xentop -b -i 2 -d 1"
XENTOP_FULL_NAMES = "xentop -b -f -i 2 -d 1"
# `xl uptime` skips a domain whose start time it cannot read (one being built or torn down)
# with a libxl error on stderr (Xen 4.17: exit 0); should it fail, the whole lines it
# printed still count, the others' uptime is unknown, and the poll goes on.
XL_UPTIME = "xl uptime 2>/dev/null"
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
        self.full_names = False  # xentop -f: asked at connect (`xentop -h`), dropped if it fails

    @property
    def poll_command(self) -> str:
        xentop = XENTOP_FULL_NAMES if self.full_names else XENTOP
        return join(["xl list -v", XL_UPTIME, xentop, "xl info", f"ls -1 {shlex.quote(self.config_dir)} 2>/dev/null"])

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        await self.ssh.connect(deadline=deadline)
        return await self._facts(deadline)

    async def _facts(self, deadline: float) -> HostFacts:
        # One round trip: the facts, and whether this xentop prints full names (-f, Xen 4.3+).
        result = await self.ssh.run(join(["xl info", "xentop -h 2>/dev/null"]), deadline=deadline)
        if SEPARATOR not in result.stdout:  # the shell itself failed (no sh, a forced command)
            raise_for(self.host, CommandResult("xl info", result.exit_status, result.stdout, result.stderr))
        (status, info), (_, usage) = split_sections(result.stdout, 2, self.host)
        raise_for(self.host, CommandResult("xl info", status, info, result.stderr))
        self.full_names = xentop_has_full_names(usage)
        return parse_xl_info(info, self.host)

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
        full_names = self.full_names
        result = await self.ssh.run(self.poll_command, deadline=self.due(deadline))
        taken_at = time.monotonic()
        listing, uptime, top_text, info, configs = split_sections(result.stdout, 5, self.host)
        xentop = XENTOP_FULL_NAMES if full_names else XENTOP
        for (status, _text), name in ((listing, "xl list -v"), (top_text, xentop), (info, "xl info")):
            if status != 0:
                if name == XENTOP_FULL_NAMES:
                    self.full_names = False  # it said it had -f, but refused it: the next poll goes without
                detail = first_line(result.stderr) or "no message"
                raise ActionFailed(self.host, f"`{name}` exited with status {status}: {detail}")
        if result.stderr.strip():
            raise ActionFailed(self.host, f"poll wrote to stderr: {first_line(result.stderr)}")
        rows = parse_xl_list(listing[1], self.host)
        top = parse_xentop(top_text[1], self.host)
        facts = parse_xl_info(info[1], self.host)
        configured = config_names(configs[1]) if configs[0] == 0 else []
        domains = build_domains(
            rows, top, configured, taken_at, full_names=full_names, uptimes=self._uptimes(*uptime)
        )
        return HostSnapshot(self.host, taken_at, domains, facts)

    def _uptimes(self, status: int, text: str) -> dict[int, tuple[str, int]]:
        """What `xl uptime` printed; after a failure (see XL_UPTIME), the whole lines it printed."""
        if status == 0:
            return parse_xl_uptime(text, self.host)
        whole = text[: text.rfind("\n") + 1]
        try:
            return parse_xl_uptime(whole, self.host) if whole.strip() else {}
        except GarbledOutput:
            return {}

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
