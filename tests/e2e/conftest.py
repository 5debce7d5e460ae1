"""Sandbox hosts for end-to-end tests: created fresh (leftovers of earlier runs are removed first).

Also the deploy side shared by the modules that push apps: `deploy_box` (the provisioned sandbox apps are
deployed to) and `dev` (a `Deployer`: the developer's machine with git repositories, pushing to it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest
import testinfra

from provisioner import sandbox
from tests import certs
from tests.conftest import E2E_PREFIX, run_cli
from tests.e2e import pebble as pebble_server

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
DOMAIN = "127.0.0.1.sslip.io"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_client():
    return sandbox.client()


@pytest.fixture(scope="session")
def base_image(docker_client):
    """Build (or reuse) the sandbox base image once per machine (one xdist worker builds it, the other
    waits: their PROVISIONER_HOMEs, and so the sandbox module's own lock, differ)."""
    with open("/tmp/provisioner-e2e-base-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return sandbox.ensure_base_image(docker_client, say=print)


class Boxes:
    """Creates sandboxes for the session and removes them at its end."""

    def __init__(self, client) -> None:
        self.client = client
        self.names: list[str] = []

    def create(self, name: str) -> sandbox.Sandbox:
        name = E2E_PREFIX + name
        if os.environ.get("PROVISIONER_REUSE_SANDBOXES"):  # faster reruns while developing
            try:
                box = sandbox.get(name, self.client)
                if box.status == "running":
                    self.names.append(name)
                    return box
            except Exception:
                pass
        sandbox.destroy(name, self.client)  # a leftover of an earlier run
        self.names.append(name)
        return sandbox.create(name, cli=self.client)

    def retire(self, boxes: list[sandbox.Sandbox]) -> None:
        """Stop sandboxes a module is done with (they are removed with the others at the session's end):
        a cluster's health checks and heartbeats take no CPU from the modules after it."""
        if os.environ.get("PROVISIONER_KEEP_SANDBOXES"):
            return
        for box in boxes:
            with contextlib.suppress(Exception):
                self.client.containers.get(sandbox.container_name(box.name)).kill()

    def cleanup(self) -> None:
        """Remove the session's sandboxes: their containers, then, in the background (it is mostly
        deleting files, and a later run removes any leftover itself), their Docker volumes."""
        if os.environ.get("PROVISIONER_KEEP_SANDBOXES"):
            return  # for debugging a failed run: `provisioner sandbox ssh e2e-root`
        containers = [sandbox.container_name(n) for n in self.names]
        volumes = [v for n in self.names for v in sandbox.volumes(n)]
        if not containers:
            return
        script = f"docker rm -f -v {shlex.join(containers)}; docker volume rm -f {shlex.join(volumes)}"
        subprocess.Popen(["sh", "-c", f"({script}) >/dev/null 2>&1"], start_new_session=True)


@pytest.fixture(scope="session")
def boxes(docker_client, base_image) -> Iterator[Boxes]:
    b = Boxes(docker_client)
    yield b
    b.cleanup()


def root_exec(box: sandbox.Sandbox, script: str, check: bool = True) -> str:
    """Run a shell script on a sandbox as root over SSH (what an admin would do by hand)."""
    proc = subprocess.run(
        sandbox.ssh_argv(box, ["sh", "-c", shlex.quote(script)]), capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{script!r} failed on {box.name}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def add_user(box: sandbox.Sandbox, user: str, *, sudo: bool) -> None:
    """A login user with the sandbox key, with or without passwordless sudo."""
    pub = Path(box.identity + ".pub").read_text().strip()  # the key this sandbox was made with
    script = (
        f"id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}; "
        f"install -d -m 700 -o {user} -g {user} /home/{user}/.ssh; "
        f"printf '%s\\n' {shlex.quote(pub)} > /home/{user}/.ssh/authorized_keys; "
        f"chown {user}:{user} /home/{user}/.ssh/authorized_keys; "
        f"chmod 600 /home/{user}/.ssh/authorized_keys; "
    )
    if sudo:
        script += (
            f"echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{user}; chmod 440 /etc/sudoers.d/{user}"
        )
    root_exec(box, script)


def infra_host(box: sandbox.Sandbox):
    return testinfra.get_host(
        f"ssh://root@127.0.0.1:{box.ssh_port}",
        ssh_identity_file=box.identity,
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    )


@pytest.fixture(scope="session")
def raw_box(boxes) -> sandbox.Sandbox:
    """A fresh, never provisioned sandbox (for the refusal tests), with a user that has no sudo."""
    box = boxes.create("raw" + os.environ.get("PYTEST_XDIST_WORKER", ""))  # one per xdist worker
    add_user(box, "nosudo", sudo=False)
    return box


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """An extra CA, as a TLS-intercepting proxy would have, for --ca-cert."""
    path = tmp_path_factory.mktemp("ca") / "e2e-proxy-ca.pem"
    path.write_text(certs.make_ca("provisioner e2e proxy CA").pem)
    return path


@pytest.fixture(scope="session")
def pebble(docker_client, tmp_path_factory) -> Iterator[pebble_server.Pebble]:
    """A real ACME server (Debian's pebble) for the session; hosts are provisioned to use it."""
    if not pebble_server.Pebble.available():
        pytest.fail("pebble is not installed: run scripts/setup.sh --test (it installs the pebble package)")
    server = pebble_server.started(tmp_path_factory.mktemp("pebble"), docker_client)
    yield server
    server.stop()


class Provisioned:
    """Two sandboxes provisioned by one parallel `up`: one as root, one through a sudo user."""

    def __init__(self, root_box, sudo_box, up_args, first):
        self.root_box = root_box
        self.sudo_box = sudo_box
        self.up_args = up_args
        self.first = first

    @property
    def boxes(self):
        return [self.root_box, self.sudo_box]

    @property
    def ca_args(self) -> list[str]:
        """The --ca-cert options `up` got (what `verify --ca-cert` checks), without the other options."""
        args = self.up_args
        return [w for i, w in enumerate(args) if w == "--ca-cert" or (i and args[i - 1] == "--ca-cert")]


@pytest.fixture(scope="session")
def provisioned(boxes, test_ca, pebble) -> Provisioned:
    root_box = boxes.create("root")
    sudo_box = boxes.create("sudo")
    add_user(sudo_box, "ops", sudo=True)
    up_args = [root_box.name, f"ops@{sudo_box.name}", "--ca-cert", str(test_ca), "--forks", "2"]
    # Certificates come from the session's Pebble, whose API the hosts trust like any other extra CA.
    up_args += ["--acme-server", pebble.directory_url, "--ca-cert", str(pebble.api_ca)]
    # Buildpacks kept on the host (file:// URLs) only from here (test_deploy's custom one lives there).
    up_args += ["-e", "receiver_buildpack_file_dir=/srv/buildpacks"]
    # This machine's own extra CAs (e.g. a TLS-intercepting proxy's): builds on the hosts need them
    # to reach PyPI and npm, exactly as a user behind such a proxy would pass them.
    for local_ca in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt")):
        up_args += ["--ca-cert", str(local_ca)]
    first = run_cli("up", *up_args, "--json")
    assert first.rc == 0, f"first up failed:\n{first.stdout}\n{first.stderr}"
    return Provisioned(root_box, sudo_box, up_args, first)


class Deployer:
    """A developer's machine: git repositories of apps, pushed to the deploy user over SSH."""

    def __init__(self, box, workdir: Path, user: str = "deploy", identity: str | None = None) -> None:
        self.box = box
        self.workdir = workdir
        self.user = user
        ssh = (
            f"ssh -i {identity or box.identity} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o BatchMode=yes"
        )
        self.env = {"GIT_SSH_COMMAND": ssh, "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(workdir)}
        self.url = f"ssh://{user}@127.0.0.1:{box.ssh_port}"

    def git(self, repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args], cwd=repo, env=self.env, capture_output=True, text=True, timeout=900
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def repo(self, name: str, sample: str) -> Path:
        repo = self.workdir / name
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(APPS / sample, repo)
        self.git(repo, "init", "-q", "-b", "main")
        self.git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
        self.commit(repo, "first")
        return repo

    def commit(self, repo: Path, message: str) -> None:
        self.git(repo, "add", "-A")
        self.git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)

    def push(self, repo: Path, app: str, ref: str = "main") -> subprocess.CompletedProcess[str]:
        return self.git(repo, "push", "--force", f"{self.url}/{app}", ref, check=False)

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        # ssh sends one command string: quote each word as a user would in a shell
        argv = [*self.env["GIT_SSH_COMMAND"].split(), "-p", str(self.box.ssh_port), f"{self.user}@127.0.0.1"]
        argv += [shlex.join(command)] if command else []
        return subprocess.run(argv, capture_output=True, text=True, timeout=600)


# Run with python3 in a container: whether it reaches ADDRESS PORT over TCP ("reached" / "unreachable ...").
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()\n"
    "    print('reached')\n"
    "except OSError as exc:\n"
    "    print('unreachable', exc)\n"
)


def container_ip(docker_client, box: sandbox.Sandbox) -> str:
    """The sandbox's address on Docker's bridge (what an ACME server reaches it at); it may change when
    the sandbox restarts."""
    container = docker_client.containers.get(sandbox.container_name(box.name))
    return str(container.attrs["NetworkSettings"]["IPAddress"])


def get(box, host: str, path: str = "/") -> tuple[int, str]:
    """An HTTP GET through the box's nginx, for the virtual host `host`: (status, body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{box.http_port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Load:
    """A client in a thread, about 20 requests a second through the boxes' nginx in turn, for the virtual
    host `host`, while the `with` block runs: what failed, what answered and how long each took."""

    def __init__(self, boxes: list[sandbox.Sandbox], host: str) -> None:
        self.boxes, self.host = boxes, host
        self.failures: list[str] = []
        self.failed_at: list[float] = []  # time.monotonic() of each failure
        self.bodies: list[str] = []
        self.took: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            box = self.boxes[turn % len(self.boxes)]
            turn += 1
            began = time.monotonic()
            try:
                status, body = get(box, self.host)
                if status != 200:
                    self._failed(f"{box.name}: HTTP {status}")
                self.bodies.append(body)
            except (URLError, OSError) as exc:
                self._failed(f"{box.name}: {exc}")
            self.took.append(time.monotonic() - began)
            time.sleep(0.05)

    def _failed(self, what: str) -> None:
        self.failures.append(what)
        self.failed_at.append(time.monotonic())

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def app_host(app: str) -> str:
    return f"{app}.{DOMAIN}"


def pushed_ok(result, app):
    assert result.returncode == 0, f"push of {app} failed:\n{result.stderr}"
    assert f"=====> http://{app_host(app)}" in result.stderr


@pytest.fixture(scope="module")
def deploy_box(provisioned) -> sandbox.Sandbox:
    """The provisioned root sandbox apps are deployed to (one for the session: apps carry over)."""
    return provisioned.root_box


@pytest.fixture(scope="module")
def dev(deploy_box, tmp_path_factory, request) -> Deployer:
    """The developer's machine pushing to `deploy_box`: a working directory of its own for each module."""
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    return Deployer(deploy_box, tmp_path_factory.mktemp(f"dev-{module}"))
