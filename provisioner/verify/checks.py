"""The checks `provisioner verify` runs on each host (testinfra's `host` fixture, over SSH).

Each check tests one thing a person would check by hand. A check whose prerequisite is missing (no nginx,
no Docker) is skipped with the reason, so a broken host fails exactly the checks that name what is broken.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

from provisioner import cloudinit, cluster
from provisioner.hostcmd import services, tls
from provisioner.hostcmd.keys import FORCED
from provisioner.hostcmd.settings import CONFIG_DIR, PROGRAM, Settings
from provisioner.hostcmd.store import all_domains

UNKNOWN_HOST = "verify-unknown-host.invalid"
FIREWALL_TABLE = "inet provisioner_firewall"
SECURITY_JSON = CONFIG_DIR / "security.json"  # written by the security role: what it was asked for

TITLES = {
    "first_boot": "first-boot provisioning finished (cloud-init --mode self)",
    "docker_running": "docker running and enabled",
    "nginx_running": "nginx running and enabled",
    "sshd_running": "sshd running and enabled",
    "nginx_config_valid": "nginx -t passes",
    "ports_listening": "ports 22, 80 and 443 listening",
    "ssh_password_auth_off": "ssh password login off",
    "firewall_active": "firewall allows only the expected ports",
    "default_server_404": "unknown Host gets 404",
    "docker_daemon_settings": "daemon.json settings in force",
    "deploy_user": "deploy user exists without password",
    "deploy_keys_restricted": "deploy keys carry the forced command",
    "host_program": "host program and hooks installed",
    "stack_images": "stack images present",
    "backing_services": "databases running and answering",
    "extra_ca_trusted": "extra CAs trusted",
    "disk_free": "free disk",
    "apps_serving": "deployed apps serving",
    "certificates": "certificates valid and renewing",
    "cluster": "swarm nodes ready, apps at their replicas, routed by every node",
}
RENEW_TIMER = "provisioner-certs-renew.timer"  # the tls role's
BACKUP_TIMER = "provisioner-backup.timer"  # the services role's
WARN_DAYS = 14


def settings(host: Any) -> Settings:
    """The host's own settings, read the way the host program reads them (hostcmd.settings)."""
    found = [host.file(str(path)) for path in Settings.paths()]
    return Settings.from_data(*(json.loads(f.content_string) for f in found if f.exists))


def security_settings(host: Any) -> dict[str, Any] | None:
    """What the security role was asked for, or None on a host it never ran on."""
    f = host.file(str(SECURITY_JSON))
    return dict(json.loads(f.content_string)) if f.exists else None


def parse_ports(text: str) -> list[int]:
    """'22,80,443' -> [22, 80, 443]; empty means none. ValueError names the bad item."""
    ports = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ValueError(f"{item!r} is not a port number (1-65535)")
        ports.append(int(item))
    return sorted(set(ports))


