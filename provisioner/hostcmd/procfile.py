"""Procfile and app.json: which processes run, the release command, and the health check."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import names

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


def health_check(app_json: dict[str, Any], default_timeout: int) -> HealthCheck:
    """The web health check from app.json `healthchecks.web` (Dokku's format), else GET /."""
    checks = (app_json.get("healthchecks") or {}).get("web") or []
    for check in checks:
        if not isinstance(check, dict):
            continue
        kind = str(check.get("type", "startup"))
        if kind not in ("startup", "readiness", "liveness"):
            continue
        timeout = int(check.get("timeout", check.get("attempts", 0) * 5) or default_timeout)
        if check.get("path"):
            path = str(check["path"])
            if not path.startswith("/") or any(c in path for c in " \r\n\t"):
                raise ProcfileError(
                    f"app.json healthcheck path {path!r} must start with '/' and have no spaces"
                )
            return HealthCheck("http", path, timeout)
        if check.get("listening") or check.get("port") or kind == "startup":
            return HealthCheck("tcp", "/", timeout)
    return HealthCheck("http", "/", default_timeout)


@dataclass(frozen=True)
class Plan:
    processes: dict[str, str]
    release_command: str | None
    health: HealthCheck


def plan(source: Path, defaults: dict[str, str], default_timeout: int) -> Plan:
    """What a deploy of this source runs: Procfile over buildpack defaults."""
    processes = dict(defaults)
    procfile = source / "Procfile"
    if procfile.is_file():
        processes.update(parse_procfile(procfile.read_text(errors="replace")))
    release_command = processes.pop("release", None)
    app_json: dict[str, Any] = {}
    path = source / "app.json"
    if path.is_file():
        try:
            app_json = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ProcfileError(f"app.json is not valid JSON: {exc}") from None
        if not isinstance(app_json, dict):
            raise ProcfileError("app.json must hold a JSON object")
    return Plan(processes, release_command, health_check(app_json, default_timeout))
