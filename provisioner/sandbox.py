"""Sandbox hosts: fresh Debian servers booted locally as systemd containers.

A sandbox behaves like a new cloud VM: systemd as PID 1, sshd with its own host keys, root reachable by
key on a port published on 127.0.0.1. The base image comes from ``docker pull`` where a registry answers,
else it is built once with debootstrap from the distro mirror and cached as a local image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .errors import ProvisionerError, UsageError
from .targets import UNPINNED_SSH_OPTIONS

LABEL = "io.provisioner.sandbox"
RECIPE_LABEL = "io.provisioner.recipe"
IMAGE_REPO = "provisioner/sandbox"
RELEASES = {"bookworm": "12", "trixie": "13"}
DEFAULT_RELEASE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "openssh-server", "python3", "sudo", "ca-certificates", "iproute2"]
NAME_RE_TEXT = r"^[a-z][a-z0-9-]{0,30}$"
KEY_NAME = "sandbox_ed25519"

# Units and files written into the image so that every sandbox boots like a fresh server.
KEYGEN_UNIT = """\
[Unit]
Description=Generate this server's own SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
SOURCES = """\
deb {mirror} {release} main
deb {mirror} {release}-updates main
deb {security} {release}-security main
"""
# Shell run in the rootfs (chroot) or in a Dockerfile RUN: the same steps for both image sources.
CUSTOMIZE = """\
set -e
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/sandbox-ssh-keygen.service \
  /etc/systemd/system/multi-user.target.wants/sandbox-ssh-keygen.service
systemctl mask getty@tty1.service console-getty.service systemd-firstboot.service >/dev/null 2>&1 || true
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
"""
DOCKERFILE = """\
FROM {base}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends {packages}
COPY sandbox-ssh-keygen.service /etc/systemd/system/sandbox-ssh-keygen.service
COPY customize.sh /tmp/customize.sh
RUN sh /tmp/customize.sh && rm /tmp/customize.sh
CMD ["/sbin/init"]
"""


@dataclass(frozen=True)
class Sandbox:
    name: str
    status: str
    ssh_port: int
    http_port: int
    https_port: int
    identity: str
    image: str

    @property
    def ssh(self) -> str:
        return f"root@127.0.0.1:{self.ssh_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ssh": self.ssh,
            "identity": self.identity,
            "http": self.http,
            "https": self.https,
        }


def container_name(name: str) -> str:
    return f"provisioner-{name}"


def volume_name(name: str) -> str:
    return f"provisioner-{name}-docker"


def image_tag(release: str) -> str:
    return f"{IMAGE_REPO}:{release}"


def recipe_hash(release: str, mirror: str) -> str:
    text = "\n".join([release, mirror, *PACKAGES, KEYGEN_UNIT, SOURCES, CUSTOMIZE, DOCKERFILE])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate_name(name: str) -> str:
    if not re.fullmatch(NAME_RE_TEXT, name):
        raise UsageError(
            f"invalid sandbox name {name!r}: "
            "use 1-31 lowercase letters, digits and '-', starting with a letter"
        )
    return name


