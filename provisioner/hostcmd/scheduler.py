"""Where app processes run, behind a small interface: this host's Docker engine (LocalDocker), or the
Docker Swarm cluster it manages (hostcmd/swarm.py's Swarm, on hosts joined by `up --swarm`).

Everything above this module speaks in ProcessSpec and Instance; nothing else names containers.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from . import docker

if TYPE_CHECKING:
    from .settings import Settings

LABEL = "io.provisioner.app"


@dataclass(frozen=True)
class Mount:
    """A host directory every process of the app sees at target (Docker's bind mount; a Swarm service's
    mount of type bind later)."""

    source: str
    target: str


@dataclass(frozen=True)
class ProcessSpec:
    app: str
    process: str
    index: int
    version: int
    image: str
    command: str | None
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None  # the container port of a web process
    memory: str = "512m"
    cpus: float = 0.0  # 0: no CPU limit
    pids: int = 512
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class Instance:
    name: str
    app: str
    process: str
    index: int
    version: int
    state: str
    host_port: int | None
    started: str = ""


class Scheduler(Protocol):
    def start(self, spec: ProcessSpec) -> Instance: ...
    def stop(self, instance: Instance, grace: float = 10) -> None: ...
    def instances(self, app: str) -> list[Instance]: ...
    def alive(self, instance: Instance) -> bool: ...
    def run_once(self, spec: ProcessSpec, timeout: float = 600) -> tuple[int, str]: ...
    def run_attached(self, spec: ProcessSpec, timeout: float) -> int: ...
    def log_tail(self, instance: Instance, lines: int = 20) -> str: ...
    def logs(self, instance: Instance, lines: int, follow: bool) -> Iterator[str]: ...
    def forget(self, app: str) -> None: ...
    def network(self, app: str) -> str: ...  # the app's network (made when missing), for its services


APP_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE", "KILL")


def memory_bytes(text: str) -> int:
    match = re.fullmatch(r"([0-9]{1,12})([kmg]?)b?", text.strip().lower())
    if not match:
        raise ValueError(f"invalid memory limit {text!r}: expected e.g. 512m or 1g")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2)]


def network_name(app: str) -> str:
    """Each app's processes share a network of their own, and no other: apps cannot reach each other."""
    return f"provisioner-app.{app}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token() -> str:
    import secrets

    return secrets.token_hex(3)


