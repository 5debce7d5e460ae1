"""apps:list, apps:exists, apps:report, apps:create, apps:rename, apps:destroy."""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from pathlib import Path

from .. import acme, docker, names, nginx, release, repo, services, storage
from ..deploy import publish
from ..scheduler import Instance, for_settings
from ..settings import Settings
from ..store import App, Release, list_apps, read_json, write_json
from . import base
from .base import Command, UserError, app_arg, err, flags, no_extra, out, valid


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


RECORDS = ("releases.json", "current.json", "pending.json")  # the files that name the app's images


def renamed_image(image: str, old: str, new: str) -> str:
    """provisioner-app/OLD:TAG -> provisioner-app/NEW:TAG; any other image (none expected) as it is."""
    prefix = f"{docker.APP_REPO}{old}:"
    return f"{docker.APP_REPO}{new}:{image.removeprefix(prefix)}" if image.startswith(prefix) else image


def rename_records(app: App, old: str) -> None:
    """The release records under the app's new name name its images under the new name."""

    def moved(data: dict[str, object]) -> dict[str, object]:
        record = Release.from_dict(data).to_dict()
        for key in ("image", "base_image"):
            record[key] = renamed_image(str(record[key]), old, app.name) if record[key] else record[key]
        return record

    for name in RECORDS:
        data = read_json(app.dir / name, None)
        if isinstance(data, list):
            write_json(app.dir / name, [moved(r) for r in data], 0o600)
        elif isinstance(data, dict):
            write_json(app.dir / name, moved(data), 0o600)


def retag(old: str, new: str, images: list[str]) -> list[str]:
    """Each image of the app also under its new name; the new tags."""
    made = []
    for tag in images:
        target = renamed_image(tag, old, new)
        repository, _, version = target.rpartition(":")
        docker.api(
            "POST",
            f"/images/{urllib.parse.quote(tag, safe='')}/tag",
            query={"repo": repository, "tag": version},
        )
        made.append(target)
    return made


def apps_rename(settings: Settings, args: list[str]) -> None:
    """Dokku's apps:rename: the repository, config, releases, domains, storage, certificates and service
    links follow; the app starts under the new name, then the old name's processes and vhost go (it then
    answers 404). A failure before the switch puts everything back: the app serves under its old name."""
    usage = "apps:rename OLD NEW"
    app = app_arg(settings, args, usage)
    if len(args) < 2:
        raise UserError(f"usage: {usage}")
    new = App(settings, valid(names.app, args[1]))
    no_extra(args[2:], usage)
    if not base.CALLER.allows(new.name):
        raise UserError(base.CALLER.refusal(new.name))
    if settings.swarm_role:
        raise UserError("apps:rename is not available on a cluster yet: see the README's Clusters section")
    if new.name == app.name or new.exists():
        raise UserError(f"app {new.name!r} exists already: choose another name")
    if (settings.acme_dir / "renewal" / f"{app.name}.conf").exists():
        raise UserError(
            f"{app.name} has a Let's Encrypt certificate, which is renewed under the app's name: run "
            f"letsencrypt:disable {app.name}, rename, then letsencrypt:enable {new.name}"
        )
    sched = for_settings(settings)
    with app.lock(say=err):
        current, stopped = app.current(), app.stopped()
        old_instances = sched.instances(app.name)
        images = docker.app_images().get(app.name, [])
        links = services.linked_to(settings, app.name)
        storage_moved = bool(app.mounts()) and storage.rename(settings, app.name, new.name)
        os.rename(app.dir, new.dir)
        try:
            new_tags = retag(app.name, new.name, images)
            rename_records(new, app.name)
            for service in links:
                with service.lock():
                    record = service.record()
                    linked = dict(record.get("links") or {})
                    linked[new.name] = linked.pop(app.name)
                    service.attach(new.name)
                    service.save({**record, "links": linked})
            # The old vhost goes first: the app's own domains (domains:add) are served by one vhost at a time.
            nginx.apply(Path(settings.vhosts_dir), app.name, None)
            if current and not stopped:
                publish(new, new.current() or current, err)
            elif current:
                release.route(new, [])  # stopped: its domains answer 503 under the new name too
        except BaseException:
            err(f"-----> The rename failed: {app.name} stays as it was")
            undo_rename(settings, app, new, links, storage_moved, old_instances, current, stopped)
            raise
        for inst in old_instances:
            sched.stop(inst, grace=10)
        for service in links:
            service.detach(app.name)
        sched.forget(app.name)
        for tag in images:
            if tag not in new_tags:
                docker.remove_image(tag, force=True)
    out(f"renamed {app.name} to {new.name}: {settings.app_url(new.name)}")


def undo_rename(
    settings: Settings,
    app: App,
    new: App,
    links: list[services.Service],
    storage_moved: bool,
    old_instances: list[Instance],
    current: Release | None,
    stopped: bool,
) -> None:
    """Everything back under the old name, and its vhost again (its processes never stopped)."""
    sched = for_settings(settings)
    for inst in sched.instances(new.name):
        with contextlib.suppress(Exception):
            sched.stop(inst, grace=5)
    with contextlib.suppress(Exception):
        nginx.apply(Path(settings.vhosts_dir), new.name, None)
    for service in links:
        with contextlib.suppress(Exception), service.lock():
            record = service.record()
            linked = dict(record.get("links") or {})
            if new.name in linked:
                linked[app.name] = linked.pop(new.name)
            service.save({**record, "links": linked})
            service.detach(new.name)
    with contextlib.suppress(Exception):
        sched.forget(new.name)
    if new.dir.exists() and not app.dir.exists():
        os.rename(new.dir, app.dir)
        rename_records(app, new.name)
    if storage_moved:
        with contextlib.suppress(storage.StorageError):
            storage.rename(settings, new.name, app.name)
    if current:
        release.route(app, [] if stopped else release.serving_ports(app, current, sched))


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
        "apps:rename",
        "OLD NEW",
        "rename an app: repository, config, releases, domains, storage, links follow; OLD answers 404",
        apps_rename,
    ),
    Command(
        "apps:destroy",
        "APP --force [--purge-storage]",
        "remove an app: processes, images, vhost, repository, config (storage only with --purge-storage)",
        apps_destroy,
    ),
]
