"""Sandbox hosts: fresh Debian or Ubuntu servers booted locally as systemd containers.

A sandbox behaves like a new cloud VM: systemd as PID 1, sshd with its own host keys, root reachable by
key on a port published on 127.0.0.1. The base image of each distribution (``--os``) comes from ``docker
pull`` where a registry answers, else it is built once with debootstrap from the distribution's mirror and
cached as a local image. ``--cloud-init FILE`` boots an image that also has cloud-init, with the NoCloud
datasource seeded with FILE: the server configures itself at first boot, as a cloud VM does.
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
PACKAGES = ["systemd", "systemd-sysv", "openssh-server", "python3", "sudo", "ca-certificates", "iproute2"]
UBUNTU_KEYRING = "roles/buildpacks/files/usr/local/share/provisioner/keyrings/ubuntu-archive-keyring.gpg"


@dataclass(frozen=True)
class Distro:
    """A distribution release a sandbox can run: where debootstrap gets it and how apt sees it."""

    name: str  # what --os takes
    family: str  # debian | ubuntu
    release: str  # the codename (also the image tag)
    components: str = "main"
    # Packages minbase lacks on this family (Ubuntu's minbase has no apt; its keyring checks apt's lists).
    extra_packages: tuple[str, ...] = ()
    # Bookworm's debootstrap has no script for newer Ubuntu releases; gutsy's is the one they all use.
    script: str = ""

    def mirror(self) -> str:
        if self.family == "ubuntu":
            return os.environ.get("PROVISIONER_UBUNTU_MIRROR", "http://archive.ubuntu.com/ubuntu")
        return os.environ.get("PROVISIONER_DEBIAN_MIRROR", "http://deb.debian.org/debian")

    def security_mirror(self) -> str:
        if self.family == "ubuntu":
            return os.environ.get("PROVISIONER_UBUNTU_SECURITY_MIRROR", "http://security.ubuntu.com/ubuntu")
        return os.environ.get("PROVISIONER_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")

    def sources(self) -> str:
        mirrors = {"mirror": self.mirror(), "security": self.security_mirror()}
        return SOURCES.format(**mirrors, release=self.release, components=self.components)

    def keyring(self) -> Path | None:
        """The archive keyring debootstrap checks the release with (None: the machine's Debian one)."""
        if self.family != "ubuntu":
            return None
        from . import paths

        return paths.ansible_dir() / UBUNTU_KEYRING


OSES = {
    "debian-12": Distro("debian-12", "debian", "bookworm"),
    "debian-13": Distro("debian-13", "debian", "trixie"),
    "ubuntu-24.04": Distro(
        "ubuntu-24.04",
        "ubuntu",
        "noble",
        components="main universe",
        extra_packages=("apt", "ubuntu-keyring"),
        script="gutsy",
    ),
}
DEFAULT_OS = "debian-12"
# The variant of an image booted with --cloud-init: the distribution's cloud-init, told to look for the
# NoCloud seed only (a cloud VM's image has it configured for its provider).
CLOUD_INIT_SUFFIX = "-cloud-init"
CLOUD_INIT_CFG = ("datasource_list: [NoCloud, None]", "locale: C.UTF-8")
SEED_DIR = "var/lib/cloud/seed/nocloud"
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
deb {mirror} {release} {components}
deb {mirror} {release}-updates {components}
deb {security} {release}-security {components}
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
    os: str = DEFAULT_OS

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
            "os": self.os,
        }


def container_name(name: str) -> str:
    return f"provisioner-{name}"


def volume_name(name: str) -> str:
    return f"provisioner-{name}-docker"


def containerd_volume_name(name: str) -> str:
    return f"provisioner-{name}-containerd"


def volumes(name: str) -> dict[str, str]:
    """The sandbox's disks, as a VM has them: the engines' overlay file systems cannot live on the
    container's own (overlay) root. Docker 29 (Ubuntu 24.04) keeps images in containerd's store."""
    return {volume_name(name): "/var/lib/docker", containerd_volume_name(name): "/var/lib/containerd"}


def distro(os_name: str) -> Distro:
    try:
        return OSES[os_name]
    except KeyError:
        raise UsageError(f"unknown --os {os_name!r}: choose one of {', '.join(OSES)}") from None


def image_tag(os_name: str, cloud_init: bool = False) -> str:
    return f"{IMAGE_REPO}:{distro(os_name).release}{CLOUD_INIT_SUFFIX if cloud_init else ''}"


