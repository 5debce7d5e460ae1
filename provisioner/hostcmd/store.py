"""An app's state on disk: repository, config vars (0600), releases, scale, domains, storage mounts
and its lock."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import names
from .procfile import HealthCheck
from .settings import Settings


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Release:
    """One numbered release: an image, the processes it runs, and the config it runs with."""

    version: int
    image: str
    processes: dict[str, str]
    port: int
    config: dict[str, str] = field(default_factory=dict)
    kind: str = "buildpacks"  # "buildpacks" or "dockerfile"
    commit: str = ""
    release_command: str | None = None
    # app.json scripts.dokku.predeploy/postdeploy of this build: run by the deploy of the build only, not
    # again when the release is repeated (config change, restart, rollback); older records lack them.
    predeploy: str | None = None
    postdeploy: str | None = None
    health: HealthCheck = field(default_factory=HealthCheck)
    created: str = ""
    description: str = ""
    # A push's figures: seconds from the push's start to live, and per phase (release.Phases); empty for
    # releases that repeat another (config changes, restarts, rollbacks) and in older records.
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    # The image of the app's dependencies that `image` is built on (buildpack builds; build.DEPENDENCY_DIRS).
    base_image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["health"] = HealthCheck(**dict(data.get("health") or {}))
        return cls(**values)

    def again(self, version: int, description: str, **changes: Any) -> Release:
        """The same release under a new number (config changes, rollback), created now."""
        return dataclasses.replace(
            self, version=version, description=description, created=now(), seconds=0.0, phases={}, **changes
        )


class LockTimeout(RuntimeError):
    pass


def flock_wait(fh: Any, timeout: float, waiting: Callable[[], None] | None = None) -> bool:
    """An exclusive flock on the open file, waiting up to timeout seconds (waiting() is called once, when
    it has to wait); False when it timed out."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() > deadline:
            return False
        if waiting and not told:
            waiting()
            told = True
        time.sleep(0.5)


