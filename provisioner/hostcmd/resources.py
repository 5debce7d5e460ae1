"""What an app's containers may use: memory, CPUs, processes; each bounded by the host's maxima.

The operator sets the defaults and the maxima (receiver_memory_limit / _memory_max, receiver_cpus_max,
receiver_pids_limit / _pids_max); an app chooses within them with `resources:set` (its resources.json),
or for memory also with Heroku's and Dokku's config var MEMORY_LIMIT. No value means "unlimited": a limit
is always a number within the maxima, so no app can lift its own bound.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .scheduler import memory_bytes
from .settings import Settings
from .store import App, read_json, write_json

MIN_MEMORY = 16 * 1024**2
MIN_PIDS = 16
CPUS_RE = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,2})?")
KEYS = ("memory", "cpus", "pids")


class ResourceError(ValueError):
    """A refused limit; the message is fit for the user."""


@dataclass(frozen=True)
class Limits:
    memory: str
    cpus: float  # 0: no CPU limit below the host's maximum
    pids: int


def host_cpus(settings: Settings) -> float:
    count = float(os.cpu_count() or 1)
    return min(settings.cpus_max, count) if settings.cpus_max > 0 else count


def check_memory(text: str, settings: Settings) -> str:
    try:
        size = memory_bytes(text)
    except ValueError as exc:
        raise ResourceError(str(exc)) from None
    if size < MIN_MEMORY:
        raise ResourceError(f"memory {text!r} is below the minimum of 16m")
    if size > memory_bytes(settings.memory_max):
        raise ResourceError(
            f"memory {text!r} is above this host's maximum of {settings.memory_max} (receiver_memory_max)"
        )
    return text.strip().lower()


def check_cpus(text: str, settings: Settings) -> float:
    if not CPUS_RE.fullmatch(text) or float(text) < 0.01:
        raise ResourceError(f"cpus must be a number such as 0.5 or 2, got {text!r}")
    if float(text) > host_cpus(settings):
        raise ResourceError(f"cpus {text} is above this host's maximum of {host_cpus(settings):g}")
    return float(text)


def check_pids(text: str, settings: Settings) -> int:
    if not (text.isascii() and text.isdigit()) or not MIN_PIDS <= int(text) <= settings.pids_max:
        raise ResourceError(f"pids must be a number from {MIN_PIDS} to {settings.pids_max}, got {text!r}")
    return int(text)


CHECKS = {"memory": check_memory, "cpus": check_cpus, "pids": check_pids}


def stored(app: App) -> dict[str, Any]:
    return dict(read_json(app.dir / "resources.json", {}))


def store(app: App, values: dict[str, Any]) -> None:
    write_json(app.dir / "resources.json", values, 0o644)


def limits(app: App, config: dict[str, str]) -> Limits:
    """The limits of the app's containers now: resources:set, else MEMORY_LIMIT (memory), else the host's
    defaults; a value above a maximum lowered since is held to the maximum."""
    settings = app.settings
    chosen = stored(app)
    memory = str(chosen.get("memory") or config.get("MEMORY_LIMIT") or settings.memory_limit)
    try:
        if memory_bytes(memory) > memory_bytes(settings.memory_max):
            memory = settings.memory_max
        elif memory_bytes(memory) < MIN_MEMORY:
            memory = settings.memory_limit
    except ValueError as exc:
        raise ResourceError(f"{exc} (config var MEMORY_LIMIT)") from None
    cpus = min(float(chosen.get("cpus") or 0), host_cpus(settings))
    pids = min(int(chosen.get("pids") or settings.pids_limit), settings.pids_max)
    return Limits(memory, cpus, pids)
