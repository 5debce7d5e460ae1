"""ps, ps:scale, ps:restart, ps:stop, ps:start, ps:rebuild: an app's processes (Dokku's names)."""

from __future__ import annotations

from .. import names, release, swarm
from ..deploy import deploy, publish
from ..scheduler import for_settings
from ..settings import Settings
from ..store import App, Release
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


def deployed(app: App) -> Release:
    """The release the app serves, or one clear refusal (under the app's lock)."""
    current = app.current()
    if not current:
        raise UserError(f"{app.name} has no release yet: push it first")
    return current


def ps_restart(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:restart APP")
    no_extra(args[1:], "ps:restart APP")
    with app.lock(say=err):
        publish(app, deployed(app), err)
        err(f"-----> Restarted {app.name}")


def ps_stop(settings: Settings, args: list[str]) -> None:
    """Every process stops and nginx answers 503 for the app's domains (no other app's page); it stays
    stopped across host restarts, until ps:start or its next release."""
    app = app_arg(settings, args, "ps:stop APP")
    no_extra(args[1:], "ps:stop APP")
    sched = for_settings(settings)
    with app.lock(say=err):
        app.set_stopped(True)  # first: a host restart in between must not start it again
        release.route(app, [])
        if isinstance(sched, swarm.Swarm):  # a cluster: the services go (their tasks with them)
            sched.remove(app.name)
        for inst in sched.instances(app.name):
            sched.stop(inst, grace=10)
    err(f"-----> Stopped {app.name}: its domains answer 503 until ps:start {app.name}")


def ps_start(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:start APP")
    no_extra(args[1:], "ps:start APP")
    with app.lock(say=err):
        current = deployed(app)
        if not app.stopped() and release.serving_ports(app, current, for_settings(settings)):
            err(f"-----> {app.name} is running already")
            return
        publish(app, current, err)  # a release that goes live clears the stopped mark
    err(f"-----> Started {app.name} (v{current.version})")


def ps_rebuild(settings: Settings, args: list[str]) -> None:
    """The current release's commit built again (new buildpacks or stack, a dependency's new release),
    as a new release, zero downtime."""
    app = app_arg(settings, args, "ps:rebuild APP")
    no_extra(args[1:], "ps:rebuild APP")
    current = app.current()
    if not current or not current.commit:
        raise UserError(f"{app.name} has no pushed release to rebuild: push it first")
    rel = deploy(app, names.sha(current.commit), f"rebuild {current.commit[:7]}", err)
    err(f"-----> Rebuilt {app.name} as v{rel.version}")


def report(title: str, rows: list[tuple[str, str]]) -> None:
    """Dokku's report shape: a heading, then one aligned `Name: value` line each."""
    out(f"=====> {title}")
    width = max(len(name) for name, _ in rows) + 1
    for name, value in rows:
        out(f"       {name + ':':<{width}} {value}")


def status_of(app_stopped: bool, deployed: bool, running: int) -> str:
    if not deployed:
        return "not deployed"
    return "stopped" if app_stopped else "running" if running else "no process running"


def ps_report(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:report APP")
    no_extra(args[1:], "ps:report APP")
    current = app.current(tolerant=True)
    instances = for_settings(settings).instances(app.name)
    running = [i for i in instances if i.state == "running"]
    rows = [
        ("Deployed", f"v{current.version}" if current else "no"),
        ("Status", status_of(app.stopped(), current is not None, len(running))),
        ("Scale", " ".join(f"{k}={v}" for k, v in sorted(app.scale().items()))),
        ("Processes", str(len(instances))),
        ("Running", str(len(running))),
    ]
    rows += [(f"Status {i.process}.{i.index}", f"{i.state} (v{i.version}, {i.name})") for i in instances]
    report(f"{app.name} ps information", rows)


COMMANDS = [
    Command("ps", "APP", "processes of the current release", ps),
    Command("ps:scale", "APP TYPE=N ...", "e.g. ps:scale myapp web=2 worker=1", ps_scale),
    Command("ps:restart", "APP", "restart all processes, zero downtime", ps_restart),
    Command("ps:stop", "APP", "stop every process; its domains answer 503 until ps:start", ps_stop),
    Command("ps:start", "APP", "start a stopped app again (its current release)", ps_start),
    Command("ps:rebuild", "APP", "build the current commit again, as a new release", ps_rebuild),
    Command("ps:report", "APP", "the app's process state: deployed, stopped, scale, each process", ps_report),
]
