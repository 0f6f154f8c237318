"""esxi_ssh driver: free-license ESXi (its API is read-only) through vim-cmd over SSH.

A poll is two round trips: the VM ids (getallvms) with the running worlds, then
every get.summary in one command line; every SNAPSHOT_FACTS_EVERY polls (and right after
a snapshot operation) a third reads every VM's snapshot tree (snapshot.get), for the
snapshot count and age: vim-cmd starts a process per call on the host, so not every poll.
Disk and network rates and CPU contention come from esxtop (see esxtop.py), which needs
two samples 2 s apart: it runs on a channel of its own beside the polls (EsxtopSampler),
and a poll takes the newest finished sample without waiting for it (the first poll waits).
Force-off is `power.off`, and when that fails on a wedged VM, `esxcli vm process kill`
escalating soft -> hard -> force.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from dataclasses import replace

from vfleet.core.console import ConsoleStream
from vfleet.core.errors import (
    ActionFailed,
    DomainNotFound,
    HostUnreachable,
    NoConsole,
    UnsupportedAction,
    VFleetError,
)
from vfleet.core.models import (
    ActionParams,
    ActionResult,
    DomainRef,
    HostConfig,
    HostFacts,
    HostSnapshot,
    PowerState,
    SnapshotInfo,
    SnapshotParams,
    Verb,
)
from vfleet.drivers.base import LIFECYCLE, Capability, Driver
from vfleet.drivers.esxi import esxtop
from vfleet.drivers.esxi.parse import (
    POWER_STATES,
    UNKNOWN_VM,
    VmSummary,
    domain_from_summary,
    host_facts,
    parse_fault,
    parse_getallvms,
    parse_summary,
    world_ids,
)
from vfleet.drivers.esxi.sshsnap import (
    EsxiSnapshot,
    create_command,
    listing_commands,
    parse_snapshot_get,
    remove_command,
    revert_command,
)
from vfleet.drivers.ssh.batch import join, split_sections
from vfleet.drivers.ssh.record import COMMANDS_FILE, write_blocks
from vfleet.drivers.ssh.transport import MAX_OUTPUT, CommandResult, SshTransport, first_line, raise_for

log = logging.getLogger(__name__)

FACTS = (
    "esxcli system version get",
    "esxcli system hostname get",
    "esxcli hardware cpu global get",
    "esxcli hardware memory get",
)
_SKIPPED = re.compile(r"^Skipping invalid VM")
_NOT_FOUND = re.compile(r"\b(esxtop|awk): not found")
_POWER = {
    Verb.START: "power.on",
    Verb.RESUME: "power.on",  # a suspended VM resumes on power-on
    Verb.SHUTDOWN: "power.shutdown",  # needs VMware Tools in the guest
    Verb.REBOOT: "power.reboot",
    Verb.RESET: "power.reset",
    Verb.PAUSE: "power.suspend",  # ESXi has no pause: suspend to disk is the nearest
    Verb.SUSPEND: "power.suspend",
    Verb.FORCE_OFF: "power.off",
}
_TARGET = {
    Verb.START: "poweredOn",
    Verb.RESUME: "poweredOn",
    Verb.PAUSE: "suspended",
    Verb.SUSPEND: "suspended",
    Verb.FORCE_OFF: "poweredOff",
    Verb.SHUTDOWN: "poweredOff",
}
KILL_TYPES = ("soft", "hard", "force")
SNAPSHOT_FACTS_EVERY = 10  # the cadence libvirt uses too (bench/snapshot_facts.py)


ESXTOP_RUN_S = 3 * esxtop.DELAY_S + 10  # one esxtop run's budget: two samples, start-up and the filter
ESXTOP_MAX_AGE_S = 15.0  # an older sample is not shown as current: its fields go empty
ESXTOP_FIRST_WAIT_S = 8.0  # the first poll waits this long at most (a run: 2 s of samples, start-up, the filter)


def batch(commands: list[str]) -> str:
    return join(commands)


class EsxtopSampler:
    """esxtop runs beside the polls, one run at a time: each poll starts a run if none is
    in flight and takes the newest finished sample. Only the first poll waits for one.

    A failure leaves the esxtop fields empty and is logged once (again only when the
    reason changes); a host without esxtop is not asked again on this connection.
    """

    def __init__(self, ssh: SshTransport, host: str) -> None:
        self.ssh, self.host = ssh, host
        self.clock = time.monotonic  # a sample's age is read on this clock (tests move it)
        self.runs = 0  # runs started (tests count them)
        self._run: asyncio.Task[tuple[float, esxtop.EsxtopSample]] | None = None
        self._latest: tuple[float, esxtop.EsxtopSample] | None = None  # (when it finished, the sample)
        self._tried = False  # a run has finished (with a sample or not): polls stop waiting
        self._said: str | None = None  # the failure last reported
        self.missing = False

    async def sample(self, deadline: float) -> esxtop.EsxtopSample | None:
        if self.missing:
            return None
        self._harvest()
        if self._run is None:
            self._run = asyncio.get_running_loop().create_task(self._measure())
            self.runs += 1
        if not self._tried:  # the first poll waits, so one `vfleet status` shows these fields too
            wait = min(deadline - time.monotonic(), ESXTOP_FIRST_WAIT_S)
            await asyncio.wait({self._run}, timeout=max(0.0, wait))
            self._harvest()
        if self._latest is None or self.clock() - self._latest[0] > ESXTOP_MAX_AGE_S:
            return None
        return self._latest[1]

    async def _measure(self) -> tuple[float, esxtop.EsxtopSample]:
        result = await self.ssh.run(esxtop.command(), timeout=ESXTOP_RUN_S)
        missing = _NOT_FOUND.search(result.stderr)
        if missing is not None:  # busybox sh: "sh: esxtop: not found"
            self.missing = True
            raise ActionFailed(self.host, f"{missing.group(1)} is not on this host")
        if result.exit_status != 0:
            why = esxtop.why_failed(result.exit_status, result.stderr)
            detail = first_line(result.stderr)
            raise ActionFailed(self.host, why + (f": {detail}" if detail else ""))
        return self.clock(), esxtop.parse_esxtop(result.stdout, self.host)

    def _harvest(self) -> None:
        run = self._run
        if run is None or not run.done():
            return
        self._run, self._tried = None, True
        if run.cancelled():
            return
        exc = run.exception()
        if exc is None:
            self._latest = run.result()
            if self._said is not None:
                log.info("%s: esxtop answers again", self.host)
            self._said = None
            return
        if isinstance(exc, HostUnreachable):
            return  # the connection is gone: the poll says so
        reason = str(exc) if isinstance(exc, VFleetError) else f"{self.host}: esxtop: {type(exc).__name__}: {exc}"
        if reason != self._said:
            log.warning("%s (disk, network and contention stay empty)", reason)
            self._said = reason

    async def close(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.cancel()  # the transport stops the remote esxtop too
            await asyncio.wait({run})


class EsxiSshDriver(Driver):
    kind = "esxi_ssh"
    capabilities = LIFECYCLE | {Capability.SUSPEND, Capability.SNAPSHOT}
    unsupported = {Capability.MIGRATION: "vMotion needs vCenter; a single ESXi host has nowhere to move a VM to"}
    max_output = MAX_OUTPUT  # bytes per command; a poll's get.summary batch is about 4 KiB per VM

    def __init__(self, config: HostConfig, *, read_only: bool = False) -> None:
        super().__init__(config, read_only=read_only)
        self.ssh = SshTransport(config, max_output=self.max_output)
        self.worlds: dict[str, int] = {}  # display name -> world id, from the last listing
        self._snapshot_facts: dict[int, tuple[int, float | None]] = {}  # vmid -> (count, oldest creation)
        self._polls_to_facts = 0  # polls until snapshot facts are read again (0: by the next poll)
        self.esxtop = EsxtopSampler(self.ssh, self.host)

    async def connect(self, *, deadline: float | None = None) -> HostFacts:
        deadline = self.due(deadline, self.config.connect_timeout)
        await self.ssh.connect(deadline=deadline)
        await self.esxtop.close()
        self.esxtop = EsxtopSampler(self.ssh, self.host)  # a new connection asks for esxtop afresh
        return await self._facts(deadline)

    async def _facts(self, deadline: float) -> HostFacts:
        result = await self.ssh.run(batch(list(FACTS)), deadline=deadline)
        sections = split_sections(result.stdout, len(FACTS), self.host)
        for (status, _text), command in zip(sections, FACTS, strict=True):
            if status != 0:
                raise ActionFailed(
                    self.host,
                    f"`{command}` exited with status {status}: "
                    f"{first_line(result.stderr) or 'no message'} (is this ESXi?)",
                )
        return host_facts(*(text for _status, text in sections))

    async def close(self) -> None:
        await self.esxtop.close()
        await self.ssh.close()

    async def record_poll(self, *, deadline: float | None = None) -> dict[str, str]:
        """What connect() reads for the host facts and one poll's commands (snapshot facts too), verbatim."""
        deadline = self.due(deadline)
        self._polls_to_facts = 0  # a recording holds every kind of answer a poll can read
        await self.esxtop.close()
        self.esxtop = EsxtopSampler(self.ssh, self.host)  # so the poll waits for an esxtop run of its own
        with self.ssh.recorded() as commands:
            await self._facts(deadline)
            await self.poll(deadline=deadline)
        return {COMMANDS_FILE: write_blocks(commands)}

    async def _summaries(self, deadline: float) -> list[VmSummary]:
        """Two round trips under one deadline: the VM ids, then every summary."""
        listing = await self.ssh.run(batch(["vim-cmd vmsvc/getallvms", "esxcli vm process list"]), deadline=deadline)
        (list_status, list_text), (ps_status, ps_text) = split_sections(listing.stdout, 2, self.host)
        self._check_poll_stderr(listing)
        if list_status != 0:
            raise ActionFailed(
                self.host,
                f"`vim-cmd vmsvc/getallvms` exited with status {list_status}: "
                f"{first_line(listing.stderr) or 'no message'}",
            )
        self.worlds = world_ids(ps_text, self.host) if ps_status == 0 else {}
        ids = parse_getallvms(list_text, self.host)
        if not ids:
            return []
        result = await self.ssh.run(batch([f"vim-cmd vmsvc/get.summary {vmid}" for vmid in ids]), deadline=deadline)
        self._check_poll_stderr(result)
        summaries = []
        for vmid, (_status, text) in zip(ids, split_sections(result.stdout, len(ids), self.host), strict=True):
            if UNKNOWN_VM in text:
                continue  # unregistered between the two round trips
            summaries.append(parse_summary(text, vmid, self.host))
        return summaries

    def _check_poll_stderr(self, result: CommandResult) -> None:
        noise = [line for line in result.stderr.splitlines() if line.strip() and not _SKIPPED.match(line)]
        if noise:
            raise ActionFailed(self.host, f"poll wrote to stderr: {first_line(noise[0])}")

    async def poll(self, *, deadline: float | None = None) -> HostSnapshot:
        deadline = self.due(deadline)
        sampling = asyncio.get_running_loop().create_task(self.esxtop.sample(deadline))
        try:
            summaries = await self._summaries(deadline)
            taken_at = time.monotonic()
            await self._refresh_snapshot_facts(summaries, deadline)
            top = await sampling
        finally:
            sampling.cancel()  # a failed poll stops waiting; the esxtop run itself goes on for the next one
        names = Counter(s.name for s in summaries)
        shared = {name for name, count in names.items() if count > 1}
        domains = []
        for summary in summaries:
            domain = domain_from_summary(summary)
            if top is not None:
                domain = esxtop.apply_esxtop(domain, top, self.worlds.get(summary.name), shared)
            facts = self._snapshot_facts.get(summary.vmid)
            if facts is not None:
                domain = replace(domain, snapshot_count=facts[0], oldest_snapshot_at=facts[1])
            domains.append(domain)
        return HostSnapshot(self.host, taken_at, tuple(domains))

    async def _refresh_snapshot_facts(self, summaries: list[VmSummary], deadline: float) -> None:
        """Every SNAPSHOT_FACTS_EVERY polls, one round trip; a failure keeps the last facts, never fails the poll."""
        self._polls_to_facts -= 1
        if self._polls_to_facts >= 0 or not summaries:
            return
        self._polls_to_facts = SNAPSHOT_FACTS_EVERY - 1
        try:
            result = await self.ssh.run(
                batch([f"vim-cmd vmsvc/snapshot.get {s.vmid}" for s in summaries]), deadline=deadline
            )
            facts: dict[int, tuple[int, float | None]] = {}
            for summary, (status, text) in zip(
                summaries, split_sections(result.stdout, len(summaries), self.host), strict=True
            ):
                if status == 0:  # else gone meanwhile: not known
                    tree = parse_snapshot_get(text, "", self.host)
                    times = [s.info.created for s in tree if s.info.created is not None]
                    facts[summary.vmid] = (len(tree), min(times, default=None))
        except VFleetError as exc:
            log.info("%s: snapshot facts not read: %s", self.host, exc)
            return
        self._snapshot_facts = facts

    async def open_console(
        self, target: DomainRef, *, force: bool = False, safe: bool = False, deadline: float | None = None
    ) -> ConsoleStream:
        """ESXi's shell has no serial console of a VM: point to the host client's web console."""
        vm = await self._find(target.name, target.key, self.due(deadline))
        address = self.config.address or self.host
        raise NoConsole(
            self.host,
            f"{target.name}: no serial console over SSH on ESXi; its web console URL follows",
            links=(f"https://{address}/ui/#/console/{vm.vmid}",),
        )

    async def _find(self, name: str, key: str | None, deadline: float) -> VmSummary:
        summaries = await self._summaries(deadline)
        if key is not None and key != name:  # aim by identity: the UUID survives renames and duplicates
            by_key = [s for s in summaries if s.uuid == key]
            if not by_key:
                raise DomainNotFound(self.host, f"no VM with UUID {key} (was {name!r})")
            return by_key[0]
        matches = [s for s in summaries if s.name == name]
        if not matches:
            raise DomainNotFound(self.host, f"no VM named {name!r}")
        if len(matches) > 1:
            ids = ", ".join(str(s.vmid) for s in matches)
            raise ActionFailed(self.host, f"{len(matches)} VMs are named {name!r} (ids {ids}); rename one")
        return matches[0]

    async def _state(self, vmid: int, deadline: float) -> tuple[PowerState, str]:
        result = await self.ssh.run(f"vim-cmd vmsvc/get.summary {vmid}", deadline=deadline)
        if UNKNOWN_VM in result.stdout + result.stderr:
            raise DomainNotFound(self.host, f"VM id {vmid} is gone")
        raise_for(self.host, result)
        summary = parse_summary(result.stdout, vmid, self.host)
        return POWER_STATES.get(summary.power, PowerState.UNKNOWN), summary.power

    async def _perform(self, verb: Verb, target: DomainRef, deadline: float | None) -> ActionResult:
        domain = target.name
        deadline = self.due(deadline)
        vm = await self._find(domain, target.key, deadline)
        command = f"vim-cmd vmsvc/{_POWER[verb]} {vm.vmid}"
        result = await self.ssh.run(command, deadline=deadline)
        output = result.stdout + result.stderr
        if UNKNOWN_VM in output:
            raise DomainNotFound(self.host, f"{verb.value} {domain}: VM id {vm.vmid} is gone")
        fault = parse_fault(output)
        if fault is not None:
            if "InvalidPowerState" in fault and vm.power == _TARGET.get(verb):
                return ActionResult(
                    self.host,
                    domain,
                    verb,
                    ok=True,
                    state_after=POWER_STATES[vm.power],
                    message=f"already {vm.power}",
                    noop=True,
                )
            if verb is not Verb.FORCE_OFF:
                raise ActionFailed(self.host, f"{verb.value} {domain}: {fault}")
            log.warning("%s: %s; killing the VM process", self.host, fault)
            return await self._kill(domain, vm, fault, deadline)
        raise_for(self.host, result)
        state, raw = await self._state(vm.vmid, deadline)
        return ActionResult(self.host, domain, verb, ok=True, state_after=state, message=raw)

    async def _kill(self, domain: str, vm: VmSummary, why: str, deadline: float) -> ActionResult:
        """Last resort for a VM that power.off cannot stop: kill its world, gentlest first."""
        await self._summaries(deadline)  # fresh world ids
        world = self.worlds.get(vm.name)
        if world is None:
            raise ActionFailed(self.host, f"force-off {domain}: {why}; and it has no running world to kill")
        for kind in KILL_TYPES:
            result = await self.ssh.run(f"esxcli vm process kill --type {kind} --world-id {world}", deadline=deadline)
            if result.exit_status != 0:
                log.warning("%s: kill --type %s of %s: %s", self.host, kind, domain, first_line(result.stdout))
            state, raw = await self._state(vm.vmid, deadline)
            if state is PowerState.OFF:
                return ActionResult(
                    self.host,
                    domain,
                    Verb.FORCE_OFF,
                    ok=True,
                    state_after=state,
                    message=f"{raw} (power.off failed; killed with --type {kind})",
                )
        raise ActionFailed(self.host, f"force-off {domain}: {why}; still running after kill --type force")

    async def _tree(self, vm: VmSummary, deadline: float) -> list[EsxiSnapshot]:
        """The VM's snapshots and which is current: one round trip."""
        commands = listing_commands(vm.vmid)
        result = await self.ssh.run(batch(commands), deadline=deadline)
        (get_status, get_text), (_info_status, info_text) = split_sections(result.stdout, 2, self.host)
        if UNKNOWN_VM in get_text:
            raise DomainNotFound(self.host, f"VM id {vm.vmid} is gone")
        if get_status != 0:
            raise ActionFailed(
                self.host,
                f"`{commands[0]}` exited with status {get_status}: "
                f"{first_line(get_text) or first_line(result.stderr) or 'no message'}",
            )
        return parse_snapshot_get(get_text, info_text, self.host)

    async def _snapshots(self, target: DomainRef, deadline: float | None) -> tuple[SnapshotInfo, ...]:
        deadline = self.due(deadline)
        vm = await self._find(target.name, target.key, deadline)
        return tuple(s.info for s in await self._tree(vm, deadline))

    async def _perform_with(
        self, verb: Verb, target: DomainRef, params: ActionParams, deadline: float | None
    ) -> ActionResult:
        """Snapshot verbs by vim-cmd: names need not be unique on ESXi, so a name several carry is refused."""
        if not isinstance(params, SnapshotParams):  # the only verbs with parameters this driver has
            raise UnsupportedAction(self.host, f"the {self.kind} driver cannot {verb.value}")
        deadline = self.due(deadline)
        vm = await self._find(target.name, target.key, deadline)
        tree = await self._tree(vm, deadline)
        named = [s for s in tree if s.info.name == params.name]
        if verb is Verb.SNAPSHOT_CREATE:
            if named:  # ESXi would take a second one with the same name
                raise ActionFailed(self.host, f"{vm.name}: a snapshot named {params.name!r} exists")
            command = create_command(vm.vmid, params)
        else:
            if not named:
                raise ActionFailed(self.host, f"{vm.name}: no snapshot named {params.name!r}")
            if len(named) > 1:
                ids = ", ".join(str(s.id) for s in named)
                raise ActionFailed(self.host, f"{vm.name}: {len(named)} snapshots are named {params.name!r} "
                                              f"(ids {ids}); rename one first")
            make = revert_command if verb is Verb.SNAPSHOT_REVERT else remove_command
            command = make(vm.vmid, named[0].id)
        result = await self.ssh.run(command, deadline=deadline)
        output = result.stdout + result.stderr
        if UNKNOWN_VM in output:
            raise DomainNotFound(self.host, f"{verb.value} {target.name}: VM id {vm.vmid} is gone")
        fault = parse_fault(output)
        if fault is not None:
            raise ActionFailed(self.host, f"{verb.value} {params.name} of {target.name}: {fault}")
        raise_for(self.host, result)
        self._polls_to_facts = 0  # the next poll shows the new count
        state, raw = await self._state(vm.vmid, deadline)
        return ActionResult(self.host, target.name, verb, ok=True, state_after=state, message=raw)
