"""What the backing-service topics share (Dokku's service plugins: the same verbs for each kind):
KIND:create, :list, :info, :link, :unlink, :destroy. postgres.py and redis.py make their tables from it."""

from __future__ import annotations

import json
from functools import partial

from .. import services
from ..services import Kind, Service
from ..settings import Settings
from .base import Command, UserError, app_arg, err, flags, no_extra, out, valid
from .config import edit

HIDDEN = "********"  # what info shows in place of the password


def service_arg(settings: Settings, kind: Kind, args: list[str], usage: str) -> Service:
    if not args:
        raise UserError(f"usage: {usage}")
    service = Service(settings, kind, valid(services.valid_name, args[0]))
    if not service.exists():
        raise UserError(f"no {kind.name} service named {service.name!r} (see {kind.name}:list)")
    return service


def create(kind: Kind, settings: Settings, args: list[str]) -> None:
    usage = f"{kind.name}:create NAME"
    if not args:
        raise UserError(f"usage: {usage}")
    name = valid(services.valid_name, args[0])
    no_extra(args[1:], usage)
    service = services.create(settings, kind, name, err)
    out(f"created {kind.name} {service.name}: link it with {kind.name}:link {service.name} APP")


def listing(kind: Kind, settings: Settings, args: list[str]) -> None:
    rest, as_json = flags(args, "--json")
    no_extra(rest, f"{kind.name}:list [--json]")
    rows = []
    for service in services.all_services(settings, kind):
        record = service.record()
        rows.append(
            {
                "name": service.name,
                "version": str(record.get("version", "")),
                "status": service.state(),
                "links": sorted(record.get("links") or {}),
            }
        )
    if as_json:
        out(json.dumps(rows, indent=2))
        return
    if not rows:
        out(f"no {kind.name} services (create one with {kind.name}:create NAME)")
        return
    out(f"{'NAME':<31} {'VERSION':<8} {'STATUS':<10} LINKED APPS")
    for row in rows:
        out(f"{row['name']:<31} {row['version']:<8} {row['status']:<10} {' '.join(row['links']) or '-'}")


def info(kind: Kind, settings: Settings, args: list[str]) -> None:
    usage = f"{kind.name}:info NAME [--show-url] [--json]"
    service = service_arg(settings, kind, args, usage)
    rest, show_url = flags(args[1:], "--show-url")
    rest, as_json = flags(rest, "--json")
    no_extra(rest, usage)
    record = service.record()
    version = str(record.get("version", ""))
    status = service.state()
    if status == "running" and not service.ready(version):
        status = "running, not answering"
    url = service.url() if show_url else service.url(password=HIDDEN)
    data = {
        "name": service.name,
        "kind": kind.name,
        "version": version,
        "status": status,
        "size": services.size(service, version) if status == "running" else "",
        "links": dict(sorted((record.get("links") or {}).items())),
        "data_dir": str(service.dir / "data"),
        "created": record.get("created", ""),
        "url": url,
    }
    if as_json:
        out(json.dumps(data, indent=2))
        return
    out(f"=====> {kind.name} {service.name}")
    out(f"       Version:      {version or '-'}")
    out(f"       Status:       {status}")
    out(f"       Size:         {data['size'] or '-'}")
    links = ", ".join(f"{app} ({var})" for app, var in data["links"].items())
    out(f"       Linked apps:  {links or '-'}")
    out(f"       Data dir:     {data['data_dir']}")
    out(f"       URL:          {url}{'' if show_url else '   (--show-url shows the password)'}")


def link(kind: Kind, settings: Settings, args: list[str]) -> None:
    usage = f"{kind.name}:link NAME APP [--no-restart]"
    service = service_arg(settings, kind, args, usage)
    app = app_arg(settings, args[1:], usage)
    rest, no_restart = flags(args[2:], "--no-restart")
    no_extra(rest, usage)
    with service.lock():
        record = service.record()
        links = dict(record.get("links") or {})
        if app.name in links:
            out(f"{kind.name} {service.name} is linked to {app.name} already ({links[app.name]})")
            return
        url = service.url()
        current = app.config().get(kind.var)
        var = kind.var if current in (None, "", url) else services.alias_var(kind, service.name)
        service.attach(app.name)
        links[app.name] = var
        service.save({**record, "links": links})
    err(f"-----> Linking {kind.name} {service.name} to {app.name} as {var}")
    edit(app, "set", [var], not no_restart, lambda config: config.update({var: url}))


def unlink(kind: Kind, settings: Settings, args: list[str]) -> None:
    usage = f"{kind.name}:unlink NAME APP [--no-restart]"
    service = service_arg(settings, kind, args, usage)
    app = app_arg(settings, args[1:], usage, must_exist=False)  # a link to an app gone is removed too
    rest, no_restart = flags(args[2:], "--no-restart")
    no_extra(rest, usage)
    with service.lock():
        record = service.record()
        links = dict(record.get("links") or {})
        if app.name not in links:
            raise UserError(f"{kind.name} {service.name} is not linked to {app.name}")
        var = links.pop(app.name)
        err(f"-----> Unlinking {kind.name} {service.name} from {app.name}")
        if app.exists():
            edit(app, "unset", [var], not no_restart, lambda config: drop(config, var))
        service.detach(app.name)
        service.save({**record, "links": links})


def drop(config: dict[str, str], var: str) -> None:
    config.pop(var, None)


def destroy(kind: Kind, settings: Settings, args: list[str]) -> None:
    usage = f"{kind.name}:destroy NAME --force"
    service = service_arg(settings, kind, args, usage)
    if args[1:] != ["--force"]:
        raise UserError(
            f"this removes {kind.name} {service.name} and its data for good: "
            f"run {kind.name}:destroy {service.name} --force"
        )
    services.destroy(service, err)
    out(f"destroyed {kind.name} {service.name}")


def commands_for(kind: Kind) -> list[Command]:
    """The verbs every kind has, bound to kind. Services are the host's, not an app's: scope host."""
    k = kind.name
    verbs = [
        ("create", "NAME", f"create a {k} service (its data stays on this host)", create),
        ("list", "[--json]", f"list the {k} services", listing),
        ("info", "NAME [--show-url] [--json]", f"a {k} service's version, status, size and links", info),
        ("link", "NAME APP [--no-restart]", f"set {kind.var} on APP (redeploys, zero downtime)", link),
        ("unlink", "NAME APP [--no-restart]", f"remove the link and {kind.var} from APP", unlink),
        ("destroy", "NAME --force", f"remove a {k} service and its data (refused while linked)", destroy),
    ]
    return [
        Command(f"{k}:{verb}", usage, summary, partial(handler, kind), scope="host")
        for verb, usage, summary, handler in verbs
    ]
