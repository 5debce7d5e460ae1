"""`provisioner up` on real sandbox hosts: root and sudo user in one parallel run, idempotency, check mode."""

from __future__ import annotations

import json
import urllib.request
from urllib.error import HTTPError

import pytest

from tests.e2e.conftest import infra_host, root_exec

PROBE_IMAGE = "provisioner-probe:1"


def http_status(box, host_header: str, path: str = "/") -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{box.http_port}{path}", headers={"Host": host_header})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except HTTPError as exc:
        return exc.code


def test_parallel_up_of_root_and_sudo_hosts_succeeds(provisioned):
    report = provisioned.first.json()
    names = {b.name for b in provisioned.boxes}
    assert set(report["hosts"]) == names
    for name, stats in report["hosts"].items():
        assert stats["failed"] == 0 and stats["unreachable"] == 0, (name, stats)
        assert stats["ok"] > 0 and stats["changed"] > 0 and stats["seconds"] > 0
    assert report["seconds"] > 0
    # per-host progress lines were printed while running
    for name in names:
        assert f"{name}: docker:" in provisioned.first.stderr


@pytest.fixture(scope="module", params=["root", "sudo"])
def box(request, provisioned):
    return provisioned.root_box if request.param == "root" else provisioned.sudo_box


def test_docker_running_and_enabled(box):
    host = infra_host(box)
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled


def test_docker_runs_a_locally_imported_image(box):
    host = infra_host(box)
    # An image made on the host itself from a binary and its libraries: no registry needed.
    host.run_expect(
        [0],
        "tar -C / -chf - usr/bin/echo $(ldd /usr/bin/echo | grep -o '/[^ ]*' | sed 's|^/||') "
        f"| docker import - {PROBE_IMAGE}",
    )
    out = host.run_expect([0], f"docker run --rm {PROBE_IMAGE} /usr/bin/echo hello-from-container")
    assert out.stdout.strip() == "hello-from-container"


def test_daemon_json_settings_in_force(box):
    host = infra_host(box)
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["live-restore"] is True
    assert config["log-driver"] == "json-file"
    assert config["log-opts"]["max-size"] and config["log-opts"]["max-file"]
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert info["CgroupDriver"] == "systemd"


def test_nginx_listens_and_unknown_host_gets_404(box):
    host = infra_host(box)
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert http_status(box, "no-such-app.example.com") == 404
    assert http_status(box, "127.0.0.1") == 404  # also for a bare IP: never another site


def test_git_present(box):
    host = infra_host(box)
    assert host.package("git").is_installed
    assert host.run_expect([0], "git --version").stdout.startswith("git version")


def test_extra_ca_trusted_and_domain_recorded(box, test_ca):
    host = infra_host(box)
    pem = test_ca.read_text().strip()
    assert pem in host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    settings = json.loads(host.file("/etc/provisioner/host.json").content_string)
    assert settings["domain"] == "127.0.0.1.sslip.io"


def test_second_up_changes_nothing(provisioned, cli):
    second = cli("up", *provisioned.up_args, "--json")
    assert second.rc == 0, second.stderr
    report = second.json()
    assert {name: stats["changed"] for name, stats in report["hosts"].items()} == {
        b.name: 0 for b in provisioned.boxes
    }


def test_check_reports_drift_and_changes_nothing(provisioned, cli):
    box = provisioned.root_box
    drifted = '{"live-restore": false}\n'
    root_exec(box, f"printf '%s' '{drifted}' > /etc/docker/daemon.json")
    try:
        check = cli("up", box.name, "--check", *provisioned.up_args[2:], "--json")
        assert check.rc == 0, check.stderr
        report = check.json()
        assert report["check"] is True
        assert report["hosts"][box.name]["changed"] >= 1
        diffs = [c for c in report["changes"] if "daemon.json" in c["diff"] or "daemon" in c["task"].lower()]
        assert diffs, report["changes"]
        assert '"live-restore": false' in diffs[0]["diff"] and '"live-restore": true' in diffs[0]["diff"]
        assert root_exec(box, "cat /etc/docker/daemon.json") == drifted  # untouched
    finally:
        fixed = cli("up", box.name, *provisioned.up_args[2:], "--json")
        assert fixed.rc == 0, fixed.stderr
    assert json.loads(root_exec(box, "cat /etc/docker/daemon.json"))["live-restore"] is True
