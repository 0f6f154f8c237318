"""Node XML files for libvirt's test driver (test:///path/node.xml)."""

from __future__ import annotations

import uuid
from pathlib import Path

RUNNING, PAUSED, SHUTOFF = 1, 3, 5


def domain_xml(name: str, *, runstate: int = RUNNING, vcpus: int = 1, memory_kib: int = 131072, kind: str = "kvm") -> str:
    return f"""
  <domain type='{kind}' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name>
    <uuid>{uuid.uuid5(uuid.NAMESPACE_DNS, name)}</uuid>
    <memory unit='KiB'>{memory_kib}</memory>
    <currentMemory unit='KiB'>{memory_kib}</currentMemory>
    <vcpu>{vcpus}</vcpu>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/dev/null'/><target dev='vda' bus='virtio'/></disk>
      <interface type='network'><source network='default'/><mac address='52:54:00:{hash(name) & 0xff:02x}:00:01'/></interface>
    </devices>
    <test:runstate>{runstate}</test:runstate>
  </domain>"""


def write_node(path: Path, domains: list[tuple[str, int]], *, kind: str = "kvm", cpus: int = 16) -> Path:
    """domains: (name, runstate) pairs."""
    body = "".join(domain_xml(name, runstate=state, kind=kind) for name, state in domains)
    path.write_text(
        f"""<node>
  <cpu><mode>host-model</mode><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads>
    <active>{cpus}</active><mhz>2400</mhz><model>x86_64</model></cpu>
  <memory>16777216</memory>
  {body}
</node>
""",
        encoding="utf-8",
    )
    return path


def many(prefix: str, count: int) -> list[tuple[str, int]]:
    """`count` domains: mostly running, every 7th off, every 11th paused."""
    return [
        (f"{prefix}{i:04d}", SHUTOFF if i % 7 == 0 else PAUSED if i % 11 == 0 else RUNNING) for i in range(count)
    ]