def recipe_hash(dist: Distro) -> str:
    text = "\n".join([repr(dist), dist.mirror(), *PACKAGES, KEYGEN_UNIT, SOURCES, CUSTOMIZE, DOCKERFILE])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate_name(name: str) -> str:
    if not re.fullmatch(NAME_RE_TEXT, name):
        raise UsageError(
            f"invalid sandbox name {name!r}: "
            "use 1-31 lowercase letters, digits and '-', starting with a letter"
        )
    return name


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
    cli: Any,
    os_name: str = DEFAULT_OS,
    say: Callable[[str], None] = lambda _msg: None,
    *,
    cloud_init: bool = False,
) -> str:
    """The sandbox base image of a distribution: reused when its recipe matches, else built. With
    cloud_init, its variant with cloud-init installed (built on top of the base image)."""
    import docker.errors

    dist = distro(os_name)
    base = image_tag(os_name)
    want = recipe_hash(dist)
    tag = image_tag(os_name, cloud_init)
    if cloud_init:
        want = hashlib.sha256((want + CLOUD_INIT_DOCKERFILE).encode()).hexdigest()[:16]
    with _lock(f"image-{tag.partition(':')[2]}"):
        try:
            image = cli.images.get(tag)
            if image.labels.get(RECIPE_LABEL) == want:
                return str(tag)
            say(f"sandbox image {tag} is from an older recipe: rebuilding")
        except docker.errors.ImageNotFound:
            pass
        started = time.monotonic()
        if cloud_init:
            base = ensure_base_image(cli, os_name, say)
            say(f"building {tag}: {base} with cloud-init (once)")
            _build(cli, CLOUD_INIT_DOCKERFILE.format(base=base), {}, tag, want)
        elif not _build_from_pull(cli, dist, tag, want, say):
            _build_with_debootstrap(cli, dist, tag, want, say)
        say(f"sandbox image {tag} ready in {time.monotonic() - started:.0f} s")
    return tag


# The cloud-init variant of a base image: Debian's or Ubuntu's own cloud-init package, looking for the
# NoCloud seed only, and what cloud images have besides: locales, with C.UTF-8 as the system's locale
# (cloud-init's locale module runs update-locale; minbase has no other locale generated), and lsb-release
# (Ubuntu's cloud-init writes apt's sources for the release lsb_release names).
CLOUD_INIT_DOCKERFILE = f"""\
FROM {{base}}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive \\
    apt-get install -y -qq --no-install-recommends cloud-init locales lsb-release >/dev/null \\
 && printf '%s\\n' {" ".join(repr(line) for line in CLOUD_INIT_CFG)} \\
    > /etc/cloud/cloud.cfg.d/90-provisioner-sandbox.cfg \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
"""


def _build(cli: Any, dockerfile: str, files: dict[str, str], tag: str, want: str) -> None:
    """docker build of a Dockerfile and its files (no registry needed when FROM names a local image)."""
    import tarfile

    import docker.errors

    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for fname, text in {"Dockerfile": dockerfile, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        cli.images.build(
            fileobj=context, custom_context=True, tag=tag, labels={RECIPE_LABEL: want}, rm=True, pull=False
        )
    except docker.errors.BuildError as exc:
        last = [str(line.get("stream", "")).strip() for line in exc.build_log if line.get("stream")][-1:]
        raise ProvisionerError(f"building {tag} failed: {exc.msg} {' '.join(last)}".strip()) from None


def _build_from_pull(cli: Any, dist: Distro, tag: str, want: str, say: Callable[[str], None]) -> bool:
    """Build from the distribution's official image when a registry answers; False when none does."""
    import docker.errors

    if os.environ.get("PROVISIONER_SANDBOX_SOURCE", "auto") == "debootstrap":
        return False
    try:
        cli.images.pull(dist.family, tag=dist.release)
    except docker.errors.DockerException:
        say("no container registry answers: building the base image with debootstrap")
        return False
    say(f"building {tag} from {dist.family}:{dist.release}")
    packages = " ".join([*PACKAGES, *dist.extra_packages])
    files = {"sandbox-ssh-keygen.service": KEYGEN_UNIT, "customize.sh": CUSTOMIZE}
    _build(cli, DOCKERFILE.format(base=f"{dist.family}:{dist.release}", packages=packages), files, tag, want)
    return True


def _build_with_debootstrap(cli: Any, dist: Distro, tag: str, want: str, say: Callable[[str], None]) -> None:
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
    argv = [debootstrap, "--variant=minbase", f"--include={','.join([*PACKAGES, *dist.extra_packages])}"]
    if dist.components != "main":
        argv.append(f"--components={dist.components.replace(' ', ',')}")
    keyring = dist.keyring()
    if keyring is not None:
        argv.append(f"--keyring={keyring}")  # Ubuntu's archive key, shipped with the buildpacks role
    argv += [dist.release, str(rootfs), dist.mirror()]
    if dist.script:
        script = Path("/usr/share/debootstrap/scripts") / dist.script
        argv.append(str(script))
    try:
        say(f"debootstrap {dist.release} from {dist.mirror()} (about a minute, once)")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            env = "PROVISIONER_UBUNTU_MIRROR" if dist.family == "ubuntu" else "PROVISIONER_DEBIAN_MIRROR"
            raise ProvisionerError(f"debootstrap failed: {tail[0]}", fix=f"check the mirror ({env})")
        (rootfs / "etc/apt/sources.list").write_text(dist.sources())
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


def _from_labels(labels: dict[str, str], status: str) -> Sandbox:
    return Sandbox(
        name=labels[LABEL],
        status=status,
        ssh_port=int(labels.get(f"{LABEL}.ssh-port", 0)),
        http_port=int(labels.get(f"{LABEL}.http-port", 0)),
        https_port=int(labels.get(f"{LABEL}.https-port", 0)),
        identity=labels.get(f"{LABEL}.identity", ""),
        image=labels.get(f"{LABEL}.image", ""),
        os=labels.get(f"{LABEL}.os", DEFAULT_OS),
    )


def _from_container(container: Any) -> Sandbox:
    return _from_labels(container.labels, container.status)


def list_sandboxes(cli: Any | None = None) -> list[Sandbox]:
    """Every sandbox, from one listing of the engine's containers: no inspect per container, so a container
    removed meanwhile (another sandbox destroyed at that moment) cannot fail the listing."""
    cli = cli or client()
    found = cli.api.containers(all=True, filters={"label": LABEL})
    boxes = (_from_labels(c.get("Labels") or {}, str(c.get("State", ""))) for c in found)
    return sorted(boxes, key=lambda s: s.name)


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


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar of files (path: (content, mode)) owned by root, with their parent directories (0700 for
    .ssh)."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o700 if d.endswith(".ssh") else 0o755
            tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def seed_files(name: str, user_data: bytes) -> dict[str, tuple[bytes, int]]:
    """The NoCloud seed of a sandbox: its user-data as given, and meta-data naming the instance."""
    meta = f"instance-id: {name}-{time.time_ns()}\nlocal-hostname: {name}\n".encode()
    return {f"{SEED_DIR}/user-data": (user_data, 0o600), f"{SEED_DIR}/meta-data": (meta, 0o600)}


def read_user_data(file: str) -> bytes:
    """A --cloud-init file: readable, and user-data cloud-init knows (cloud-config, a script, a MIME
    multipart or gzip); checked here so that a typo is one line, not a sandbox that silently boots bare."""
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"--cloud-init file {file!r} cannot be read: {exc.strerror or exc}") from None
    heads = (b"#cloud-config", b"#!", b"Content-Type:", b"MIME-Version:", b"#include", b"\x1f\x8b")
    if not data.lstrip().startswith(heads):
        raise UsageError(
            f"--cloud-init file {file!r} is not user-data",
            fix="start it with '#cloud-config' (see 'provisioner cloud-init')",
        )
    return data


