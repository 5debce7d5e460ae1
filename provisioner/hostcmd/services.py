"""Backing services (Dokku's postgres and redis plugins): one database server per service, in a container
from an image made on this host from the distribution's packages (no registry needed), its data in a
directory of its own, reachable only from the apps linked to it.

On disk, settings.services_dir/KIND/NAME/ (the deploy user's, 0700):
  service.json   what it is: kind, version, image, created, links {app: config var}
  password       random, 0600; read by the server from a read-only mount, never on a command line
  data/          the server's files (owned by the server's user inside the container)
  backups/       pg_dump files of the nightly timer and `KIND:backup`, the newest settings.backup_keep kept

The container `provisioner-KIND-NAME` sits on a network of its own and, once linked, on each linked app's
network (scheduler.network_name), where its name resolves; it publishes no port. Linking sets the app's
config var (DATABASE_URL, REDIS_URL) and redeploys with zero downtime, as config:set does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import docker, names
from .scheduler import for_settings, memory_bytes, network_name
from .settings import Settings
from .store import flock_wait, now, write_atomic, write_json
from .swarm import overlay_name

Say = Callable[[str], None]
SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
LABEL = "io.provisioner.service"
RECIPE_LABEL = "io.provisioner.recipe"
DATA = "/var/lib/provisioner/data"  # in the container
PASSWORD = "/etc/provisioner-service/password"  # noqa: S105 - the file's path in the container (read-only)
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")
DROP = "setpriv --reuid={user} --regid={user} --init-groups"

# Runs as root in the container, once per start: owns the data directory to the server's user, makes the
# cluster on the first start (the password from the mounted file, never an argument), then becomes the
# server, run as its own user.
POSTGRES_SCRIPT = f"""set -eu
bin=/usr/lib/postgresql/$PG_VERSION/bin
install -d -o postgres -g postgres -m 2775 /run/postgresql
chown postgres:postgres {DATA}
chmod 0700 {DATA}
if [ ! -s {DATA}/PG_VERSION ]; then
  install -o postgres -g postgres -m 0600 {PASSWORD} /run/postgresql/.pw
  {DROP.format(user="postgres")} "$bin/initdb" -D {DATA} -U postgres --pwfile=/run/postgresql/.pw \\
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f /run/postgresql/.pw
  echo 'host all all all scram-sha-256' >>{DATA}/pg_hba.conf
  echo "CREATE DATABASE \\"$DB_NAME\\";" | {DROP.format(user="postgres")} "$bin/postgres" --single \\
    -D {DATA} postgres >/dev/null
fi
exec {DROP.format(user="postgres")} "$bin/postgres" -D {DATA} -c listen_addresses='*' \\
  -c unix_socket_directories=/run/postgresql
"""

REDIS_SCRIPT = f"""set -eu
chown redis:redis {DATA}
chmod 0700 {DATA}
umask 077
{{ printf 'requirepass %s\\n' "$(cat {PASSWORD})"
  printf 'dir {DATA}\\nappendonly yes\\nappendfsync everysec\\nbind 0.0.0.0\\nprotected-mode no\\n'
  printf 'port 6379\\ndaemonize no\\nlogfile ""\\n'; }} >/run/redis.conf
