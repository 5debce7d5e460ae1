"""Cloud VMs and the supported distributions, end to end (one host per distribution, several tests on each).

Each VM boots as a cloud VM does: a sandbox of that distribution with cloud-init, seeded (NoCloud) with
the user-data `provisioner cloud-init` prints. Debian 13 and Ubuntu 24.04 boot with `--mode prepare` (an
admin user `ops` with the user's own key K) and are provisioned by one `up ops@... -i K --wait-cloud-init`;
a Debian 12 VM boots with `--mode self` and provisions itself, its bundle served over HTTP from this
machine, while the others are provisioned. Debian 12's `up`, push, `verify` and second `up` are those of
the session's shared hosts (tests/e2e/test_up.py, test_deploy.py, test_verify.py): one host of each
distribution per run.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner import sandbox
from tests.conftest import E2E_PREFIX, record_figure
from tests.e2e.conftest import DOMAIN, Deployer, app_host, get, pushed_ok, root_exec
from tests.e2e.pebble import gateway

DISTROS = {"debian-12": ("debian", "12"), "debian-13": ("debian", "13"), "ubuntu-24.04": ("ubuntu", "24.04")}
PREPARED = ("debian-13", "ubuntu-24.04")  # booted with --mode prepare, provisioned by `up`
USER = "ops"
BOOTED: dict[str, float] = {}  # sandbox name -> when its first boot began


def local_ca_args() -> list[str]:
    """This machine's extra CAs (a TLS-intercepting proxy's): the hosts need them to reach PyPI and npm."""
    return [
        arg
        for ca in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
        for arg in ("--ca-cert", str(ca))
    ]


@pytest.fixture(scope="module")
def user_key(tmp_path_factory) -> Path:
    """K: the user's own key pair (not the sandboxes' key)."""
    key = tmp_path_factory.mktemp("user-key") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k@laptop", "-f", str(key)], check=True
    )
    return key


@pytest.fixture(scope="module")
def bundle_server(docker_client, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """A static file server on the sandboxes' gateway (this machine, as they reach it): where the user put the
    bundle. Yields its directory and its base URL."""
    root = tmp_path_factory.mktemp("bundle-site")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        (gateway(docker_client), 0), functools.partial(Quiet, directory=root)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://{server.server_address[0]}:{server.server_address[1]}"
    server.shutdown()


def user_data(cli, tmp_path: Path, name: str, *args: str) -> Path:
    made = cli("cloud-init", *args)
    assert made.rc == 0, made.stderr
    assert made.stdout.startswith("#cloud-config\n")
    path = tmp_path / name
    path.write_text(made.stdout)
    return path


def boot(cli, boxes, name: str, os_name: str, seed: Path) -> sandbox.Sandbox:
    """`sandbox create NAME --os OS --cloud-init SEED`: a cloud VM's first boot."""
    name = E2E_PREFIX + name
    sandbox.destroy(name, boxes.client)  # a leftover of an earlier run
    boxes.names.append(name)
    created = cli("sandbox", "create", name, "--os", os_name, "--cloud-init", str(seed), "--json")
    assert created.rc == 0, created.stderr
    assert created.json()["os"] == os_name
    return sandbox.get(name, boxes.client)


@pytest.fixture(scope="module")
def seeds(cli, boxes, user_key, bundle_server, tmp_path_factory) -> dict[str, Path]:
    """The user-data of both modes, as a user makes them (the bundle written where the server serves). The
    distributions' cloud-init images are made first (once per machine): then each VM boots in seconds."""
    with ThreadPoolExecutor(len(DISTROS)) as pool:  # three mirrors' downloads at once
        made = list(
            pool.map(lambda o: cli("sandbox", "image", "--os", o, "--cloud-init", timeout=1200), DISTROS)
        )
    for result in made:
        assert result.rc == 0, result.stderr
    tmp = tmp_path_factory.mktemp("user-data")
    site, url = bundle_server
    common = ["--user", USER, "--key", f"{user_key}.pub"]
    prepare = user_data(cli, tmp, "prepare.yml", *common)
    self_args = [*common, "--mode", "self", "--domain", DOMAIN, *local_ca_args()]
    self_args += [
        "--bundle-url",
        f"{url}/provisioner-bundle.tar.gz",
        "--bundle",
        str(site / "provisioner-bundle.tar.gz"),
    ]
    self_ = user_data(cli, tmp, "self.yml", *self_args)
    return {"prepare": prepare, "self": self_}


