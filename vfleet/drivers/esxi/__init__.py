"""ESXi and vCenter: the vSphere API (pyVmomi) and vim-cmd over SSH.

This module is the drivers' light face (their specs); it must not import pyVmomi.
"""

from vfleet.drivers.spec import API, SSH, DriverSpec

API_SPEC = DriverSpec(
    name="esxi_api",
    driver="vfleet.drivers.esxi.api:EsxiApiDriver",
    summary="ESXi or vCenter through the vSphere API",
    transport=API,
    requires=("pyVmomi",),
    install_hint="pip install 'vfleet[esxi]'",
)

SSH_SPEC = DriverSpec(
    name="esxi_ssh",
    driver="vfleet.drivers.esxi.ssh:EsxiSshDriver",
    summary="free-license ESXi through vim-cmd over SSH",
    transport=SSH,
)
