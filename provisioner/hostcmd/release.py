"""Releases: start the new processes, health-check them, switch nginx, retire the old ones.

A failure at any step stops what was started for the new release and leaves the serving one alone.

One-off commands (app.json `scripts.dokku.predeploy`, the Procfile `release:` command, app.json
`scripts.dokku.postdeploy`) run in a container of the release's image with its config, through the same
path: the command string is the container's `/bin/sh -c` argument (or the image's launcher's), as the
image's user, never part of a host command line. Their last lines go to the push log.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from . import docker, nginx, resources, session, storage, swarm, tls
from .procfile import HealthCheck
from .scheduler import Instance, ProcessSpec, Scheduler, for_settings, memory_bytes
from .store import App, Release

Say = Callable[[str], None]


# The phases of a deploy, in the order they run.
PHASE_ORDER = ("build", "release", "start", "health", "switch", "retire", "postdeploy")


class Phases:
    """Seconds per phase of a deploy, in the order they ran: build, release (app.json predeploy and the
    release command), start, health, switch (nginx), retire (the old processes), postdeploy. The push log's
    last line and the release's record show them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

    def rounded(self) -> dict[str, float]:
        return {name: round(seconds, 2) for name, seconds in self.seconds.items()}

    def summary(self) -> str:
        """`build 0.7 s, start 0.4 s, ...`"""
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())


class ReleaseError(RuntimeError):
    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect answer is healthy as it is: never follow it from the host's own network."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def http_ok(port: int, path: str) -> tuple[bool, str]:
    try:
        with OPENER.open(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return 200 <= resp.status < 400, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return 300 <= exc.code < 400, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, str(getattr(exc, "reason", exc))


def tcp_ok(port: int) -> tuple[bool, str]:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True, "port open"
    except OSError as exc:
        return False, str(exc)


def wait_healthy(sched: Scheduler, inst: Instance, health: HealthCheck, say: Say) -> None:
    timeout = float(health.timeout)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if session.stopped():
            raise ReleaseError("the push's client disconnected: the deploy stopped before the switch")
        if not sched.alive(inst):
            raise ReleaseError(
                f"{inst.process}.{inst.index} exited during its health check", sched.log_tail(inst)
            )
        if inst.host_port:
            ok, last = (
                http_ok(inst.host_port, health.path) if health.kind == "http" else tcp_ok(inst.host_port)
            )
            if ok:
                say(f"       {inst.process}.{inst.index} is healthy ({last})")
                return
        time.sleep(0.1)  # each poll is one local request: the sooner it answers, the sooner the switch
    what = (
        f"GET {health.path} answering 2xx/3xx" if health.kind == "http" else "its port accepting connections"
    )
    raise ReleaseError(
        f"{inst.process}.{inst.index} failed its health check ({what}) within {timeout:.0f} s: last {last}",
        sched.log_tail(inst),
    )


def route(app: App, ports: list[int]) -> None:
    """Point the app's domains at these web ports, over HTTPS too when it has a certificate (nginx checks
    the config before it reloads)."""
    cert = tls.installed(app)
    site = nginx.Tls(str(cert.cert), str(cert.key), cert.names, tls.hsts(app.config())) if cert else None
    text = nginx.render(
        app.name, app.all_domains(), ports, acme_root=str(app.settings.acme_challenges), tls=site
    )
    nginx.apply(Path(app.settings.vhosts_dir), app.name, text)


def routed_ports(app: App) -> list[int]:
    """The upstream ports the app's vhost on disk routes to (none without a vhost)."""
    path = Path(app.settings.vhosts_dir) / f"{app.name}.conf"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in re.findall(r"^\s*server 127\.0\.0\.1:([0-9]+) ", text, re.M)]


def serving_ports(app: App, release: Release, sched: Scheduler) -> list[int]:
    """The host ports of the release's running web processes."""
    return [
        i.host_port
        for i in sched.instances(app.name)
        if i.process == "web" and i.host_port and i.version == release.version
    ]


