"""TLS for drivers that speak HTTPS through a blocking client (pyVmomi, XenAPI).

Verification is on by default (system CAs, or tls.ca_file). tls.thumbprint pins the
certificate instead: its SHA-256 (or SHA-1) fingerprint is checked on every handshake
by the socket class of the context, so every connection the client library opens later
is checked too. tls.insecure is honoured and returned as a warning to show.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl

from vfleet.core.errors import AuthFailed
from vfleet.core.models import HostConfig, TlsSettings

__all__ = [
    "PinMismatch", "fingerprint", "parse_thumbprint", "pin_matches", "pinned_context", "presented_fingerprint",
    "tls_context",
]

_HEX = re.compile(r"^[0-9a-f]+$")
_DIGESTS = {40: "sha1", 64: "sha256"}


def parse_thumbprint(text: str) -> tuple[str, str]:
    """'AB:CD:..' or 'abcd..' (SHA-256, or SHA-1 for older tooling) -> (algorithm, lower hex)."""
    digest = re.sub(r"[\s:]", "", text).lower()
    if "=" in digest:  # "sha256=..." / "SHA1 Fingerprint=..." as openssl prints it
        digest = digest.split("=", 1)[1]
    algorithm = _DIGESTS.get(len(digest))
    if algorithm is None or not _HEX.match(digest):
        raise ValueError(
            f"tls.thumbprint {text!r} is neither a SHA-256 (64 hex digits) nor a SHA-1 (40 hex digits) fingerprint"
        )
    return algorithm, digest


def fingerprint(der: bytes, algorithm: str = "sha256") -> str:
    """The usual colon-separated upper-case form, as ESXi and openssl print it."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def pin_matches(der: bytes, algorithm: str, digest: str) -> bool:
    return hashlib.new(algorithm, der).hexdigest() == digest


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


def login_context(config: HostConfig, kind: str) -> tuple[ssl.SSLContext, list[str]]:
    """What an HTTPS login needs checked before it is tried: address, user, a password in the
    environment (read later, at login, never here) and the TLS context with its warnings."""
    if not config.address or not config.user:
        raise AuthFailed(config.name, f"the {kind} driver needs address and user in the inventory")
    if not config.password_env:
        raise AuthFailed(config.name, "no password_env: name the environment variable that holds the password")
    if config.password_env not in os.environ:
        raise AuthFailed(
            config.name, f"the environment variable {config.password_env} (password_env) is not set; export it"
        )
    try:
        return tls_context(config.tls)
    except (ValueError, OSError) as exc:  # a bad pin, or an unreadable ca_file
        raise AuthFailed(config.name, f"TLS settings: {exc}") from exc
