"""A self-signed certificate for the test pool (both host addresses and localhost)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    cert: Path  # PEM; also the CA file a client trusts (it signs itself)
    key: Path
    sha256: str  # hex digest of the DER certificate, for certificate pinning
    sha1: str

    @property
    def thumbprint(self) -> str:
        """SHA-256 as openssl and XCP-ng print it: AB:CD:..."""
        digest = self.sha256.upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert.read_bytes()).public_bytes(serialization.Encoding.DER)


def make_cert(directory: Path, addresses: tuple[str, ...], common_name: str = "xcp-a") -> CertFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(common_name)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "xapi-cert.pem", directory / "xapi-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertFiles(cert_path, key_path, hashlib.sha256(der).hexdigest(), hashlib.sha1(der).hexdigest())
