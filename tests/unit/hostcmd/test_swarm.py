"""The Swarm scheduler's pure parts: service specs and the health check script, as strings and dicts."""

from __future__ import annotations

import subprocess

import pytest

from provisioner.hostcmd import swarm
from provisioner.hostcmd.procfile import HealthCheck
from provisioner.hostcmd.scheduler import Mount, ProcessSpec
from provisioner.hostcmd.settings import Settings


def web(**kw) -> ProcessSpec:
    base = dict(
        app="shop",
        process="web",
        index=1,
        version=7,
        image="provisioner-app/shop:v7",
        command="gunicorn app:app",
        env={"SECRET": "s3"},
        port=5000,
        memory="256m",
        cpus=0.5,
        pids=100,
    )
    base.update(kw)
    return ProcessSpec(**base)


def spec(**kw):
    return swarm.service_spec(
        web(**kw),
        3,
        "10.0.0.1:5000/provisioner-app/shop:v7",
        launcher=True,
        health=HealthCheck("http", "/health", 20),
        domains=["shop.example.com", "www.shop.example.com"],
    )


def test_a_web_process_is_a_dnsrr_service_updated_start_first_with_rollback():
    body = spec()
    assert body["Name"] == "shop_web"
    assert body["Mode"] == {"Replicated": {"Replicas": 3}}
    assert body["EndpointSpec"] == {"Mode": "dnsrr"}
    assert body["UpdateConfig"]["Order"] == "start-first"
    assert body["UpdateConfig"]["FailureAction"] == "rollback"
    assert body["UpdateConfig"]["Parallelism"] == 1
    task = body["TaskTemplate"]
    assert task["Networks"] == [{"Target": "provisioner-app-shop"}]
    assert task["Resources"]["Limits"] == {"MemoryBytes": 256 * 1024**2, "Pids": 100, "NanoCPUs": 500000000}
    container = task["ContainerSpec"]
    assert container["Image"] == "10.0.0.1:5000/provisioner-app/shop:v7"
    assert container["Args"] == ["gunicorn app:app"]  # the launcher's argument; the entrypoint stays
    assert "Command" not in container
    assert container["Env"] == ["PORT=5000", "SECRET=s3"]
    assert container["CapabilityDrop"] == ["ALL"] and "CAP_NET_BIND_SERVICE" in container["CapabilityAdd"]
    labels = container["Labels"]
    assert labels["io.provisioner.domains"] == "shop.example.com,www.shop.example.com"
    assert labels["io.provisioner.port"] == "5000" and labels["io.provisioner.release"] == "7"
    health = container["Healthcheck"]
    assert health["StartPeriod"] == 20 * swarm.SECOND and health["Test"][0] == "CMD-SHELL"


def test_without_the_launcher_the_command_runs_under_sh_and_a_worker_has_no_health_check_or_domains():
    body = swarm.service_spec(
        web(process="worker", port=None, mounts=(Mount("/srv/x", "/data"),)),
        1,
        "r/i:v1",
        launcher=False,
        health=None,
        domains=["a.example.com"],
    )
    container = body["TaskTemplate"]["ContainerSpec"]
    assert container["Args"] == ["/bin/sh", "-c", "gunicorn app:app"]
    assert "Healthcheck" not in container and "io.provisioner.domains" not in container["Labels"]
    assert container["Mounts"] == [{"Type": "bind", "Source": "/srv/x", "Target": "/data"}]
    assert body["Name"] == "shop_worker"


def test_config_values_are_not_go_templates():
    body = spec(env={"TPL": "{{.Node.Hostname}} and {{ x }}"})
    env = body["TaskTemplate"]["ContainerSpec"]["Env"]
    assert 'TPL={{"{{"}}.Node.Hostname}} and {{"{{"}} x }}' in env


