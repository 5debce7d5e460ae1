"""Reading the pushed tree on the host: only regular files inside it, never through a symbolic link.

A pushed repository is the pusher's: a `Procfile` that links to `/etc/passwd` or to another app's config
must not be read. Every file the host program reads from an exported tree (Procfile, app.json,
.buildpacks, runtime files, Dockerfile and .dockerignore, which the docker CLI reads on the host) goes
through here: a symlink anywhere on its path is refused with a clear message, and a file is read up to a
size limit, opened without following a link.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_FILE = 256 * 1024


class TreeError(ValueError):
    """A file of the pushed tree that is refused; the message is fit for the pusher."""


def regular(source: Path, name: str) -> Path | None:
    """The path of name in the tree when it is a regular file, None when it is absent (or not a file).
    A symlink, itself or any directory above it in the tree, is refused."""
    current = source
    for part in Path(name).parts:
        if part in ("..", "/"):
            raise TreeError(f"{name}: a path outside the repository")
        current = current / part
        if current.is_symlink():
            raise TreeError(f"{name} is a symbolic link: it must be a regular file in the repository")
    return current if current.is_file() else None


def read(source: Path, name: str, limit: int = MAX_FILE) -> str | None:
    """A regular file of the tree as text (UTF-8, undecodable bytes replaced); None when absent."""
    path = regular(source, name)
    if path is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TreeError(f"{name} is larger than {limit // 1024} KiB")
    return data.decode("utf-8", errors="replace")
