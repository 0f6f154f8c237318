"""A recording (`vfleet debug record`) read back through the driver's own parsing: what makes it a fixture.

SSH drivers poll a transport that answers from the recorded commands (their whole poll code
runs); the others hand their recorded answers to the same pure functions a poll calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from vfleet.core.errors import GarbledOutput, UnsupportedAction
from vfleet.core.models import HostConfig, HostSnapshot

SSH_KINDS = ("xen_xl", "esxi_ssh")


def _file(config: HostConfig, files: Mapping[str, str], name: str) -> str:
    if name not in files:
        raise GarbledOutput(config.name, f"the recording has no {name} (a recording of another driver?)")
    return files[name]


async def replay(config: HostConfig, files: Mapping[str, str]) -> HostSnapshot:
    """The snapshot a poll would have given had the host answered what `files` hold."""
    kind = config.driver
    if kind == "libvirt":
        from vfleet.drivers.libvirt import parse

        return parse.replay(config.name, _file(config, files, parse.CALLS_FILE))
    if kind == "esxi_api":
        from vfleet.drivers.esxi import vsphere_map

        return vsphere_map.replay(config.name, _file(config, files, vsphere_map.RECORDING_FILE), config.address or "")
    if kind == "xapi":
        from vfleet.drivers.xapi import recording

        return recording.replay(config.name, files)
    if kind == "sim":
        from vfleet.drivers import sim

        return sim.replay(config.name, _file(config, files, sim.RECORDING_FILE))
    if kind in SSH_KINDS:
        from vfleet.drivers.registry import create_driver
        from vfleet.drivers.ssh.record import COMMANDS_FILE, ReplayTransport, read_blocks

        driver = create_driver(config)
        commands = read_blocks(_file(config, files, COMMANDS_FILE), COMMANDS_FILE)
        driver.ssh = ReplayTransport(config, commands)  # type: ignore[attr-defined]
        facts = await driver.connect()
        snapshot = await driver.poll()
        return replace(snapshot, facts=snapshot.facts or facts)
    raise UnsupportedAction(config.name, f"no replay for recordings of the {kind} driver")
