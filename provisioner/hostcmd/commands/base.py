"""What every command module shares: the Command record, refusals, output, and argument helpers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from .. import names
from ..keys import Caller
from ..settings import Settings
from ..store import App

T = TypeVar("T")


class UserError(Exception):
    """A refusal with a clear one-line message; exit code 1."""


@dataclass(frozen=True)
class Command:
    """One command: `help` lists it with its usage and summary, and the dispatch runs its handler."""

    name: str
    args: str  # the usage after the name, e.g. "APP KEY=VALUE ... [--no-restart]"
    summary: str
    handler: Callable[[Settings, list[str]], int | None]  # an int: the exit code (run passes its own back)
    aliases: tuple[str, ...] = ()
    # Who may run it: "app" (its first argument is an app, which the key must be allowed), "list" (any
    # key; it shows only the key's apps), "host" (keys allowed every app only).
    scope: str = "app"

    @property
    def usage(self) -> str:
        return f"{self.name} {self.args}".strip()


CALLER = Caller()  # the key running this command (set once by main.dispatch)


def set_caller(caller: Caller) -> None:
    global CALLER  # one caller per process, set before any command runs
    CALLER = caller


def out(text: str) -> None:
    print(text, flush=True)


def err(text: str) -> None:
    with contextlib.suppress(OSError):  # a client that went away hears nothing: the work goes on or stops
        print(text, file=sys.stderr, flush=True)


def valid(check: Callable[[str], T], value: str) -> T:
    """A name checked by its rule in names.py; a refusal becomes a UserError."""
    try:
        return check(value)
    except names.NameError_ as exc:
        raise UserError(str(exc)) from None


def app_arg(settings: Settings, args: list[str], usage: str, must_exist: bool = True) -> App:
    if not args:
        raise UserError(f"usage: {usage}")
    app = App(settings, valid(names.app, args[0]))
    if must_exist and not app.exists():
        raise UserError(f"no app named {app.name!r} (see apps:list)")
    return app


def not_on_a_cluster(settings: Settings, what: str) -> None:
    """HTTPS is one host's for now: on a swarm's manager the command says so, before touching anything."""
    if settings.swarm_role:
        raise UserError(
            f"{what} is not available on a cluster yet (certificates are one host's; the cluster's nodes "
            "route HTTP): see the README's Clusters section"
        )


def no_extra(args: list[str], usage: str) -> None:
    if args:
        raise UserError(f"unexpected argument {args[0]!r}; usage: {usage}")


def count(text: str, what: str, low: int, high: int) -> int:
    """A whole number typed by the user, ASCII digits only, within bounds."""
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise UserError(f"{what} must be a number from {low} to {high}, got {text!r}")
    return int(text)


def app_first(args: list[str]) -> list[str]:
    """Dokku puts options before the app (`config:set --encoded APP K=V`): they move after it, where
    every command reads its options."""
    lead = 0
    while lead < len(args) and args[lead].startswith("--"):
        lead += 1
    if 0 < lead < len(args):
        return [args[lead], *args[:lead], *args[lead + 1 :]]
    return args


def flags(args: Iterable[str], *known: str) -> tuple[list[str], set[str]]:
    """Split the arguments into positional ones and the given --flags."""
    args = list(args)
    return [a for a in args if a not in known], {a for a in args if a in known}
