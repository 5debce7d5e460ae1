"""Certificates made for tests: CAs (an intercepting proxy's, Pebble's API), and self-signed or CA-signed
certificates for the unit tests of the checks and for certs:add end to end."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return cert_pem(self.cert)


def _builder(
    subject: str, issuer: x509.Name | None, public_key: object, days: float, starts: float
) -> object:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=starts))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def make_ca(common_name: str, days: float = 30) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(common_name, None, key.public_key(), days, -1)
    cert = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return Ca(cert.sign(key, hashes.SHA256()), key)


def make(
    names: Sequence[str],
    *,
    days: float = 90,
    starts: float = -1,
    ips: Sequence[str] = (),
    ca: Ca | None = None,
) -> tuple[str, str]:
    """(certificate PEM, key PEM) for names (and IP addresses), valid from `starts` to `days` days from
    now: signed by ca, else self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = ca.cert.subject if ca else None
    builder = _builder(names[0] if names else "no-names", issuer, key.public_key(), days, starts)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca.key if ca else key, hashes.SHA256())
    return cert_pem(cert), key_pem(key)


def other_key() -> str:
    return key_pem(ec.generate_private_key(ec.SECP256R1()))
