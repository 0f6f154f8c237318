"""The domain XML of a throwaway TCG guest booted from the testbed's own kernel and initramfs."""

from __future__ import annotations

from pathlib import Path


def tcg_guest_xml(name: str, testbed_dir: str, ip: str, serial_log: Path, disk: Path | None = None) -> str:
    """128 MiB, one vCPU, its serial port logged to a file; `disk`: a qcow2 as vda (else none)."""
    vda = (
        f"""
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>"""
        if disk is not None
        else ""
    )
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{testbed_dir}/guest/vmlinuz</kernel><initrd>{testbed_dir}/guest/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet vfleet.name={name} vfleet.ip={ip}</cmdline></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>{vda}
    <controller type='usb' model='none'/>
    <serial type='file'><source path='{serial_log}'/><target port='0'/></serial>
  </devices>
</domain>"""
