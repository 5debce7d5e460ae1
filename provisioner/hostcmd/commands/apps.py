"""apps:list, apps:exists, apps:create, apps:destroy."""

from __future__ import annotations

from pathlib import Path

from .. import acme, docker, nginx, repo, services, storage
from ..scheduler import for_settings
from ..settings import Settings
from ..store import list_apps
from . import base
from .base import Command, UserError, app_arg, flags, no_extra, out


def apps_list(settings: Settings, args: list[str]) -> None:
    no_extra(args, "apps:list")
    for name in list_apps(settings):
        if base.CALLER.allows(name):
            out(name)


def apps_exists(settings: Settings, args: list[str]) -> int:
    """For scripts: exit code 0 when the app exists, 1 (and one line) when not."""
    app = app_arg(settings, args, "apps:exists APP", must_exist=False)
    no_extra(args[1:], "apps:exists APP")
    if not app.exists():
        raise UserError(f"no app named {app.name!r}")
    return 0


def apps_create(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:create APP", must_exist=False)
    no_extra(args[1:], "apps:create APP")
    if app.exists():
        raise UserError(f"app {app.name!r} already exists")
    app.create(repo.initializer(settings))
    out(f"created {app.name}: git push {settings.user}@HOST:{app.name} {settings.deploy_branch}")


def apps_destroy(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:destroy APP --force [--purge-storage]")
    extra, seen = flags(args[1:], "--force", "--purge-storage")
    no_extra(extra, "apps:destroy APP --force [--purge-storage]")
    if "--force" not in seen:
        raise UserError(f"this removes {app.name} and its data for good: run apps:destroy {app.name} --force")
    sched = for_settings(settings)
    with app.lock():
        for inst in sched.instances(app.name):
            sched.stop(inst, grace=5)
        # Linked services leave the app's network first (the engine removes no network in use).
        for service in services.forget_app(settings, app.name):
            out(f"unlinked {service} from {app.name} (the service and its data stay)")
        sched.forget(app.name)
        nginx.apply(Path(settings.vhosts_dir), app.name, None)
        for tag in docker.app_images().get(app.name, []):
            docker.remove_image(tag, force=True)
        acme.forget(settings, app.name)
        mounts = sorted(app.mounts())
        # Its storage only with --purge-storage (its processes are gone): else a new app of this name
        # mounts the same directories again.
        purged = storage.purge(settings, app.name) if "--purge-storage" in seen else None
        app.destroy()
    out(f"destroyed {app.name}")
    where = f"{settings.storage_dir}/{app.name}"
    if purged is not None:
        out(f"removed its storage ({where})" if purged else f"{app.name} had no storage to remove")
    elif mounts:
        out(
            f"kept its storage {', '.join(mounts)} in {where}: a new app {app.name} mounts it again "
            "(remove it with apps:destroy APP --force --purge-storage)"
        )
    else:
        out(f"no storage mounted; any storage of an earlier {app.name} in {where} is kept")


COMMANDS = [
    Command("apps:list", "", "list apps", apps_list, aliases=("apps",), scope="list"),
    Command("apps:exists", "APP", "exit code 0 when the app exists, 1 when not (for scripts)", apps_exists),
    Command("apps:create", "APP", "create an app (a first push does this too)", apps_create),
    Command(
        "apps:destroy",
        "APP --force [--purge-storage]",
        "remove an app: processes, images, vhost, repository, config (storage only with --purge-storage)",
        apps_destroy,
    ),
]