def write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def write_atomic(path: Path, content: str, mode: int) -> None:
    """A reader sees the old file or the new one, never half of one, and after a power loss too: the file
    is on disk before it replaces the old one, and the rename is on disk before this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreError(RuntimeError):
    """A damaged state file: the message names it and a way out."""


# What to do about a damaged file, by its name (APP is the app's name).
WAY_OUT = {
    "current.json": "`releases APP` still lists the history: release one again with `rollback APP vN`",
    "releases.json": "the app keeps running; as root, restore the file from a backup, or remove it and push "
    "again (the history starts over)",
    "config.json": "as root, restore the file from a backup, or remove it and set the config again with "
    "`config:set APP ...`",
}


def read_json(path: Path, default: Any) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        what = "empty" if not text.strip() else "not valid JSON"
        hint = WAY_OUT.get(path.name, "as root, restore it from a backup or remove it").replace(
            "APP", path.parent.name
        )
        raise StoreError(f"{path} is damaged ({what}): {hint}") from None


class App:
    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = names.app(name)
        self.dir = Path(settings.apps_dir) / self.name

    @property
    def repo(self) -> Path:
        return self.dir / "repo.git"

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    def exists(self) -> bool:
        return self.dir.is_dir()

    # -- config ------------------------------------------------------------------------------------
    def config(self) -> dict[str, str]:
        return dict(read_json(self.dir / "config.json", {}))

    def set_config(self, config: dict[str, str]) -> None:
        write_json(self.dir / "config.json", config, 0o600)

    # -- releases (0600: they hold the config they ran with) ---------------------------------------
    def releases(self) -> list[Release]:
        return [Release.from_dict(r) for r in read_json(self.dir / "releases.json", [])]

    def current(self, tolerant: bool = False) -> Release | None:
        """The release the app serves; tolerant: None when current.json is damaged (for the commands that
        must work then: releases, and the report of a failed push)."""
        try:
            data = read_json(self.dir / "current.json", None)
        except StoreError:
            if tolerant:
                return None
            raise
        return Release.from_dict(data) if data else None

    def next_version(self) -> int:
        return max((r.version for r in self.releases()), default=0) + 1

    def record_release(self, release: Release) -> None:
        releases = [r for r in self.releases() if r.version != release.version]
        releases.append(release)
        releases.sort(key=lambda r: r.version)
        write_json(self.dir / "releases.json", [r.to_dict() for r in releases], 0o600)

    def set_current(self, release: Release) -> None:
        write_json(self.dir / "current.json", release.to_dict(), 0o600)

    # The release a publish is making live, written before the switch and removed once it is current: a
    # crash in between leaves it, and deploy.reconcile settles which of the two is serving.
    def pending(self) -> Release | None:
        try:
            data = read_json(self.dir / "pending.json", None)
        except StoreError:
            return None
        return Release.from_dict(data) if data else None

    def set_pending(self, release: Release) -> None:
        write_json(self.dir / "pending.json", release.to_dict(), 0o600)

    def clear_pending(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pending.json").unlink()

    def release(self, version: int) -> Release | None:
        return next((r for r in self.releases() if r.version == version), None)

    # -- stopped (ps:stop): no process runs, nginx answers 503, a restart of the host keeps it so ----------
    def stopped(self) -> bool:
        return (self.dir / "stopped").exists()

    def set_stopped(self, stopped: bool) -> None:
        if stopped:
            write_json(self.dir / "stopped", {"since": now()}, 0o644)
        else:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "stopped").unlink()

    # -- scale and domains -------------------------------------------------------------------------
    def scale(self) -> dict[str, int]:
        return {k: int(v) for k, v in read_json(self.dir / "scale.json", {"web": 1}).items()}

    def set_scale(self, scale: dict[str, int]) -> None:
        write_json(self.dir / "scale.json", scale, 0o644)

    def domains(self) -> list[str]:
        return list(read_json(self.dir / "domains.json", []))

    def set_domains(self, domains: list[str]) -> None:
        write_json(self.dir / "domains.json", sorted(set(domains)), 0o644)

    def all_domains(self) -> list[str]:
        return all_domains(self.settings, self.name, self.domains())

    # -- storage mounts (storage.py): storage name -> the path its processes see it at --------------------
    def mounts(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in read_json(self.dir / "storage.json", {}).items()}

    def set_mounts(self, mounts: dict[str, str]) -> None:
        write_json(self.dir / "storage.json", mounts, 0o644)

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(self, init_repo: Callable[[Path], None]) -> None:
        self.dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self.cache_dir.mkdir(mode=0o750, exist_ok=True)
        if not (self.repo / "HEAD").exists():
            init_repo(self.repo)

    def destroy(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, timeout: float = 600, say: Callable[[str], None] | None = None) -> Iterator[None]:
        """One deploy or config change per app at a time; others wait (with a message) or time out. A
        command that waited while the app was destroyed stops with a message, creating nothing."""
        try:
            fh = open(self.dir / "lock", "a")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise AppGone(f"no app named {self.name!r} (see apps:list)") from None
        with fh:
            message = f"waiting for another deploy or config change of {self.name} to finish"
            if not flock_wait(fh, timeout, (lambda: say(message)) if say else None):
                raise LockTimeout(f"{self.name} is busy with another deploy; try again later")
            try:
                if os.fstat(fh.fileno()).st_nlink == 0:  # apps:destroy removed it while we waited
                    raise AppGone(f"{self.name} was destroyed while this command waited for it")
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


class AppGone(StoreError):
    """The app does not exist (any more): nothing of it is created again."""


def all_domains(settings: Settings, app: str, custom: list[str]) -> list[str]:
    """APP.DOMAIN (when the host has a domain), then the app's domains:add names."""
    default = [f"{app}.{settings.domain}"] if settings.domain else []
    return default + [d for d in custom if d not in default]


def list_apps(settings: Settings) -> list[str]:
    root = Path(settings.apps_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and names.APP_RE.fullmatch(p.name))