chown redis:redis /run/redis.conf
exec {DROP.format(user="redis")} redis-server /run/redis.conf
"""


@dataclass(frozen=True)
class Kind:
    name: str  # the command topic: postgres, redis
    var: str  # the config var a link sets
    scheme: str
    port: int
    script: str
    stop_signal: str

    def packages(self, settings: Settings) -> list[str]:
        if self.name == "postgres":
            return [f"postgresql-{settings.postgres_version}"]
        return ["redis-server"]

    def version(self, settings: Settings) -> str:
        return settings.postgres_version if self.name == "postgres" else "stack"

    def memory(self, settings: Settings) -> str:
        return settings.postgres_memory if self.name == "postgres" else settings.redis_memory


POSTGRES = Kind("postgres", "DATABASE_URL", "postgres", 5432, POSTGRES_SCRIPT, "SIGINT")
REDIS = Kind("redis", "REDIS_URL", "redis", 6379, REDIS_SCRIPT, "SIGTERM")
KINDS = {k.name: k for k in (POSTGRES, REDIS)}


class ServiceError(RuntimeError):
    """A refusal or failure with a message fit for the user."""


def valid_name(name: str) -> str:
    if not SERVICE_RE.fullmatch(name or ""):
        raise names.NameError_(
            f"invalid service name {name!r}: use 1-30 lowercase letters, digits and '-', "
            "starting with a letter"
        )
    return name


# --- images -------------------------------------------------------------------------------------------------

DOCKERFILE = """FROM {base}
USER root
RUN apt-get -qq update \\
 && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends -o Dpkg::Use-Pty=0 \\
    {packages} >/dev/null \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log