def web_concurrency(memory: int, cpus: int | None = None) -> int:
    """Workers a web process should run: one per 256 MB of its memory limit (Heroku's sizing for Python),
    at least 1, at most two per CPU of the host."""
    return max(1, min(memory // (256 * 1024**2), 2 * (cpus or os.cpu_count() or 1)))


def process_env(config: dict[str, str], process: str, index: int, memory: int) -> dict[str, str]:
    """The environment of one process: the app's config, and what Heroku sets in every dyno. DYNO
    (web.1, worker.2, release.1) is always ours; WEB_CONCURRENCY only where the app does not set it."""
    env = dict(config)
    env["DYNO"] = f"{process}.{max(index, 1)}"
    env.setdefault("WEB_CONCURRENCY", str(web_concurrency(memory)))
    return env


def limits_of(app: App, release: Release) -> resources.Limits:
    """The limits of the release's containers (resources.py: the app's choice within the host's maxima)."""
    try:
        return resources.limits(app, release.config)
    except resources.ResourceError as exc:
        raise ReleaseError(str(exc)) from None


def process_spec(app: App, release: Release, process: str, index: int, command: str | None) -> ProcessSpec:
    limits = limits_of(app, release)
    memory, memory_limit = limits.memory, memory_bytes(limits.memory)
    return ProcessSpec(
        app=app.name,
        process=process,
        index=index,
        version=release.version,
        image=release.image,
        command=command or None,
        env=process_env(release.config, process, index, memory_limit),
        port=release.port if process == "web" else None,
        memory=memory,
        cpus=limits.cpus,
        pids=limits.pids,
        mounts=storage.mounts(app),
    )


def run_one_off(sched: Scheduler, spec: ProcessSpec, headline: str, say: Say) -> int:
    """Run spec.command to its end in a one-off container; its last 20 lines go to the push log."""
    say(f"-----> Running {headline}: {spec.command}")
    rc, output = sched.run_once(spec)
    for line in output.splitlines()[-20:]:
        say(f"       {line}")
    return rc


def postdeploy(app: App, release: Release, say: Say, sched: Scheduler | None = None) -> None:
    """app.json `scripts.dokku.postdeploy`, once the release is live: a failure is only a warning,
    since the release already serves (and stays)."""
    if not release.postdeploy:
        return
    try:
        rc = run_one_off(
            sched or for_settings(app.settings),
            process_spec(app, release, "postdeploy", 0, release.postdeploy),
            "app.json postdeploy",
            say,
        )
    except (docker.DockerError, ReleaseError) as exc:
        say(f" !     app.json postdeploy could not run ({exc}); the release is live")
        return
    if rc != 0:
        say(f" !     app.json postdeploy failed (exit code {rc}); the release is live")


def activate(
    app: App,
    release: Release,
    say: Say,
    sched: Scheduler | None = None,
    *,
    predeploy: bool = False,
    phases: Phases | None = None,
) -> list[Instance]:
    """Run a release: app.json predeploy (with predeploy=True: deploys of a new build only), release
    command, new processes, health checks, nginx switch, retire the old; each step timed in phases."""
    sched = sched or for_settings(app.settings)
    phase = phases or Phases()
    settings = app.settings
    processes = release.processes
    limits_of(app, release)  # a bad MEMORY_LIMIT is one clear error before anything runs
    try:
        storage.prepare(app, release)  # the app's storage directories, before its first process
    except (storage.StorageError, docker.DockerError) as exc:
        raise ReleaseError(f"storage: {exc}") from None
    scale = app.scale()
    if scale.get("web", 0) > 0 and "web" not in processes:
        raise ReleaseError("no 'web' process: add a Procfile with 'web: <command>' (or scale web=0)")

    def spec(process: str, index: int, command: str | None) -> ProcessSpec:
        return process_spec(app, release, process, index, command)

    if predeploy and release.predeploy:
        with phase("release"):
            rc = run_one_off(sched, spec("predeploy", 0, release.predeploy), "app.json predeploy", say)
        if rc != 0:
            raise ReleaseError(f"app.json predeploy failed (exit code {rc}); the deploy is aborted", "")
    if release.release_command:
        with phase("release"):
            rc = run_one_off(sched, spec("release", 0, release.release_command), "release command", say)
        if rc != 0:
            raise ReleaseError(f"the release command failed (exit code {rc}); the deploy is aborted", "")
    if isinstance(sched, swarm.Swarm):  # a cluster: Swarm starts, checks and replaces the tasks
        with phase("start"):
            try:
                sched.rollout(
                    {p: spec(p, 0, command) for p, command in processes.items()},
                    scale,
                    release.health,
                    app.all_domains(),
                    say,
                    record=swarm.record_label(release.to_dict(), app.domains()),
                )
            except (swarm.SwarmError, docker.DockerError) as exc:
                raise ReleaseError(str(exc), getattr(exc, "tail", "")) from None
            sched.remove(app.name, keep=set(processes))
        return []
    old = sched.instances(app.name)
    started: list[Instance] = []
    try:
        with phase("start"):
            for process, count in sorted(scale.items()):
                if process not in processes:
                    if count:
                        say(f"       (no '{process}' process in this release: skipped)")
                    continue
                for index in range(1, count + 1):
                    say(f"-----> Starting {process}.{index}")
                    started.append(sched.start(spec(process, index, processes[process])))
        with phase("health"):
            for inst in started:
                if inst.process == "web":
                    wait_healthy(sched, inst, release.health, say)
            time.sleep(1 if any(i.process != "web" for i in started) else 0)
            for inst in started:
                if inst.process != "web" and not sched.alive(inst):
                    raise ReleaseError(
                        f"{inst.process}.{inst.index} exited right after starting", sched.log_tail(inst)
                    )
        with phase("switch"):
            route(app, [i.host_port for i in started if i.process == "web" and i.host_port])
    except BaseException:
        for inst in started:
            sched.stop(inst, grace=2)
        raise
    if old:
        with phase("retire"):
            time.sleep(settings.retire_grace)
            for inst in old:
                sched.stop(inst, grace=10)
    return started
