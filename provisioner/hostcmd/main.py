"""Entry point of the deploy user's forced command: the git protocol, and the app commands (Dokku's names).

sshd runs this for every key of the deploy user with SSH_ORIGINAL_COMMAND set to what the client asked.
It never starts a shell: anything it does not know gets the help text. The commands live in commands/,
one module per topic; deploys and publishing in deploy.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import build, commands, keys, names, nginx, procfile, release, repo, services, session, swarm, tree
from .commands import base
from .commands.base import UserError, err, out
from .deploy import deploy, reconcile
from .docker import DockerError
from .settings import PROGRAM, Settings
from .store import App, LockTimeout, StoreError

LOCKED_ENV = "PROVISIONER_LOCKED_APP"  # set for git-receive-pack: its hook runs under our lock
FILE_TRANSFER = ("scp", "sftp", "internal-sftp", "rsync")
# Failures with a message fit for the user (and the last lines of a log, where there is one).
REFUSALS = (
    UserError,
    names.NameError_,
    LockTimeout,
    nginx.NginxError,
    release.ReleaseError,
    DockerError,
    build.BuildError,
    procfile.ProcfileError,
    tree.TreeError,
    StoreError,
    services.ServiceError,
    swarm.SwarmError,
)

# --- git ------------------------------------------------------------------------------------------------


def repo_name(arg: str) -> str:
    """'myapp', '/myapp', 'myapp.git' -> 'myapp'; anything that names a path is refused."""
    name = arg.strip().removeprefix("/").removesuffix(".git").removesuffix("/")
    try:
        return names.app(name)
    except names.NameError_ as exc:
        raise UserError(f"{exc} (push to USER@HOST:APP)") from None


def git_command(settings: Settings, verb: str, args: list[str]) -> int:
    if len(args) != 1:
        raise UserError(f"usage: {verb} APP")
    app = App(settings, repo_name(args[0]))
    if not base.CALLER.allows(app.name):
        raise UserError(base.CALLER.refusal(app.name))
    if verb == "git-upload-pack":
        if not app.exists():
            raise UserError(f"no app named {app.name!r}")
        os.execvp(verb, [verb, str(app.repo)])  # noqa: S606 - git's own server side on a validated path
    swarm.adopt(app, repo.initializer(settings), err)  # deployed from another manager of the cluster
    if not app.exists():
        app.create(repo.initializer(settings))
        err(f"-----> Created app {app.name}")
    # The whole push runs under the app's lock, ref update included: a second push waits here (before git
    # advertises refs), then sees the new ref, so it is refused as non-fast-forward or deploys on top of it,
    # never a mix of both.
    with app.lock(say=err):
        reconcile(app, err)
        env = {**os.environ, LOCKED_ENV: app.name}
        # Its own process group: if the client disconnects, the whole push (hook, build) is stopped.
        proc = subprocess.Popen([verb, str(app.repo)], env=env, start_new_session=True)
        return session.supervise(proc)


def pre_receive(settings: Settings, stdin: list[str]) -> int:
    """Runs inside `git push`: deploy the deploy branch; refuse everything else."""
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    app = App(
        settings, git_dir.name.removesuffix(".git") if git_dir.name != "repo.git" else git_dir.parent.name
    )
    session.stop_on_sigterm()
    branch = f"refs/heads/{settings.deploy_branch}"
    updates = [line.split() for line in stdin if line.strip()]
    for _old, new, ref in updates:
        if ref != branch:
            err(
                f"refusing {ref}: only the '{settings.deploy_branch}' branch deploys "
                f"(git push {settings.user}@HOST:{app.name} HEAD:{settings.deploy_branch})"
            )
            return 1
        if set(new) == {"0"}:
            err(f"refusing to delete the '{settings.deploy_branch}' branch")
            return 1
    for _old, new, _ref in updates:
        try:
            deploy(
                app, names.sha(new), f"deploy {new[:7]}", err, locked=os.environ.get(LOCKED_ENV) == app.name
            )
        except REFUSALS as exc:
            report_failure(app, exc)
            return 1
    return 0


def report_failure(app: App, exc: Exception) -> None:
    err(f" !     Deploy of {app.name} failed: {exc}")
    tail = getattr(exc, "tail", "")
    if tail:
        err(" !     Last lines of its log:")
        for line in tail.splitlines()[-20:]:
            err(f" !       {line}")
    current = app.current(tolerant=True)
    if current:
        err(f" !     v{current.version} is still serving {app.settings.app_url(app.name)}")


# --- dispatch ---------------------------------------------------------------------------------------------


def identify(settings: Settings) -> keys.Caller:
    """The deploy key of this SSH login and its apps (sshd's ExposeAuthInfo file names the key)."""
    auth_file = os.environ.get("SSH_USER_AUTH")
    try:
        text = Path(auth_file).read_text() if auth_file else None
    except OSError:
        text = None
    store = keys.KeyStore(Path(settings.keys_dir), Path(os.devnull), PROGRAM)
    try:
        return store.caller(text)
    except keys.KeyError_ as exc:
        raise UserError(str(exc)) from None


def allowed(command: commands.Command, args: list[str]) -> None:
    """A key limited to some apps runs only commands on them (and the lists, which show only them)."""
    caller = base.CALLER
    if caller.apps is None or command.scope == "list":
        return
    if command.scope == "host" or not args or args[0].startswith("-"):
        raise UserError(f"key {caller.key!r} may only push and manage its apps: {command.name} is not for it")
    if not caller.allows(args[0]):
        raise UserError(caller.refusal(args[0]))


def dispatch(argv: list[str], settings: Settings, over_ssh: bool = False) -> int:
    if over_ssh:
        base.set_caller(identify(settings))
    if not argv or argv[0] in ("help", "--help", "-h"):
        out(commands.help_text(settings))
        return 0
    verb, args = argv[0], argv[1:]
    if settings.swarm_role == "worker" and verb != "hook":
        err("error: this host is a worker of a swarm: push to a manager, and run app commands there")
        return 1
    if verb in ("git-receive-pack", "git-upload-pack"):
        return git_command(settings, verb, args)
    if verb == "hook" and args == ["pre-receive"] and not over_ssh:
        return pre_receive(settings, sys.stdin.readlines())
    if verb in FILE_TRANSFER or verb.rsplit("/", 1)[-1] in ("sftp-server", "scp", "rsync"):
        err("error: no file transfer (scp, sftp, rsync) for this account: deploy with git push")
        return 1
    command = commands.find(verb)
    if command is None:
        err(f"unknown command {verb!r}: this account only deploys apps and runs the commands below\n")
        err(commands.help_text(settings))
        return 1
    if command.scope == "app":
        args = base.app_first(args)
    allowed(command, args)
    if command.scope == "app" and args and names.APP_RE.fullmatch(args[0]):
        swarm.adopt(App(settings, args[0]), repo.initializer(settings), err)
        settle(App(settings, args[0]))
    rc = command.handler(settings, args)
    return rc if isinstance(rc, int) else 0


def settle(app: App) -> None:
    """Before a command on an app: a publish a crash cut short is settled first (when no deploy runs)."""
    if not app.exists() or app.pending() is None:
        return
    try:
        with app.lock(timeout=0):
            reconcile(app, err)
    except LockTimeout:
        pass  # a deploy is running: its pending release is work in progress


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1:
        argv = sys.argv[1:]  # run by git (the hook) or by hand, not as the forced command
    over_ssh = False
    if argv is None:
        original = os.environ.get("SSH_ORIGINAL_COMMAND")
        if original is not None:
            over_ssh = True
            try:
                argv = shlex.split(original)
            except ValueError:
                err("error: could not parse the command (unbalanced quotes)")
                return 1
        else:
            argv = sys.argv[1:]
    try:
        return dispatch(argv, Settings.load(), over_ssh)
    except REFUSALS as exc:
        err(f"error: {exc}")
        for line in getattr(exc, "tail", "").splitlines()[-20:]:
            err(f"  {line}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
