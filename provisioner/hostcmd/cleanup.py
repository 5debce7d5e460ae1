"""Disk hygiene: old app images, build caches and leftovers of interrupted builds.

Keeps the images of each app's last N releases (and of whatever is running), so `rollback` to them works.
Run by `ssh deploy@HOST cleanup` and daily by provisioner-cleanup.timer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import docker, names
from .settings import Settings
from .store import App, LockTimeout, Release, list_apps

Say = Callable[[str], None]
STALE_TMP_SECONDS = 3600


@dataclass
class Report:
    removed_images: list[str] = field(default_factory=list)
    kept: dict[str, list[int]] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)
    reclaimed_bytes: int = 0


def releases_to_keep(releases: list[Release], current: Release | None, keep: int) -> list[int]:
    """Versions whose images stay: the last `keep` releases, and the current one whatever its age."""
    versions = sorted(r.version for r in releases)
    kept = versions[-keep:] if keep > 0 else []
    if current and current.version not in kept:
        kept.append(current.version)
    return sorted(kept)


def images_to_remove(
    images: list[str], releases: list[Release], kept_versions: list[int], in_use: set[str]
) -> list[str]:
    """Tags of one app's images that no kept release (nor the image of its dependencies it is built on)
    and no container uses."""
    kept = [r for r in releases if r.version in kept_versions]
    wanted = {r.image for r in kept} | {r.base_image for r in kept if r.base_image} | in_use
    return sorted(tag for tag in images if tag not in wanted)


def images_in_use() -> set[str]:
    return {str(c.get("Image", "")) for c in docker.api("GET", "/containers/json", query={"all": 1}) or []}


def stale_temp_dirs(root: Path, now: float, max_age: float = STALE_TMP_SECONDS) -> list[Path]:
    """Work directories of builds that were killed before they could clean up."""
    stale: list[Path] = []
    for pattern in ("provisioner-build-*", "provisioner-env-*"):
        for path in root.glob(pattern):
            try:
                if path.is_dir() and path.owner() == _me() and now - path.stat().st_mtime > max_age:
                    stale.append(path)
            except (OSError, KeyError):
                continue
    return stale


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def cleanup(settings: Settings, say: Say, keep: int | None = None) -> Report:
    keep = settings.keep_releases if keep is None else keep
    report = Report()
    images = docker.app_images()
    in_use = images_in_use()
    apps = list_apps(settings)
    for name in apps:
        app = App(settings, name)
        try:
            with app.lock(timeout=0):
                releases = app.releases()
                kept = releases_to_keep(releases, app.current(), keep)
                report.kept[name] = kept
                for tag in images_to_remove(images.get(name, []), releases, kept, in_use):
                    if docker.remove_image(tag):
                        report.removed_images.append(tag)
                shutil.rmtree(app.cache_dir / "buildpacks", ignore_errors=True)  # fetched again per build
        except LockTimeout:
            report.busy.append(name)
    for name, tags in images.items():
        if name not in apps and names.APP_RE.fullmatch(name):  # apps destroyed by hand
            for tag in tags:
                if tag not in in_use and docker.remove_image(tag):
                    report.removed_images.append(tag)
    pruned = docker.api("POST", "/images/prune", query={"filters": '{"dangling":["true"]}'}) or {}
    report.reclaimed_bytes += int(pruned.get("SpaceReclaimed") or 0)
    try:
        cache = docker.api("POST", "/build/prune", query={"filters": '{"until":["24h"]}'}, timeout=600) or {}
        report.reclaimed_bytes += int(cache.get("SpaceReclaimed") or 0)
    except docker.DockerError as exc:
        say(f"       build cache not pruned: {exc}")
    for path in stale_temp_dirs(Path(tempfile.gettempdir()), time.time()):
        shutil.rmtree(path, ignore_errors=True)
    return report
