"""releases, rollback: an app's history, and going back to an earlier release."""

from __future__ import annotations

import json

from .. import docker, names
from ..deploy import publish
from ..release import PHASE_ORDER
from ..settings import Settings
from .base import Command, UserError, app_arg, err, no_extra, out, valid


def phase_rank(phase: str) -> int:
    return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)


def releases(settings: Settings, args: list[str]) -> None:
    """Newest first; --json adds a push's figures (seconds to live, seconds per phase). Never the config."""
    as_json = args[1:2] == ["--json"]
    app = app_arg(settings, args, "releases APP [--json]")
    no_extra(args[2 if as_json else 1 :], "releases APP [--json]")
    current = app.current(tolerant=True)
    history = list(reversed(app.releases()))
    if as_json:
        records = [
            {
                "version": rel.version,
                "current": bool(current and rel.version == current.version),
                "created": rel.created,
                "commit": rel.commit,
                "kind": rel.kind,
                "description": rel.description,
                "seconds": rel.seconds,
                # in the order they ran (the record's keys are sorted)
                "phases": {p: rel.phases[p] for p in sorted(rel.phases, key=phase_rank)},
            }
            for rel in history
        ]
        out(json.dumps(records, indent=2))
        return
    for rel in history:
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
    Command("releases", "APP [--json]", "release history (--json: with each push's timings)", releases),
    Command("rollback", "APP vN", "release the code and config of vN again", rollback),
]
