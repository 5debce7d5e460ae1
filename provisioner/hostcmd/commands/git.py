"""git:sync: deploy a commit of a public git repository, as if it were pushed (Dokku's command; for a CI
that reaches the host but cannot push).

`git:sync APP URL [REF]` fetches REF (default: the remote's HEAD) into the app's repository, moves the
deploy branch to it and deploys it under the app's lock, as a push would. Only plain fetches: the URL is
https://, http:// or git://, or file:// inside receiver_git_sync_file_dir (none when empty); no option,
no other transport (GIT_ALLOW_PROTOCOL), no credentials prompt, a time limit; the URL is one argument
after `--`, never a shell word.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from pathlib import Path

from .. import names, repo
from ..deploy import deploy, reconcile
from ..settings import Settings
from .base import Command, UserError, app_arg, err, flags

USAGE = "git:sync APP URL [REF]"
SYNC_REF = "refs/provisioner/sync"
FETCH_TIMEOUT = 600
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")


def source_url(settings: Settings, url: str) -> str:
    """The URL when git may fetch from it; else one clear refusal."""
    parts = urllib.parse.urlsplit(url)
    bad = UserError(
        f"not a repository URL git:sync fetches: {url[:200]!r} (https://, http://, git:// or file://)"
    )
    if url != url.strip() or any(c in url for c in "\0\n\r\t ") or url.startswith("-"):
        raise bad
    if parts.scheme in ("https", "http", "git"):
        if not _HOST.fullmatch(parts.netloc.rpartition("@")[2]) or "@" in parts.netloc:
            raise bad  # no credentials in a URL that would be logged
        return url
    if parts.scheme == "file" and not parts.netloc:
        allowed = settings.git_sync_file_dir
        path = Path(urllib.parse.unquote(parts.path))
        if not allowed:
            raise UserError("file:// URLs are off on this host (receiver_git_sync_file_dir is empty)")
        resolved = path.resolve()
        if not resolved.is_relative_to(Path(allowed).resolve()):
            raise UserError(f"file:// URLs must name a repository under {allowed}")
        return f"file://{resolved}"
    raise bad


def git_sync(settings: Settings, args: list[str]) -> int | None:
    words, _ = flags(args, "--build")  # Dokku's --build: git:sync deploys here anyway
    app = app_arg(settings, words, USAGE, must_exist=False)
    if len(words) not in (2, 3):
        raise UserError(f"usage: {USAGE}")
    url = source_url(settings, words[1])
    ref = words[2] if len(words) == 3 else "HEAD"
    if not _REF.fullmatch(ref):
        raise UserError(f"invalid git ref {ref[:100]!r}")
    if not app.exists():
        app.create(repo.initializer(settings))
        err(f"-----> Created app {app.name}")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(app.dir),
        "GIT_ALLOW_PROTOCOL": "https:http:git:file",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        **settings.proxy_vars(),
    }
    with app.lock(say=err):
        reconcile(app, err)
        err(f"-----> Fetching {ref} of {url}")
        try:
            argv = ["git", "--git-dir", str(app.repo), "fetch", "--quiet", "--no-tags", "--", url]
            fetched = subprocess.run(
                [*argv, f"+{ref}:{SYNC_REF}"],
                env=env, capture_output=True, text=True, timeout=FETCH_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise UserError(f"fetching {url} took over {FETCH_TIMEOUT} s") from None
        if fetched.returncode != 0:
            detail = (fetched.stderr or "").strip().splitlines()
            raise UserError(f"could not fetch {ref} of {url}: {detail[-1] if detail else 'git failed'}")
        sha = subprocess.run(
            ["git", "--git-dir", str(app.repo), "rev-parse", "--verify", f"{SYNC_REF}^{{commit}}"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        sha = names.sha(sha)
        branch = f"refs/heads/{settings.deploy_branch}"
        subprocess.run(["git", "--git-dir", str(app.repo), "update-ref", branch, sha], check=True)
        deploy(app, sha, f"git:sync {sha[:7]}", err, locked=True)
    return 0


COMMANDS = [
    Command(
        "git:sync",
        "APP URL [REF]",
        "fetch a commit of a git repository and deploy it, as if pushed",
        git_sync,
    )
]
