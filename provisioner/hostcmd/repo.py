"""An app's bare git repository: pushes to its deploy branch run the pre-receive hook, which deploys."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from .settings import PROGRAM, Settings

HOOK = f"#!/bin/sh\nexec {PROGRAM} hook pre-receive\n"


def initializer(settings: Settings) -> Callable[[Path], None]:
    """What App.create calls to make the repository (kept out of store.py, which knows no git)."""

    def init(repo: Path) -> None:
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch", settings.deploy_branch, str(repo)],
            check=True,
        )
        subprocess.run(["git", "--git-dir", str(repo), "config", "receive.denyDeletes", "true"], check=True)
        hook = repo / "hooks" / "pre-receive"
        hook.write_text(HOOK)
        hook.chmod(0o755)

    return init
