"""The Vagrantfile with the docker provider: vagrant up provisions, verify passes, git push deploys,
a second provision changes nothing, and destroy leaves nothing behind (also when a step fails)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import paths
from provisioner.targets import parse_ssh_config
from tests.conftest import ROOT, run_cli
from tests.e2e.conftest import APPS, get

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("vagrant") is None, reason="vagrant is missing (scripts/setup.sh --test installs it)"
    ),
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vagrant_env(tmp_path_factory, base_image):
    from provisioner import sandbox

    key = sandbox.ensure_key()
    env = {
        **os.environ,
        "VAGRANT_DEFAULT_PROVIDER": "docker",
        "VAGRANT_DOTFILE_PATH": str(tmp_path_factory.mktemp("vagrant") / ".vagrant"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "PROVISIONER": str(Path(sys.executable).parent / "provisioner"),
        "PROVISIONER_DEPLOY_KEYS": f"{key}.pub",
        "PROVISIONER_CA_CERTS": ":".join(str(p) for p in paths.local_ca_certificates()),
        "PROVISIONER_VAGRANT_HTTP_PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return env


def vagrant(env, *args, timeout=1800):
    return subprocess.run(
        ["vagrant", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("provider", "args"),
    # VirtualBox's provider checks need VBoxManage, which this machine has not: the rest is validated.
    [("virtualbox", ["--ignore-provider"]), ("libvirt", []), ("docker", [])],
)
def test_validate(vagrant_env, provider, args):
    result = vagrant({**vagrant_env, "VAGRANT_DEFAULT_PROVIDER": provider}, "validate", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrant_up_verify_push_provision_destroy(vagrant_env, tmp_path):
    from provisioner import sandbox

    vagrant(vagrant_env, "destroy", "-f")  # a leftover of an earlier run
    try:
        up = vagrant(vagrant_env, "up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
        assert re.search(r"mini\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", up.stdout), up.stdout[
            -2000:
        ]

        verify = run_cli(
            "verify",
            "--vagrant",
            env={k: vagrant_env[k] for k in ("VAGRANT_DEFAULT_PROVIDER", "VAGRANT_DOTFILE_PATH", "PATH")},
        )
        assert verify.rc == 0, verify.stdout + verify.stderr

        config = parse_ssh_config(vagrant(vagrant_env, "ssh-config").stdout)["mini"]
        repo = tmp_path / "site"
        shutil.copytree(APPS / "static", repo)
        ssh = (
            f"ssh -i {sandbox.ensure_key()} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o BatchMode=yes"
        )
        git_env = {"GIT_SSH_COMMAND": ssh, "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "site"],
        ):
            subprocess.run(["git", *args], cwd=repo, env=git_env, check=True, capture_output=True)
        push = subprocess.run(
            ["git", "push", f"ssh://deploy@{config['hostname']}:{config.get('port', '22')}/site", "main"],
            cwd=repo,
            env=git_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert push.returncode == 0, push.stderr

        class Box:
            http_port = int(vagrant_env["PROVISIONER_VAGRANT_HTTP_PORT"])

        status, body = get(Box, "site.127.0.0.1.sslip.io")
        assert status == 200 and "static sample site" in body

        again = vagrant(vagrant_env, "provision")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert re.search(r"mini\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", again.stdout), (
            again.stdout[-2000:]
        )
    finally:
        destroyed = vagrant(vagrant_env, "destroy", "-f")
    assert destroyed.returncode == 0, destroyed.stderr
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=io.provisioner.vagrant=mini"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert leftovers == []
    assert (
        subprocess.run(
            ["docker", "image", "inspect", "provisioner/vagrant-mini"], capture_output=True
        ).returncode
        != 0
    )
    for volume in ("provisioner-vagrant-mini-docker", "provisioner-vagrant-mini-containerd"):
        assert subprocess.run(["docker", "volume", "inspect", volume], capture_output=True).returncode != 0
