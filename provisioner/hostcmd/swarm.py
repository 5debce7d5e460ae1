"""Apps on a Docker Swarm cluster (`provisioner up --swarm`): the Scheduler's cluster implementation.

Each process type of an app is one Swarm service, `APP_PROCESS` (app names have no underscore), its
replicas the app's scale. A release is a service update: start-first, one task at a time, each new task
gated by the release's health check, run by Docker inside the task (a HEALTHCHECK: Swarm counts a task as
running only once it is healthy, and stops the old task only then). A task that fails the check fails the
update, and Swarm rolls the service back to its previous spec by itself (`FailureAction: rollback`); the push
then fails with the reason. Images are built on the manager that got the push and pushed to that
manager's registry (the swarm role runs one on each manager), from which the nodes pull.

Swarm's replicated store is the cluster's record of an app: each service carries the release record (the
config's keys; the values are the service's environment) and the app's domains. A manager that gets a push
or a command for an app another manager deployed (one that is gone, say) takes the app over from there
(`adopt`): its config, scale, domains and current release, so the next release starts from them.

Config values travel in the service spec (the API body, kept in Swarm's replicated store), never on a
command line. Routing is each node's business (hostcmd/router.py): nginx there routes to the healthy tasks.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import docker
from .procfile import HealthCheck
from .scheduler import APP_CAPABILITIES, LABEL, Instance, LocalDocker, ProcessSpec, memory_bytes
from .settings import Settings
from .store import App, Release

Say = Callable[[str], None]
SECOND = 1_000_000_000  # the Engine API's durations are nanoseconds
DOMAINS_LABEL = "io.provisioner.domains"
PORT_LABEL = "io.provisioner.port"
LEADER_WAIT = 45.0  # seconds a push or command waits for a lost leader's successor
RECORD_LABEL = "io.provisioner.record"


class SwarmError(RuntimeError):
    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


def enabled(settings: Settings) -> bool:
    """This host is a manager of a swarm made by `up --swarm`: apps run as Swarm services."""
    return settings.swarm_role == "manager" and bool(settings.swarm_registry)


def overlay_name(app: str) -> str:
    """The app's overlay network (Swarm wants a DNS label: no dot, unlike one host's network_name)."""
    return f"provisioner-app-{app}"


def service_name(app: str, process: str) -> str:
    return f"{app}_{process}"


def registry_ref(settings: Settings, image: str) -> str:
    """provisioner-app/APP:vN as the cluster registry names it: REGISTRY/provisioner-app/APP:vN."""
    return f"{settings.swarm_registry}/{image}"


# The health check inside a task, with what its image has: bash's /dev/tcp (any Debian or Ubuntu based
# image), else wget or curl. An image with none of them (distroless) is gated on running only.
HEALTH_SCRIPT = """\
p={port}; path={path}; kind={kind}
if command -v bash >/dev/null 2>&1; then
  exec bash -c '
    exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    [ "$2" = tcp ] && exit 0
    printf "GET %s HTTP/1.0\\r\\nHost: localhost\\r\\nUser-Agent: provisioner-health\\r\\n\\r\\n" "$1" >&3
    IFS= read -r -t 3 line <&3 || exit 1
    case "$line" in HTTP/1.?\\ [23]*) exit 0;; esac
    exit 1' "$p" "$path" "$kind"
fi
[ "$kind" = tcp ] && url=http://127.0.0.1:$p/ || url=http://127.0.0.1:$p$path
if command -v curl >/dev/null 2>&1; then
  code=$(curl -s -o /dev/null -m 3 -w '%{{http_code}}' "$url") || exit 1
  [ "$kind" = tcp ] && exit 0
  case "$code" in [23]??) exit 0;; esac
  exit 1
fi
if command -v wget >/dev/null 2>&1; then
  wget -q -O /dev/null -T 3 "$url" 2>/dev/null && exit 0
  exit 1
