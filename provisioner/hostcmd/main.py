"""Entry point of the deploy user's forced command: git push/fetch and the app commands (Dokku's names).

sshd runs this for every key of the deploy user with SSH_ORIGINAL_COMMAND set to what the client asked.
It never starts a shell: anything it does not know gets the help text.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import build, cleanup, docker, names, nginx, procfile, release
from .docker import DockerError
from .scheduler import LocalDocker
from .settings import Settings
from .store import App, LockTimeout, list_apps

LOCKED_ENV = "PROVISIONER_LOCKED_APP"  # set for git-receive-pack: its hook runs under our lock
FILE_TRANSFER = ("scp", "sftp", "internal-sftp", "rsync")
MAX_VALUE_BYTES = 64 * 1024

HELP = """\
Usage: ssh deploy@HOST COMMAND [ARGS]   (deploy with: git push deploy@HOST:APP main)

  apps:list                          list apps
  apps:create APP                    create an app (a first push does this too)
  apps:destroy APP --force           remove an app: processes, images, vhost, repository, config
  config APP                         show config vars
  config:set APP K=V ... [--no-restart]    set config vars (redeploys, zero downtime)
  config:unset APP K ... [--no-restart]    remove config vars
  logs APP [-n N] [-t]               last N log lines (default 100); -t follows
  ps APP                             processes of the current release
  ps:scale APP TYPE=N ...            e.g. ps:scale myapp web=2 worker=1
  ps:restart APP                     restart all processes, zero downtime
  releases APP                       release history
  rollback APP vN                    release the code and config of vN again
  domains APP                        domains routed to the app
  domains:add APP DOMAIN             route another domain to the app
  domains:remove APP DOMAIN          stop routing a domain
  cleanup [--keep N]                 remove old images and build caches; keeps the last N (default {keep})
  help                               this text
"""


class UserError(Exception):
    """A refusal with a clear one-line message; exit code 1."""


def out(text: str) -> None:
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def app_arg(settings: Settings, args: list[str], usage: str, must_exist: bool = True) -> App:
    if not args:
        raise UserError(f"usage: {usage}")
    try:
        app = App(settings, args[0])
    except names.NameError_ as exc:
        raise UserError(str(exc)) from None
    if must_exist and not app.exists():
        raise UserError(f"no app named {app.name!r} (see apps:list)")
    return app


def no_extra(args: list[str], usage: str) -> None:
    if args:
        raise UserError(f"unexpected argument {args[0]!r}; usage: {usage}")


# --- git ------------------------------------------------------------------------------------------------


def repo_name(arg: str) -> str:
    """'myapp', '/myapp', 'myapp.git' -> 'myapp'; anything that names a path is refused."""
    name = arg.strip().removeprefix("/").removesuffix(".git").removesuffix("/")
    try:
        return names.app(name)
    except names.NameError_ as exc:
        raise UserError(f"{exc} (push to deploy@HOST:APP)") from None


def init_repo(settings: Settings) -> Callable[[Path], None]:
    def init(repo: Path) -> None:
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch", settings.deploy_branch, str(repo)],
            check=True,
        )
        subprocess.run(["git", "--git-dir", str(repo), "config", "receive.denyDeletes", "true"], check=True)
        hook = repo / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\nexec /usr/local/bin/provisioner-host hook pre-receive\n")
        hook.chmod(0o755)

    return init


def git_command(settings: Settings, verb: str, args: list[str]) -> int:
    if len(args) != 1:
        raise UserError(f"usage: {verb} APP")
    app = App(settings, repo_name(args[0]))
    if verb == "git-upload-pack":
        if not app.exists():
            raise UserError(f"no app named {app.name!r}")
        os.execvp(verb, [verb, str(app.repo)])  # noqa: S606 - git's own server side on a validated path
    if not app.exists():
        app.create(init_repo(settings))
        err(f"-----> Created app {app.name}")
    # The whole push runs under the app's lock, ref update included: a second push waits here (before git
    # advertises refs), then sees the new ref, so it is refused as non-fast-forward or deploys on top of it,
    # never a mix of both.
    with app.lock(say=err):
        env = {**os.environ, LOCKED_ENV: app.name}
        return subprocess.run([verb, str(app.repo)], env=env, check=False).returncode


def pre_receive(settings: Settings, stdin: list[str]) -> int:
    """Runs inside `git push`: deploy the deploy branch; refuse everything else."""
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    app = App(
        settings, git_dir.name.removesuffix(".git") if git_dir.name != "repo.git" else git_dir.parent.name
    )
    branch = f"refs/heads/{settings.deploy_branch}"
    updates = [line.split() for line in stdin if line.strip()]
    for _old, new, ref in updates:
        if ref != branch:
            err(
                f"refusing {ref}: only the '{settings.deploy_branch}' branch deploys "
                f"(git push deploy@HOST:{app.name} HEAD:{settings.deploy_branch})"
            )
            return 1
        if set(new) == {"0"}:
            err(f"refusing to delete the '{settings.deploy_branch}' branch")
            return 1
    for _old, new, _ref in updates:
        try:
            deploy(
                app,
                names.sha(new),
                description=f"deploy {new[:7]}",
                locked=os.environ.get(LOCKED_ENV) == app.name,
            )
        except (
            build.BuildError,
            release.ReleaseError,
            procfile.ProcfileError,
            nginx.NginxError,
            DockerError,
            LockTimeout,
        ) as exc:
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
    current = app.current()
    if current:
        err(f" !     v{current['version']} is still serving {app.settings.app_url(app.name)}")


def deploy(app: App, sha: str, description: str, locked: bool = False) -> dict[str, object]:
    import time

    started = time.monotonic()
    say = err
    with contextlib.nullcontext() if locked else app.lock(say=say):
        with tempfile.TemporaryDirectory(prefix=f"provisioner-build-{app.name}-") as tmp:
            source = Path(tmp) / "src"
            build.export_source(app.repo, sha, source)
            version = app.next_version()
            say(f"-----> Building {app.name} v{version} ({sha[:7]})")
            result = build.build(app.name, version, source, app.config(), app.settings, app.cache_dir, say)
            plan = procfile.plan(source, result.defaults, app.settings.healthcheck_timeout)
        rel = release.new_release(
            app,
            image=result.image,
            processes=plan.processes,
            release_command=plan.release_command,
            health=plan.health,
            port=result.port,
            commit=sha,
            description=description,
            kind=result.kind,
        )
        release.activate(app, rel, say)
        app.record_release(rel)
        app.set_current(rel)
    say(f"-----> Released v{rel['version']} in {time.monotonic() - started:.0f} s")
    say(f"=====> {app.settings.app_url(app.name)}")
    return rel


def redeploy(
    app: App, say: Callable[[str], None], description: str, base: dict[str, object] | None = None
) -> None:
    """A new release of the current (or a given) image with the app's config now: zero downtime."""
    current = base or app.current()
    if not current:
        say(f"{app.name} has no release yet: push to deploy it")
        return
    rel = dict(current)
    rel.update(
        version=app.next_version(), config=app.config(), created=release.now(), description=description
    )
    release.activate(app, rel, say)
    app.record_release(rel)
    app.set_current(rel)
    say(f"-----> Released v{rel['version']}: {description}")


