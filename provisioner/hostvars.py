"""The one definition of the variables a host gets, used by ``up``, ``verify`` and the Vagrantfile alike."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import program
from .errors import UsageError
from .hostcmd import keys as host_keys
from .targets import Host, valid_hostname

PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WILDCARD_DNS = "sslip.io"


def wildcard_domain(ip: str) -> str:
    """``<ip>.sslip.io``: a DNS name whose every subdomain resolves to the IP (IPv6 with dashes)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 6:
        return f"{addr.compressed.replace(':', '-')}.{WILDCARD_DNS}"
    return f"{addr}.{WILDCARD_DNS}"


def host_ip(host: Host) -> str:
    """The address users reach the host at, as the controller sees it (sandboxes: loopback)."""
    try:
        return str(ipaddress.ip_address(host.address))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host.address, host.port, proto=socket.IPPROTO_TCP)[0][4][0])
    except OSError:
        raise UsageError(f"cannot resolve host name {host.address!r}", host=host.name) from None


def validate_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if not valid_hostname(domain) or "." not in domain:
        raise UsageError(f"invalid --domain {domain!r}: expected a DNS name such as apps.example.com")
    return domain


def host_vars(hosts: Iterable[Host], domain: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-host variables: where apps live (APP.<domain>)."""
    result: dict[str, dict[str, Any]] = {}
    for host in hosts:
        result[host.name] = {"provisioner_domain": domain or wildcard_domain(host_ip(host))}
    return result


def split_certificates(text: str, source: str) -> list[str]:
    certs = [m.group(0) for m in PEM_RE.finditer(text)]
    if not certs:
        raise UsageError(f"--ca-cert {source!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return certs


def ca_certificates(files: Iterable[str]) -> list[dict[str, str]]:
    """Certificates from PEM files (bundles allowed), one item per certificate, de-duplicated."""
    items: list[dict[str, str]] = []
    seen: set[str] = set()
    for file in files:
        path = Path(file)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ca-cert {file!r} cannot be read: {exc.__class__.__name__}") from None
        stem = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "ca"
        for index, cert in enumerate(split_certificates(text, file)):
            if cert in seen:
                continue
            seen.add(cert)
            items.append({"name": f"{stem}-{index}", "content": cert + "\n"})
    return items


URL_RE = re.compile(r"https?://[A-Za-z0-9._~%!$&'()*+,;=:@/?#\[\]-]+")


def validate_url(option: str, url: str) -> str:
    """A proxy or index URL: it ends up in apt and pip config files, so no quotes, spaces or newlines."""
    if not URL_RE.fullmatch(url) or "'" in url or "\\" in url:
        raise UsageError(f"invalid {option} {url!r}: expected an http:// or https:// URL")
    return url


LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def acme_vars(email: str | None, server: str | None, staging: bool) -> dict[str, str]:
    """--acme-email, --acme-server, --acme-staging as the tls role's variables (only what was given)."""
    result: dict[str, str] = {}
    if server and staging:
        raise UsageError("give --acme-server or --acme-staging, not both")
    if staging:
        result["tls_acme_server"] = LETSENCRYPT_STAGING
    elif server:
        if not server.startswith("https://"):
            raise UsageError(f"invalid --acme-server {server!r}: expected an https:// ACME directory URL")
        result["tls_acme_server"] = validate_url("--acme-server", server)
    if email:
        if not EMAIL_RE.fullmatch(email) or len(email) > 254:
            raise UsageError(f"invalid --acme-email {email!r}: expected an address such as ops@example.com")
        result["tls_acme_email"] = email
    return result


def parse_extra_vars(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not VAR_RE.fullmatch(key):
            raise UsageError(f"malformed --extra-var {pair!r}: expected NAME=VALUE")
        out[key] = value
    return out


DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")


def public_key(file: str) -> str:
    """One OpenSSH public key from a file, validated (a key line may carry no options)."""
    try:
        lines = [ln.strip() for ln in Path(file).expanduser().read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        raise UsageError(f"public key file {file!r} cannot be read") from None
    try:  # the host's own rule (hostcmd/keys.py), checked here first: a bad key never costs a run
        host_keys.parse_key("\n".join(lines), "up")
    except host_keys.KeyError_ as exc:
        raise UsageError(f"public key file {file!r}: {exc}") from None
    return lines[0]


def deploy_keys(files: Iterable[str], identities: Iterable[str | None]) -> list[str]:
    """--deploy-key files, else the public key of the identity used to connect, else ~/.ssh's key."""
    chosen = list(files)
    if not chosen:
        chosen = [f"{i}.pub" for i in identities if i and Path(f"{i}.pub").is_file()]
    if not chosen:
        home = Path("~/.ssh").expanduser()
        chosen = [str(home / n) for n in DEFAULT_KEYS if (home / n).is_file()][:1]
    keys: list[str] = []
    for file in dict.fromkeys(chosen):
        key = public_key(file)
        if key not in keys:
            keys.append(key)
    return keys


def extra_vars(
    *,
    ca_files: Iterable[str] = (),
    apt_proxy: str | None = None,
    pip_index_url: str | None = None,
    acme: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Variables given on the command line; they override the inventory, so only what was given."""
    result: dict[str, Any] = dict(acme or {})
    certs = ca_certificates(ca_files)
    if certs:
        result["base_ca_certificates"] = certs
    if apt_proxy:
        result["base_apt_proxy"] = validate_url("--apt-proxy", apt_proxy)
    if pip_index_url:
        result["base_pip_index_url"] = validate_url("--pip-index-url", pip_index_url)
    result["receiver_program_archive"] = str(program.archive())
    result.update(extra or {})
    return result