fi
exit 0
"""


def health_test(health: HealthCheck, port: int) -> dict[str, Any]:
    """The Docker HEALTHCHECK of a web task: the release's check (app.json or CHECKS), at most its timeout
    to pass once, then every few seconds while it runs."""
    script = HEALTH_SCRIPT.format(
        port=int(port), path=shlex.quote(health.path), kind=shlex.quote(health.kind)
    )
    return {
        "Test": ["CMD-SHELL", script],
        "Interval": 1 * SECOND,
        "Timeout": 3 * SECOND,
        "Retries": 3,
        "StartPeriod": int(health.timeout) * SECOND,
    }


def template_literal(value: str) -> str:
    """Swarm expands Go templates ({{.Task.Slot}}) in a service's environment: a config value stays
    exactly what the user set, braces and all."""
    return value.replace("{{", '{{"{{"}}')


def service_spec(
    spec: ProcessSpec,
    replicas: int,
    image: str,
    *,
    launcher: bool,
    health: HealthCheck | None,
    domains: list[str],
    record: str = "",
) -> dict[str, Any]:
    """The Swarm service of one process type (spec.index is not used: Swarm numbers the replicas); record:
    the release record (record_label) the service carries for the other managers."""
    env = dict(spec.env)
    labels = {
        LABEL: spec.app,
        "io.provisioner.process": spec.process,
        "io.provisioner.release": str(spec.version),
    }
    container_labels = dict(labels)
    if record:
        labels[RECORD_LABEL] = record
    container: dict[str, Any] = {
        "Image": image,
        "Labels": container_labels,
        "Init": True,
        "CapabilityDrop": ["ALL"],
        "CapabilityAdd": [f"CAP_{c}" for c in APP_CAPABILITIES],
        "StopGracePeriod": 10 * SECOND,
    }
    if spec.port:
        env["PORT"] = str(spec.port)
        container_labels[PORT_LABEL] = str(spec.port)
        container_labels[DOMAINS_LABEL] = ",".join(domains)
        if health is not None:
            container["Healthcheck"] = health_test(health, spec.port)
    container["Env"] = [f"{k}={template_literal(v)}" for k, v in sorted(env.items())]
    if spec.command:
        # Args is the image's CMD (Command would replace its entrypoint), as on one host.
        container["Args"] = [spec.command] if launcher else ["/bin/sh", "-c", spec.command]
    if spec.mounts:
        container["Mounts"] = [{"Type": "bind", "Source": m.source, "Target": m.target} for m in spec.mounts]
    limits: dict[str, Any] = {"MemoryBytes": memory_bytes(spec.memory), "Pids": spec.pids}
    if spec.cpus > 0:
        limits["NanoCPUs"] = int(spec.cpus * 1e9)
    return {
        "Name": service_name(spec.app, spec.process),
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": limits},
            "RestartPolicy": {"Condition": "any", "Delay": 2 * SECOND},
            "Networks": [{"Target": overlay_name(spec.app)}],
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
        "UpdateConfig": {
            "Parallelism": 1,
            "Order": "start-first",
            "FailureAction": "rollback",
            "Monitor": 2 * SECOND,
            "MaxFailureRatio": 0,
        },
        "RollbackConfig": {
            "Parallelism": 0,
            "Order": "start-first",
            "FailureAction": "pause",
            "Monitor": 1 * SECOND,
        },
        # No virtual IP: each node's nginx reaches the tasks themselves (hostcmd/router.py).
        "EndpointSpec": {"Mode": "dnsrr"},
    }


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class Swarm(LocalDocker):
    """The Scheduler of a swarm manager. Instances are tasks (named by their task id); rollout() replaces
    start()/stop() for releases: Swarm itself starts, checks, replaces and rolls back. One-off commands
    (release, predeploy, postdeploy) run as LocalDocker's containers on this manager, on the app's
    overlay network."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    # -- networks and images -------------------------------------------------------------------------

    def _network_spec(self, app: str) -> dict[str, Any]:
        """The app's overlay network (attachable: one-off containers on the manager join it too)."""
        return {
            "Name": overlay_name(app),
            "Driver": "overlay",
            "Attachable": True,
            "CheckDuplicate": True,
            "Labels": {LABEL: app},
        }

    def local_image(self, app: str, image: str) -> str:
        """The release's image on this manager: built here, or (a release another manager deployed) the
        copy this node pulled when it ran a task of it, pulled now if it never did."""
        if docker.image_exists(image):
            return image
        for service in self.services(app):
            name = str(_container_spec(service).get("Image", "")).partition("@")[0]
            if name.endswith("/" + image):
                if not docker.image_exists(name):
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        docker.cli("pull", "-q", name, check=False, timeout=60)
                if docker.image_exists(name):
                    return name
        raise SwarmError(f"{image} is neither on this manager nor in a registry it reaches")

    def publish_image(self, image: str, say: Say) -> str:
        """Push the release's image to this manager's registry (once per image); its name there."""
        ref = registry_ref(self.settings, _unregistered(image))
        repo, _, tag = ref.rpartition(":")
        docker.api("POST", f"/images/{_quote(image)}/tag", query={"repo": repo, "tag": tag})
        started = time.monotonic()
        proc = docker.cli("push", "-q", ref, check=False)
        if proc.returncode != 0:
            detail = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()
            raise SwarmError(
                f"could not push the image to the cluster registry: {detail[-1] if detail else ''}"
            )
        say(f"       {image} in the cluster registry ({time.monotonic() - started:.1f} s)")
        return ref

    # -- the cluster ---------------------------------------------------------------------------------

    def wait_for_leader(self, say: Say, timeout: float = LEADER_WAIT) -> None:
        """Right after the leader is lost, the other managers elect one (about ten seconds): until then
        Swarm answers nothing, so a push or command waits for it (saying so) rather than failing."""
        started = time.monotonic()
        waited = False
        while True:
            try:
                docker.api("GET", "/nodes", timeout=10)  # answered by the leader only
                break
            except (docker.DockerError, OSError) as exc:
                permanent = any(m in str(exc) for m in ("not a swarm manager", "not part of a swarm"))
                if permanent or time.monotonic() - started > timeout:
                    raise SwarmError(f"the cluster does not answer: {exc}") from None
                if not waited:
                    say("-----> The cluster has no leader (a manager was lost): waiting for the election")
                    waited = True
                time.sleep(1)
        if waited:
            say(f"       a leader was elected ({time.monotonic() - started:.0f} s)")

    def down_nodes(self) -> set[str]:
        """The ids of the nodes Swarm counts as down: their tasks' last state is stale."""
        return {
            str(n.get("ID", ""))
            for n in docker.api("GET", "/nodes")
            if str((n.get("Status") or {}).get("State", "")) in ("down", "unknown", "disconnected")
        }

    # -- services ------------------------------------------------------------------------------------

    def service(self, app: str, process: str) -> dict[str, Any] | None:
        try:
            return dict(docker.api("GET", f"/services/{_quote(service_name(app, process))}"))
        except docker.DockerError:
            return None

    def services(self, app: str) -> list[dict[str, Any]]:
        filters = {"label": [f"{LABEL}={app}"]}
        return list(docker.api("GET", "/services", query={"filters": json.dumps(filters)}))

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        filters = {"service": [service_id]}
        return list(docker.api("GET", "/tasks", query={"filters": json.dumps(filters)}))

    def task_logs(self, task_id: str, lines: int = 20) -> str:
        if not task_id:
            return ""
        # The task's node sends them; one that is gone (or slow) must not hold up the push's answer.
        try:
            proc = docker.cli(
                "service", "logs", "--raw", "--tail", str(lines), task_id, check=False, timeout=5
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return out.strip()
        return ((proc.stdout or "") + (proc.stderr or "")).strip()

    def rollout(
        self,
        specs: Mapping[str, ProcessSpec],
        scale: Mapping[str, int],
        health: HealthCheck,
        domains: list[str],
        say: Say,
        record: str = "",
    ) -> None:
        """Bring every process type of the release to its scale: create its service or update it
        start-first; wait until each runs its replicas of this release, healthy. On a failed check Swarm
        rolls an updated service back, a new one is removed, and SwarmError says why."""
        if not specs:
            return
        first = next(iter(specs.values()))
        self.wait_for_leader(say)
        self._network(first.app)
        image = self.publish_image(self.local_image(first.app, first.image), say)
        launcher = self._launcher(first.image)
        pending: list[tuple[str, str, int, bool, int]] = []  # id, process, replicas, created, generation
        for process, spec in sorted(specs.items()):
            replicas = max(0, int(scale.get(process, 0)))
            body = service_spec(
                spec,
                replicas,
                image,
                launcher=launcher,
                health=health if spec.port else None,
                domains=domains,
                record=record,
            )
            current = self.service(spec.app, process)
            if current is None:
                if not replicas:
                    continue
                say(f"-----> Starting {process} ({replicas} on the cluster)")
                created = docker.api("POST", "/services/create", body)
                pending.append((created["ID"], process, replicas, True, 0))
            else:
                say(f"-----> Updating {process} to v{spec.version} ({replicas} replicas, start-first)")
                # Every update but a scale changes the ForceUpdate counter, which marks the tasks it
                # starts: the same release at the same scale again is a restart (Swarm replaces tasks
                # only for a changed spec), and a domain change keeps the release's label but must be
                # waited for too. A scale changes nothing else: Swarm adds or stops tasks, and leaves
                # the others (and their spread) alone.
                generation = _generation(current.get("Spec") or {})
                if not _only_scaled(body, current.get("Spec") or {}):
                    generation += 1
                body["TaskTemplate"]["ForceUpdate"] = generation
                version = current["Version"]["Index"]
                docker.api("POST", f"/services/{current['ID']}/update", body, query={"version": version})
                pending.append((current["ID"], process, replicas, False, generation))
        # The first pull of an image on a node, and a lost node noticed (its tasks counted out), too.
        deadline = time.monotonic() + health.timeout + 60
        version = first.version
        for service_id, process, replicas, created, generation in pending:
            try:
                check = health if specs[process].port else None
                self._wait(service_id, process, generation, replicas, deadline, say, check, version)
            except SwarmError:
                if created:
                    with contextlib.suppress(docker.DockerError):
                        docker.api("DELETE", f"/services/{service_id}")
                else:
                    self._rollback(service_id)
                raise

    def _wait(
        self,
        service_id: str,
        process: str,
        generation: int,
        replicas: int,
        deadline: float,
        say: Say,
        health: HealthCheck | None,
        version: int,
    ) -> None:
        """Until the service runs `replicas` healthy tasks of this update (its ForceUpdate generation:
        a restart of the same release counts too) and no other; SwarmError when Swarm rolled it back."""
        failures = 0
        while True:
            service = dict(docker.api("GET", f"/services/{service_id}"))
            update = service.get("UpdateStatus") or {}
            # Only the status of this update: a previous one's (rolled back, say) stays until it starts;
            # Swarm's rollback puts the previous spec (and its generation) back.
            state = str(update.get("State", ""))
            if _generation(service.get("Spec") or {}) != generation:
                state = state if state.startswith("rollback") else ""
            elif not _after(update, service):
                state = ""
            down = self.down_nodes()
            tasks = [t for t in self.tasks(service_id) if str(t.get("NodeID", "")) not in down]
            new = [
                t
                for t in tasks
                if _generation(t.get("Spec") or {}, task=True) == generation and _release(t) == version
            ]
            running = [t for t in new if _state(t) == "running" and t.get("DesiredState") == "running"]
            live = ("running", "starting", "preparing", "assigned", "accepted", "ready", "pending")
            # Tasks of earlier specs still wanted, or still running (an old one stopping after its
            # replacement turned healthy); a stuck one already told to stop does not hold the release up.
            others = [
                t
                for t in tasks
                if t not in new
                and ((t.get("DesiredState") == "running" and _state(t) in live) or _state(t) == "running")
            ]
            failed = [
                t
                for t in new
                if _state(t) in ("failed", "rejected")
                or (
                    _state(t) in ("shutdown", "complete")
                    and t.get("DesiredState") == "shutdown"
                    and (t.get("Status") or {}).get("Err")
                )
            ]
            if state.startswith("rollback") or state == "paused":
                self._settle(service_id)
                raise self._failure(process, version, new, health, str(update.get("Message", "")))
            if len(running) >= replicas and not others and state != "updating":
                say(f"       {process}: {replicas} of {replicas} running v{version}, healthy")
                return
            if failed and len(failed) > failures:
                failures = len(failed)
                err = str((failed[-1].get("Status") or {}).get("Err", ""))
                say(f" !     {process}: a task of v{version} failed ({err}); Swarm tries again")
            if time.monotonic() > deadline:
                raise self._failure(process, version, new, health, "no healthy task in time")
            time.sleep(0.25)

    def _settle(self, service_id: str, timeout: float = 30) -> None:
        """Wait for Swarm's own rollback to end (the next release must not meet it half way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            service = dict(docker.api("GET", f"/services/{service_id}"))
            if str((service.get("UpdateStatus") or {}).get("State", "")) != "rollback_started":
                return
            time.sleep(0.25)

    def _failure(
        self,
        process: str,
        version: int,
        tasks: list[dict[str, Any]],
        health: HealthCheck | None,
        message: str,
    ) -> SwarmError:
        """Why the tasks of the release did not run, with the last lines of one of them."""
        err, tail = "", ""
        for task in sorted(tasks, key=lambda t: str(t.get("UpdatedAt", "")), reverse=True):
            err = err or str((task.get("Status") or {}).get("Err", ""))
            tail = tail or self.task_logs(str(task.get("ID", "")))
        if health is not None and "exit" not in err:
            what = f"GET {health.path} answering 2xx/3xx" if health.kind == "http" else "its port open"
            reason = f"v{version} failed its health check ({what}) within {health.timeout} s"
        else:
            reason = f"a task of v{version} stopped ({err or message})"
        return SwarmError(f"{process}: {reason}; the service stays on the previous release", tail)

    def _rollback(self, service_id: str) -> None:
        """Back to the previous spec (when Swarm has not rolled back by itself already)."""
        with contextlib.suppress(docker.DockerError):
            service = dict(docker.api("GET", f"/services/{service_id}"))
            state = str((service.get("UpdateStatus") or {}).get("State", ""))
            if not state.startswith("rollback") and service.get("PreviousSpec"):
                docker.api(
                    "POST",
                    f"/services/{service_id}/update",
                    service["Spec"],
                    query={"version": service["Version"]["Index"], "rollback": "previous"},
                )

    def remove(self, app: str, keep: set[str] | None = None) -> None:
        """Remove the app's services (but those of the processes in keep)."""
        for service in self.services(app):
            process = str((service.get("Spec") or {}).get("Labels", {}).get("io.provisioner.process", ""))
            if keep is not None and process in keep:
                continue
            with contextlib.suppress(docker.DockerError):
                docker.api("DELETE", f"/services/{service['ID']}")

    # -- the Scheduler's reading side ------------------------------------------------------------------

    def instances(self, app: str) -> list[Instance]:
        found = []
        for service in self.services(app):
            labels = (service.get("Spec") or {}).get("Labels") or {}
            for task in self.tasks(str(service["ID"])):
                if task.get("DesiredState") != "running":
                    continue
                found.append(
                    Instance(
                        name=str(task.get("ID", "")),
                        app=app,
                        process=str(labels.get("io.provisioner.process", "")),
                        index=int(task.get("Slot") or 0),
                        version=_release(task),
                        state=_state(task),
                        host_port=None,
                        started=str((task.get("Status") or {}).get("Timestamp", "")),
                    )
                )
        return sorted(found, key=lambda i: (i.version, i.process, i.index, i.name))

    def alive(self, instance: Instance) -> bool:
        try:
            task = dict(docker.api("GET", f"/tasks/{_quote(instance.name)}"))
        except docker.DockerError:
            return False
        return _state(task) == "running"

    def stop(self, instance: Instance, grace: float = 10) -> None:
        """Tasks are Swarm's: they go with their service (rollout, remove)."""

    def log_tail(self, instance: Instance, lines: int = 20) -> str:
        return self.task_logs(instance.name, lines)

    def logs(self, instance: Instance, lines: int, follow: bool) -> Iterator[str]:
        return docker.follow_logs(instance.name, lines, follow, task=True)

    def forget(self, app: str) -> None:
        self.remove(app)
        time.sleep(1)  # the engine removes no network its tasks still use
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/networks/{_quote(overlay_name(app))}")


def _only_scaled(body: dict[str, Any], spec: dict[str, Any]) -> bool:
    """The new spec runs the same tasks as the service's current one, at another scale."""
    new, old = (
        body["TaskTemplate"]["ContainerSpec"],
        (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {},
    )
    same = all(new.get(k) == old.get(k) for k in ("Env", "Labels", "Args"))
    same = same and str(new.get("Image")) == str(old.get("Image", "")).partition("@")[0]
    replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
    return same and replicas != body["Mode"]["Replicated"]["Replicas"]


def _container_spec(service: dict[str, Any]) -> dict[str, Any]:
    return dict(((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {})


# --- the cluster's record of an app -----------------------------------------------------------------------


def record_label(release: Mapping[str, Any], domains: list[str]) -> str:
    """What a service tells the other managers of its app: the release record (Release.to_dict) with the
    keys of its config only (the values are the service's environment: they are not written twice), and
    the app's own domains (domains:add)."""
    data = {k: v for k, v in release.items() if k != "config"}
    data["config_keys"] = sorted(release.get("config") or {})
    data["domains"] = sorted(domains)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Record:
    release: dict[str, Any]  # Release.to_dict(), config values included
    scale: dict[str, int]
    domains: list[str]


def read_record(services: list[dict[str, Any]]) -> Record | None:
    """The app as its services carry it: the newest release record (its config values from the service's
    environment, Go template escapes undone), each process type's replicas. None when no service has one."""
    newest: tuple[int, dict[str, Any], dict[str, Any]] | None = None
    scale: dict[str, int] = {}
    for service in services:
        spec = service.get("Spec") or {}
        labels = spec.get("Labels") or {}
        process = str(labels.get("io.provisioner.process", ""))
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        if process and isinstance(replicas, int):
            scale[process] = replicas
        try:
            data = json.loads(str(labels.get(RECORD_LABEL, "")))
            version = int(data["version"])
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(data, dict) and (newest is None or version > newest[0]):
            newest = (version, data, _container_spec(service))
    if newest is None:
        return None
    _, data, container = newest
    env = {}
    for item in container.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value.replace('{{"{{"}}', "{{")
    release = {k: v for k, v in data.items() if k not in ("config_keys", "domains")}
    release["config"] = {k: env[k] for k in data.get("config_keys") or [] if k in env}
    return Record(release, scale, [str(d) for d in data.get("domains") or []])


def adopt(app: App, init_repo: Callable[[Path], None], say: Say) -> bool:
    """Before a manager's push or command on an app it has no release of: when the swarm runs the app
    (deployed from another manager, one that may be gone), take it over from there: config, scale,
    domains and the current release, recorded here (the next release is numbered after it). True when
    it did."""
    if not enabled(app.settings) or app.current(tolerant=True) is not None:
        return False
    sched = Swarm(app.settings)
    sched.wait_for_leader(say)
    try:
        record = read_record(sched.services(app.name))
    except docker.DockerError as exc:
        raise SwarmError(f"could not read the cluster's services: {exc}") from None
    if record is None:
        return False
    release = Release.from_dict(record.release)
    app.create(init_repo)
    app.set_config(release.config)
    app.set_scale(record.scale or {"web": 1})
    app.set_domains(record.domains)
    app.record_release(release)
    app.set_current(release)
    say(f"-----> {app.name} v{release.version} taken over from the cluster (deployed by another manager)")
    return True


def _unregistered(image: str) -> str:
    """REGISTRY/provisioner-app/APP:vN -> provisioner-app/APP:vN (an image another manager pushed)."""
    head, sep, rest = image.partition("/provisioner-app/")
    return f"provisioner-app/{rest}" if sep and head else image


def _generation(spec: dict[str, Any], task: bool = False) -> int:
    """The ForceUpdate counter of a service's spec (its TaskTemplate) or of a task's spec."""
    template = spec if task else (spec.get("TaskTemplate") or {})
    return int(template.get("ForceUpdate") or 0)


def _after(update: dict[str, Any], service: dict[str, Any]) -> bool:
    """The update status belongs to the service's latest spec (it started after the spec was written)."""
    return str(update.get("StartedAt", "")) >= str(service.get("UpdatedAt", ""))[:19]


def _release(task: dict[str, Any]) -> int:
    labels = (((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels")) or {}
    try:
        return int(labels.get("io.provisioner.release", 0))
    except ValueError:
        return 0


def _state(task: dict[str, Any]) -> str:
    return str((task.get("Status") or {}).get("State", ""))
