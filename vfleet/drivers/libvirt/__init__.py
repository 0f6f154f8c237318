"""libvirt: KVM/QEMU, Xen (libxl) and anything else libvirt speaks.

This module is the driver's light face (its spec); it must not import libvirt.
"""

from vfleet.drivers.spec import URI, DriverSpec, KeySpec

SPEC = DriverSpec(
    name="libvirt",
    driver="vfleet.drivers.libvirt.driver:LibvirtDriver",
    summary="KVM/QEMU, Xen (libxl) and anything else libvirt speaks",
    transport=URI,
    options=(
        KeySpec(
            "migration_uri",
            str,
            doc="as a migration destination: where the source streams the domain, e.g. tcp://10.0.0.2:49152",
        ),
    ),
    requires=("libvirt",),
    install_hint="pip install 'vfleet[libvirt]' (needs apt: libvirt-dev pkg-config gcc)",
)
