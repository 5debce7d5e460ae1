"""Procfile and app.json: which processes run, the release command, deploy tasks and the health check."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import names, tree

LINE_RE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(ValueError):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE_RE.match(line)
        if not match:
            raise ProcfileError(f"Procfile line {number}: expected 'type: command', got {line!r}")
        kind, command = match.group(1).lower(), match.group(2).strip()
        try:
            names.process(kind)
        except names.NameError_ as exc:
            raise ProcfileError(f"Procfile line {number}: {exc}") from None
        processes[kind] = command
    return processes


def parse_release_yaml(text: str) -> dict[str, str]:
    """The `default_process_types` of a buildpack's bin/release output (a tiny YAML subset)."""
    processes: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw.startswith((" ", "\t")):
            inside = (
                raw.strip().startswith("default_process_types:")
                and raw.strip() != "default_process_types: {}"
            )
            continue
        if inside:
            key, sep, value = raw.strip().partition(":")
            if sep and value.strip():
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                processes[key.strip()] = value
    return processes


@dataclass(frozen=True)
class HealthCheck:
    kind: str = "http"  # "http": GET path answers 2xx/3xx; "tcp": the port accepts connections
    path: str = "/"
    timeout: int = 60


MAX_HEALTH_TIMEOUT = 300  # seconds a health check may wait, however app.json asks
ATTEMPT_SECONDS = 5  # what one of Dokku's `attempts` counts for
# app.json keys that only describe the app: accepted without a word.
DESCRIPTIVE_KEYS = frozenset({"name", "description", "keywords", "website", "repository", "logo"})
USED_KEYS = frozenset({"healthchecks", "scripts"})
DEPLOY_TASKS = ("predeploy", "postdeploy")  # scripts.dokku.*, run as Dokku runs them


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProcfileError(f'app.json: "{key}" must be an object, got {_shown(value)}')
    return value