def sshd_settings(text: str) -> dict[str, list[str]]:
    """`sshd -T` output (lowercase keyword, value) as keyword -> values (some keywords repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            out.setdefault(key.lower(), []).append(value.strip())
    return out


def sshd_ports(text: str) -> set[int]:
    """The ports sshd listens on, from `sshd -T`: its `port` lines and the ports of `listenaddress`."""
    conf = sshd_settings(text)
    ports = {int(p) for p in conf.get("port", []) if p.isdigit()}
    for address in conf.get("listenaddress", []):
        port = address.split()[0].rpartition(":")[2] if address else ""
        if port.isdigit():
            ports.add(int(port))
    return ports


def _values(right: Any) -> tuple[set[int], bool]:
    """Port numbers of the right side of an nft JSON match; False when it is not only numbers."""
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    ports: set[int] = set()
    for item in items:
        if isinstance(item, int):
            ports.add(item)
        elif isinstance(item, dict) and "range" in item and all(isinstance(x, int) for x in item["range"]):
            low, high = item["range"]
            ports.update(range(low, high + 1))
        else:
            return ports, False
    return ports, True


def firewall_rules(data: dict[str, Any], chain: str = "input") -> tuple[str | None, set[int], list[str]]:
    """From `nft -j list table ...`: the policy of the input chain, the TCP ports its rules accept from
    anywhere, and the rules that accept more than that can say (no condition at all, or a port exclusion).
    Rules limited to source addresses (a swarm's peers) open nothing to the world: they are left out."""
    items = data.get("nftables", [])
    policy = next(
        (i["chain"].get("policy") for i in items if "chain" in i and i["chain"].get("name") == chain), None
    )
    ports: set[int] = set()
    broad: list[str] = []
    for item in items:
        rule = item.get("rule")
        if not rule or rule.get("chain") != chain:
            continue
        exprs = rule.get("expr", [])
        if not any("accept" in e for e in exprs):
            continue
        matches = [e["match"] for e in exprs if "match" in e]
        if not matches:
            broad.append("a rule accepts everything")
        sources = [m for m in matches if (m.get("left", {}).get("payload") or {}).get("field") == "saddr"]
        if sources and all(m.get("op") in ("==", "in") for m in sources):
            continue
        for m in matches:
            left = m.get("left", {})
            if left.get("payload") != {"protocol": "tcp", "field": "dport"}:
                continue
            found, plain = _values(m.get("right"))
            if m.get("op") not in ("==", "in") or not plain:
                broad.append(f"a rule accepts tcp dport {m.get('op')} {m.get('right')}")
            else:
                ports |= found
    return policy, ports, broad


def port_list(ports: set[int], limit: int = 10) -> str:
    shown = sorted(ports)
    return ", ".join(map(str, shown[:limit])) + (
        f" and {len(shown) - limit} more" if len(shown) > limit else ""
    )


def service_up(host: Any, name: str) -> bool:
    return bool(host.service(name).is_running)


def need(host: Any, *services: str) -> None:
    for name in services:
        if not host.exists(name if name != "docker" else "dockerd") or not service_up(host, name):
            pytest.skip(f"needs {name}, which is not running")


def status_code(host: Any, host_header: str, path: str = "/", address: str = "127.0.0.1") -> str:
    """The HTTP status nginx at address (this host's, by default) answers for the virtual host."""
    where = f"[{address}]" if ":" in address else address
    cmd = host.run(
        "curl -s -o /dev/null -m 10 -w '%%{http_code}' -H %s http://%s%s",
        f"Host: {host_header}",
        where,
        path,
    )
    return str(cmd.stdout.strip() or "no answer")


def test_first_boot(host: Any) -> None:
    """A VM that provisions itself (`provisioner cloud-init --mode self`): its first boot finished."""
    status = host.file(cloudinit.STATUS_FILE)
    if not status.exists:
        pytest.skip("not provisioned at first boot")
    data = json.loads(status.content_string)
    state, step = data.get("state", "unknown"), data.get("step", "")
    why = f": {data['error']}" if data.get("error") else ""
    assert state == "done", f"first boot {state} at {step!r}{why} (see {cloudinit.FIRSTBOOT_LOG} there)"


def test_docker_running(host: Any) -> None:
    assert host.exists("dockerd"), "Docker is not installed"
    svc = host.service("docker")
    assert svc.is_running, "docker is not running"
    assert svc.is_enabled, "docker is not enabled at boot"


def test_nginx_running(host: Any) -> None:
    assert host.exists("nginx"), "nginx is not installed"
    svc = host.service("nginx")
    assert svc.is_running, "nginx is not running"
    assert svc.is_enabled, "nginx is not enabled at boot"


def test_sshd_running(host: Any) -> None:
    svc = host.service("ssh")
    assert svc.is_running or host.service("ssh.socket").is_running, "sshd is not running"
    assert svc.is_enabled or host.service("ssh.socket").is_enabled, "sshd is not enabled at boot"


def test_nginx_config_valid(host: Any) -> None:
    if not host.exists("nginx"):
        pytest.skip("needs nginx, which is not installed")
    cmd = host.run("nginx -t")
    assert cmd.rc == 0, f"nginx -t: {cmd.stderr.strip().splitlines()[-1:]}"


def test_ports_listening(host: Any) -> None:
    missing = [
        str(p)
        for p in (22, 80, 443)
        if not host.socket(f"tcp://0.0.0.0:{p}").is_listening
        and not host.socket(f"tcp://:::{p}").is_listening
    ]
    if missing and set(missing) <= {"80", "443"} and not service_up(host, "nginx"):
        pytest.skip("needs nginx, which is not running")
    assert not missing, f"not listening: {', '.join(missing)}"


def test_ssh_password_auth_off(host: Any) -> None:
    asked = security_settings(host)
    if asked is not None and asked.get("ssh_password_login"):
        pytest.skip("password logins are allowed by choice (security_ssh_* variables)")
    cmd = host.run("/usr/sbin/sshd -T")
    assert cmd.rc == 0, f"sshd -T failed: {(cmd.stderr.strip().splitlines() or ['no output'])[-1]}"
    conf = sshd_settings(cmd.stdout)
    wrong = [
        f"{key} {' '.join(conf.get(key, ['(not set)']))}"
        for key in ("passwordauthentication", "kbdinteractiveauthentication")
        if conf.get(key) != ["no"]
    ]
    if conf.get("permitrootlogin") == ["yes"]:
        wrong.append("permitrootlogin yes")
    assert not wrong, f"sshd allows password logins: {', '.join(wrong)}"


def test_firewall_active(host: Any, options: Any) -> None:
    asked = security_settings(host)
    if asked is not None and not asked.get("firewall", True):
        pytest.skip("the firewall is off by choice (security_firewall: false)")
    assert host.exists("nft"), "nftables is not installed: no firewall"
    cmd = host.run("nft -j list table %s", FIREWALL_TABLE)
    assert cmd.rc == 0, f"no nftables table {FIREWALL_TABLE}: the firewall is off"
    policy, accepted, broad = firewall_rules(json.loads(cmd.stdout))
    assert policy == "drop", f"the input chain's policy is {policy or 'missing'}, not drop"
    assert not broad, "; ".join(broad)
    sshd = host.run("/usr/sbin/sshd -T")
    if options.firewall_ports is not None:
        wanted = set(parse_ports(options.firewall_ports))
    elif asked is not None:
        wanted = {int(p) for p in asked.get("firewall_tcp_ports", [])}
    else:
        raise AssertionError(f"no {SECURITY_JSON}: the security role never ran here")
    expected = wanted | (sshd_ports(sshd.stdout) if sshd.rc == 0 else set())
    problems = []
    if accepted - expected:
        problems.append(f"open but not expected: {port_list(accepted - expected)}")
    if expected - accepted:
        problems.append(f"expected but not open: {port_list(expected - accepted)}")
    assert not problems, "; ".join(problems)
    assert host.service("provisioner-firewall").is_enabled, (
        "provisioner-firewall is not enabled: the firewall is gone after a reboot"
    )


def test_default_server_404(host: Any) -> None:
    need(host, "nginx")
    code = status_code(host, UNKNOWN_HOST)
    assert code == "404", f"an unknown Host got {code}, not 404"


def test_docker_daemon_settings(host: Any) -> None:
    need(host, "docker")
    f = host.file("/etc/docker/daemon.json")
    assert f.exists, "/etc/docker/daemon.json is missing"
    config = json.loads(f.content_string)
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    wrong = []
    if config.get("live-restore", False) != info.get("LiveRestoreEnabled"):
        wrong.append(
            f"live-restore {info.get('LiveRestoreEnabled')} (daemon.json: {config.get('live-restore')})"
        )
    if config.get("log-driver", "json-file") != info.get("LoggingDriver"):
        wrong.append(f"log driver {info.get('LoggingDriver')}")
    if not config.get("log-opts", {}).get("max-size"):
        wrong.append("no log rotation (log-opts max-size)")
    for opt in config.get("exec-opts", []):
        if opt.startswith("native.cgroupdriver=") and opt.split("=", 1)[1] != info.get("CgroupDriver"):
            wrong.append(f"cgroup driver {info.get('CgroupDriver')}")
    assert not wrong, "; ".join(wrong)


def test_deploy_user(host: Any) -> None:
    user = settings(host).user
    assert host.user(user).exists, f"user {user} does not exist"
    shadow = host.check_output("getent shadow %s | cut -d: -f2", user)
    assert shadow in ("*", "!", "!!", "!*") or shadow.startswith("!"), f"{user} has a password"


def test_deploy_keys_restricted(host: Any) -> None:
    user = settings(host).user
    if not host.user(user).exists:
        pytest.skip(f"needs user {user}")
    f = host.file(f"{host.user(user).home}/.ssh/authorized_keys")
    if not f.exists:
        return
    forced = FORCED.format(program=PROGRAM) + " "
    bad = [
        line[:60]
        for line in f.content_string.splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(forced)
    ]
    assert not bad, f"{len(bad)} key(s) without the forced command: {bad[0]}"
    assert f.user == "root" and not f.mode & 0o022, (
        "authorized_keys must belong to root and not be writable by others"
    )


def test_host_program(host: Any) -> None:
    f = host.file(PROGRAM)
    assert f.exists and f.mode & 0o111, f"{PROGRAM} is missing or not executable"
    hooks = host.run("ls -d %s/*/repo.git/hooks 2>/dev/null", settings(host).apps_dir).stdout.split()
    broken = [h for h in hooks if not host.file(f"{h}/pre-receive").mode & 0o111]
    assert not broken, f"pre-receive hook missing or not executable in {broken[0]}"


def test_stack_images(host: Any) -> None:
    need(host, "docker")
    data = settings(host)
    if data.swarm_role == "worker":
        pytest.skip("a swarm worker: apps build on the managers, it pulls their images")
    missing = [
        img for img in (data.run_image, data.build_image) if host.run("docker image inspect %s", img).rc != 0
    ]
    assert not missing, f"missing: {', '.join(missing)}"


def test_backing_services(host: Any) -> None:
    """Every Postgres and Redis service (postgres:create, redis:create) runs and answers, and the nightly
    backup timer is enabled."""
    data = settings(host)
    problems: list[str] = []
    enabled = host.run("systemctl is-enabled %s", BACKUP_TIMER).stdout.strip()
    if enabled != "enabled":
        problems.append(f"the backup timer {BACKUP_TIMER} is {enabled or 'missing'} (run provisioner up)")
    for kind in services.KINDS.values():
        base = f"{data.services_dir}/{kind.name}"
        for name in host.run("ls %s 2>/dev/null", base).stdout.split():
            record = host.file(f"{base}/{name}/service.json")
            if not services.SERVICE_RE.fullmatch(name) or not record.exists:
                continue
            service = services.Service(data, kind, name)
            state = host.run("docker inspect -f '{{.State.Status}}' %s", service.container).stdout.strip()
            version = str(json.loads(record.content_string).get("version", ""))
            if state != "running":
                problems.append(f"{kind.name} {name} is {state or 'missing'}")
            elif host.run(shlex.join(services.ping_argv(kind, service.container, version))).rc != 0:
                problems.append(f"{kind.name} {name} runs but does not answer")
    assert not problems, "; ".join(problems)


def test_extra_ca_trusted(host: Any, options: Any) -> None:
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    wanted = [open(p).read() for p in options.ca_pem]  # noqa: SIM115 - small local files
    installed = host.run("cat /usr/local/share/ca-certificates/provisioner-*.crt 2>/dev/null").stdout
    certs = re.findall(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", "\n".join(wanted) + installed, re.S
    )
    untrusted = [c for c in certs if c not in bundle]
    assert not untrusted, f"{len(untrusted)} extra CA certificate(s) not in the trust store"


def test_disk_free(host: Any, options: Any, record_property: Any) -> None:
    line = host.check_output("df -P /var/lib | tail -1")
    fields = line.split()
    total, avail = int(fields[1]), int(fields[3])
    pct = 100.0 * avail / total if total else 0.0
    detail = f"{pct:.0f}% free ({avail // 1024} MB) under /var/lib"
    assert pct >= options.disk_min, f"only {detail}, below {options.disk_min:g}%"
    if pct < options.disk_warn:
        record_property("warning", f"{detail}, below {options.disk_warn:g}%")


def test_apps_serving(host: Any) -> None:
    need(host, "docker", "nginx")
    data = settings(host)
    if data.swarm_role:
        pytest.skip("a swarm node: its apps are the cluster check's")
    apps = host.run("ls %s 2>/dev/null", data.apps_dir).stdout.split()
    problems = []
    for app in apps:
        current = host.file(f"{data.apps_dir}/{app}/current.json")
        if not current.exists or host.file(f"{data.apps_dir}/{app}/stopped").exists:
            continue  # created, never deployed; or stopped (ps:stop)
        release = json.loads(current.content_string)
        scale = host.file(f"{data.apps_dir}/{app}/scale.json")
        web = json.loads(scale.content_string).get("web", 1) if scale.exists else 1
        running = host.run(
            "docker ps -q --filter label=io.provisioner.app=%s --filter label=io.provisioner.process=web "
            "--filter label=io.provisioner.release=%s --filter status=running",
            app,
            str(release["version"]),
        ).stdout.split()
        if len(running) < web:
            problems.append(f"{app}: {len(running)} of {web} web containers running")
            continue
        if web == 0:
            continue
        if not host.file(f"{data.vhosts_dir}/{app}.conf").exists:
            problems.append(f"{app}: no vhost")
            continue
        domain = f"{app}.{data.domain}"
        code = status_code(host, domain)
        if not code.isdigit() or not 200 <= int(code) < 400:
            problems.append(f"{app}: GET http://{domain}/ gave {code}")
    assert not problems, "; ".join(problems)


def test_certificates(host: Any, record_property: Any) -> None:
    """Every app certificate parses, is for the app's domains and is not expired (fewer than 14 days left:
    a warning, as is a failed renewal); the renewal timer is enabled."""
    data = settings(host)
    if data.swarm_role == "worker":
        pytest.skip("a swarm worker: certificates are the managers'")
    problems: list[str] = []
    warnings: list[str] = []
    enabled = host.run("systemctl is-enabled %s", RENEW_TIMER).stdout.strip()
    if enabled != "enabled":
        problems.append(f"the renewal timer {RENEW_TIMER} is {enabled or 'missing'} (run provisioner up)")
    for app in host.run("ls %s 2>/dev/null", data.apps_dir).stdout.split():
        base = f"{data.apps_dir}/{app}"
        record = host.file(f"{base}/tls.json")
        if not record.exists:
            continue
        meta = json.loads(record.content_string)
        custom = host.file(f"{base}/domains.json")
        domains = all_domains(data, app, json.loads(custom.content_string) if custom.exists else [])
        try:
            cert = tls.info(host.file(f"{base}/tls/{meta.get('dir', '')}/fullchain.pem").content_string)
        except (tls.CertError, ValueError, RuntimeError, OSError) as exc:
            problems.append(f"{app}: its certificate cannot be read: {exc}")
            continue
        covered = tls.covered(cert.names, domains)
        days = cert.days_left()
        if not covered:
            problems.append(
                f"{app}: the certificate is for {', '.join(cert.names)}, none of {', '.join(domains)}"
            )
        if days <= 0:
            problems.append(f"{app}: the certificate expired on {cert.not_after:%Y-%m-%d}")
        elif days < WARN_DAYS:
            warnings.append(f"{app}: the certificate expires in {days:.0f} days")
        renewal = host.file(f"{base}/letsencrypt.json")
        if renewal.exists:
            state = json.loads(renewal.content_string)
            if state.get("enabled") and state.get("last_error"):
                warnings.append(f"{app}: the last renewal failed: {state['last_error']}")
            elif state.get("enabled") and len(covered) < len(domains):
                warnings.append(
                    f"{app}: not covered yet: {', '.join(d for d in domains if d not in covered)}"
                )
    assert not problems, "; ".join(problems)
    if warnings:
        record_property("warning", "; ".join(warnings))


SERVICE_DOMAINS = '{{index .Spec.TaskTemplate.ContainerSpec.Labels "io.provisioner.domains"}}'


def test_cluster(host: Any) -> None:
    """On a swarm node (`up --swarm`): the node is in the swarm and provisioner-router runs. On a manager
    also: every node ready, a quorum of managers reachable, every app service at its replicas, and each
    node's nginx (this one's and the other nodes', at their addresses) answering for every app."""
    data = settings(host)
    if not data.swarm_role:
        pytest.skip("not a swarm node")
    need(host, "docker")
    problems: list[str] = []
    state = host.run("docker info --format '{{.Swarm.LocalNodeState}}'").stdout.strip()
    if state != "active":
        problems.append(f"the node is not in a swarm (its state: {state or 'unknown'}; run provisioner up)")
    if not service_up(host, "provisioner-router"):
        problems.append("provisioner-router is not running")
    if data.swarm_role == "manager" and state == "active":
        listed = host.run("docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'").stdout
        nodes = [line.split() for line in listed.splitlines() if line.strip()]
        down = [n[0] for n in nodes if n[1:2] != ["Ready"]]
        if down:
            problems.append(f"not ready: {', '.join(down)}")
        managers = [n for n in nodes if len(n) > 2]
        reachable = [n for n in managers if n[2] in ("Leader", "Reachable")]
        if len(reachable) <= len(managers) // 2:
            problems.append(f"{len(reachable)} of {len(managers)} managers reachable: no quorum")
        services = host.run(
            "docker service ls --filter label=io.provisioner.app --format '{{.Name}} {{.Replicas}}'"
        ).stdout
        for line in services.splitlines():
            name, _, replicas = line.partition(" ")
            replicas = replicas.split(" ")[0]
            if not replicas.endswith("/0") and not cluster.converged(replicas):
                problems.append(f"{name}: {replicas} replicas running")
                continue
            domains = host.run("docker service inspect --format %s %s", SERVICE_DOMAINS, name).stdout.strip()
            if not domains or replicas.endswith("/0"):
                continue
            domain = domains.split(",")[0]
            for address in ("127.0.0.1", *data.swarm_peers):
                code = status_code(host, domain, address=address)
                if not code.isdigit() or not 200 <= int(code) < 400:
                    problems.append(f"{name}: GET http://{domain}/ through {address} gave {code}")
    assert not problems, "; ".join(problems)
