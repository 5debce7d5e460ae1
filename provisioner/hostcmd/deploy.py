"""Deploys and the one way any release goes live.

`deploy` turns a pushed commit into a release (build, Procfile, app.json); `publish` is the single path by
which a release reaches the app's domains, whatever asked for it: a push, a config change, scale, restart,
rollback or a domain change. It activates the release (or only re-routes it), records it and makes it
current, in that order, so the records never name a release that did not go live.

app.json's deployment tasks belong to a push's build, as in Dokku: `scripts.dokku.predeploy` runs before the
new processes start (its failure aborts the deploy), `scripts.dokku.postdeploy` once the release is live and
recorded (its failure is a warning). They are recorded on the release but not run again when it is
published again (config change, scale, restart, rollback); the Procfile `release:` command is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import build, procfile, release, swarm, tls
from .scheduler import Scheduler, for_settings
from .store import App, Release, now

Say = Callable[[str], None]


def publish(
    app: App,
    rel: Release,
    say: Say,
    *,
    restart: bool = True,
    deploy_tasks: bool = False,
    sched: Scheduler | None = None,
    phases: release.Phases | None = None,
) -> Release:
    """Make rel what the app serves. restart=False keeps the running processes and only routes the
    app's domains to them (domain changes). deploy_tasks=True (a push's new build only) also runs
    app.json's predeploy and postdeploy scripts. Each step is timed in phases. The caller holds the
    app's lock. On a swarm, routes follow the tasks' labels (hostcmd/router.py): a domain change is a
    rollout there."""
    sched = sched or for_settings(app.settings)
    phases = phases or release.Phases()
    if isinstance(sched, swarm.Swarm):
        restart = True
    if restart:
        app.set_pending(rel)  # first: a crash after the switch leaves a record of what went live
        try:
            release.activate(app, rel, say, sched, predeploy=deploy_tasks, phases=phases)
        except BaseException:
            app.clear_pending()  # activate stopped what it started; the old release serves
            raise
    else:
        with phases("switch"):
            release.route(app, release.serving_ports(app, rel, sched))
    app.record_release(rel)
    app.set_current(rel)
    app.clear_pending()
    if restart and app.stopped():
        app.set_stopped(False)  # a release that went live runs: ps:stop holds until the next one
        say(f"-----> {app.name} runs again (it was stopped)")
    if restart and deploy_tasks and rel.postdeploy:
        with phases("postdeploy"):
            release.postdeploy(app, rel, say, sched)
    return rel


def reconcile(app: App, say: Say, sched: Scheduler | None = None) -> None:
    """Settle a publish that a crash (power loss, kill) cut between its start and its record: if nginx
    routes to the pending release's processes, it went live, so it becomes current and the older processes
    go; else its processes go and the current release stays. The caller holds the app's lock."""
    pending = app.pending()
    if pending is None:
        return
    sched = sched or for_settings(app.settings)
    instances = sched.instances(app.name)
    new_ports = {i.host_port for i in instances if i.version == pending.version and i.process == "web"}
    if new_ports:  # web processes: live when nginx routes to them
        went_live = bool(new_ports & set(release.routed_ports(app)))
    else:  # workers only: live once they were started
        went_live = any(i.version == pending.version for i in instances)
    if went_live:
        app.record_release(pending)
        app.set_current(pending)
        for inst in instances:
            if inst.version != pending.version:
                sched.stop(inst, grace=10)
        say(f"-----> v{pending.version} of {app.name} went live before an interruption: now recorded")
    else:
        for inst in instances:
            if inst.version == pending.version:
                sched.stop(inst, grace=2)
        say(f"-----> v{pending.version} of {app.name} did not go live before an interruption: removed")
    app.clear_pending()


def heal(app: App, say: Say, sched: Scheduler | None = None, wait: float = 15) -> bool:
    """At boot: when fewer web processes of the current release run than its scale asks (one could not
    start, e.g. its fixed host port was taken by another program), start the release again on new ports,
    health-checked and routed, with zero downtime for the ones that run. True when it did."""
    current = app.current(tolerant=True)
    wanted = app.scale().get("web", 0)
    if current is None or not wanted or "web" not in current.processes or app.stopped():
        return False
    sched = sched or for_settings(app.settings)
    deadline = time.monotonic() + wait
    while True:  # Docker may still be starting them
        web = [i for i in sched.instances(app.name) if i.version == current.version and i.process == "web"]
        running = [i for i in web if sched.alive(i)]
        if len(running) >= wanted:
            return False
        if time.monotonic() > deadline or all(i.state in ("exited", "dead", "created") for i in web):
            break
        time.sleep(1)
    say(f"-----> {app.name}: {len(running)} of {wanted} web processes run; starting v{current.version} again")
    publish(app, current, say, sched=sched)
    return True


def reroute(app: App, say: Say) -> None:
    """Render the app's vhost again (its domains or its certificate changed), processes untouched; an app
    never deployed has no vhost yet and gets the change with its first release."""
    current = app.current()
    if current:
        publish(app, current, say, restart=False)


def deploy(app: App, sha: str, description: str, say: Say, locked: bool = False) -> Release:
    """Build the commit and publish it as the next release (under the app's lock unless held already)."""
    started = time.monotonic()
    phases = release.Phases()
    with contextlib.nullcontext() if locked else app.lock(say=say):
        with phases("build"), tempfile.TemporaryDirectory(prefix=f"provisioner-build-{app.name}-") as tmp:
            source = Path(tmp) / "src"
            build.export_source(app.repo, sha, source)
            version = app.next_version()
            # app.json before the build: a wrong type fails the push at once, unsupported keys are named.
            app_json = procfile.read_app_json(source, app.settings.healthcheck_timeout)
            declared = procfile.read_procfile(source)
            for warning in app_json.warnings:
                say(f" !     {warning}")
            say(f"-----> Building {app.name} v{version} ({sha[:7]})")
            result = build.build(app.name, version, source, app.config(), app.settings, app.cache_dir, say)
            plan = procfile.plan(
                source, result.defaults, app.settings.healthcheck_timeout, app_json, declared
            )
        rel = Release(
            version=version,
            image=result.image,
            base_image=result.base,
            kind=result.kind,
            commit=sha,
            processes=plan.processes,
            release_command=plan.release_command,
            predeploy=plan.predeploy,
            postdeploy=plan.postdeploy,
            health=plan.health,
            port=result.port or app.settings.container_port,
            config=app.config(),
            created=now(),
            description=description,
        )
        publish(app, rel, say, deploy_tasks=True, phases=phases)
        # The record carries the figures of the push log's last line.
        rel = dataclasses.replace(rel, seconds=round(time.monotonic() - started, 2), phases=phases.rounded())
        app.record_release(rel)
        app.set_current(rel)
    say(f"-----> Released v{rel.version} in {rel.seconds:.1f} s ({phases.summary()})")
    say(f"=====> {url(app)}")
    return rel


def url(app: App) -> str:
    """The app's address: https:// once its certificate covers its default domain."""
    address = app.settings.app_url(app.name)
    cert = tls.installed(app)
    if cert and app.settings.domain and tls.covered(cert.names, [f"{app.name}.{app.settings.domain}"]):
        return address.replace("http://", "https://", 1)
    return address


def redeploy(app: App, say: Say, description: str) -> Release | None:
    """The current release again with the app's config as it is now, as a new release: zero downtime."""
    current = app.current()
    if not current:
        say(f"{app.name} has no release yet: push to deploy it")
        return None
    rel = publish(app, current.again(app.next_version(), description, config=app.config()), say)
    say(f"-----> Released v{rel.version}: {description}")
    return rel
