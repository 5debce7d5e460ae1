"""resources, resources:set: memory, CPUs and processes of an app's containers, within the host's maxima."""

from __future__ import annotations

from .. import resources
from ..deploy import redeploy
from ..settings import Settings
from .base import Command, UserError, app_arg, err, flags, no_extra, out

USAGE = "resources:set APP [memory=256m] [cpus=0.5] [pids=256] [--no-restart]"


def show(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "resources APP")
    no_extra(args[1:], "resources APP")
    now = resources.limits(app, app.config())
    chosen = resources.stored(app)
    source = {
        "memory": "resources:set" if chosen.get("memory") else
        ("config var MEMORY_LIMIT" if app.config().get("MEMORY_LIMIT") else "host default"),
        "cpus": "resources:set" if chosen.get("cpus") else "host default",
        "pids": "resources:set" if chosen.get("pids") else "host default",
    }  # fmt: skip
    cpus = f"{now.cpus:g}" if now.cpus else "no limit"
    out(f"memory: {now.memory:<10} ({source['memory']}; at most {settings.memory_max})")
    out(f"cpus:   {cpus:<10} ({source['cpus']}; at most {resources.host_cpus(settings):g})")
    out(f"pids:   {now.pids:<10} ({source['pids']}; at most {settings.pids_max})")


def set_command(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, USAGE)
    words, seen = flags(args[1:], "--no-restart")
    if not words:
        raise UserError(f"usage: {USAGE}")
    changes: dict[str, object] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in resources.KEYS:
            raise UserError(f"expected memory=, cpus= or pids=, got {word!r}; usage: {USAGE}")
        try:
            changes[key] = resources.CHECKS[key](value, settings) if value else None  # empty: the default
        except resources.ResourceError as exc:
            raise UserError(str(exc)) from None
    with app.lock(say=err):
        values = {k: v for k, v in {**resources.stored(app), **changes}.items() if v is not None}
        resources.store(app, values)
        shown = ", ".join(f"{k}={v if v is not None else 'default'}" for k, v in changes.items())
        err(f"-----> Set {shown} on {app.name}")
        if "--no-restart" not in seen:
            redeploy(app, err, f"resources:set {shown}")


COMMANDS = [
    Command("resources", "APP", "memory, CPUs and processes of the app's containers", show),
    Command(
        "resources:set",
        "APP memory=M cpus=C pids=N [--no-restart]",
        "change them, up to the host's maxima (redeploys; KEY= for the default)",
        set_command,
    ),
]