def create(
    name: str,
    *,
    os_name: str = DEFAULT_OS,
    cloud_init: bytes | None = None,
    cli: Any | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    timeout: float = 90,
) -> Sandbox:
    """Boot a fresh sandbox host and wait until its sshd accepts the controller's key. With cloud_init
    (user-data), the image has cloud-init and the NoCloud seed is that user-data: it runs at first boot."""
    import docker.errors

    validate_name(name)
    distro(os_name)
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
    image = ensure_base_image(cli, os_name, say, cloud_init=cloud_init is not None)
    key = ensure_key()
    # A leftover engine volume from an earlier sandbox of this name would not be a fresh server.
    for volume in volumes(name):
        with contextlib.suppress(docker.errors.NotFound):
            cli.volumes.get(volume).remove(force=True)
        cli.volumes.create(volume, labels={LABEL: name})
    ports = {"ssh": free_port(), "http": free_port(), "https": free_port()}
    labels = {
        LABEL: name,
        f"{LABEL}.ssh-port": str(ports["ssh"]),
        f"{LABEL}.http-port": str(ports["http"]),
        f"{LABEL}.https-port": str(ports["https"]),
        f"{LABEL}.identity": str(key),
        f"{LABEL}.image": image,
        f"{LABEL}.os": os_name,
    }
    say(f"booting {cname} ({os_name}{', cloud-init' if cloud_init is not None else ''})")
    port_map = {22: ports["ssh"], 80: ports["http"], 443: ports["https"]}
    host_config = cli.api.create_host_config(
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        binds={
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            **{volume: {"bind": path, "mode": "rw"} for volume, path in volumes(name).items()},
        },
        tmpfs={"/run": "", "/run/lock": ""},
        port_bindings={f"{inner}/tcp": ("127.0.0.1", outer) for inner, outer in port_map.items()},
    )
    # What `docker run --security-opt systempaths=unconfined` sends: a writable /proc/sys, as on a VM
    # (Docker 26+ sets sysctls in its containers' network namespaces and refuses to start them if it can't).
    host_config.update(MaskedPaths=[], ReadonlyPaths=[])
    created = cli.api.create_container(
        image,
        command="/sbin/init",
        name=cname,
        hostname=name,
        labels=labels,
        environment={"container": "docker"},
        ports=[(inner, "tcp") for inner in port_map],
        host_config=host_config,
        stop_signal="SIGRTMIN+3",
    )
    container = cli.containers.get(created["Id"])
    # Before the first boot, as a cloud would: root's key (how the controller reaches a sandbox) and the
    # NoCloud seed.
    files = {"root/.ssh/authorized_keys": ((public_key(key) + "\n").encode(), 0o600)}
    if cloud_init is not None:
        files.update(seed_files(name, cloud_init))
    if not container.put_archive("/", _tar(files)):
        raise ProvisionerError(f"sandbox {name}: writing the SSH key and seed into the container failed")
    container.start()
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
    for volume in volumes(name):
        try:
            cli.volumes.get(volume).remove(force=True)
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
