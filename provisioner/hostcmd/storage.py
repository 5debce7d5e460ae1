"""Persistent storage (Dokku's storage plugin): named host directories mounted into every process of an app.

`storage:mount APP NAME:/container/path` records the mount with the app (store.App.mounts); each release
that starts the app's processes (a push, config change, restart, scale, rollback) first makes sure that
STORAGE_DIR/APP/NAME exists, owned by the user the app's processes run as, then hands the mounts to the
scheduler (ProcessSpec.mounts), so every process and one-off run of the release sees them. Only names reach
the host side: never a host path, so no /, /etc or the Docker socket.

The deploy user cannot make a directory owned by another user, and must not be able to reach the files an
app keeps (a process running as root in a container could leave a setuid program there): STORAGE_DIR is
root's only (0700). Directories are made by `provisioner-storage` (`helper` below), run as root through one
sudo rule (`create *`, `purge *`, `rename *`). It trusts nothing it is given: it checks every argument
again, opens each directory from / without following a symlink, each root-owned and writable by root
only, and makes, removes or renames only STORAGE_DIR/APP/NAME and STORAGE_DIR/APP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import docker, names
from .scheduler import Mount
from .settings import Settings
from .store import App, Release

# The stack images' `app` user, which buildpack apps run as (the buildpacks role's provisioner-stack).
BUILDPACK_OWNER = (1000, 1000)
ID_MAX = 2**31 - 2  # uids and gids the helper accepts (-1, i.e. 2**32 - 1, would mean "unchanged")
DIR_MODE = 0o755


class StorageError(RuntimeError):
    """A refusal or a failure with a message fit for the user."""


def parse(spec: str) -> tuple[str, str]:
    """NAME:/container/path -> (name, path), both validated; a host path is refused by name."""
    name, sep, path = (spec or "").partition(":")
    if spec.startswith("/"):
        raise names.NameError_(
            f"host paths are not mounted ({spec[:60]!r}): name a storage directory, e.g. data:/app/data"
        )
    if not sep:
        raise names.NameError_(f"expected NAME:/container/path (e.g. data:/app/data), got {spec[:60]!r}")
    return names.storage(name), names.container_path(path)


def source(settings: Settings, app: str, name: str) -> str:
    return str(Path(settings.storage_dir) / names.app(app) / names.storage(name))


def mounts(app: App) -> tuple[Mount, ...]:
    """The app's mounts as the scheduler takes them (validated again: the stored file is data too)."""
    return tuple(
        Mount(source(app.settings, app.name, name), names.container_path(path))
        for name, path in sorted(app.mounts().items())
    )


# --- who owns an app's storage -----------------------------------------------------------------------------


def owner(release: Release) -> tuple[int, int]:
    """The uid and gid the release's processes run as: the stack's `app` user for buildpack apps; for
    Dockerfile apps the image's USER (numbers, or names looked up in the image's /etc/passwd and
    /etc/group, as Docker does), root when it sets none."""
    if release.kind != "dockerfile":
        return BUILDPACK_OWNER
    user = str(docker.image_config(release.image).get("User") or "")
    return resolve_user(user, lambda path: docker.image_file(release.image, path))


def resolve_user(user: str, read: Callable[[str], bytes | None]) -> tuple[int, int]:
    """USER of an image (`name`, `uid`, `name:group`, `uid:gid`, ...) -> (uid, gid); read(path) gives
    the image's /etc/passwd or /etc/group (bytes, or None)."""
    who, _, group = user.partition(":")
    if not who:
        return 0, 0

    def table(path: str) -> list[list[str]]:
        data = read(path)
        text = data.decode(errors="replace") if data else ""
        return [line.split(":") for line in text.splitlines() if line.count(":") >= 2]

    uid, gid = None, 0  # Docker: a uid without an entry in /etc/passwd runs with gid 0
    for entry in table("/etc/passwd"):
        named = len(entry) >= 4 and (entry[0] == who or (who.isdigit() and entry[2] == who))
        if named and entry[2].isdigit() and entry[3].isdigit():
            uid, gid = int(entry[2]), int(entry[3])
            break
    if uid is None:
        if not (who.isascii() and who.isdigit()):
            raise StorageError(f"the image's user {who!r} is not in its /etc/passwd")
        uid = int(who)
    if group:
        if group.isascii() and group.isdigit():
            gid = int(group)
        else:
            found = [int(e[2]) for e in table("/etc/group") if e[0] == group and e[2].isdigit()]
            if not found:
                raise StorageError(f"the image's group {group!r} is not in its /etc/group")
            gid = found[0]
    if not (0 <= uid <= ID_MAX and 0 <= gid <= ID_MAX):
        raise StorageError(f"the image's user {user!r} is out of range")
    return uid, gid


# --- the host program's side: the root helper through sudo ------------------------------------------------


