"""apps:list, apps:exists, apps:report, apps:create, apps:destroy."""

from __future__ import annotations

import contextlib
import os
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


def disk_used(path: Path) -> int:
    """Bytes of the regular files under path (its repository, records and build cache)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def apps_report(settings: Settings, args: list[str]) -> None:
    from .ps import report, status_of

    app = app_arg(settings, args, "apps:report APP")
    no_extra(args[1:], "apps:report APP")
    current = app.current(tolerant=True)
    running = [i for i in for_settings(settings).instances(app.name) if i.state == "running"]
    deployed = "no"
    if current:
        commit = f", commit {current.commit[:7]}" if current.commit else ""
        deployed = f"v{current.version} ({current.kind}{commit}, {current.created or 'unknown time'})"
    rows = [
        ("Deployed", deployed),
        ("Status", status_of(app.stopped(), current is not None, len(running))),
        ("Processes", " ".join(f"{k}={v}" for k, v in sorted(app.scale().items()))),
        ("Domains", " ".join(app.all_domains()) or "none"),
        ("URL", settings.app_url(app.name)),
        ("Image", current.image if current else "none"),
        ("Disk used", f"{disk_used(app.dir) / 1e6:.1f} MB (repository, records, build cache)"),
    ]
    report(f"{app.name} app information", rows)


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
    Command(
        "apps:report",
        "APP",
        "deployed release, status, processes, domains, URL, image, disk used",
        apps_report,
    ),
    Command("apps:create", "APP", "create an app (a first push does this too)", apps_create),
    Command(
        "apps:destroy",
        "APP --force [--purge-storage]",
        "remove an app: processes, images, vhost, repository, config (storage only with --purge-storage)",
        apps_destroy,
    ),
]
