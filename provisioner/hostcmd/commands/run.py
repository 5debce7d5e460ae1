"""run: a one-off process of the app's current release (Dokku's and Heroku's `run`), e.g. a migration.

`ssh deploy@HOST run myapp python manage.py migrate`: a fresh container of the current release's image
with the app's config (as stored now), storage, network and limits (release.process_spec, as its
processes get), its output streamed to the SSH client and its exit code passed back. The words are run
as given (exec semantics: quoted for the image's shell, so nothing in them is expanded or chained;
`run myapp sh -c 'a | b'` for a pipeline, which runs in the container). Non-interactive: no TTY, no
shell on the host, no forwarding. Each run is logged in the app's runs.log (when, which deploy key, the
command; never config values).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex

from .. import release
from ..scheduler import for_settings
from ..settings import Settings
from ..store import App, now
from . import base
from .base import Command, UserError, app_arg, err

USAGE = "run APP CMD [ARGS...]"


def log_run(app: App, command: str) -> None:
    """One JSON line per run, appended (0600: the commands may name data)."""
    line = json.dumps({"at": now(), "key": base.CALLER.key or "", "command": command}) + "\n"
    fd = os.open(app.dir / "runs.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)


def run(settings: Settings, args: list[str]) -> int:
    app = app_arg(settings, args, USAGE)
    words = args[1:]
    if not words:
        raise UserError(f"usage: {USAGE} (e.g. run {app.name} python manage.py migrate)")
    current = app.current()
    if current is None:
        raise UserError(f"{app.name} has no release yet: push it first")
    command = shlex.join(words)
    log_run(app, command)
    # The current release's image with the app's config as stored now (a --no-restart change included:
    # Dokku's `run` sees it too).
    spec = release.process_spec(app, dataclasses.replace(current, config=app.config()), "run", 1, command)
    err(f"-----> Running {command} in v{current.version} of {app.name}")
    rc = for_settings(settings).run_attached(spec, settings.run_timeout)
    if rc == 124:
        err(f" !     stopped after {settings.run_timeout} s (receiver_run_timeout)")
    return rc


COMMANDS = [
    Command(
        "run", "APP CMD [ARGS...]", "a one-off process of the current release (exit code passed back)", run
    )
]