def test_swarm_runs_on_managers_with_a_registry_only():
    assert swarm.enabled(Settings(swarm_role="manager", swarm_registry="10.0.0.1:5000"))
    assert not swarm.enabled(Settings(swarm_role="worker", swarm_registry="10.0.0.1:5000"))
    assert not swarm.enabled(Settings())
    assert swarm.registry_ref(Settings(swarm_registry="10.0.0.1:5000"), "provisioner-app/a:v2") == (
        "10.0.0.1:5000/provisioner-app/a:v2"
    )


def run_check(script: str, answer: str) -> int:
    """The health script under bash against a one-shot local server answering `answer`."""
    server = subprocess.Popen(["python3", "-c", SERVER, answer], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = server.stdout.readline().strip()
    try:
        return subprocess.run(["sh", "-c", script.replace("{PORT}", port)], timeout=10).returncode
    finally:
        server.kill()
        server.wait()


SERVER = r"""
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); data = b""
    while b"\r\n\r\n" not in data and (chunk := c.recv(4096)):
        data += chunk
    c.sendall(sys.argv[1].encode()); c.close()
"""


def test_the_health_script_passes_2xx_and_3xx_and_fails_5xx():
    test = swarm.health_test(HealthCheck("http", "/health", 10), 1)["Test"][1]
    script = test.replace("p=1;", "p={PORT};")
    assert run_check(script, "HTTP/1.1 200 OK\r\n\r\nok") == 0
    assert run_check(script, "HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n") == 0
    assert run_check(script, "HTTP/1.1 500 Broken\r\n\r\n") == 1
    tcp = swarm.health_test(HealthCheck("tcp", "/", 10), 1)["Test"][1].replace("p=1;", "p={PORT};")
    assert run_check(tcp, "") == 0


def test_a_hostile_health_path_stays_one_argument():
    test = swarm.health_test(HealthCheck("http", "/x'; touch /tmp/pwned; '", 10), 5000)["Test"][1]
    assert "path='/x'\"'\"'; touch /tmp/pwned; '\"'\"''" in test


def test_only_a_scale_leaves_the_running_tasks_alone():
    """Every other update (a restart, a domain, a config value) is marked by a new ForceUpdate counter,
    which the rollout waits for: a changed label alone would leave the old tasks counted as the new."""
    current = spec()
    current["TaskTemplate"]["ContainerSpec"]["Image"] += "@sha256:" + "0" * 64  # as Swarm stores it
    scaled = spec()
    scaled["Mode"]["Replicated"]["Replicas"] = 5
    assert swarm._only_scaled(scaled, current)
    assert not swarm._only_scaled(spec(), current)  # a restart
    other_domains = swarm.service_spec(
        web(), 3, "10.0.0.1:5000/provisioner-app/shop:v7", launcher=True,
        health=HealthCheck("http", "/health", 20), domains=["shop.example.com", "new.example.com"],
    )  # fmt: skip
    assert not swarm._only_scaled(other_domains, current)
    other_domains["Mode"]["Replicated"]["Replicas"] = 5
    assert not swarm._only_scaled(other_domains, current)
    assert not swarm._only_scaled(spec(env={"SECRET": "s4"}), current)


def test_a_service_carries_the_release_record_without_the_config_values_which_come_from_its_environment():
    from provisioner.hostcmd.store import Release

    release = Release(
        7, "provisioner-app/shop:v7", {"web": "gunicorn app:app", "worker": "celery"}, 5000,
        config={"SECRET": "s3 {{x}}", "WEB_CONCURRENCY": "3"}, commit="abc",
    )  # fmt: skip
    record = swarm.record_label(release.to_dict(), ["www.shop.example.com"])
    assert "s3" not in record and '"config_keys":["SECRET","WEB_CONCURRENCY"]' in record
    env = {"SECRET": "s3 {{x}}", "WEB_CONCURRENCY": "3", "DYNO": "web.1"}
    web_body = swarm.service_spec(
        web(env=env), 3, "10.0.0.1:5000/provisioner-app/shop:v7", launcher=True,
        health=HealthCheck("http", "/health", 20), domains=["shop.example.com"], record=record,
    )  # fmt: skip
    older = swarm.service_spec(
        web(process="worker", port=None, version=6, env={"SECRET": "old"}), 2, "r/provisioner-app/shop:v6",
        launcher=True, health=None, domains=[], record=record.replace('"version":7', '"version":6'),
    )  # fmt: skip
    found = swarm.read_record([{"Spec": older}, {"Spec": web_body}])
    assert found is not None
    assert Release.from_dict(found.release) == release  # the newest record, its values from the env
    assert found.scale == {"web": 3, "worker": 2}
    assert found.domains == ["www.shop.example.com"]
    assert swarm.read_record([{"Spec": {"Labels": {swarm.RECORD_LABEL: "{not json"}}}]) is None
    assert swarm.read_record([]) is None


def test_an_image_another_manager_pushed_is_pushed_again_under_its_own_name():
    assert swarm._unregistered("10.0.0.1:5000/provisioner-app/shop:v7") == "provisioner-app/shop:v7"
    assert swarm._unregistered("provisioner-app/shop:v7") == "provisioner-app/shop:v7"


def test_a_manager_takes_over_an_app_another_manager_deployed(tmp_path, monkeypatch):
    from provisioner.hostcmd.store import App, Release

    settings = Settings(apps_dir=str(tmp_path), swarm_role="manager", swarm_registry="10.0.0.2:5000")
    release = Release(4, "provisioner-app/shop:v4", {"web": "gunicorn app:app"}, 5000, config={"K": "v"})
    body = swarm.service_spec(
        web(env={"K": "v", "DYNO": "web.1"}), 2, "10.0.0.1:5000/provisioner-app/shop:v4", launcher=True,
        health=None, domains=["x"], record=swarm.record_label(release.to_dict(), ["www.shop.example.com"]),
    )  # fmt: skip
    monkeypatch.setattr(swarm.Swarm, "services", lambda self, app: [{"Spec": body}] if app == "shop" else [])
    monkeypatch.setattr(swarm.Swarm, "wait_for_leader", lambda self, say: None)
    said: list[str] = []
    made: list[str] = []
    app = App(settings, "shop")
    assert swarm.adopt(app, lambda repo: made.append(str(repo)), said.append)
    assert app.current() == release and app.next_version() == 5
    assert app.config() == {"K": "v"} and app.scale() == {"web": 2}
    assert app.domains() == ["www.shop.example.com"] and made == [str(app.repo)]
    assert "v4 taken over" in said[0]
    assert not swarm.adopt(app, made.append, said.append)  # once: it has a release now
    assert not swarm.adopt(App(settings, "other"), made.append, said.append)  # the swarm runs no such app
    assert not App(settings, "other").exists()
    single = Settings(apps_dir=str(tmp_path / "single"))
    assert not swarm.adopt(App(single, "shop"), made.append, said.append)  # one host: nothing to take over


def test_a_command_waits_for_a_new_leader_but_not_for_other_errors(monkeypatch):
    from provisioner.hostcmd import docker

    answers = [docker.DockerError("docker: The swarm does not have a leader."), None, None]

    def api(method, path, *a, **kw):
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return {}

    monkeypatch.setattr(docker, "api", api)
    monkeypatch.setattr(swarm.time, "sleep", lambda s: None)
    said: list[str] = []
    sched = swarm.Swarm(Settings(swarm_role="manager", swarm_registry="10.0.0.1:5000"))
    sched.wait_for_leader(said.append)
    assert "waiting for the election" in said[0] and "a leader was elected" in said[1]
    answers[:] = [docker.DockerError("docker: This node is not a swarm manager.")]
    with pytest.raises(swarm.SwarmError, match="the cluster does not answer: docker: This node is not"):
        sched.wait_for_leader(said.append)