# --- commands ---------------------------------------------------------------------------------------------


def cmd_apps_list(settings: Settings, args: list[str]) -> None:
    no_extra(args, "apps:list")
    for name in list_apps(settings):
        out(name)


def cmd_apps_create(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:create APP", must_exist=False)
    no_extra(args[1:], "apps:create APP")
    if app.exists():
        raise UserError(f"app {app.name!r} already exists")
    app.create(init_repo(settings))
    out(f"created {app.name}: git push deploy@HOST:{app.name} {settings.deploy_branch}")


def cmd_apps_destroy(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "apps:destroy APP --force")
    if args[1:] != ["--force"]:
        raise UserError(f"this removes {app.name} and its data for good: run apps:destroy {app.name} --force")
    sched = LocalDocker()
    with app.lock():
        for inst in sched.instances(app.name):
            sched.stop(inst, grace=5)
        nginx.apply(Path(settings.vhosts_dir), app.name, None)
        images = subprocess.run(
            ["docker", "images", "-q", f"provisioner-app/{app.name}"], capture_output=True, text=True
        ).stdout.split()
        if images:
            subprocess.run(["docker", "rmi", "-f", *sorted(set(images))], capture_output=True)
        app.destroy()
    out(f"destroyed {app.name}")


def parse_pairs(args: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise UserError(f"expected KEY=VALUE, got {arg!r}")
        try:
            names.config_key(key)
        except names.NameError_ as exc:
            raise UserError(str(exc)) from None
        if "\0" in value or len(value.encode()) > MAX_VALUE_BYTES:
            raise UserError(f"the value of {key} is too long or holds a NUL byte (at most 64 KiB of text)")
        pairs[key] = value
    return pairs


def cmd_config(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config APP")
    no_extra(args[1:], "config APP")
    for key, value in sorted(app.config().items()):
        out(f"{key}={value}")


def cmd_config_set(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config:set APP KEY=VALUE ... [--no-restart]")
    rest = [a for a in args[1:] if a != "--no-restart"]
    if not rest:
        raise UserError("usage: config:set APP KEY=VALUE ... [--no-restart]")
    pairs = parse_pairs(rest)
    with app.lock(say=err):
        app.set_config({**app.config(), **pairs})
        err(f"-----> Set {', '.join(sorted(pairs))} on {app.name}")
        if "--no-restart" not in args:
            redeploy(app, err, f"config:set {', '.join(sorted(pairs))}")


def cmd_config_unset(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "config:unset APP KEY ... [--no-restart]")
    keys = [a for a in args[1:] if a != "--no-restart"]
    if not keys:
        raise UserError("usage: config:unset APP KEY ... [--no-restart]")
    for key in keys:
        try:
            names.config_key(key)
        except names.NameError_ as exc:
            raise UserError(str(exc)) from None
    with app.lock(say=err):
        config = app.config()
        for key in keys:
            config.pop(key, None)
        app.set_config(config)
        err(f"-----> Unset {', '.join(keys)} on {app.name}")
        if "--no-restart" not in args:
            redeploy(app, err, f"config:unset {', '.join(keys)}")


def cmd_logs(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "logs APP [-n N] [-t]")
    lines, follow, rest = "100", False, args[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "-t":
            follow = True
        elif arg == "-n" and rest and rest[0].isdigit():
            lines = rest.pop(0)
        else:
            raise UserError(f"unexpected argument {arg!r}; usage: logs APP [-n N] [-t]")
    current = app.current()
    instances = [
        i for i in LocalDocker().instances(app.name) if not current or i.version == current["version"]
    ]
    if not instances:
        raise UserError(f"{app.name} has no running processes")
    procs = []
    for inst in instances:
        cmd = ["docker", "logs", "--tail", lines, *(["-f"] if follow else []), inst.name]
        procs.append(
            (
                inst,
                subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
                ),
            )
        )
    import threading

    lock = threading.Lock()

    def pump(prefix: str, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with lock:
                out(f"{prefix} {line.rstrip()}")

    threads = [
        threading.Thread(target=pump, args=(f"{i.process}.{i.index}:", p.stdout), daemon=True)
        for i, p in procs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cmd_ps(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps APP")
    no_extra(args[1:], "ps APP")
    instances = LocalDocker().instances(app.name)
    if not instances:
        out(f"{app.name}: no processes")
    for inst in instances:
        out(f"{inst.process}.{inst.index}  v{inst.version}  {inst.state}  {inst.name}")


def cmd_ps_scale(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:scale APP TYPE=N ...")
    if not args[1:]:
        scale = app.scale()
        out(" ".join(f"{k}={v}" for k, v in sorted(scale.items())))
        return
    changes: dict[str, int] = {}
    for arg in args[1:]:
        kind, sep, count = arg.partition("=")
        try:
            names.process(kind)
        except names.NameError_ as exc:
            raise UserError(str(exc)) from None
        if not sep or not count.isdigit() or int(count) > 20:
            raise UserError(f"expected TYPE=N with N from 0 to 20, got {arg!r}")
        changes[kind] = int(count)
    with app.lock(say=err):
        current = app.current()
        if current:
            unknown = [k for k in changes if k not in current["processes"]]
            if unknown:
                raise UserError(
                    f"{app.name} has no process type {unknown[0]!r} "
                    f"(it has: {', '.join(sorted(current['processes']))})"
                )
        app.set_scale({**app.scale(), **changes})
        err(f"-----> Scaled {app.name} to " + " ".join(f"{k}={v}" for k, v in sorted(app.scale().items())))
        if current:
            release.activate(app, current, err)


def cmd_ps_restart(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "ps:restart APP")
    no_extra(args[1:], "ps:restart APP")
    with app.lock(say=err):
        current = app.current()
        if not current:
            raise UserError(f"{app.name} has no release yet")
        release.activate(app, current, err)
        err(f"-----> Restarted {app.name}")


def cmd_releases(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "releases APP")
    no_extra(args[1:], "releases APP")
    current = app.current() or {}
    for rel in reversed(app.releases()):
        mark = "*" if rel["version"] == current.get("version") else " "
        out(f"{mark} v{rel['version']}  {rel['created']}  {rel.get('commit', '')[:7]}  {rel['description']}")


def cmd_rollback(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "rollback APP vN")
    if len(args) != 2:
        raise UserError("usage: rollback APP vN")
    try:
        version = names.release(args[1])
    except names.NameError_ as exc:
        raise UserError(str(exc)) from None
    with app.lock(say=err):
        target = app.release(version)
        if not target:
            raise UserError(f"{app.name} has no release v{version} (see releases {app.name})")
        if not docker.image_exists(str(target["image"])):
            raise UserError(
                f"the image of v{version} was removed by cleanup (it keeps the last "
                f"{settings.keep_releases} releases): push that commit again to get it back"
            )
        rel = dict(target)
        rel.update(version=app.next_version(), created=release.now(), description=f"rollback to v{version}")
        release.activate(app, rel, err)
        app.set_config(dict(rel["config"]))
        app.record_release(rel)
        app.set_current(rel)
        err(f"-----> Rolled back {app.name} to v{version} (as v{rel['version']})")


def cmd_domains(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, "domains APP")
    no_extra(args[1:], "domains APP")
    for domain in app.all_domains():
        out(domain)


def _route(app: App) -> None:
    current = app.current()
    if not current:
        return
    ports = [
        i.host_port
        for i in LocalDocker().instances(app.name)
        if i.process == "web" and i.host_port and i.version == current["version"]
    ]
    nginx.apply(Path(app.settings.vhosts_dir), app.name, nginx.render(app.name, app.all_domains(), ports))


def cmd_domains_change(settings: Settings, args: list[str], add: bool) -> None:
    verb = "domains:add" if add else "domains:remove"
    app = app_arg(settings, args, f"{verb} APP DOMAIN")
    if len(args) != 2:
        raise UserError(f"usage: {verb} APP DOMAIN")
    try:
        domain = names.domain(args[1])
    except names.NameError_ as exc:
        raise UserError(str(exc)) from None
    with app.lock(say=err):
        domains = app.domains()
        if add:
            if domain in app.all_domains():
                raise UserError(f"{domain} already routes to {app.name}")
            for other in list_apps(settings):
                if other != app.name and domain in App(settings, other).all_domains():
                    raise UserError(f"{domain} already routes to app {other}")
            app.set_domains([*domains, domain])
        else:
            if domain not in domains:
                raise UserError(f"{domain} is not a custom domain of {app.name}")
            app.set_domains([d for d in domains if d != domain])
        try:
            _route(app)
        except nginx.NginxError:
            app.set_domains(domains)
            raise
    out(f"{'added' if add else 'removed'} {domain} {'to' if add else 'from'} {app.name}")


def cmd_cleanup(settings: Settings, args: list[str]) -> None:
    keep = settings.keep_releases
    if args:
        if len(args) != 2 or args[0] != "--keep" or not args[1].isdigit() or not 1 <= int(args[1]) <= 1000:
            raise UserError("usage: cleanup [--keep N] with N from 1 to 1000")
        keep = int(args[1])
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


COMMANDS: dict[str, Callable[[Settings, list[str]], None]] = {
    "apps:list": cmd_apps_list,
    "apps": cmd_apps_list,
    "apps:create": cmd_apps_create,
    "apps:destroy": cmd_apps_destroy,
    "config": cmd_config,
    "config:show": cmd_config,
    "config:set": cmd_config_set,
    "config:unset": cmd_config_unset,
    "logs": cmd_logs,
    "ps": cmd_ps,
    "ps:scale": cmd_ps_scale,
    "ps:restart": cmd_ps_restart,
    "releases": cmd_releases,
    "rollback": cmd_rollback,
    "domains": cmd_domains,
    "domains:add": lambda s, a: cmd_domains_change(s, a, True),
    "domains:remove": lambda s, a: cmd_domains_change(s, a, False),
    "cleanup": cmd_cleanup,
}


def dispatch(argv: list[str], settings: Settings, over_ssh: bool = False) -> int:
    if not argv or argv[0] in ("help", "--help", "-h"):
        out(HELP.format(keep=settings.keep_releases))
        return 0
    verb, args = argv[0], argv[1:]
    if verb in ("git-receive-pack", "git-upload-pack"):
        return git_command(settings, verb, args)
    if verb == "hook" and args == ["pre-receive"] and not over_ssh:
        return pre_receive(settings, sys.stdin.readlines())
    if verb in FILE_TRANSFER or verb.rsplit("/", 1)[-1] in ("sftp-server", "scp", "rsync"):
        err("error: no file transfer (scp, sftp, rsync) for this account: deploy with git push")
        return 1
    command = COMMANDS.get(verb)
    if command is None:
        err(f"unknown command {verb!r}: this account only deploys apps and runs the commands below\n")
        err(HELP.format(keep=settings.keep_releases))
        return 1
    command(settings, args)
    return 0


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
    except UserError as exc:
        err(f"error: {exc}")
        return 1
    except (
        names.NameError_,
        LockTimeout,
        nginx.NginxError,
        release.ReleaseError,
        DockerError,
        build.BuildError,
    ) as exc:
        err(f"error: {exc}")
        tail = getattr(exc, "tail", "")
        for line in tail.splitlines()[-20:]:
            err(f"  {line}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
