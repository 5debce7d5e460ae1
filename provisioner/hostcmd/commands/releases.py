"""releases, rollback: an app's history, and going back to an earlier release."""

from __future__ import annotations

from .. import docker, names
from ..deploy import publish
from ..settings import Settings
from .base import Command, UserError, app_arg, err, no_extra, out, valid


def releases(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "releases APP")
    no_extra(args[1:], "releases APP")
    current = app.current()
    for rel in reversed(app.releases()):
        mark = "*" if current and rel.version == current.version else " "
        out(f"{mark} v{rel.version}  {rel.created}  {rel.commit[:7]}  {rel.description}")


def rollback(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "rollback APP vN")
    if len(args) != 2:
        raise UserError("usage: rollback APP vN")
    version = valid(names.release, args[1])
    with app.lock(say=err):
        target = app.release(version)
        if not target:
            raise UserError(f"{app.name} has no release v{version} (see releases {app.name})")
        if not docker.image_exists(target.image):
            raise UserError(
                f"the image of v{version} was removed by cleanup (it keeps the last "
                f"{settings.keep_releases} releases): push that commit again to get it back"
            )
        rel = publish(app, target.again(app.next_version(), f"rollback to v{version}"), err)
        app.set_config(dict(rel.config))
        err(f"-----> Rolled back {app.name} to v{version} (as v{rel.version})")


COMMANDS = [
    Command("releases", "APP", "release history", releases),
    Command("rollback", "APP vN", "release the code and config of vN again", rollback),
]
