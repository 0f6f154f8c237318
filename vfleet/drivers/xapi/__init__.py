"""XCP-ng and XenServer pools through XAPI (the `XenAPI` client, /rrd_updates, event.from).

This module is the driver's light face (its spec); it must not import XenAPI.
"""

from vfleet.drivers.spec import API, DriverSpec, KeySpec

SPEC = DriverSpec(
    name="xapi",
    driver="vfleet.drivers.xapi.driver:XapiDriver",
    summary="an XCP-ng or XenServer pool (or standalone host) through XAPI",
    transport=API,
    options=(
        KeySpec(
            "metrics", bool, True, "read /rrd_updates from every node each poll (cpu, memory, disk, net, contention)"
        ),
        KeySpec("events", bool, True, "follow event.from for power-state changes between polls"),
    ),
    requires=("XenAPI",),
    install_hint="pip install 'vfleet[xapi]'",
)
