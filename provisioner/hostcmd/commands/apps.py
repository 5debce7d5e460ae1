"""apps:list, apps:create, apps:destroy."""

from __future__ import annotations

from pathlib import Path

from .. import acme, docker, nginx, repo
from ..scheduler import LocalDocker
from ..settings import Settings
from ..store import list_apps
from . import base
from .base import Command, UserError, app_arg, no_extra, out


def apps_list(settings: Settings, args: list[str]) -> None:
    no_extra(args, "apps:list")
    for name in list_apps(settings):
        if base.CALLER.allows(name):
            out(name)


def apps_create(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:create APP", must_exist=False)
    no_extra(args[1:], "apps:create APP")
    if app.exists():
        raise UserError(f"app {app.name!r} already exists")
    app.create(repo.initializer(settings))
    out(f"created {app.name}: git push {settings.user}@HOST:{app.name} {settings.deploy_branch}")


def apps_destroy(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:destroy APP --force")
    if args[1:] != ["--force"]:
        raise UserError(f"this removes {app.name} and its data for good: run apps:destroy {app.name} --force")
    sched = LocalDocker()
    with app.lock():
        for inst in sched.instances(app.name):
            sched.stop(inst, grace=5)
        sched.forget(app.name)
        nginx.apply(Path(settings.vhosts_dir), app.name, None)
        for tag in docker.app_images().get(app.name, []):
            docker.remove_image(tag, force=True)
        acme.forget(settings, app.name)
        app.destroy()
    out(f"destroyed {app.name}")


COMMANDS = [
    Command("apps:list", "", "list apps", apps_list, aliases=("apps",), scope="list"),
    Command("apps:create", "APP", "create an app (a first push does this too)", apps_create),
    Command(
        "apps:destroy",
        "APP --force",
        "remove an app: processes, images, vhost, repository, config",
        apps_destroy,
    ),
]
