"""A vSphere login whose every socket has a timeout.

pyVim's SmartConnect first fetches /sdk/vimServiceVersions.xml over an HTTPS
connection without any timeout: a host that accepts TCP and never answers TLS holds
the calling thread, and its socket, for ever. So we ask for the versions ourselves,
with a timeout and a socket closed in every case, then log in with pyVim's Connect
at that version (its SOAP stub takes a timeout for every connection it opens).
"""

from __future__ import annotations

import http.client
import ssl
import xml.etree.ElementTree as ET
from typing import Any

from pyVim import connect as _connect
from pyVmomi import VmomiSupport as _support

Connect: Any = _connect.Connect
GetServiceVersions: Any = _support.GetServiceVersions
versionIdMap: Any = _support.versionIdMap
VERSIONS_PATH = "/sdk/vimServiceVersions.xml"


class NotVimServer(Exception):
    """The host answered, but not as a vSphere API endpoint."""


def service_version(address: str, port: int, context: ssl.SSLContext, timeout: float) -> str:
    """The newest vim25 API version both pyVmomi and the server speak."""
    conn = http.client.HTTPSConnection(address, port, context=context, timeout=timeout)
    try:
        conn.request("GET", VERSIONS_PATH)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise NotVimServer(f"{VERSIONS_PATH} answered HTTP {response.status}: not a vSphere API endpoint")
    finally:
        conn.close()
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise NotVimServer(f"{VERSIONS_PATH} is not XML ({exc}): not a vSphere API endpoint") from None
    served: set[str] = set()
    for namespace in root.findall("namespace"):
        served.update(v.text or "" for v in namespace.findall("version"))
        served.update(v.text or "" for v in namespace.findall("priorVersions/version"))
    for version in GetServiceVersions("vim25"):
        if versionIdMap.get(version) in served:
            return str(version)
    raise NotVimServer(f"it serves none of the vSphere API versions pyVmomi knows ({', '.join(sorted(served))})")


def login(
    address: str, port: int, user: str, password: str, context: ssl.SSLContext, timeout: float, version: str
) -> Any:
    """Log in; every connection of the returned service instance's stub times out after `timeout` s."""
    return Connect(
        host=address,
        port=port,
        user=user,
        pwd=password,
        sslContext=context,
        version=version,
        httpConnectionTimeout=timeout,
    )