@pytest.fixture(scope="module")
def self_vm(cli, boxes, seeds) -> sandbox.Sandbox:
    """The VM that provisions itself (booted first: it works while `up` provisions the others)."""
    box = boot(cli, boxes, "self", "debian-12", seeds["self"])
    BOOTED[box.name] = time.monotonic()
    return box


@dataclass
class Vm:
    os_name: str
    box: sandbox.Sandbox
    packages_after_boot: set[str]

    @property
    def target(self) -> str:
        return f"{USER}@127.0.0.1:{self.box.ssh_port}"

    @property
    def name(self) -> str:  # how `up` names a host given as ADDRESS:PORT
        return f"127.0.0.1-{self.box.ssh_port}"


def packages(box: sandbox.Sandbox) -> set[str]:
    return set(
        root_exec(
            box, "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' | awk '/^ii/ {print $2}'"
        ).split()
    )


@dataclass
class Provisioned:
    vms: dict[str, Vm]
    first: object
    image_packages: set[str]
    seconds: float


@pytest.fixture(scope="module")
def prepared(cli, boxes, docker_client, seeds, user_key, self_vm) -> Provisioned:
    """The Debian 13 and Ubuntu 24.04 VMs booted with the prepare user-data, provisioned by one `up
    --wait-cloud-init` with key K. The first is looked at before `up` (what `prepare` installed); the other
    is still booting when `up` starts waiting for it."""
    first_os, last_os = PREPARED
    first = boot(cli, boxes, f"prep-{first_os.replace('.', '')}", first_os, seeds["prepare"])
    root_exec(first, "cloud-init status --wait >/dev/null || true")
    vms = {first_os: Vm(first_os, first, packages(first))}
    image = sandbox.image_tag(first_os, cloud_init=True)
    listed = docker_client.containers.run(
        image, ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\\n"], remove=True, entrypoint=""
    ).decode()
    image_packages = {line.split()[1] for line in listed.splitlines() if line.startswith("ii")}
    box = boot(cli, boxes, f"prep-{last_os.replace('.', '')}", last_os, seeds["prepare"])
    vms[last_os] = Vm(last_os, box, set())
    started = time.monotonic()
    args = [vm.target for vm in vms.values()] + ["-i", str(user_key), "--wait-cloud-init", "--forks", "2"]
    result = cli("up", *args, "--domain", DOMAIN, *local_ca_args(), "--json", timeout=1500)
    assert result.rc == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    seconds = time.monotonic() - started
    record_figure(
        "distros: up --wait-cloud-init of Debian 13 and Ubuntu 24.04 VMs (prepare)",
        f"{seconds:.0f} s with verify",
    )
    return Provisioned(vms, result, image_packages, seconds)