def mirror() -> str:
    return os.environ.get("PROVISIONER_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def security_mirror() -> str:
    return os.environ.get("PROVISIONER_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")


# --- keys -------------------------------------------------------------------------------------------


def ensure_key() -> Path:
    """The controller's sandbox key pair (ed25519, OpenSSH format), made on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = paths.keys_dir() / KEY_NAME
    pub = key.with_suffix(".pub")
    if key.exists() and pub.exists():
        return key
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(public + b" provisioner-sandbox\n")
    return key


def public_key(key: Path) -> str:
    return key.with_suffix(".pub").read_text().strip()


# --- docker -----------------------------------------------------------------------------------------


def client() -> Any:
    """A docker SDK client, or one clear error when no engine answers."""
    import docker
    import docker.errors

    try:
        cli = docker.from_env(timeout=120)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise ProvisionerError(
            "no Docker engine answers on this machine",
            fix="install docker.io and start dockerd, or set DOCKER_HOST",
        ) from exc
    return cli


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    path = paths.data_dir() / f".{name}.lock"
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_base_image(
    cli: Any, release: str = DEFAULT_RELEASE, say: Callable[[str], None] = lambda _msg: None
) -> str:
    """The sandbox base image for a release: reused when its recipe matches, else built."""
    import docker.errors

    if release not in RELEASES:
        raise UsageError(f"unknown release {release!r}: choose one of {', '.join(RELEASES)}")
    tag = image_tag(release)
    want = recipe_hash(release, mirror())
    with _lock("base-image"):
        try:
            image = cli.images.get(tag)
            if image.labels.get(RECIPE_LABEL) == want:
                return str(tag)
            say(f"base image {tag} is from an older recipe: rebuilding")
        except docker.errors.ImageNotFound:
            pass
        started = time.monotonic()
        if not _build_from_pull(cli, release, tag, want, say):
            _build_with_debootstrap(cli, release, tag, want, say)
        say(f"base image {tag} ready in {time.monotonic() - started:.0f} s")
    return tag


def _build_from_pull(cli: Any, release: str, tag: str, want: str, say: Callable[[str], None]) -> bool:
    """Build from ``debian:RELEASE`` when a registry answers; False when none does."""
    import docker.errors

    if os.environ.get("PROVISIONER_SANDBOX_SOURCE", "auto") == "debootstrap":
        return False
    try:
        cli.images.pull("debian", tag=release)
    except docker.errors.DockerException:
        say("no container registry answers: building the base image with debootstrap")
        return False
    say(f"building {tag} from debian:{release}")
    context = io.BytesIO()
    import tarfile

    with tarfile.open(fileobj=context, mode="w") as tar:
        files = {
            "Dockerfile": DOCKERFILE.format(base=f"debian:{release}", packages=" ".join(PACKAGES)),
            "sandbox-ssh-keygen.service": KEYGEN_UNIT,
            "customize.sh": CUSTOMIZE,
        }
        for fname, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    cli.images.build(fileobj=context, custom_context=True, tag=tag, labels={RECIPE_LABEL: want}, rm=True)
    return True


def _build_with_debootstrap(cli: Any, release: str, tag: str, want: str, say: Callable[[str], None]) -> None:
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if not debootstrap:
        raise ProvisionerError(
            "cannot build the sandbox base image: no registry answers and debootstrap is not installed",
            fix="apt-get install debootstrap",
        )
    if os.geteuid() != 0:
        raise ProvisionerError(
            "building the sandbox base image with debootstrap needs root", fix="run as root once"
        )
    workdir = Path(tempfile.mkdtemp(prefix="provisioner-rootfs-", dir="/var/tmp"))
    rootfs = workdir / "rootfs"
    try:
        say(f"debootstrap {release} from {mirror()} (about a minute, once)")
        proc = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                release,
                str(rootfs),
                mirror(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ProvisionerError(
                f"debootstrap failed: {tail[0]}", fix="check the mirror (PROVISIONER_DEBIAN_MIRROR)"
            )
        (rootfs / "etc/apt/sources.list").write_text(
            SOURCES.format(mirror=mirror(), security=security_mirror(), release=release)
        )
        (rootfs / "etc/systemd/system/sandbox-ssh-keygen.service").write_text(KEYGEN_UNIT)
        subprocess.run(["chroot", str(rootfs), "sh", "-c", CUSTOMIZE], check=True, capture_output=True)
        say(f"importing {tag}")
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        repo, _, version = tag.partition(":")
        changes = ['CMD ["/sbin/init"]', f"LABEL {RECIPE_LABEL}={want}", "ENV container=docker"]
        cli.api.import_image_from_stream(tar.stdout, repository=repo, tag=version, changes=changes)
        if tar.wait() != 0:
            raise ProvisionerError("packing the sandbox root file system failed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _from_container(container: Any) -> Sandbox:
    labels = container.labels
    return Sandbox(
        name=labels[LABEL],
        status=container.status,
        ssh_port=int(labels.get(f"{LABEL}.ssh-port", 0)),
        http_port=int(labels.get(f"{LABEL}.http-port", 0)),
        https_port=int(labels.get(f"{LABEL}.https-port", 0)),
        identity=labels.get(f"{LABEL}.identity", ""),
        image=labels.get(f"{LABEL}.image", ""),
    )


def list_sandboxes(cli: Any | None = None) -> list[Sandbox]:
    cli = cli or client()
    containers = cli.containers.list(all=True, filters={"label": LABEL})
    return sorted((_from_container(c) for c in containers), key=lambda s: s.name)


def get(name: str, cli: Any | None = None) -> Sandbox:
    import docker.errors

    cli = cli or client()
    try:
        container = cli.containers.get(container_name(validate_name(name)))
    except docker.errors.NotFound:
        raise UsageError(f"no sandbox named {name!r}", fix="see 'provisioner sandbox list'") from None
    if LABEL not in container.labels:
        raise UsageError(f"container {container.name!r} is not a provisioner sandbox")
    return _from_container(container)


def create(
    name: str,
    *,
    release: str = DEFAULT_RELEASE,
    cli: Any | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    timeout: float = 90,
) -> Sandbox:
    """Boot a fresh sandbox host and wait until its sshd accepts the controller's key."""
    import docker.errors

    validate_name(name)
    cli = cli or client()
    cname = container_name(name)
    try:
        existing = cli.containers.get(cname)
    except docker.errors.NotFound:
        existing = None
    if existing is not None:
        raise UsageError(
            f"sandbox {name!r} already exists", fix=f"'provisioner sandbox destroy {name}' first"
        )
    image = ensure_base_image(cli, release, say)
    key = ensure_key()
    # A leftover engine volume from an earlier sandbox of this name would not be a fresh server.
    with contextlib.suppress(docker.errors.NotFound):
        cli.volumes.get(volume_name(name)).remove(force=True)
    cli.volumes.create(volume_name(name), labels={LABEL: name})
    ports = {"ssh": free_port(), "http": free_port(), "https": free_port()}
    labels = {
        LABEL: name,
        f"{LABEL}.ssh-port": str(ports["ssh"]),
        f"{LABEL}.http-port": str(ports["http"]),
        f"{LABEL}.https-port": str(ports["https"]),
        f"{LABEL}.identity": str(key),
        f"{LABEL}.image": image,
    }
    say(f"booting {cname}")
    container = cli.containers.run(
        image,
        command="/sbin/init",
        name=cname,
        hostname=name,
        detach=True,
        labels=labels,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        volumes={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume_name(name): {"bind": "/var/lib/docker", "mode": "rw"},
        },
        tmpfs={"/run": "", "/run/lock": ""},
        ports={
            "22/tcp": ("127.0.0.1", ports["ssh"]),
            "80/tcp": ("127.0.0.1", ports["http"]),
            "443/tcp": ("127.0.0.1", ports["https"]),
        },
        environment={"container": "docker"},
        stop_signal="SIGRTMIN+3",
    )
    pub = public_key(key)
    script = 'umask 077; mkdir -p /root/.ssh && printf "%s\\n" "$1" > /root/.ssh/authorized_keys'
    code, out = container.exec_run(["sh", "-c", script, "sh", pub])
    if code != 0:
        raise ProvisionerError(
            f"sandbox {name}: installing the SSH key failed: {out.decode(errors='replace')}"
        )
    _wait_for_ssh(container, ports["ssh"], timeout)
    container.reload()
    return _from_container(container)


def start(name: str, cli: Any | None = None, timeout: float = 90) -> Sandbox:
    """Start a stopped sandbox (e.g. after the machine or the Docker engine restarted)."""
    import docker.errors

    cli = cli or client()
    box = get(name, cli)
    container = cli.containers.get(container_name(name))
    if container.status != "running":
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise ProvisionerError(f"sandbox {name} could not start: {exc.explanation or exc}") from None
    _wait_for_ssh(container, box.ssh_port, timeout)
    container.reload()
    return _from_container(container)


def _wait_for_ssh(container: Any, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            logs = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise ProvisionerError(f"sandbox container stopped while booting: {logs or 'no logs'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            if sock.recv(64).startswith(b"SSH-"):
                return
        time.sleep(0.5)
    raise ProvisionerError(f"sandbox sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def destroy(name: str, cli: Any | None = None) -> bool:
    """Remove a sandbox's container and volume; False when there was nothing to remove."""
    import docker.errors

    validate_name(name)
    cli = cli or client()
    removed = False
    try:
        container = cli.containers.get(container_name(name))
        if LABEL not in container.labels:
            raise UsageError(f"container {container.name!r} is not a provisioner sandbox; leaving it alone")
        container.remove(force=True, v=True)
        removed = True
    except docker.errors.NotFound:
        pass
    try:
        cli.volumes.get(volume_name(name)).remove(force=True)
        removed = True
    except docker.errors.NotFound:
        pass
    return removed


def ssh_argv(box: Sandbox, command: list[str] | None = None, user: str = "root") -> list[str]:
    return [
        "ssh",
        "-i",
        box.identity,
        "-p",
        str(box.ssh_port),
        *UNPINNED_SSH_OPTIONS,
        f"{user}@127.0.0.1",
        *(command or []),
    ]
