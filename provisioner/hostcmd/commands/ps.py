"""ps, ps:scale, ps:restart: an app's processes."""

from __future__ import annotations

from .. import names
from ..deploy import publish
from ..scheduler import for_settings
from ..settings import Settings
from .base import Command, UserError, app_arg, count, err, no_extra, out, valid

MAX_SCALE = 20


def ps(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps APP")
    no_extra(args[1:], "ps APP")
    instances = for_settings(settings).instances(app.name)
    if not instances:
        out(f"{app.name}: no processes")
    for inst in instances:
        out(f"{inst.process}.{inst.index}  v{inst.version}  {inst.state}  {inst.name}")


def parse_scale(args: list[str]) -> dict[str, int]:
    changes: dict[str, int] = {}
    for arg in args:
        kind, sep, number = arg.partition("=")
        valid(names.process, kind)
        if not sep:
            raise UserError(f"expected TYPE=N with N from 0 to {MAX_SCALE}, got {arg!r}")
        changes[kind] = count(number, f"the count of {kind}", 0, MAX_SCALE)
    return changes


def ps_scale(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:scale APP TYPE=N ...")
    if not args[1:]:
        out(" ".join(f"{k}={v}" for k, v in sorted(app.scale().items())))
        return
    changes = parse_scale(args[1:])
    with app.lock(say=err):
        current = app.current()
        if current:
            unknown = [k for k in changes if k not in current.processes]
            if unknown:
                raise UserError(
                    f"{app.name} has no process type {unknown[0]!r} "
                    f"(it has: {', '.join(sorted(current.processes))})"
                )
        app.set_scale({**app.scale(), **changes})
        err(f"-----> Scaled {app.name} to " + " ".join(f"{k}={v}" for k, v in sorted(app.scale().items())))
        if current:
            publish(app, current, err)


def ps_restart(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:restart APP")
    no_extra(args[1:], "ps:restart APP")
    with app.lock(say=err):
        current = app.current()
        if not current:
            raise UserError(f"{app.name} has no release yet")
        publish(app, current, err)
        err(f"-----> Restarted {app.name}")


COMMANDS = [
    Command("ps", "APP", "processes of the current release", ps),
    Command("ps:scale", "APP TYPE=N ...", "e.g. ps:scale myapp web=2 worker=1", ps_scale),
    Command("ps:restart", "APP", "restart all processes, zero downtime", ps_restart),
]
