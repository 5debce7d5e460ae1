"""storage, storage:mount, storage:unmount: persistent directories mounted into an app's processes (Dokku's
storage plugin, with names instead of host paths); changes go live as a new release."""

from __future__ import annotations

from collections.abc import Callable

from .. import names, storage
from ..settings import Settings
from ..store import App
from .base import Command, UserError, app_arg, err, flags, no_extra, out, valid
from .config import locked_change


def storage_list(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "storage APP")
    no_extra(args[1:], "storage APP")
    mounts = app.mounts()
    if not mounts:
        out(f"{app.name} has no storage mounts (storage:mount {app.name} NAME:/container/path)")
    for name, path in sorted(mounts.items()):
        out(f"{name}:{path}  ({storage.source(settings, app.name, name)})")


def one_word(settings: Settings, args: list[str], usage: str) -> tuple[App, str, bool]:
    """APP WORD [--no-restart]: the app, its one word, and whether to publish the change."""
    app = app_arg(settings, args, usage)
    words, seen = flags(args[1:], "--no-restart")
    if len(words) != 1:
        raise UserError(f"usage: {usage}")
    return app, words[0], not seen


def change(app: App, restart: bool, what: str, edit: Callable[[dict[str, str]], None]) -> None:
    """Change the app's mounts under its lock, then (unless --no-restart) release it again with them."""

    def store() -> None:
        mounts = app.mounts()
        edit(mounts)
        app.set_mounts(mounts)

    locked_change(app, store, what, f"storage: {what.lower()}", restart)
    if not restart:
        err(f"       {app.name} gets it with its next release (a push, ps:restart, config:set)")


def storage_mount(settings: Settings, args: list[str]) -> None:
    usage = "storage:mount APP NAME:/container/path [--no-restart]"
    app, spec, restart = one_word(settings, args, usage)
    name, path = valid(storage.parse, spec)

    def add(mounts: dict[str, str]) -> None:
        if mounts.get(name) == path:
            raise UserError(f"{name} is mounted at {path} on {app.name} already")
        if name in mounts:
            raise UserError(f"{name} is mounted at {mounts[name]} on {app.name}: storage:unmount it first")
        taken = [other for other, at in mounts.items() if at == path]
        if taken:
            raise UserError(f"{path} is taken by the storage {taken[0]!r} on {app.name}")
        mounts[name] = path

    change(app, restart, f"Mounted {name} at {path} on {app.name}", add)


def storage_unmount(settings: Settings, args: list[str]) -> None:
    usage = "storage:unmount APP NAME [--no-restart]"
    app, word, restart = one_word(settings, args, usage)
    # Dokku's form NAME:/container/path is taken too; the path must be the mounted one then.
    name, path = valid(storage.parse, word) if ":" in word else (valid(names.storage, word), None)

    def drop(mounts: dict[str, str]) -> None:
        if name not in mounts or path not in (None, mounts[name]):
            raise UserError(f"{app.name} has no storage {word!r} mounted (see storage {app.name})")
        del mounts[name]

    change(app, restart, f"Unmounted {name} from {app.name} (its files are kept)", drop)


COMMANDS = [
    Command("storage", "APP", "list the app's storage mounts", storage_list, aliases=("storage:list",)),
    Command(
        "storage:mount",
        "APP NAME:/path [--no-restart]",
        "mount storage directory NAME at /path in every process (redeploys, zero downtime)",
        storage_mount,
    ),
    Command("storage:unmount", "APP NAME [--no-restart]", "unmount it (its files are kept)", storage_unmount),
]
