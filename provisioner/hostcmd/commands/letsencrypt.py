"""letsencrypt:enable, :disable, :list, :renew: certificates from an ACME server, renewed before they expire.

Dokku's letsencrypt plugin's names. certbot (acme.py) obtains; tls.py installs, the same way as certs:add.
An app's state (enabled, the last renewal's outcome) is its letsencrypt.json; the renewal timer of the tls
role runs `letsencrypt:renew` twice a day, which renews only what is due.
"""

from __future__ import annotations

from typing import Any

from .. import acme, names, nginx, tls
from ..deploy import reroute
from ..settings import Settings
from ..store import App, list_apps, now, read_json, write_json
from . import base
from .base import Command, UserError, app_arg, err, flags, no_extra, not_on_a_cluster, out

FAILURES = (acme.AcmeError, tls.CertError, nginx.NginxError)


def state(app: App) -> dict[str, Any]:
    return dict(read_json(app.dir / "letsencrypt.json", {}))


def set_state(app: App, **changes: Any) -> None:
    write_json(app.dir / "letsencrypt.json", {**state(app), **changes}, 0o644)


def enabled(app: App) -> bool:
    return bool(state(app).get("enabled"))


def turn_off(app: App) -> None:
    """Let's Encrypt no longer renews the app's certificate, and certbot forgets its lineage."""
    set_state(app, enabled=False, last_error="")
    acme.forget(app.settings, app.name)


def expiry(cert: tls.Installed) -> str:
    return f"valid until {cert.not_after[:10]} ({cert.days_left():.0f} days left)"


def obtain(app: App, say: Any) -> tls.Installed:
    """A certificate for all the app's domains, installed. The caller holds the app's lock."""
    domains = app.all_domains()
    if not domains:
        raise UserError(f"{app.name} has no domain: set the host's domain or add one with domains:add")
    say(f"-----> Requesting a certificate for {', '.join(domains)} from {app.settings.acme_server}")
    bundle = acme.obtain(app.settings, app.name, domains)
    return tls.install(app, bundle, "letsencrypt", lambda: reroute(app, say))


def refresh(app: App, say: Any) -> None:
    """After a domain change: the certificate of an app with Let's Encrypt follows its domains. The caller
    holds the app's lock; a failure is recorded and raised (the old certificate keeps serving)."""
    if not enabled(app):
        return
    try:
        cert = obtain(app, say)
    except FAILURES as exc:
        set_state(app, last_error=str(exc), last_attempt=now())
        raise
    set_state(app, last_error="", last_attempt=now(), renewed=now())
    say(f"-----> Certificate for {', '.join(cert.names)} installed, {expiry(cert)}")


def enable(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "letsencrypt:enable APP")
    no_extra(args[1:], "letsencrypt:enable APP")
    not_on_a_cluster(settings, "letsencrypt:enable")
    with app.lock(say=err):
        if not app.current():
            raise UserError(
                f"{app.name} is not deployed yet: push it first (the ACME server checks its domains by HTTP)"
            )
        try:
            cert = obtain(app, err)
        except FAILURES as exc:
            if enabled(app):
                set_state(app, last_error=str(exc), last_attempt=now())
            raise UserError(f"no certificate for {app.name}: {exc}; it keeps serving as before") from None
        set_state(app, enabled=True, last_error="", last_attempt=now(), renewed=now())
    out(f"{app.name}: HTTPS for {', '.join(cert.names)}, certificate {expiry(cert)}")


def disable(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "letsencrypt:disable APP")
    no_extra(args[1:], "letsencrypt:disable APP")
    with app.lock(say=err):
        cert = tls.installed(app)
        if not enabled(app) and not (cert and cert.source == "letsencrypt"):
            raise UserError(f"Let's Encrypt is not enabled for {app.name}")
        if cert and cert.source == "letsencrypt":
            tls.remove(app, lambda: reroute(app, err))
        turn_off(app)
    out(f"{app.name}: Let's Encrypt disabled; served over HTTP only")


def list_command(settings: Settings, args: list[str]) -> None:
    no_extra(args, "letsencrypt:list")
    rows = [("APP", "DOMAINS", "EXPIRES", "DAYS LEFT", "STATUS")]
    for name in list_apps(settings):
        app = App(settings, name)
        if not enabled(app) or not base.CALLER.allows(name):
            continue
        cert = tls.installed(app)
        error = state(app).get("last_error", "")
        status = f"renewal failed: {error}" if error else "ok"
        if cert is None:
            rows.append((name, ", ".join(app.all_domains()), "-", "-", status if error else "no certificate"))
        else:
            rows.append((name, ", ".join(cert.names), cert.not_after[:10], f"{cert.days_left():.0f}", status))
    if len(rows) == 1:
        out("no app has Let's Encrypt enabled (letsencrypt:enable APP)")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


def due(app: App, force: bool) -> str | None:
    """Why the app's certificate must be renewed now, or None."""
    cert = tls.installed(app)
    if force:
        return "forced"
    if cert is None or cert.source != "letsencrypt":
        return "no certificate yet"
    missing = [d for d in app.all_domains() if not any(names.covers(p, d) for p in cert.names)]
    if missing:
        return f"{', '.join(missing)} not covered"
    if cert.days_left() < app.settings.acme_renew_days:
        return f"{cert.days_left():.0f} days left"
    return None


def renew(settings: Settings, args: list[str]) -> None:
    usage = "letsencrypt:renew [APP] [--force]"
    positional, given = flags(args, "--force")
    if len(positional) > 1:
        raise UserError(f"usage: {usage}")
    if positional:
        app = app_arg(settings, positional, usage)
        if not enabled(app):
            raise UserError(f"Let's Encrypt is not enabled for {app.name} (letsencrypt:enable {app.name})")
        apps = [app]
    else:
        apps = [a for a in (App(settings, n) for n in list_apps(settings)) if enabled(a)]
    failed = []
    for app in apps:
        with app.lock(say=err):
            if not app.current():
                out(f"{app.name}: skipped, not deployed")
                continue
            reason = due(app, "--force" in given)
            if reason is None:
                cert = tls.installed(app)
                out(f"{app.name}: not due, certificate {expiry(cert)}" if cert else f"{app.name}: not due")
                continue
            try:
                cert = obtain(app, err)
            except FAILURES as exc:
                set_state(app, last_error=str(exc), last_attempt=now())
                err(f" !     {app.name}: renewal failed: {exc}; the current certificate keeps serving")
                failed.append(app.name)
                continue
            set_state(app, last_error="", last_attempt=now(), renewed=now())
            out(f"{app.name}: renewed ({reason}), certificate {expiry(cert)}")
    if failed:
        raise UserError(f"renewal failed for {', '.join(failed)}")


COMMANDS = [
    Command(
        "letsencrypt:enable", "APP", "HTTPS with a certificate from Let's Encrypt (ACME HTTP-01)", enable
    ),
    Command("letsencrypt:disable", "APP", "remove the app's Let's Encrypt certificate: HTTP only", disable),
    Command(
        "letsencrypt:list", "", "apps with Let's Encrypt: domains, expiry, days left, status", list_command
    ),
    Command(
        "letsencrypt:renew",
        "[APP] [--force]",
        "renew certificates due within {acme_renew_days} days (all apps, or one; --force: now)",
        renew,
    ),
]
