"""`provisioner up` on real sandbox hosts: root and sudo user in one parallel run, idempotency, check mode."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from urllib.error import HTTPError

import pytest

from provisioner import sandbox
from tests.e2e.conftest import infra_host, root_exec

PROBE_IMAGE = "provisioner-probe:1"
RUN_IMAGE = "provisioner/stack-run:bookworm"


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


def test_up_says_where_the_time_went_per_host_and_role(provisioned):
    """`up --json` has seconds per role for each host: every role; with the time it waited between its tasks
    (for the other host: Ansible's linear strategy), they add up to the host's time."""
    report = provisioned.first.json()
    for name, stats in report["hosts"].items():
        roles = stats["roles"]
        expected = {"base", "security", "buildpacks", "docker", "nginx", "git", "receiver", "services", "tls"}
        assert expected <= set(roles), roles
        parts = sum(roles.values()) + stats["waiting"]
        assert abs(parts - stats["seconds"]) <= 0.1 * stats["seconds"], (name, roles, stats)
        assert len(stats["slowest_tasks"]) == 3


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
    # docker_address_pools: new networks (one per app) are /24s, thousands of them.
    subnet = host.check_output(
        "docker network rm provisioner-probe-net >/dev/null 2>&1; "
        "docker network create provisioner-probe-net >/dev/null && "
        "docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' provisioner-probe-net && "
        "docker network rm provisioner-probe-net >/dev/null"
    )
    assert subnet.strip().endswith("/24"), subnet


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


def test_ssh_password_login_off(box):
    host = infra_host(box)
    conf = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert conf["passwordauthentication"] == "no"
    assert conf["kbdinteractiveauthentication"] == "no"
    assert conf["permitemptypasswords"] == "no"
    assert conf["permitrootlogin"] in ("prohibit-password", "without-password")  # root only with a key
    # what a client sees: the server offers keys only
    proc = subprocess.run(
        [
            *("ssh", "-p", str(box.ssh_port), "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no"),
            *(
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "root@127.0.0.1",
                "true",
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 255 and "Permission denied (publickey)" in proc.stderr, proc.stderr


def test_firewall_drops_all_but_the_allowed_ports(box):
    host = infra_host(box)
    unit = host.service("provisioner-firewall")
    assert unit.is_running and unit.is_enabled
    table = host.check_output("nft list table inet provisioner_firewall")
    assert "policy drop;" in table
    assert "tcp dport { 22, 80, 443 } accept" in table
    tables = host.check_output("nft list tables")
    assert "table ip nat" in tables and "table ip filter" in tables  # Docker's rules, next to ours
    assert not host.service("nftables").is_enabled  # Debian's unit would flush Docker's rules


def test_other_ports_are_closed_from_outside(box, docker_client):
    host = infra_host(box)
    networks = docker_client.containers.get(sandbox.container_name(box.name)).attrs["NetworkSettings"]
    address = next((n["IPAddress"] for n in networks["Networks"].values() if n.get("IPAddress")), "")
    host.run("systemctl stop fw-probe-listener")
    host.run_expect([0], "systemd-run --unit=fw-probe-listener python3 -m http.server 8081")
    try:
        for _ in range(50):
            if host.socket("tcp://0.0.0.0:8081").is_listening:
                break
            time.sleep(0.2)
        assert host.socket("tcp://0.0.0.0:8081").is_listening
        try:
            socket.create_connection((address, 80), timeout=5).close()
        except OSError:
            pytest.skip(f"the sandbox's address {address or '(none)'} is not reachable from here")
        with pytest.raises(OSError):  # dropped: no answer at all
            socket.create_connection((address, 8081), timeout=3).close()
    finally:
        host.run("systemctl stop fw-probe-listener")


def test_docker_published_ports_work_behind_the_firewall(box):
    host = infra_host(box)
    name = "fw-probe-web"
    host.run("docker rm -f %s", name)
    host.run_expect(
        [0], f"docker run -d --name {name} -p 127.0.0.1::8000 {RUN_IMAGE} python3 -m http.server 8000"
    )
    try:
        port = host.check_output("docker port %s 8000/tcp", name).splitlines()[0].rpartition(":")[2]
        fetch = (
            "curl -s -o /dev/null -w '%{http_code}' -m 5 --retry 20 --retry-delay 1 --retry-connrefused "
            f"http://127.0.0.1:{port}/"
        )
        assert host.check_output(fetch) == "200"
        # stopping deletes only our table and starting loads it again: Docker's rules stay
        host.run_expect([0], "systemctl restart provisioner-firewall")
        assert host.check_output(fetch) == "200"
        assert "table ip nat" in host.check_output("nft list tables")
    finally:
        host.run("docker rm -f %s", name)


def test_second_up_changes_nothing(provisioned, cli):
    second = cli("up", *provisioned.up_args, "--json")
    assert second.rc == 0, second.stderr
    report = second.json()
    assert {name: stats["changed"] for name, stats in report["hosts"].items()} == {
        b.name: 0 for b in provisioned.boxes
    }


def test_a_reload_lost_to_a_killed_run_happens_on_the_next_run(provisioned, cli):
    """The state a run killed between an nginx change and its reload leaves: the file changed on disk,
    nginx still on the old configuration. A rerun, which finds the file as it wants it, must reload."""
    box = provisioned.root_box
    unknown = "curl -s -o /dev/null -w '%{http_code}' -H 'Host: lost-reload.invalid' http://127.0.0.1/"
    default = "/etc/nginx/conf.d/00-default.conf"
    root_exec(
        box,
        f"cp {default} /tmp/00-default.keep && sed -i 's/return 404;/return 418;/' {default} && "
        f"nginx -s reload && sleep 1 && cp /tmp/00-default.keep {default} && "  # nginx runs an older file
        "echo killed-before-reload > /var/lib/provisioner/nginx-loaded.sha256",  # whose change is not loaded
    )
    try:
        assert root_exec(box, unknown) == "418"
        rerun = cli("up", box.name, *provisioned.up_args[2:], "--tags", "nginx", "--no-verify", "--json")
        assert rerun.rc == 0, rerun.stderr
        assert root_exec(box, f"sleep 1; {unknown}") == "404"
    finally:  # whatever happened, the host serves the role's configuration for the tests after this one
        root_exec(box, f"cp /tmp/00-default.keep {default} && nginx -s reload", check=False)


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
        fixed = cli("up", box.name, *provisioned.up_args[2:])
        assert fixed.rc == 0, fixed.stderr
    assert json.loads(root_exec(box, "cat /etc/docker/daemon.json"))["live-restore"] is True
    # The human summary says where the time went: seconds per role, then the slowest tasks.
    assert "seconds per role" in fixed.stdout and "slowest tasks" in fixed.stdout, fixed.stdout
    assert all(f"s {role}" in fixed.stdout for role in ("base", "buildpacks", "receiver")), fixed.stdout