ENTRYPOINT []
CMD []
LABEL {label}={recipe}
"""


def image_of(kind: Kind, settings: Settings) -> str:
    stack = settings.run_image.rpartition(":")[2] or "latest"
    return f"provisioner/{kind.name}:{kind.version(settings)}-{stack}"


def dockerfile(kind: Kind, settings: Settings) -> str:
    """The image's recipe: the default stack's run image plus the distribution's server package; its hash
    is a label, so a changed recipe (another version, another stack) makes a new image."""
    packages = " ".join(kind.packages(settings))
    recipe = hashlib.sha256(f"{settings.run_image}\n{packages}\n{DOCKERFILE}".encode()).hexdigest()[:16]
    return DOCKERFILE.format(base=settings.run_image, packages=packages, label=RECIPE_LABEL, recipe=recipe)


def ensure_image(kind: Kind, settings: Settings, say: Say) -> str:
    """The service image, built the first time (about 20 s: apt in a container of the run image)."""
    image, recipe = image_of(kind, settings), dockerfile(kind, settings)
    wanted = recipe.rsplit("=", 1)[1].strip()
    try:
        labels = docker.image_config(image).get("Labels") or {}
        if labels.get(RECIPE_LABEL) == wanted:
            return image
    except docker.DockerError:
        pass
    if not docker.image_exists(settings.run_image):
        raise ServiceError(f"the stack image {settings.run_image} is missing: run `provisioner up` again")
    say(f"-----> Building the {kind.name} image {image} (once, from the distribution's packages)")
    args = ["build", "--pull=false", "--quiet", "-t", image]
    for key in settings.proxy_vars():  # by name: the value comes from the environment, not a command line
        args += ["--build-arg", key]
    proc = subprocess.run(
        ["docker", *args, "-"],
        input=recipe,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **settings.proxy_vars()},
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise ServiceError(f"could not build {image}: {tail[-1] if tail else proc.returncode}")
    return image


# --- the service on disk ------------------------------------------------------------------------------------


class Service:
    def __init__(self, settings: Settings, kind: Kind, name: str) -> None:
        self.settings, self.kind, self.name = settings, kind, valid_name(name)
        self.dir = Path(settings.services_dir) / kind.name / self.name

    @property
    def container(self) -> str:
        return f"provisioner-{self.kind.name}-{self.name}"

    @property
    def network(self) -> str:
        return f"provisioner-{self.kind.name}.{self.name}"

    def exists(self) -> bool:
        return (self.dir / "service.json").is_file()

    def record(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.dir / "service.json").read_text()))
        except (OSError, ValueError) as exc:
            raise ServiceError(
                f"no {self.kind.name} service named {self.name!r} (see {self.kind.name}:list)"
            ) from exc

    def save(self, record: dict[str, Any]) -> None:
        write_json(self.dir / "service.json", record)

    def links(self) -> dict[str, str]:
        return dict(self.record().get("links") or {})

    def password(self) -> str:
        return (self.dir / "password").read_text().strip()

    def url(self, password: str | None = None) -> str:
        secret = self.password() if password is None else password
        if self.kind is POSTGRES:
            return f"postgres://postgres:{secret}@{self.container}:{self.kind.port}/{self.name}"
        return f"redis://:{secret}@{self.container}:{self.kind.port}"

    @contextlib.contextmanager
    def lock(self, timeout: float = 300) -> Iterator[None]:
        base = Path(self.settings.services_dir) / self.kind.name
        base.mkdir(parents=True, exist_ok=True)
        with open(base / f".{self.name}.lock", "w") as fh:
            if not flock_wait(fh, timeout):
                raise ServiceError(f"{self.kind.name} service {self.name} is busy (another command holds it)")
            yield

    # --- the container ------------------------------------------------------------------------------------

    def body(self, image: str) -> dict[str, Any]:
        env = [f"PG_VERSION={self.settings.postgres_version}", f"DB_NAME={self.name}"]
        return {
            "Image": image,
            "User": "root",
            "Entrypoint": ["/bin/sh", "-c", self.kind.script, self.container],
            "Cmd": [],
            "Env": env if self.kind is POSTGRES else [],
            "Labels": {LABEL: self.kind.name, f"{LABEL}.name": self.name},
            "StopSignal": self.kind.stop_signal,
            "HostConfig": {
                "Memory": memory_bytes(self.kind.memory(self.settings)),
                "RestartPolicy": {"Name": "unless-stopped"},
                "Init": True,
                "SecurityOpt": ["no-new-privileges"],
                "CapDrop": ["ALL"],
                "CapAdd": list(CAPABILITIES),
                "PidsLimit": 512,
                "NetworkMode": self.network,
                "Mounts": [
                    {"Type": "bind", "Source": str(self.dir / "data"), "Target": DATA},
                    {
                        "Type": "bind",
                        "Source": str(self.dir / "password"),
                        "Target": PASSWORD,
                        "ReadOnly": True,
                    },
                ],
            },
        }

    def state(self) -> str:
        try:
            return str((docker.inspect(self.container).get("State") or {}).get("Status", "unknown"))
        except docker.DockerError:
            return "missing"

    def start(self, image: str) -> None:
        """Creates the service's network and container (when missing) and starts it."""
        with contextlib.suppress(docker.DockerError):
            docker.api(
                "POST",
                "/networks/create",
                {
                    "Name": self.network,
                    "Driver": "bridge",
                    "CheckDuplicate": True,
                    "Labels": {LABEL: self.kind.name},
                },
            )
        try:
            docker.inspect(self.container)
        except docker.DockerError:
            docker.api("POST", "/containers/create", self.body(image), query={"name": self.container})
        docker.api("POST", f"/containers/{self.container}/start")

    def exec(
        self, *argv: str, stdin: BinaryIO | None = None, stdout: Any = None, timeout: float | None = 600
    ) -> subprocess.CompletedProcess[bytes]:
        """A command in the running server's container: its output, or streams (stdin, stdout)."""
        return subprocess.run(
            exec_argv(self.kind, self.container, *argv, interactive=stdin is not None),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )

    def ready(self, version: str) -> bool:
        try:
            argv = ping_argv(self.kind, self.container, version)
            return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_ready(self, version: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not self.ready(version):
            if time.monotonic() > deadline:
                logs = docker.logs_tail(self.container, 5)
                raise ServiceError(
                    f"{self.kind.name} {self.name} did not answer within {seconds:.0f} s: {logs}"
                )
            time.sleep(0.2)

    # --- links --------------------------------------------------------------------------------------------

    def attach(self, app: str) -> None:
        """On the app's network, where the service's name resolves; idempotent. On a swarm manager that is
        the app's attachable overlay: its tasks on every node reach the service (which runs here)."""
        net = for_settings(self.settings).network(app)
        try:
            docker.api("POST", f"/networks/{net}/connect", {"Container": self.container})
        except docker.DockerError as exc:
            if "already exists" not in str(exc):
                raise

    def detach(self, app: str) -> None:
        for net in (network_name(app), overlay_name(app)):  # one host's network, a cluster's
            with contextlib.suppress(docker.DockerError):
                docker.api(
                    "POST", f"/networks/{net}/disconnect", {"Container": self.container, "Force": True}
                )


def exec_argv(kind: Kind, container: str, *argv: str, interactive: bool = False) -> list[str]:
    """`docker exec` of argv in a server's container: as the server's user for Postgres (its socket
    trusts local connections), as the container's root for Redis (to read the mounted password)."""
    user = "postgres" if kind is POSTGRES else "root"
    return ["docker", "exec", *(["-i"] if interactive else []), "-u", user, container, *argv]


def ping_argv(kind: Kind, container: str, version: str) -> list[str]:
    """Succeeds when the server answers (used by `KIND:create`, `KIND:info` and `provisioner verify`)."""
    if kind is POSTGRES:
        return exec_argv(
            kind, container, f"/usr/lib/postgresql/{version}/bin/pg_isready", "-q", "-h", "/run/postgresql"
        )
    # The password reaches redis-cli through its environment, never an argument.
    return exec_argv(
        kind, container, "sh", "-c", f'REDISCLI_AUTH="$(cat {PASSWORD})" redis-cli ping | grep -qx PONG'
    )


def all_services(settings: Settings, kind: Kind) -> list[Service]:
    base = Path(settings.services_dir) / kind.name
    found = []
    with contextlib.suppress(OSError):
        for entry in sorted(base.iterdir()):
            if SERVICE_RE.fullmatch(entry.name) and (entry / "service.json").is_file():
                found.append(Service(settings, kind, entry.name))
    return found


def linked_to(settings: Settings, app: str) -> list[Service]:
    return [s for kind in KINDS.values() for s in all_services(settings, kind) if app in s.links()]


def forget_app(settings: Settings, app: str) -> list[str]:
    """apps:destroy: every service linked to the app leaves its network and forgets the link."""
    left = []
    for service in linked_to(settings, app):
        with service.lock():
            record = service.record()
            links = dict(record.get("links") or {})
            links.pop(app, None)
            service.detach(app)
            service.save({**record, "links": links})
        left.append(f"{service.kind.name} {service.name}")
    return left


def create(settings: Settings, kind: Kind, name: str, say: Say) -> Service:
    service = Service(settings, kind, name)
    with service.lock():
        if service.exists():
            raise ServiceError(f"{kind.name} service {name} exists already (see {kind.name}:info {name})")
        image = ensure_image(kind, settings, say)
        if service.dir.exists():  # a create or destroy that stopped half way: start over
            purge(service, image)
        service.dir.mkdir(parents=True, mode=0o700)
        (service.dir / "data").mkdir(mode=0o700)
        (service.dir / "backups").mkdir(mode=0o700)
        write_atomic(service.dir / "password", secrets.token_hex(24) + "\n", 0o600)
        with contextlib.suppress(docker.DockerError):  # a leftover of an earlier service of that name
            docker.api("DELETE", f"/containers/{service.container}", query={"force": 1})
        say(f"-----> Starting {kind.name} {name}")
        try:
            service.start(image)
            service.wait_ready(kind.version(settings))
        except BaseException:
            with contextlib.suppress(docker.DockerError):
                docker.api("DELETE", f"/containers/{service.container}", query={"force": 1})
            raise
        service.save(
            {
                "kind": kind.name,
                "name": name,
                "version": kind.version(settings),
                "image": image,
                "created": now(),
                "links": {},
            }
        )
    return service


def remove_data(service: Service, image: str) -> None:
    """The server's files belong to its user in the container: a one-off container of the image, as root,
    removes them (the deploy user removes the rest)."""
    data = service.dir / "data"
    if not data.exists():
        return
    body = {
        "Image": image,
        "User": "root",
        "Entrypoint": ["/bin/sh", "-c", f"find {DATA} -mindepth 1 -delete"],
        "Cmd": [],
        "HostConfig": {
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "CapAdd": ["DAC_OVERRIDE", "FOWNER"],
            "Mounts": [{"Type": "bind", "Source": str(data), "Target": DATA}],
        },
    }
    created = docker.api("POST", "/containers/create", body)
    try:
        docker.api("POST", f"/containers/{created['Id']}/start")
        docker.api("POST", f"/containers/{created['Id']}/wait", timeout=300)
    finally:
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/containers/{created['Id']}", query={"force": 1})


def purge(service: Service, image: str) -> None:
    """Removes the service's directory, its record last: one stopped half way is still there to destroy."""
    remove_data(service, image)
    with contextlib.suppress(FileNotFoundError):
        (service.dir / "data").rmdir()  # empty now; the deploy user's directory holds it
    for child in service.dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        elif child.name != "service.json":
            child.unlink()
    (service.dir / "service.json").unlink(missing_ok=True)
    service.dir.rmdir()


def destroy(service: Service, say: Say) -> None:
    with service.lock():
        record = service.record()
        if record.get("links"):
            apps = ", ".join(sorted(record["links"]))
            raise ServiceError(
                f"{service.kind.name} {service.name} is linked to {apps}: unlink it first "
                f"({service.kind.name}:unlink {service.name} APP)"
            )
        with contextlib.suppress(docker.DockerError):
            docker.api("POST", f"/containers/{service.container}/stop", query={"t": 30}, timeout=90)
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/containers/{service.container}", query={"force": 1})
        with contextlib.suppress(docker.DockerError):
            docker.api("DELETE", f"/networks/{service.network}")
        purge(service, str(record.get("image") or image_of(service.kind, service.settings)))
    say(f"-----> Destroyed {service.kind.name} {service.name} and its data")


def alias_var(kind: Kind, name: str) -> str:
    """The config var of a second service of a kind on one app (Dokku does the same): its URL var keeps
    the first link's value, this one gets e.g. DATABASE_ORDERS_URL."""
    return f"{kind.var.removesuffix('_URL')}_{name.upper().replace('-', '_')}_URL"


def size(service: Service, version: str) -> str:
    """The data's size as the server counts it (its files are not the deploy user's to read)."""
    if service.kind is POSTGRES:
        query = f"SELECT pg_size_pretty(pg_database_size('{service.name}'))"
        argv = ["psql", "-h", "/run/postgresql", "-U", "postgres", "-d", service.name, "-tAc", query]
    else:
        script = f'REDISCLI_AUTH="$(cat {PASSWORD})" redis-cli info memory | grep ^used_memory_human:'
        argv = ["sh", "-c", script]
    try:
        proc = service.exec(*argv, timeout=20)
    except subprocess.TimeoutExpired:
        return ""
    text = proc.stdout.decode(errors="replace").strip()
    return text.partition(":")[2].strip() if service.kind is REDIS else text


def last_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1][-300:] if lines else "no detail"


# --- backups ------------------------------------------------------------------------------------------------


def backups(service: Service) -> list[Path]:
    return sorted(p for p in (service.dir / "backups").glob("*.dump") if p.is_file())


def backup(service: Service, keep: int) -> Path:
    """A pg_dump (custom format) of the service's database, then only the newest `keep` are kept."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = service.dir / "backups" / f"{service.name}-{stamp}.dump"
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        proc = service.exec(*dump_argv(service), stdout=fh, timeout=3600)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"backup of {service.name} failed: {last_line(proc.stderr)}")
    partial.replace(target)
    for old in backups(service)[: -max(keep, 1)]:
        old.unlink(missing_ok=True)
    return target


def dump_argv(service: Service) -> list[str]:
    return ["pg_dump", "-Fc", "-h", "/run/postgresql", "-U", "postgres", service.name]


def restore_argv(service: Service) -> list[str]:
    return [
        "pg_restore", "-h", "/run/postgresql", "-U", "postgres", "-d", service.name,
        "--no-owner", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
    ]  # fmt: skip