def test_prepare_makes_the_admin_user_with_key_k_and_sudo_and_installs_nothing_else(prepared, user_key):
    vm = prepared.vms[PREPARED[0]]
    assert vm.packages_after_boot - prepared.image_packages == set(), "prepare installed more than python3"
    assert "python3" in vm.packages_after_boot
    for absent in ("docker.io", "nginx", "git", "nftables"):
        assert absent not in vm.packages_after_boot
    ssh = ["ssh", "-i", str(user_key), "-p", str(vm.box.ssh_port), "-o", "StrictHostKeyChecking=no"]
    ssh += ["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
    proc = subprocess.run(
        [*ssh, f"{USER}@127.0.0.1", "sudo -n id -u"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


def test_up_waited_for_cloud_init_and_provisioned_every_distribution(prepared):
    report = prepared.first.json()
    stderr = prepared.first.stderr
    for vm in prepared.vms.values():
        stats = report["hosts"][vm.name]
        assert stats["failed"] == 0 and stats["unreachable"] == 0, (vm.os_name, stats)
        assert f"{vm.name}: cloud-init: done" in stderr, stderr
        os_id, version = DISTROS[vm.os_name]
        release = root_exec(vm.box, ". /etc/os-release; echo $ID $VERSION_ID").split()
        assert release == [os_id, version]
    # At least one of the VMs booted just before `up` was still at its first boot when `up` began: it waited.
    waited = [
        vm for vm in prepared.vms.values() if re.search(rf"{vm.name}: cloud-init: (running|not )", stderr)
    ]
    assert waited, stderr
    assert report["verify"]["ok"] is True, report["verify"]


def test_a_push_deploys_the_sample_python_app_on_every_distribution(prepared, user_key, tmp_path):
    for vm in prepared.vms.values():
        dev = Deployer(vm.box, tmp_path / vm.os_name, identity=str(user_key))  # K is the deploy key too
        repo = dev.repo("hello", "python")
        pushed_ok(dev.push(repo, "hello"), "hello")
        status, body = get(vm.box, app_host("hello"))
        assert status == 200 and body.startswith("python v1"), (vm.os_name, status, body)


def test_verify_passes_and_a_second_up_changes_nothing(cli, prepared, user_key, tmp_path):
    targets = [vm.target for vm in prepared.vms.values()]
    report = tmp_path / "verify.json"
    checked = cli(
        "verify", *targets, "-i", str(user_key), "--json", str(report), *local_ca_args(), timeout=600
    )
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert json.loads(report.read_text())["ok"] is True
    again = cli(
        "up", *targets, "-i", str(user_key), "--domain", DOMAIN, *local_ca_args(), "--json", "--no-verify"
    )
    assert again.rc == 0, again.stderr
    changed = {name: stats["changed"] for name, stats in again.json()["hosts"].items()}
    assert set(changed.values()) == {0}, changed


def test_cloud_init_of_each_distribution_accepts_both_modes_user_data(prepared, self_vm, seeds):
    """`cloud-init schema` of Debian 12's cloud-init (the self VM's), Debian 13's and Ubuntu 24.04's."""
    boxes = {"debian-12": self_vm, **{os_name: vm.box for os_name, vm in prepared.vms.items()}}
    assert set(boxes) == set(DISTROS)
    for os_name, box in boxes.items():
        for mode, seed in seeds.items():
            path = f"/root/{mode}.yml"
            root_exec(box, f"cat > {path} <<'EOF'\n{seed.read_text()}EOF")
            out = root_exec(box, f"cloud-init schema --config-file {path} 2>&1", check=False)
            assert "Valid schema" in out or "Valid cloud-config" in out, (os_name, mode, out)


@pytest.fixture(scope="module")
def self_done(self_vm, prepared) -> sandbox.Sandbox:
    """The self-provisioning VM once its cloud-init has finished (it ran while `up` did the others)."""
    out = root_exec(
        self_vm, "timeout 1200 cloud-init status --wait >/dev/null; cloud-init status", check=False
    )
    seconds = time.monotonic() - BOOTED[self_vm.name]
    record_figure(
        "distros: a VM provisioning itself at first boot (self)", f"done {seconds:.0f} s after boot"
    )
    assert "status: done" in out, out + root_exec(
        self_vm, "tail -20 /var/log/provisioner-firstboot.log", check=False
    )
    return self_vm


def test_self_provisions_at_first_boot_and_verify_says_so(cli, self_done, tmp_path):
    status = json.loads(root_exec(self_done, "cat /var/lib/provisioner/cloud-init/status.json"))
    assert status["state"] == "done", status
    report = tmp_path / "verify.json"
    checked = cli("verify", self_done.name, "--json", str(report), *local_ca_args(), timeout=600)
    assert checked.rc == 0, checked.stdout + checked.stderr
    results = {
        c["check"]: c["outcome"] for c in json.loads(report.read_text())["hosts"][self_done.name]["checks"]
    }
    assert results["first_boot"] == "passed", results


def test_a_push_to_the_self_provisioned_vm_deploys(self_done, user_key, tmp_path):
    dev = Deployer(self_done, tmp_path, identity=str(user_key))  # --key K: the admin's and the deploy key
    repo = dev.repo("hello", "python")
    pushed_ok(dev.push(repo, "hello"), "hello")
    status, body = get(self_done, app_host("hello"))
    assert status == 200 and body.startswith("python v1"), (status, body)
