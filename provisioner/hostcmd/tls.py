"""An app's TLS certificate: a PEM bundle checked before anything changes, installed as files that never
change once written, and the app's domains it covers.

Whatever brought the certificate (`certs:add`, or Let's Encrypt through acme.py), it is installed the same
way: a new directory under the app's `tls/`, then `tls.json` names it, then the app's vhost is rendered
with it (nginx -t before the reload). If nginx refuses, `tls.json` names the old directory again and the
vhost is the old one: what was serving keeps serving. Parsing uses the distribution's python3-cryptography
(the tls role installs it), imported only here and only when a certificate is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import names
from .store import App, now, read_json, write_atomic, write_json

CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.S)
KEY_RE = re.compile(r"-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----\r?\n.+?-----END \1-----", re.S)
MAX_BUNDLE = 256 * 1024
SOURCES = ("letsencrypt", "custom")

Say = Callable[[str], None]


class CertError(ValueError):
    """A certificate that is refused; the message is fit for the user."""


@dataclasses.dataclass(frozen=True)
class CertInfo:
    """What a person checks on a certificate."""

    subject: str
    issuer: str
    names: tuple[str, ...]  # its DNS names (subjectAltName), lowercase
    not_before: datetime
    not_after: datetime
    serial: str  # hex

    def days_left(self, at: datetime | None = None) -> float:
        return (self.not_after - (at or datetime.now(UTC))).total_seconds() / 86400

    def covers(self, domain: str) -> bool:
        return any(names.covers(pattern, domain) for pattern in self.names)


def covered(cert_names: Iterable[str], domains: Iterable[str]) -> list[str]:
    cert_names = list(cert_names)
    return [d for d in domains if any(names.covers(p, d) for p in cert_names)]


def _utc(cert: Any, name: str) -> datetime:
    value = getattr(cert, f"{name}_utc", None)  # cryptography >= 42; older ones have naive UTC only
    found: datetime = value if value is not None else getattr(cert, name).replace(tzinfo=UTC)
    return found


def info(pem: str) -> CertInfo:
    """The first certificate of a PEM text."""
    from cryptography import x509

    found = CERT_RE.search(pem)
    if not found:
        raise CertError("no certificate (-----BEGIN CERTIFICATE-----) found")
    try:
        cert = x509.load_pem_x509_certificate(found.group(0).encode())
    except ValueError as exc:
        raise CertError(f"the certificate does not parse: {exc}") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(str(n).lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        names=dns,
        not_before=_utc(cert, "not_valid_before"),
        not_after=_utc(cert, "not_valid_after"),
        serial=f"{cert.serial_number:x}",
    )


@dataclasses.dataclass(frozen=True)
class Bundle:
    chain: str  # the certificates, the app's own first, PEM
    key: str  # its private key, PEM
    info: CertInfo


def parse_bundle(text: str, at: datetime | None = None) -> Bundle:
    """A certificate chain and its private key (any order in the text, the app's certificate first among
    the certificates): it parses, the key is the certificate's, and it is valid now."""
    from cryptography.hazmat.primitives import serialization

    if len(text) > MAX_BUNDLE:
        raise CertError(f"the bundle is larger than {MAX_BUNDLE // 1024} KB")
    if "ENCRYPTED PRIVATE KEY" in text or "Proc-Type: 4,ENCRYPTED" in text:
        raise CertError("the private key is encrypted: give it without a passphrase")
    certs = [m.group(0) for m in CERT_RE.finditer(text)]
    keys = [m.group(0) for m in KEY_RE.finditer(text)]
    if not certs:
        raise CertError(
            "no certificate found: expected PEM blocks, the certificate chain then the private key"
        )
    cert_info = info(certs[0])
    for other in certs[1:]:
        info(other)  # every certificate of the chain parses
    if len(keys) != 1:
        raise CertError(f"expected one private key (-----BEGIN PRIVATE KEY-----), found {len(keys)}")
    try:
        key = serialization.load_pem_private_key(keys[0].encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"the private key does not parse: {exc}") from None
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(certs[0].encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise CertError(
            "the private key does not match the certificate (the first certificate of the bundle)"
        )
    moment = at or datetime.now(UTC)
    if cert_info.not_after <= moment:
        raise CertError(f"the certificate expired on {cert_info.not_after:%Y-%m-%d %H:%M} UTC")
    if cert_info.not_before > moment:
        raise CertError(f"the certificate is not valid before {cert_info.not_before:%Y-%m-%d %H:%M} UTC")
    if not cert_info.names:
        raise CertError("the certificate names no DNS name (subjectAltName)")
    return Bundle("\n".join(certs) + "\n", keys[0] + "\n", cert_info)


# -- what is installed -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Installed:
    """The certificate an app serves: tls.json, pointing at a directory of tls/."""

    directory: Path
    source: str  # letsencrypt or custom
    names: tuple[str, ...]
    not_after: str  # ISO 8601, UTC
    installed: str

    @property
    def cert(self) -> Path:
        return self.directory / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    def days_left(self) -> float:
        expiry = datetime.strptime(self.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (expiry - datetime.now(UTC)).total_seconds() / 86400


def tls_root(app: App) -> Path:
    return app.dir / "tls"


def installed(app: App) -> Installed | None:
    data = read_json(app.dir / "tls.json", None)
    if not data:
        return None
    directory = tls_root(app) / str(data["dir"])
    if not names.LABEL_RE.fullmatch(str(data["dir"])) or not (directory / "fullchain.pem").is_file():
        return None
    return Installed(
        directory=directory,
        source=str(data.get("source", "custom")),
        names=tuple(data.get("names", ())),
        not_after=str(data.get("not_after", "")),
        installed=str(data.get("installed", "")),
    )


def _record(bundle: Bundle, dirname: str, source: str) -> dict[str, Any]:
    return {
        "dir": dirname,
        "source": source,
        "names": list(bundle.info.names),
        "not_after": bundle.info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial": bundle.info.serial,
        "installed": now(),
    }


def install(app: App, bundle: Bundle, source: str, apply: Callable[[], None]) -> Installed:
    """Make bundle the app's certificate; apply() re-renders the app's vhost with it. When apply fails, the
    previous certificate stays installed and the exception goes on. The caller holds the app's lock."""
    assert source in SOURCES
    root = tls_root(app)
    root.mkdir(mode=0o750, exist_ok=True)
    dirname = f"{bundle.info.serial[-16:]}-{datetime.now(UTC):%Y%m%d%H%M%S}".lower()
    directory = root / dirname
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o750)
    write_atomic(directory / "fullchain.pem", bundle.chain, 0o644)
    write_atomic(directory / "key.pem", bundle.key, 0o600)
    before = read_json(app.dir / "tls.json", None)
    write_json(app.dir / "tls.json", _record(bundle, dirname, source), 0o644)
    try:
        apply()
    except BaseException:
        _restore(app, before)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _prune(root, keep=dirname)
    found = installed(app)
    assert found is not None
    return found


def remove(app: App, apply: Callable[[], None]) -> bool:
    """Serve the app without a certificate again (HTTP only). False when it had none."""
    before = read_json(app.dir / "tls.json", None)
    if not before:
        return False
    (app.dir / "tls.json").unlink()
    try:
        apply()
    except BaseException:
        _restore(app, before)
        raise
    _prune(tls_root(app), keep=None)
    return True


def _restore(app: App, before: Any) -> None:
    if before:
        write_json(app.dir / "tls.json", before, 0o644)
    else:
        with contextlib.suppress(FileNotFoundError):
            (app.dir / "tls.json").unlink()


def _prune(root: Path, keep: str | None) -> None:
    if root.is_dir():
        for old in root.iterdir():
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)


def hsts(config: dict[str, str]) -> bool:
    """Config var HSTS=on (also true, yes, 1) adds Strict-Transport-Security to the app's HTTPS answers."""
    return config.get("HSTS", "").strip().lower() in ("on", "true", "yes", "1")
