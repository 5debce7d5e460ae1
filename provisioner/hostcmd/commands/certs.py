"""certs, certs:add, certs:remove: an app's own certificate (a PEM bundle on stdin), checked first."""

from __future__ import annotations

import sys

from .. import tls
from ..deploy import reroute
from ..settings import Settings
from .base import Command, UserError, app_arg, err, no_extra, not_on_a_cluster, out
from .letsencrypt import enabled, expiry, turn_off

USAGE = "certs:add APP < bundle.pem (the certificate chain, then its private key)"


def show(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "certs APP")
    no_extra(args[1:], "certs APP")
    cert = tls.installed(app)
    if cert is None:
        out(f"{app.name} has no certificate: HTTP only (certs:add or letsencrypt:enable)")
        return
    try:
        info = tls.info(cert.cert.read_text())
    except (OSError, tls.CertError) as exc:
        raise UserError(f"the certificate of {app.name} cannot be read: {exc}") from None
    domains = app.all_domains()
    for label, value in (
        ("source", "Let's Encrypt" if cert.source == "letsencrypt" else "certs:add"),
        ("subject", info.subject),
        ("names", ", ".join(info.names)),
        ("issuer", info.issuer),
        ("not before", f"{info.not_before:%Y-%m-%d %H:%M} UTC"),
        ("expires", f"{info.not_after:%Y-%m-%d %H:%M} UTC ({info.days_left():.0f} days left)"),
        ("serial", info.serial),
        ("HTTPS for", ", ".join(tls.covered(info.names, domains)) or "none of the app's domains"),
    ):
        out(f"{label + ':':12}{value}")


def add(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, USAGE)
    no_extra(args[1:], USAGE)
    not_on_a_cluster(settings, "certs:add")
    text = sys.stdin.read(tls.MAX_BUNDLE + 1)
    if not text.strip():
        raise UserError(f"no certificate on stdin; usage: {USAGE}")
    try:
        bundle = tls.parse_bundle(text)
    except tls.CertError as exc:
        raise UserError(f"certificate refused: {exc}") from None
    domains = app.all_domains()
    secure = tls.covered(bundle.info.names, domains)
    if not secure:
        raise UserError(
            f"certificate refused: it is for {', '.join(bundle.info.names)}, none of {app.name}'s domains "
            f"({', '.join(domains) or 'none'}); add the domain first (domains:add)"
        )
    with app.lock(say=err):
        tls.install(app, bundle, "custom", lambda: reroute(app, err))
        if enabled(app):
            turn_off(app)
            err(f"-----> Let's Encrypt disabled for {app.name}: the added certificate replaces it")
    cert = tls.installed(app)
    out(f"{app.name}: HTTPS for {', '.join(secure)}, certificate {expiry(cert) if cert else ''}".rstrip(", "))


def remove(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "certs:remove APP")
    no_extra(args[1:], "certs:remove APP")
    with app.lock(say=err):
        if not tls.remove(app, lambda: reroute(app, err)):
            raise UserError(f"{app.name} has no certificate")
        if enabled(app):
            turn_off(app)
    out(f"{app.name}: certificate removed; served over HTTP only")


COMMANDS = [
    Command(
        "certs",
        "APP",
        "the app's certificate: subject, names, issuer, expiry",
        show,
        aliases=("certs:report",),
    ),
    Command("certs:add", "APP < bundle.pem", "install a certificate (chain, then key) read from stdin", add),
    Command("certs:remove", "APP", "remove the app's certificate: HTTP only", remove),
]
