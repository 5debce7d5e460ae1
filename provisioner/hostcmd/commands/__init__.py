"""The app commands, one module per topic (Dokku's plugin layout): each declares its COMMANDS, and both
`help` and the dispatch are made from this one table. A new topic is one new module listed here."""

from __future__ import annotations

import dataclasses

from ..settings import Settings
from . import (
    apps,
    certs,
    config,
    domains,
    git,
    letsencrypt,
    logs,
    maintenance,
    postgres,
    ps,
    redis,
    releases,
    resources,
    run,
    storage,
)
from .base import Command, UserError

TOPICS = (
    apps,
    config,
    logs,
    ps,
    run,
    resources,
    releases,
    git,
    domains,
    certs,
    letsencrypt,
    maintenance,
    postgres,
    redis,
    storage,
)
TABLE: tuple[Command, ...] = tuple(cmd for topic in TOPICS for cmd in topic.COMMANDS)
BY_NAME: dict[str, Command] = {name: cmd for cmd in TABLE for name in (cmd.name, *cmd.aliases)}

HEADER = "Usage: ssh {user}@HOST COMMAND [ARGS]   (deploy with: git push {user}@HOST:APP {deploy_branch})"


def find(verb: str) -> Command | None:
    return BY_NAME.get(verb)


def help_text(settings: Settings) -> str:
    values = dataclasses.asdict(settings)
    width = max(len(cmd.usage) for cmd in TABLE) + 2
    lines = [HEADER.format(**values), ""]
    lines += [f"  {cmd.usage.ljust(width)} {cmd.summary.format(**values)}" for cmd in TABLE]
    lines.append(f"  {'help'.ljust(width)} this text")
    return "\n".join(lines) + "\n"


__all__ = ["TABLE", "Command", "UserError", "find", "help_text"]