def _integer(value: Any, key: str, low: int, high: int) -> int:
    """A JSON integer, or a string of ASCII digits; never a bool, a float or other scripts' digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value):
        number = int(value)
    else:
        raise ProcfileError(f'app.json: "{key}" must be an integer, got {_shown(value)}')
    if not low <= number <= high:
        raise ProcfileError(f'app.json: "{key}" must be between {low} and {high}, got {number}')
    return number


def health_check(app_json: dict[str, Any], default_timeout: int) -> HealthCheck:
    """The web health check from app.json `healthchecks.web` (Dokku's format), else GET /.

    Every check is type-checked, also those after the one used: a wrong type is one clear error."""
    found: HealthCheck | None = None
    checks = _object(app_json.get("healthchecks", {}), "healthchecks").get("web", [])
    if not isinstance(checks, list):
        raise ProcfileError(f'app.json: "healthchecks.web" must be a list of objects, got {_shown(checks)}')
    for number, check in enumerate(checks):
        key = f"healthchecks.web[{number}]"
        check = _object(check, key)
        kind = check.get("type", "startup")
        if not isinstance(kind, str):
            raise ProcfileError(f'app.json: "{key}.type" must be a string, got {_shown(kind)}')
        timeout = default_timeout
        if "attempts" in check:
            limit = MAX_HEALTH_TIMEOUT // ATTEMPT_SECONDS
            timeout = _integer(check["attempts"], f"{key}.attempts", 1, limit) * ATTEMPT_SECONDS
        if "timeout" in check:
            timeout = _integer(check["timeout"], f"{key}.timeout", 1, MAX_HEALTH_TIMEOUT)
        path = check.get("path")
        if path is not None and not isinstance(path, str):
            raise ProcfileError(f'app.json: "{key}.path" must be a string, got {_shown(path)}')
        if path and (not path.startswith("/") or any(c in path for c in " \r\n\t")):
            raise ProcfileError(
                f"app.json: \"{key}.path\" must start with '/' and have no spaces, got {_shown(path)}"
            )
        if found or kind not in ("startup", "readiness", "liveness"):
            continue
        if path:
            found = HealthCheck("http", path, timeout)
        elif check.get("listening") or check.get("port") or kind == "startup":
            found = HealthCheck("tcp", "/", timeout)
    return found or HealthCheck("http", "/", default_timeout)


def deploy_tasks(app_json: dict[str, Any]) -> dict[str, str]:
    """`scripts.dokku.predeploy` and `scripts.dokku.postdeploy`: each a non-empty command string."""
    scripts = _object(app_json.get("scripts", {}), "scripts")
    dokku = _object(scripts.get("dokku", {}), "scripts.dokku")
    tasks: dict[str, str] = {}
    for name in DEPLOY_TASKS:
        if name in dokku:
            command = dokku[name]
            if not isinstance(command, str) or not command.strip():
                raise ProcfileError(
                    f'app.json: "scripts.dokku.{name}" must be a non-empty string, got {_shown(command)}'
                )
            tasks[name] = command.strip()
    return tasks


def unsupported(app_json: dict[str, Any]) -> list[str]:
    """One warning per app.json key this host does not use (Heroku's env, addons, formation, ...)."""
    ignored = [k for k in app_json if k not in USED_KEYS and k not in DESCRIPTIVE_KEYS]
    healthchecks = app_json.get("healthchecks")
    if isinstance(healthchecks, dict):
        ignored += [f"healthchecks.{k}" for k in healthchecks if k != "web"]
    scripts = app_json.get("scripts")
    if isinstance(scripts, dict):
        ignored += [f"scripts.{k}" for k in scripts if k != "dokku"]
        if isinstance(scripts.get("dokku"), dict):
            ignored += [f"scripts.dokku.{k}" for k in scripts["dokku"] if k not in DEPLOY_TASKS]
    return [
        f"app.json: {json.dumps(key, ensure_ascii=False)} is not supported here and is ignored"
        for key in ignored
    ]


@dataclass(frozen=True)
class AppJson:
    """What this host takes from app.json; read and checked before the build, so a bad one fails at once."""

    health: HealthCheck = field(default_factory=HealthCheck)
    predeploy: str | None = None
    postdeploy: str | None = None
    warnings: tuple[str, ...] = ()


def read_app_json(source: Path, default_timeout: int) -> AppJson:
    app_json: dict[str, Any] = {}
    text = tree.read(source, "app.json")
    if text is not None:
        try:
            app_json = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also too long numbers, too deep nesting
            raise ProcfileError(f"app.json is not valid JSON: {exc}") from None
        if not isinstance(app_json, dict):
            raise ProcfileError("app.json must hold a JSON object")
    tasks = deploy_tasks(app_json)
    return AppJson(
        health_check(app_json, default_timeout),
        tasks.get("predeploy"),
        tasks.get("postdeploy"),
        tuple(unsupported(app_json)),
    )


@dataclass(frozen=True)
class Plan:
    processes: dict[str, str]
    release_command: str | None
    health: HealthCheck
    predeploy: str | None = None
    postdeploy: str | None = None
    warnings: tuple[str, ...] = ()


def read_procfile(source: Path) -> dict[str, str]:
    """The Procfile's process types (empty when there is none); read before the build, so a symlinked
    or malformed one fails the push at once."""
    text = tree.read(source, "Procfile")
    return parse_procfile(text) if text is not None else {}


def plan(
    source: Path,
    defaults: dict[str, str],
    default_timeout: int,
    app_json: AppJson | None = None,
    declared: dict[str, str] | None = None,
) -> Plan:
    """What a deploy of this source runs: Procfile over buildpack defaults, and app.json (each read here
    unless the caller read it already)."""
    processes = dict(defaults)
    processes.update(read_procfile(source) if declared is None else declared)
    release_command = processes.pop("release", None)
    app = app_json or read_app_json(source, default_timeout)
    return Plan(processes, release_command, app.health, app.predeploy, app.postdeploy, app.warnings)
