"""`provisioner sandbox` through the real CLI: create --json, ssh, destroy removes container and volume."""

from __future__ import annotations

import docker.errors
import pytest

from provisioner import sandbox
from tests.conftest import E2E_PREFIX


def test_create_ssh_destroy(cli, docker_client, base_image):
    name = E2E_PREFIX + "cli"
    sandbox.destroy(name, docker_client)
    created = cli("sandbox", "create", name, "--json")
    try:
        assert created.rc == 0, created.stderr
        info = created.json()
        assert set(info) == {"name", "ssh", "identity", "http", "https", "os"} and info["os"] == "debian-12"
        assert info["name"] == name and info["ssh"].startswith("root@127.0.0.1:")
        assert info["http"].startswith("http://127.0.0.1:")
        assert info["https"].startswith("https://127.0.0.1:") and info["https"] != info["http"]
        ssh = cli("sandbox", "ssh", name, "cat", "/etc/debian_version")
        assert ssh.rc == 0 and ssh.stdout.strip().startswith("12"), ssh.stderr
        again = cli("sandbox", "create", name)
        assert again.rc != 0 and "already exists" in again.stderr
        # after a reboot (or an engine restart) a stopped sandbox starts again with its ports and keys
        docker_client.containers.get(sandbox.container_name(name)).stop(timeout=5)
        started = cli("sandbox", "start", name)
        assert started.rc == 0, started.stderr
        assert cli("sandbox", "ssh", name, "true").rc == 0
    finally:
        gone = cli("sandbox", "destroy", name)
    assert gone.rc == 0
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(sandbox.container_name(name))
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(sandbox.volume_name(name))
