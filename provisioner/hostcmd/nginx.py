"""App vhosts: rendered from a template, checked with `nginx -t` before any reload, restored on failure."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import names

UPSTREAM = """\
# Managed by provisioner for app {app}: changes are overwritten on the next deploy.
upstream provisioner-app-{app} {{
{servers}
    keepalive 16;
}}
"""
SERVER = """
server {{
{listen}
    server_name {server_names};
    client_max_body_size 100m;
{extra}
    # Lets the host program see when a reload is live in every worker (its token changes per vhost).
    location = {probe} {{
        default_type text/plain;
        return 200 "{token}";
    }}
{acme}
    location / {{
{location}
    }}
}}
"""
PROBE = "/.well-known/provisioner/vhost"
# HTTP-01 challenges of Let's Encrypt (letsencrypt:enable, renewals) are answered over plain HTTP, always.
ACME = """
    location ^~ /.well-known/acme-challenge/ {{
        root {root};
        default_type text/plain;
        try_files $uri =404;
    }}
"""
# The nginx role writes this (Mozilla's intermediate TLS settings); every HTTPS server includes it.
TLS_SNIPPET = "/etc/nginx/snippets/provisioner-tls.conf"
TLS = """\
    include {snippet};
    ssl_certificate {cert};
    ssl_certificate_key {key};
"""
HSTS = """\
    add_header Strict-Transport-Security "max-age=31536000" always;
"""
# How every app location proxies (this host's vhosts, and a swarm node's routes: hostcmd/router.py).
PROXY_HEADERS = """\
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 120s;"""
PROXY = (
    """\
        proxy_pass http://provisioner-app-{app};
        proxy_next_upstream error timeout http_502 http_503;
"""
    + PROXY_HEADERS
)
NO_WEB = """\
        default_type text/plain;
        return 503 "{app} has no running web process\\n";"""
# Names the certificate covers answer over HTTPS; over HTTP they redirect there, keeping the method (308).
REDIRECT = """\
        return 308 https://$host$request_uri;"""


@dataclass(frozen=True)
class Tls:
    """An app's installed certificate, as its vhost uses it."""

    cert: str
    key: str
    names: tuple[str, ...]  # the DNS names it covers (wildcards allowed)
    hsts: bool = False


class NginxError(RuntimeError):
    pass


def render(
    app: str,
    domains: Iterable[str],
    ports: Iterable[int],
    *,
    acme_root: str | None = None,
    tls: Tls | None = None,
) -> str:
    """The app's vhost: its domains on port 80; with a certificate, the domains it covers on 443 too, and
    redirected there from port 80. Domains it does not cover stay plain HTTP (a custom certificate for one
    name, or a new domain before the certificate is expanded)."""
    names.app(app)
    server_names = [names.domain(d) for d in domains]
    if not server_names:
        raise NginxError(f"{app} has no domain: set the host's domain or add one with domains:add")
    ports = sorted(int(p) for p in ports)
    if any(not 0 < p < 65536 for p in ports):
        raise NginxError(f"invalid upstream port in {ports}")
    if ports:
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
        location = PROXY.format(app=app)
    else:
        servers = "    server 127.0.0.1:9 down;"
        location = NO_WEB.format(app=app)
    secure = [d for d in server_names if tls and any(names.covers(p, d) for p in tls.names)]
    plain = [d for d in server_names if d not in secure]
    for path in (acme_root, tls and tls.cert, tls and tls.key):
        if path and not SAFE_PATH.fullmatch(path):
            raise NginxError(f"refusing an unsafe path in the vhost of {app}: {path!r}")
    token = hashlib.sha256(f"{app} {server_names} {ports} {tls} {acme_root}".encode()).hexdigest()[:16]
    acme = ACME.format(root=acme_root) if acme_root else ""
    common = {"probe": PROBE, "token": token, "acme": acme}
    text = UPSTREAM.format(app=app, servers=servers)
    if plain:
        text += SERVER.format(
            listen="    listen 80;", server_names=" ".join(plain), extra="", location=location, **common
        )
    if secure and tls:
        text += SERVER.format(
            listen="    listen 80;", server_names=" ".join(secure), extra="", location=REDIRECT, **common
        )
        text += SERVER.format(
            listen="    listen 443 ssl;",
            server_names=" ".join(secure),
            extra=TLS.format(snippet=TLS_SNIPPET, cert=tls.cert, key=tls.key) + (HSTS if tls.hsts else ""),
            location=location,
            **common,
        )
    return text


SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")


def token_of(text: str) -> tuple[str, str] | None:
    """(first server name, token) of a rendered vhost."""
    names_match = re.search(r"^\s*server_name ([^ ;]+)", text, re.M)
    token_match = re.search(r'return 200 "([0-9a-f]{16})";', text)
    return (names_match.group(1), token_match.group(1)) if names_match and token_match else None


def accepting_workers() -> set[int]:
    """PIDs of nginx workers that accept connections (not the old ones shutting down after a reload)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"nginx: worker process") and b"shutting down" not in cmdline:
            pids.add(int(proc.name))
    return pids


def wait_live(text: str | None, old_workers: set[int], timeout: float = 10) -> bool:
    """After a reload, nginx's old workers may still accept for a moment: wait until none of them does
    and the new vhost answers."""
    deadline = time.monotonic() + timeout
    while accepting_workers() & old_workers and time.monotonic() < deadline:
        time.sleep(0.05)
    found = token_of(text) if text else None
    if not found:
        return time.monotonic() < deadline
    server_name, token = found
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"http://127.0.0.1{PROBE}", headers={"Host": server_name})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - this host's own nginx
                if resp.read().decode().strip() == token:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def _nginx(*args: str) -> list[str]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return [*prefix, "/usr/sbin/nginx", *args]


def check_config() -> str | None:
    """None when `nginx -t` passes, else its error."""
    proc = subprocess.run(_nginx("-t", "-q"), capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    lines = [
        ln for ln in proc.stderr.splitlines() if "emerg" in ln or "error" in ln
    ] or proc.stderr.splitlines()
    return lines[0].strip() if lines else "nginx -t failed"


def reload() -> None:
    proc = subprocess.run(_nginx("-s", "reload"), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NginxError(f"nginx reload failed: {proc.stderr.strip()}")


def apply(directory: Path, app: str, text: str | None) -> None:
    """Write (or remove, when text is None) an app's vhost; keep the old one if nginx refuses the new. When
    the reload fails or the new vhost does not go live, the old vhost is put back (and reloaded, and seen
    live) before the error goes on: the caller then stops the new processes, which nginx never routes to."""
    path = directory / f"{names.app(app)}.conf"
    old = path.read_text() if path.exists() else None
    if old == text:
        return
    _put(path, text)
    error = check_config()
    if error:
        _put(path, old)
        raise NginxError(f"nginx refused the new configuration of {app} (kept the old one): {error}")
    old_workers = accepting_workers()
    try:
        reload()
        if not wait_live(text, old_workers):
            raise NginxError(f"nginx did not start serving the new configuration of {app} within 10 s")
    except NginxError as exc:
        _put(path, old)
        workers = accepting_workers()
        try:
            reload()
            back = wait_live(old, workers)
        except NginxError:
            back = False
        state = "the old one is back" if back else "the old one is back on disk, but nginx did not confirm it"
        raise NginxError(f"{exc} ({state})") from None


def _put(path: Path, text: str | None) -> None:
    """The vhost file becomes text (None: no file), atomically: nginx never reads half of one."""
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
