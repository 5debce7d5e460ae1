"""domains, domains:add, domains:remove: the names nginx routes to an app."""

from __future__ import annotations

from .. import names, nginx
from ..deploy import publish
from ..settings import Settings
from ..store import App, list_apps
from . import letsencrypt
from .base import Command, UserError, app_arg, err, no_extra, out, valid


def domains(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "domains APP")
    no_extra(args[1:], "domains APP")
    for domain in app.all_domains():
        out(domain)


def change(settings: Settings, args: list[str], add: bool) -> None:
    verb = "domains:add" if add else "domains:remove"
    app = app_arg(settings, args, f"{verb} APP DOMAIN")
    if len(args) != 2:
        raise UserError(f"usage: {verb} APP DOMAIN")
    domain = valid(names.domain, args[1])
    with app.lock(say=err):
        before = app.domains()
        if add:
            if domain in app.all_domains():
                raise UserError(f"{domain} already routes to {app.name}")
            for other in list_apps(settings):
                if other != app.name and domain in App(settings, other).all_domains():
                    raise UserError(f"{domain} already routes to app {other}")
            app.set_domains([*before, domain])
        else:
            if domain not in before:
                raise UserError(f"{domain} is not a custom domain of {app.name}")
            app.set_domains([d for d in before if d != domain])
        current = app.current()
        try:
            if current:
                publish(app, current, err, restart=False)
        except nginx.NginxError:
            app.set_domains(before)
            raise
        done = f"{'added' if add else 'removed'} {domain} {'to' if add else 'from'} {app.name}"
        try:
            letsencrypt.refresh(app, err)
        except letsencrypt.FAILURES as exc:
            raise UserError(
                f"{done}, but its certificate was not renewed for its domains: {exc}; the old certificate "
                f"keeps serving (letsencrypt:renew {app.name} to try again)"
            ) from None
    out(done)


def domains_add(settings: Settings, args: list[str]) -> None:
    change(settings, args, add=True)


def domains_remove(settings: Settings, args: list[str]) -> None:
    change(settings, args, add=False)


COMMANDS = [
    Command("domains", "APP", "domains routed to the app", domains),
    Command("domains:add", "APP DOMAIN", "route another domain to the app", domains_add),
    Command("domains:remove", "APP DOMAIN", "stop routing a domain", domains_remove),
]
