"""`provisioner verify` on real hosts: passes when provisioned, names exactly the broken check otherwise."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.conftest import Deployer, root_exec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(deploy_box, tmp_path_factory):
    """One deployed app on the host (a static site: no network needed)."""
    dev = Deployer(deploy_box, tmp_path_factory.mktemp("verify-dev"))
    result = dev.push(dev.repo("vfy", "static"), "vfy")
    assert result.returncode == 0, result.stderr
    return dev


def run_verify(cli, tmp_path, *args):
    out = tmp_path / "out.json"
    result = cli("verify", *args, "--json", str(out))
    data = json.loads(out.read_text()) if out.exists() else None
    return result, data


def failures(data, host_name):
    return {c["check"]: c["detail"] for c in data["hosts"][host_name]["checks"] if c["outcome"] == "failed"}


def test_up_verified_the_hosts_it_provisioned(provisioned):
    report = provisioned.first.json()
    assert report["verify"]["ok"] is True and report["verify"]["failed"] == 0
    assert set(report["verify"]["hosts"]) == {b.name for b in provisioned.boxes}


def test_verify_passes_with_junit_and_json_that_agree(cli, deploy_box, app, tmp_path, provisioned):
    junit, out = tmp_path / "out.xml", tmp_path / "out.json"
    # the same --ca-cert options `up` got: verify checks that those CAs are trusted
    result = cli("verify", deploy_box.name, "--junit", str(junit), "--json", str(out), *provisioned.ca_args)
    assert result.rc == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [deploy_box.name]
    cases = suites[0].findall("testcase")
    junit_failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    junit_skipped = sum(1 for c in cases if c.find("skipped") is not None)
    assert (len(cases) - junit_failed - junit_skipped, junit_failed, junit_skipped) == (
        data["passed"],
        data["failed"],
        data["skipped"],
    )
    assert f"{data['passed']} passed, {data['failed']} failed, {data['skipped']} skipped" in result.stdout
    assert data["ok"] is True and data["passed"] >= 14
    assert "deployed apps serving" in result.stdout


def test_verify_through_a_sudo_user(cli, provisioned, tmp_path):
    box = provisioned.sudo_box
    result, data = run_verify(cli, tmp_path, f"ops@{box.name}")
    assert result.rc == 0, result.stdout + result.stderr
    assert data["hosts"][box.name]["failed"] == 0


BREAKAGES = {
    "nginx_running": ("systemctl stop nginx", "systemctl start nginx"),
    "deploy_keys_restricted": (
        "cp /home/deploy/.ssh/authorized_keys /root/ak.bak && "
        "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBadKeyWithoutForcedCommand intruder' "
        ">> /home/deploy/.ssh/authorized_keys",
        "cp /root/ak.bak /home/deploy/.ssh/authorized_keys",
    ),
    "apps_serving": (
        "docker kill $(docker ps -q --filter label=io.provisioner.app=vfy "
        "--filter label=io.provisioner.process=web)",
        None,
    ),
    "host_program": (
        "mv /usr/local/bin/provisioner-host /root/provisioner-host.bak",
        "mv /root/provisioner-host.bak /usr/local/bin/provisioner-host",
    ),
    # sshd reads drop-ins in order and keeps the first value: an earlier file turns passwords back on
    "ssh_password_auth_off": (
        "echo 'PasswordAuthentication yes' > /etc/ssh/sshd_config.d/05-e2e-break.conf",
        "rm /etc/ssh/sshd_config.d/05-e2e-break.conf",
    ),
    "backing_services": (
        "systemctl disable --now provisioner-backup.timer",
        "systemctl enable --now provisioner-backup.timer",
    ),
    "firewall_active": (
        "nft add rule inet provisioner_firewall input tcp dport 8080 accept",
        "systemctl reload provisioner-firewall",
    ),
}


@pytest.mark.parametrize("check", list(BREAKAGES))
def test_breaking_one_thing_fails_exactly_that_check(cli, deploy_box, app, tmp_path, check):
    breaks, repairs = BREAKAGES[check]
    root_exec(deploy_box, breaks)
    try:
        result, data = run_verify(cli, tmp_path, deploy_box.name)
    finally:
        if repairs:
            root_exec(deploy_box, repairs)
        else:
            restarted = app.ssh("ps:restart", "vfy")
            assert restarted.returncode == 0, restarted.stderr
    assert result.rc == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert list(failures(data, deploy_box.name)) == [check], failures(data, deploy_box.name)
    assert f"check '{check}' failed" in result.stderr


def test_disk_threshold(cli, deploy_box, tmp_path):
    result, data = run_verify(cli, tmp_path, deploy_box.name, "--disk-min", "99.99")
    assert result.rc == 1
    assert list(failures(data, deploy_box.name)) == ["disk_free"]
    assert "below 99.99%" in failures(data, deploy_box.name)["disk_free"]


def test_only_and_skip(cli, deploy_box, tmp_path):
    result, data = run_verify(
        cli, tmp_path, deploy_box.name, "--only", "docker_running", "--only", "disk_free"
    )
    assert result.rc == 0 and [c["check"] for c in data["hosts"][deploy_box.name]["checks"]] == [
        "docker_running",
        "disk_free",
    ]
    result, data = run_verify(cli, tmp_path, deploy_box.name, "--skip", "apps_serving")
    assert "apps_serving" not in [c["check"] for c in data["hosts"][deploy_box.name]["checks"]]
    bad = cli("verify", deploy_box.name, "--only", "nope")
    assert bad.rc == 2 and "unknown check 'nope'" in bad.stderr


def test_never_provisioned_host_fails_clearly(cli, raw_box, tmp_path):
    result, data = run_verify(cli, tmp_path, raw_box.name)
    assert result.rc == 1
    assert "Traceback" not in result.stdout + result.stderr
    failed = failures(data, raw_box.name)
    for check in (
        "docker_running",
        "nginx_running",
        "deploy_user",
        "host_program",
        "ssh_password_auth_off",
        "firewall_active",
    ):
        assert check in failed, failed
    assert "Docker is not installed" in failed["docker_running"]
    assert "passwordauthentication yes" in failed["ssh_password_auth_off"]
    assert "no firewall" in failed["firewall_active"]


def test_firewall_ports_option(cli, deploy_box, tmp_path):
    result, data = run_verify(
        cli, tmp_path, deploy_box.name, "--only", "firewall_active", "--firewall-ports", "22,80"
    )
    assert result.rc == 1
    assert failures(data, deploy_box.name) == {"firewall_active": "open but not expected: 443"}
    bad = cli("verify", deploy_box.name, "--firewall-ports", "22,http")
    assert bad.rc == 2 and "'http' is not a port number" in bad.stderr
