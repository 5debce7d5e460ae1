"""cleanup: old app images, build caches and leftovers of killed builds."""

from __future__ import annotations

from .. import build, cleanup, docker, nginx, release
from ..deploy import heal, reconcile
from ..settings import Settings
from ..store import App, StoreError, list_apps
from .base import Command, UserError, count, err, no_extra, out


def cleanup_command(settings: Settings, args: list[str]) -> None:
    keep = settings.keep_releases
    if args:
        if len(args) != 2 or args[0] != "--keep":
            raise UserError("usage: cleanup [--keep N] with N from 1 to 1000")
        keep = count(args[1], "--keep", 1, 1000)
    root = build.docker_root()
    free_before = build.free_mb(root)
    report = cleanup.cleanup(settings, err, keep)
    for name, versions in sorted(report.kept.items()):
        out(f"{name}: keeping " + (", ".join(f"v{v}" for v in versions) or "no release"))
    for name in report.busy:
        out(f"{name}: skipped, a deploy is running")
    free_after = build.free_mb(root)
    freed = max(0, free_after - free_before)
    out(f"removed {len(report.removed_images)} image(s); {freed} MB freed; {free_after} MB free")


def reconcile_command(settings: Settings, args: list[str]) -> None:
    """Run at boot (provisioner-reconcile.service): settle publishes a crash cut short, and start again the
    web processes that could not come back (a fixed host port taken by another program)."""
    no_extra(args, "reconcile")
    failed = []
    for name in list_apps(settings):
        app = App(settings, name)
        try:
            with app.lock(say=err):
                reconcile(app, err)
                if heal(app, err):
                    out(f"{name}: web processes started again")
        except (docker.DockerError, release.ReleaseError, nginx.NginxError, StoreError) as exc:
            err(f" !     {name}: {exc}")
            failed.append(name)
    if failed:
        raise UserError(f"could not bring back {', '.join(failed)}")


COMMANDS = [
    Command(
        "cleanup",
        "[--keep N]",
        "remove old images and build caches; keeps the last N (default {keep_releases})",
        cleanup_command,
        scope="host",
    ),
    Command(
        "reconcile",
        "",
        "after a crash or reboot: settle cut-short deploys, restart what could not come back",
        reconcile_command,
        scope="host",
    ),
]