class LocalDocker:
    """Processes as containers on this host's engine, each app on its own bridge network; web ports
    published on 127.0.0.1 for nginx."""

    def __init__(self) -> None:
        self._networks: set[str] = set()

    def _network_spec(self, app: str) -> dict[str, Any]:
        """The app's network as the engine creates it: a bridge of this host's."""
        return {"Name": network_name(app), "Driver": "bridge", "CheckDuplicate": True, "Labels": {LABEL: app}}

    def _network(self, app: str) -> str:
        """The app's network, created on first use (Docker's address pools: the docker role's
        docker_address_pools)."""
        body = self._network_spec(app)
        name = str(body["Name"])
        if name in self._networks:
            return name
        try:
            docker.api("GET", f"/networks/{name}")
        except docker.DockerError:
            try:
                docker.api("POST", "/networks/create", body)
            except docker.DockerError:
                docker.api("GET", f"/networks/{name}")  # created meanwhile, else the engine's reason
        self._networks.add(name)
        return name

    def network(self, app: str) -> str:
        """The app's network (created when missing): backing services linked to the app join it."""
        return self._network(app)

    def _labels(self, spec: ProcessSpec) -> dict[str, str]:
        return {
            LABEL: spec.app,
            "io.provisioner.process": spec.process,
            "io.provisioner.index": str(spec.index),
            "io.provisioner.release": str(spec.version),
        }

    def _body(self, spec: ProcessSpec, restart: bool = True) -> dict[str, object]:
        env = dict(spec.env)
        host: dict[str, object] = {
            "Memory": memory_bytes(spec.memory),
            "RestartPolicy": {"Name": "unless-stopped"} if restart else {"Name": "no"},
            "Init": True,
            # No privilege gained through setuid binaries, only the capabilities a web process can need
            # (an image that starts as root and drops to its user), and a bound on processes.
            "SecurityOpt": ["no-new-privileges"],
            "CapDrop": ["ALL"],
            "CapAdd": list(APP_CAPABILITIES),
            "PidsLimit": spec.pids,
            "NetworkMode": self._network(spec.app),
        }
        if spec.cpus > 0:
            host["NanoCpus"] = int(spec.cpus * 1e9)
        if spec.mounts:
            host["Mounts"] = [{"Type": "bind", "Source": m.source, "Target": m.target} for m in spec.mounts]
        body: dict[str, object] = {"Image": spec.image, "Labels": self._labels(spec), "HostConfig": host}
        if spec.port:
            env["PORT"] = str(spec.port)
            key = f"{spec.port}/tcp"
            body["ExposedPorts"] = {key: {}}
            # A fixed host port survives restarts of the engine, so nginx's upstream stays right.
            host["PortBindings"] = {key: [{"HostIp": "127.0.0.1", "HostPort": str(free_port())}]}
        body["Env"] = [f"{k}={v}" for k, v in sorted(env.items())]
        if spec.command:
            body["Cmd"] = [spec.command] if self._launcher(spec.image) else ["/bin/sh", "-c", spec.command]
        return body

    @staticmethod
    def _launcher(image: str) -> bool:
        entry = docker.image_config(image).get("Entrypoint") or []
        return bool(entry) and str(entry[0]).endswith("provisioner-launch")

    def start(self, spec: ProcessSpec) -> Instance:
        name = f"{spec.app}.{spec.process}.{spec.index}.v{spec.version}-{_token()}"
        created = docker.api("POST", "/containers/create", self._body(spec), query={"name": name})
        docker.api("POST", f"/containers/{created['Id']}/start")
        return self._instance(docker.inspect(created["Id"]))

    def _instance(self, data: dict[str, Any]) -> Instance:
        config = data.get("Config") or {}
        labels = dict(config.get("Labels") or {})
        state = data.get("State") or {}
        host_port = None
        bindings = (data.get("HostConfig") or {}).get("PortBindings") or {}
        for binds in bindings.values():
            for bind in binds or []:
                if bind.get("HostPort"):
                    host_port = int(bind["HostPort"])
        return Instance(
            name=str(data.get("Name", "")).lstrip("/"),
            app=labels.get(LABEL, ""),
            process=labels.get("io.provisioner.process", ""),
            index=int(labels.get("io.provisioner.index", 0)),
            version=int(labels.get("io.provisioner.release", 0)),
            state=str(state.get("Status", "unknown")),
            host_port=host_port,
            started=str(state.get("StartedAt", "")),
        )

    def instances(self, app: str) -> list[Instance]:
        found = [self._instance(docker.inspect(c["Id"])) for c in docker.containers({LABEL: app})]
        return sorted(found, key=lambda i: (i.version, i.process, i.index, i.name))

    def alive(self, instance: Instance) -> bool:
        try:
            state = docker.inspect(instance.name).get("State") or {}
        except docker.DockerError:
            return False
        return bool(state.get("Running")) and not state.get("Restarting")

    def stop(self, instance: Instance, grace: float = 10) -> None:
        with contextlib.suppress(docker.DockerError):
            docker.api(
                "POST", f"/containers/{instance.name}/stop", query={"t": int(grace)}, timeout=grace + 60
            )
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/containers/{instance.name}", query={"force": 1})

    def run_once(self, spec: ProcessSpec, timeout: float = 600) -> tuple[int, str]:
        name = f"{spec.app}.{spec.process}.v{spec.version}-{_token()}"
        body = self._body(spec, restart=False)
        created = docker.api("POST", "/containers/create", body, query={"name": name})
        try:
            docker.api("POST", f"/containers/{created['Id']}/start")
            result = docker.api("POST", f"/containers/{created['Id']}/wait", timeout=timeout)
            output = docker.logs_tail(created["Id"], 200)
            return int(result.get("StatusCode", 1)), output
        finally:
            with contextlib.suppress(docker.DockerError):
                docker.api("DELETE", f"/containers/{created['Id']}", query={"force": 1})

    def run_attached(self, spec: ProcessSpec, timeout: float) -> int:
        """spec.command to its end in a fresh container, its stdout and stderr streamed to ours (the SSH
        client's), its exit code returned: 124 once `timeout` seconds passed (it is stopped then), 130
        when the client went away (it is stopped too). The container goes in every case."""
        from . import session

        name = f"{spec.app}.{spec.process}.v{spec.version}-{_token()}"
        created = docker.api(
            "POST", "/containers/create", self._body(spec, restart=False), query={"name": name}
        )
        cid = str(created["Id"])
        try:
            # The CLI only attaches: the container's settings (its environment too) went in the API body.
            proc = subprocess.Popen(["docker", "start", "--attach", cid], start_new_session=True)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    if session.client_gone():
                        rc = 130
                    elif time.monotonic() > deadline:
                        rc = 124
                    else:
                        continue
                with contextlib.suppress(docker.DockerError):
                    docker.api("POST", f"/containers/{cid}/kill")
                proc.wait()
                return rc
        finally:
            with contextlib.suppress(docker.DockerError):
                docker.api("DELETE", f"/containers/{cid}", query={"force": 1})

    def log_tail(self, instance: Instance, lines: int = 20) -> str:
        return docker.logs_tail(instance.name, lines)

    def logs(self, instance: Instance, lines: int, follow: bool) -> Iterator[str]:
        return docker.follow_logs(instance.name, lines, follow)

    def forget(self, app: str) -> None:
        """After its processes are stopped: the app's network goes too."""
        self._networks.discard(network_name(app))
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/networks/{network_name(app)}")


def for_settings(settings: Settings) -> Scheduler:
    """The host's scheduler: Swarm on a manager of a cluster, else this host's engine."""
    from . import swarm

    return swarm.Swarm(settings) if swarm.enabled(settings) else LocalDocker()
