"""TLS for drivers that speak HTTPS through a blocking client (pyVmomi, XenAPI).

Verification is on by default (system CAs, or tls.ca_file). tls.thumbprint pins the
certificate instead: its SHA-256 (or SHA-1) fingerprint is checked on every handshake
by the socket class of the context, so every connection the client library opens later
is checked too. tls.insecure is honoured and returned as a warning to show.
"""

from __future__ import annotations

import ssl

from vfleet.core.models import TlsSettings
from vfleet.drivers.esxi.vsphere_map import fingerprint, parse_thumbprint, pin_matches

__all__ = ["PinMismatch", "fingerprint", "pinned_context", "presented_fingerprint", "tls_context"]


class PinMismatch(ssl.SSLCertVerificationError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"certificate fingerprint {actual} does not match the pinned {expected}")
        self.expected, self.actual = expected, actual


class _PinnedSocket(ssl.SSLSocket):
    """Checks the peer certificate against the context's pin right after each handshake."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        algorithm, digest = self.context.vfleet_pin  # type: ignore[attr-defined]
        der = self.getpeercert(binary_form=True) or b""
        if not pin_matches(der, algorithm, digest):
            self.close()
            expected = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()
            raise PinMismatch(f"{algorithm.upper()} {expected}", f"{algorithm.upper()} {fingerprint(der, algorithm)}")


class _PinnedContext(ssl.SSLContext):
    sslsocket_class = _PinnedSocket
    vfleet_pin: tuple[str, str]


def pinned_context(thumbprint: str) -> ssl.SSLContext:
    """A context that trusts exactly the certificate with this fingerprint (ValueError if malformed)."""
    pinned = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    pinned.check_hostname = False  # the pin names exactly one certificate; names add nothing
    pinned.verify_mode = ssl.CERT_NONE
    pinned.vfleet_pin = parse_thumbprint(thumbprint)
    return pinned


def tls_context(tls: TlsSettings) -> tuple[ssl.SSLContext, list[str]]:
    """The SSL context for these settings, and the warnings to show. A pin wins over insecure."""
    if tls.thumbprint:
        return pinned_context(tls.thumbprint), []
    if tls.insecure:
        loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        return loose, ["TLS certificate verification is OFF (tls.insecure: true)"]
    return ssl.create_default_context(cafile=tls.ca_file), []


def presented_fingerprint(address: str, port: int, timeout: float) -> str:
    """The SHA-256 fingerprint the server shows, for an error message (never trusted)."""
    try:
        pem = ssl.get_server_certificate((address, port), timeout=timeout)
        return fingerprint(ssl.PEM_cert_to_DER_cert(pem))
    except (OSError, ValueError):
        return "unknown"
