"""Xen dom0 with the xl toolstack, over SSH.

This module is the driver's light face (its spec); it must not import asyncssh.
"""

from vfleet.drivers.base import Capability
from vfleet.drivers.spec import SSH, DriverSpec, KeySpec

# Why xl lacks these (the menus grey the entries out with it; the demo's xen hosts say the same).
UNSUPPORTED = {
    Capability.RESET: "`xl trigger NAME reset` works for HVM guests only",
    Capability.SNAPSHOT: "xl has no snapshots: `xl save` writes the guest's memory to a file and stops it, "
    "`xl restore` starts it again from that file; neither captures the disks, which xl leaves "
    "to the storage (LVM, qcow2) underneath",
    Capability.SUSPEND: "`xl save` writes the guest's memory to a file on the dom0 that `xl restore` must be "
    "given again; vfleet does not manage those files: pause keeps the memory in RAM",
    Capability.MIGRATION: "`xl migrate` needs root SSH from this dom0 to the other one and storage both "
    "see; vfleet does not set up trust between dom0s",
}

SPEC = DriverSpec(
    name="xen_xl",
    driver="vfleet.drivers.xen.xl:XenXlDriver",
    summary="Xen dom0 with the xl toolstack, over SSH",
    transport=SSH,
    options=(KeySpec("config_dir", str, "/etc/xen", "where `start` finds NAME.cfg for `xl create`"),),
)
