"""cleanup: old app images, build caches and leftovers of killed builds."""

from __future__ import annotations

from .. import build, cleanup
from ..settings import Settings
from .base import Command, UserError, count, err, out


def cleanup_command(settings: Settings, args: list[str]) -> None:
    keep = settings.keep_releases
    if args:
        if len(args) != 2 or args[0] != "--keep":
            raise UserError("usage: cleanup [--keep N] with N from 1 to 1000")
        keep = count(args[1], "--keep", 1, 1000)
    root = build.docker_root()
    free_before = build.free_mb(root)
    report = cleanup.cleanup(settings, err, keep)
    for name, versions in sorted(report.kept.items()):
        out(f"{name}: keeping " + (", ".join(f"v{v}" for v in versions) or "no release"))
    for name in report.busy:
        out(f"{name}: skipped, a deploy is running")
    free_after = build.free_mb(root)
    freed = max(0, free_after - free_before)
    out(f"removed {len(report.removed_images)} image(s); {freed} MB freed; {free_after} MB free")


COMMANDS = [
    Command(
        "cleanup",
        "[--keep N]",
        "remove old images and build caches; keeps the last N (default {keep_releases})",
        cleanup_command,
        scope="host",
    )
]
