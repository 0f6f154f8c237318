"""Certificates of the test pool. As on XCP-ng, every host has its own self-signed
certificate (naming its address and hostname); `PoolCerts.cert` is one PEM file holding
all of them, the CA file a client trusts to reach every host of the pool."""

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


def colon_hex(digest: str) -> str:
    """AB:CD:... as openssl and xapi's Certificate.fingerprint print a digest."""
    upper = digest.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


@dataclass(frozen=True)
class CertFiles:
    """One host's certificate."""

    cert: Path  # PEM, self-signed (so also the CA file that trusts this host alone)
    key: Path
    sha256: str  # hex digest of the DER certificate, for certificate pinning
    sha1: str
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def thumbprint(self) -> str:
        return colon_hex(self.sha256)


@dataclass(frozen=True)
class PoolCerts:
    """Every host's certificate; the pin fields are the master's (host 0)."""

    cert: Path  # PEM bundle of every host's certificate: the CA file for the whole pool
    hosts: tuple[CertFiles, ...]

    @property
    def sha256(self) -> str:
        return self.hosts[0].sha256

    @property
    def sha1(self) -> str:
        return self.hosts[0].sha1

    @property
    def thumbprint(self) -> str:
        return self.hosts[0].thumbprint


def make_cert(
    directory: Path,
    addresses: tuple[str, ...],
    common_name: str = "xcp-a",
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> CertFiles:
    """A host certificate: self-signed, or signed by issuer (a CA certificate and its key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=2)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(common_name)]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(issuer[1] if issuer else key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{common_name}-cert.pem", directory / f"{common_name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertFiles(
        cert_path, key_path, hashlib.sha256(der).hexdigest(), hashlib.sha1(der).hexdigest(), not_before, not_after
    )


def make_pool_certs(directory: Path, hosts: tuple[tuple[str, str], ...], with_ca: bool = False) -> PoolCerts:
    """hosts: (hostname, address) of each host, master first. Self-signed per host (XCP-ng's
    default; the CA file is the bundle of them all), or with_ca: each signed by one test CA
    (certificates a site installed; the CA file is that CA's certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _make_ca() if with_ca else None
    certs = tuple(make_cert(directory, (address,), name, issuer) for name, address in hosts)
    bundle = directory / "pool-ca.pem"
    if issuer:
        bundle.write_bytes(issuer[0].public_bytes(serialization.Encoding.PEM))
    else:
        bundle.write_bytes(b"".join(c.cert.read_bytes() for c in certs))
    return PoolCerts(bundle, certs)


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vfleet test pool CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key
