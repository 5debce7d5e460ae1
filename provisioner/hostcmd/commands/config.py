"""config, config:get, config:keys, config:export, config:set, config:unset, config:clear: an app's
environment (Dokku's commands and options); changes go live as a new release."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from .. import names, resources
from ..deploy import redeploy
from ..settings import Settings
from ..store import App
from .base import Command, UserError, app_arg, err, flags, no_extra, out, valid

MAX_VALUE_BYTES = 64 * 1024


def decoded(key: str, value: str) -> str:
    """config:set --encoded: the value as base64 (Dokku's way to pass newlines and quotes through ssh)."""
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UserError(f"the value of {key} is not base64 of UTF-8 text (config:set --encoded)") from None


def parse_pairs(args: list[str], encoded: bool = False) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise UserError(f"expected KEY=VALUE, got {arg!r}")
        valid(names.config_key, key)
        if encoded:
            value = decoded(key, value)
        if "\0" in value or len(value.encode()) > MAX_VALUE_BYTES:
            raise UserError(f"the value of {key} is too long or holds a NUL byte (at most 64 KiB of text)")
        pairs[key] = value
    return pairs


def check_memory_limit(pairs: dict[str, str], settings: Settings) -> None:
    """MEMORY_LIMIT is refused before it is stored when it is not a size within the host's bounds: a bad
    value would fail every later deploy, and none may lift the limit."""
    if pairs.get("MEMORY_LIMIT"):
        try:
            resources.check_memory(pairs["MEMORY_LIMIT"], settings)
        except resources.ResourceError as exc:
            raise UserError(f"{exc} (config var MEMORY_LIMIT)") from None


def config_show(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config APP")
    no_extra(args[1:], "config APP")
    for key, value in sorted(app.config().items()):
        out(f"{key}={value}")


def config_get(settings: Settings, args: list[str]) -> None:
    """The value alone (for scripts: `$(ssh deploy@host config:get app KEY)`); --quoted: shell-quoted."""
    usage = "config:get APP KEY [--quoted]"
    app = app_arg(settings, args, usage)
    words, seen = flags(args[1:], "--quoted")
    if len(words) != 1:
        raise UserError(f"usage: {usage}")
    key = valid(names.config_key, words[0])
    config = app.config()
    if key not in config:
        raise UserError(f"{app.name} has no config var {key}")
    out(quoted(config[key]) if seen else config[key])


def config_keys(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config:keys APP")
    no_extra(args[1:], "config:keys APP")
    for key in sorted(app.config()):
        out(key)


def quoted(value: str) -> str:
    """POSIX single quotes: every byte literal, a quote as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def export_lines(config: dict[str, str]) -> list[str]:
    return [f"export {key}={quoted(value)}" for key, value in sorted(config.items())]


def config_export(settings: Settings, args: list[str]) -> None:
    """Lines a POSIX shell sources: `eval "$(ssh deploy@host config:export app)"`."""
    app = app_arg(settings, args, "config:export APP")
    no_extra(args[1:], "config:export APP")
    for line in export_lines(app.config()):
        out(line)


def locked_change(
    app: App, store: Callable[[], None], headline: str, description: str, restart: bool
) -> None:
    """A stored setting of the app changed under its lock (store), then (unless --no-restart) the current
    release again with it, zero downtime: config vars, storage mounts."""
    with app.lock(say=err):
        store()
        err(f"-----> {headline}")
        if restart:
            redeploy(app, err, description)


def edit(
    app: App, verb: str, keys: list[str], restart: bool, change: Callable[[dict[str, str]], None]
) -> None:
    """Change the stored config under the app's lock, then (unless --no-restart) publish it."""

    def store() -> None:
        config = app.config()
        change(config)
        app.set_config(config)

    what = ", ".join(keys)
    locked_change(app, store, f"{verb.capitalize()} {what} on {app.name}", f"config:{verb} {what}", restart)


def words_and_restart(settings: Settings, args: list[str], usage: str) -> tuple[App, list[str], bool]:
    """APP WORD ... [--no-restart]: the app, its words (at least one), and whether to publish."""
    app = app_arg(settings, args, usage)
    words, seen = flags(args[1:], "--no-restart")
    if not words:
        raise UserError(f"usage: {usage}")
    return app, words, not seen


def config_set(settings: Settings, args: list[str]) -> None:
    usage = "config:set APP KEY=VALUE ... [--no-restart] [--encoded]"
    encoded = "--encoded" in args[1:]
    app, words, restart = words_and_restart(settings, [a for a in args if a != "--encoded"], usage)
    pairs = parse_pairs(words, encoded)
    check_memory_limit(pairs, settings)
    edit(app, "set", sorted(pairs), restart, lambda config: config.update(pairs))


def config_unset(settings: Settings, args: list[str]) -> None:
    app, keys, restart = words_and_restart(settings, args, "config:unset APP KEY ... [--no-restart]")
    for key in keys:
        valid(names.config_key, key)

    def drop(config: dict[str, str]) -> None:
        for key in keys:
            config.pop(key, None)

    edit(app, "unset", keys, restart, drop)


def config_clear(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config:clear APP [--no-restart]")
    words, seen = flags(args[1:], "--no-restart")
    no_extra(words, "config:clear APP [--no-restart]")
    keys = sorted(app.config())
    if not keys:
        err(f"-----> {app.name} has no config vars")
        return
    edit(app, "unset", keys, "--no-restart" not in seen, lambda config: config.clear())


COMMANDS = [
    Command("config", "APP", "show config vars", config_show, aliases=("config:show",)),
    Command("config:get", "APP KEY [--quoted]", "print one config value (for scripts)", config_get),
    Command("config:keys", "APP", "list the config keys", config_keys),
    Command("config:export", "APP", "config as shell lines: export KEY='VALUE'", config_export),
    Command(
        "config:set",
        "APP K=V ... [--no-restart] [--encoded]",
        "set config vars (redeploys, zero downtime; --encoded: base64 values)",
        config_set,
    ),
    Command("config:unset", "APP K ... [--no-restart]", "remove config vars", config_unset),
    Command("config:clear", "APP [--no-restart]", "remove every config var", config_clear),
]