def run_helper(settings: Settings, *args: str) -> str:
    """provisioner-storage through its sudo rule (no password, no terminal): its last line, or a refusal."""
    try:
        proc = subprocess.run(
            ["sudo", "-n", settings.storage_tool, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"could not run {settings.storage_tool}: {exc}") from None
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    last = lines[-1].removeprefix("provisioner-storage: ").strip() if lines else ""
    if proc.returncode != 0:
        raise StorageError(
            f"the storage helper failed: {last or f'exit code {proc.returncode}'} "
            "(a host provisioned before storage existed needs `provisioner up` again)"
        )
    return last


def prepare(app: App, release: Release) -> None:
    """Before the release's first process: each storage directory exists, owned by its processes' user
    (directories that exist keep their owner and files). Apps without mounts never call the helper."""
    wanted = sorted(names.storage(name) for name in app.mounts())
    if wanted:
        uid, gid = owner(release)
        run_helper(app.settings, "create", app.name, str(uid), str(gid), *wanted)


def purge(settings: Settings, app: str) -> bool:
    """Remove STORAGE_DIR/APP and all in it; False when there was none."""
    return run_helper(settings, "purge", names.app(app)) == "removed"


def rename(settings: Settings, old: str, new: str) -> bool:
    """apps:rename: STORAGE_DIR/OLD becomes STORAGE_DIR/NEW; False when OLD had none."""
    return run_helper(settings, "rename", names.app(old), names.app(new)) == "renamed"


# --- provisioner-storage: the root helper ------------------------------------------------------------------

HELPER_USAGE = "usage: provisioner-storage create APP UID GID NAME... | purge APP | rename APP NEW"
NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _trusted(fd: int, what: str) -> None:
    """A directory only root may change: owned by root, writable by no one else."""
    info = os.fstat(fd)
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise StorageError(f"{what} is not owned by root or is writable by others: refusing to use it")


def open_root(root: str) -> int:
    """The storage directory, opened component by component from / without following any symlink, each
    one trusted (root-owned, not writable by others)."""
    path = Path(root)
    if not path.is_absolute() or any(part in (".", "..") for part in path.parts):
        raise StorageError(f"the storage directory {root!r} is not an absolute, normalised path")
    fd = os.open("/", NOFOLLOW_DIR)
    try:
        _trusted(fd, "/")
        walked = ""
        for part in path.parts[1:]:
            walked += "/" + part
            try:
                nxt = os.open(part, NOFOLLOW_DIR, dir_fd=fd)
            except FileNotFoundError:
                raise StorageError(f"{walked} is missing: run `provisioner up` for this host") from None
            except OSError as exc:  # ELOOP/ENOTDIR: a symlink or a file where a directory belongs
                raise StorageError(f"{walked} is not a directory ({exc.strerror})") from None
            os.close(fd)
            fd = nxt
            _trusted(fd, walked)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _subdir(parent: int, name: str, uid: int, gid: int, mode: int) -> tuple[int, bool]:
    """parent/name as a directory opened without following links, made (uid:gid, mode) when missing: made
    with mode 000, then given its owner and mode, so an interrupted run leaves a directory no one but root
    can use, which the next run finishes. (fd, whether it was made or finished now)."""
    made = False
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0, dir_fd=parent)
        made = True
    try:
        fd = os.open(name, NOFOLLOW_DIR, dir_fd=parent)
    except OSError as exc:
        raise StorageError(f"{name} is not a directory ({exc.strerror}): refusing to use it") from None
    info = os.fstat(fd)
    if made or (info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0):
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        made = True
    return fd, made


def create(root: str, app: str, uid: int, gid: int, storage_names: list[str]) -> list[str]:
    """Make ROOT/APP (root's) and ROOT/APP/NAME (uid:gid) where missing; the names it made."""
    made: list[str] = []
    root_fd = open_root(root)
    try:
        app_fd, _ = _subdir(root_fd, app, 0, 0, DIR_MODE)
        try:
            _trusted(app_fd, f"{root}/{app}")
            for name in storage_names:
                fd, new = _subdir(app_fd, name, uid, gid, DIR_MODE)
                os.close(fd)
                if new:
                    made.append(name)
            os.fsync(app_fd)
        finally:
            os.close(app_fd)
    finally:
        os.close(root_fd)
    return made


def _app_dir(root_fd: int, root: str, app: str, what: str) -> bool:
    """Whether ROOT/APP is there (never following a symlink); anything but a directory is refused."""
    try:
        info = os.stat(app, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"{root}/{app} is not a directory: refusing to {what} it")
    return True


def remove(root: str, app: str) -> bool:
    """Remove ROOT/APP with everything in it, never following a symlink (shutil.rmtree's fd-based walk)."""
    root_fd = open_root(root)
    try:
        if not _app_dir(root_fd, root, app, "remove"):
            return False
        shutil.rmtree(app, dir_fd=root_fd)
        return True
    finally:
        os.close(root_fd)


def move(root: str, app: str, new: str) -> bool:
    """ROOT/APP becomes ROOT/NEW (never over an existing NEW); False when there is no ROOT/APP."""
    root_fd = open_root(root)
    try:
        if not _app_dir(root_fd, root, app, "rename"):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.stat(new, dir_fd=root_fd, follow_symlinks=False)
            raise StorageError(f"{root}/{new} exists already: refusing to rename {app} over it")
        os.rename(app, new, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        os.fsync(root_fd)
        return True
    finally:
        os.close(root_fd)


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= ID_MAX):
        raise StorageError(f"invalid uid or gid {text[:20]!r}")
    return int(text)


def helper(argv: list[str], root: str) -> int:
    """provisioner-storage, run as root through sudo by the deploy user: every argument is checked here
    again, whatever the host program checked before."""
    try:
        if len(argv) >= 5 and argv[0] == "create":
            app, uid, gid = names.app(argv[1]), _id(argv[2]), _id(argv[3])
            wanted = [names.storage(n) for n in argv[4:]]
            made = create(root, app, uid, gid, wanted)
            print(f"made {' '.join(made)}" if made else "present")
        elif len(argv) == 2 and argv[0] == "purge":
            print("removed" if remove(root, names.app(argv[1])) else "absent")
        elif len(argv) == 3 and argv[0] == "rename":
            print("renamed" if move(root, names.app(argv[1]), names.app(argv[2])) else "absent")
        else:
            print(f"provisioner-storage: {HELPER_USAGE}", file=sys.stderr)
            return 2
    except (names.NameError_, StorageError, OSError) as exc:
        print(f"provisioner-storage: {exc}", file=sys.stderr)
        return 1
    return 0
