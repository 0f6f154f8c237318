"""Xen dom0 with the xl toolstack, over SSH.

This module is the driver's light face (its spec); it must not import asyncssh.
"""

from vfleet.drivers.spec import SSH, DriverSpec, KeySpec

SPEC = DriverSpec(
    name="xen_xl",
    driver="vfleet.drivers.xen.xl:XenXlDriver",
    summary="Xen dom0 with the xl toolstack, over SSH",
    transport=SSH,
    options=(KeySpec("config_dir", str, "/etc/xen", "where `start` finds NAME.cfg for `xl create`"),),
)
