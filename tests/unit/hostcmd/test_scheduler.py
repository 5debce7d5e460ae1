"""LocalDocker against a fake docker module: what it asks the engine, and how it reads the answers."""

import re
import socket
from dataclasses import dataclass, field

import pytest

from provisioner.hostcmd import scheduler
from provisioner.hostcmd.docker import DockerError
from provisioner.hostcmd.scheduler import LABEL, Instance, LocalDocker, ProcessSpec, memory_bytes


def inspect_data(name, process="web", index=1, version=1, status="running", host_port=None, **state):
    """What the engine's /containers/ID/json answers, reduced to the fields LocalDocker reads."""
    bindings = {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]} if host_port else {}
    return {
        "Id": f"id-{name}",
        "Name": f"/{name}",
        "Config": {
            "Labels": {
                LABEL: "shop",
                "io.provisioner.process": process,
                "io.provisioner.index": str(index),
                "io.provisioner.release": str(version),
            }
        },
        "State": {"Status": status, "StartedAt": "2024-05-01T10:00:00Z", **state},
        "HostConfig": {"PortBindings": bindings},
    }


@dataclass
class FakeDocker:
    """Stands in for docker.api/inspect/containers/image_config/logs_tail; records every call."""

    calls: list[tuple] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # regexes of "METHOD /path" calls that raise DockerError
    containers_by_id: dict[str, dict] = field(default_factory=dict)
    entrypoint: list[str] | None = None
    wait_result: object = field(default_factory=lambda: {"StatusCode": 0})

    def api(self, method, path, body=None, query=None, timeout=120):
        self.calls.append((method, path, body, query, timeout))
        if any(re.search(pattern, f"{method} {path}") for pattern in self.failing):
            raise DockerError(f"docker: {method} {path} failed")
        if path == "/containers/create":
            name = query["name"]
            self.containers_by_id[f"id-{name}"] = inspect_data(name)
            return {"Id": f"id-{name}", "Warnings": []}
        if path.endswith("/wait"):
            return self.wait_result
        return None

    def inspect(self, name):
        self.calls.append(("inspect", name))
        if name not in self.containers_by_id:
            raise DockerError(f"docker: No such container: {name}")
        return self.containers_by_id[name]

    def containers(self, labels, all_=True):
        self.calls.append(("containers", labels))
        return [{"Id": cid} for cid in self.containers_by_id]

    def image_config(self, ref):
        return {"Entrypoint": self.entrypoint, "Cmd": None}

    def logs_tail(self, name, lines=20):
        self.calls.append(("logs_tail", name, lines))
        return "migrated 3 tables"

    def api_calls(self):
        """Calls about containers (the app's network has its own: network_calls)."""
        return [
            c for c in self.calls if c[0] in ("GET", "POST", "DELETE") and not c[1].startswith("/networks")
        ]

    def network_calls(self):
        return [
            c[:3] for c in self.calls if c[0] in ("GET", "POST", "DELETE") and c[1].startswith("/networks")
        ]


@pytest.fixture
def fake(monkeypatch):
    fake = FakeDocker()
    for name in ("api", "inspect", "containers", "image_config", "logs_tail"):
        monkeypatch.setattr(scheduler.docker, name, getattr(fake, name))
    monkeypatch.setattr(scheduler, "free_port", lambda: 41234)
    return fake


def web_spec(**changes):
    values = {
        "app": "shop",
        "process": "web",
        "index": 2,
        "version": 7,
        "image": "provisioner-app/shop:v7",
        "command": "gunicorn app:app",
        "env": {"ZED": "last", "ALPHA": "a b\n'c'", "DATABASE_URL": "postgres://u:p@h/db"},
        "port": 5000,
        "memory": "1g",
    }
    return ProcessSpec(**{**values, **changes})


# --- networks ----------------------------------------------------------------------------------------------


def test_each_app_gets_its_own_network_created_once(fake):
    fake.failing = {"GET /networks/provisioner-app.shop$"}  # not there yet
    sched = LocalDocker()
    sched.start(web_spec())
    sched.start(web_spec(index=3))
    assert fake.network_calls() == [
        ("GET", "/networks/provisioner-app.shop", None),
        (
            "POST",
            "/networks/create",
            {
                "Name": "provisioner-app.shop",
                "Driver": "bridge",
                "CheckDuplicate": True,
                "Labels": {LABEL: "shop"},
            },
        ),
    ]
    sched.start(web_spec(app="blog"))
    assert fake.network_calls()[-1] == ("GET", "/networks/provisioner-app.blog", None)  # exists: reused


def test_forgetting_an_app_removes_its_network(fake):
    LocalDocker().forget("shop")
    assert fake.network_calls() == [("DELETE", "/networks/provisioner-app.shop", None)]


# --- start -------------------------------------------------------------------------------------------------


def test_start_creates_then_starts_a_named_labelled_container(fake):
    instance = LocalDocker().start(web_spec())
    (create, start) = fake.api_calls()
    method, path, body, query, _timeout = create
    assert (method, path) == ("POST", "/containers/create")
    assert re.fullmatch(r"shop\.web\.2\.v7-[0-9a-f]{6}", query["name"])
    assert body == {
        "Image": "provisioner-app/shop:v7",
        "Labels": {
            "io.provisioner.app": "shop",
            "io.provisioner.process": "web",
            "io.provisioner.index": "2",
            "io.provisioner.release": "7",
        },
        "HostConfig": {
            "Memory": 1024**3,
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "SecurityOpt": ["no-new-privileges"],
            "CapDrop": ["ALL"],
            "CapAdd": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE", "KILL"],
            "PidsLimit": 512,
            "NetworkMode": "provisioner-app.shop",
            "PortBindings": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41234"}]},
        },
        "ExposedPorts": {"5000/tcp": {}},
        "Env": [
            "ALPHA=a b\n'c'",
            "DATABASE_URL=postgres://u:p@h/db",
            "PORT=5000",
            "ZED=last",
        ],
        "Cmd": ["/bin/sh", "-c", "gunicorn app:app"],  # no launcher in the image: a shell runs it
    }
    assert start[:2] == ("POST", f"/containers/id-{query['name']}/start")
    assert fake.calls[-1] == ("inspect", f"id-{query['name']}")
    assert instance.name == query["name"] and instance.state == "running"


def test_start_names_are_unique_per_start(fake):
    first = LocalDocker().start(web_spec())
    second = LocalDocker().start(web_spec())
    assert first.name != second.name


def test_a_worker_has_no_port_and_no_port_env(fake):
    LocalDocker().start(web_spec(process="worker", index=1, port=None, env={"PORT": "from config"}))
    body = fake.api_calls()[0][2]
    assert "ExposedPorts" not in body and "PortBindings" not in body["HostConfig"]
    assert body["Env"] == ["PORT=from config"]  # config is passed as is; only web gets PORT set
    assert body["Labels"]["io.provisioner.process"] == "worker"


def test_cpu_and_process_limits_reach_the_container(fake):
    LocalDocker().start(web_spec(cpus=0.5, pids=128))
    host = fake.api_calls()[0][2]["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 128


def test_the_web_port_overrides_a_port_config_var(fake):
    LocalDocker().start(web_spec(env={"PORT": "9999"}))
    assert fake.api_calls()[0][2]["Env"] == ["PORT=5000"]


def test_a_dockerfile_image_without_a_command_keeps_its_own_cmd(fake):
    LocalDocker().start(web_spec(command=None, env={}))
    body = fake.api_calls()[0][2]
    assert "Cmd" not in body and body["Env"] == ["PORT=5000"]


@pytest.mark.parametrize(
    ("entrypoint", "launcher"),
    [
        (["/usr/local/bin/provisioner-launch"], True),
        (["/usr/local/bin/provisioner-launch", "--verbose"], True),
        (["/bin/sh", "-c"], False),
        ([], False),
        (None, False),
    ],
)
def test_the_launcher_entrypoint_decides_whether_a_shell_runs_the_command(fake, entrypoint, launcher):
    fake.entrypoint = entrypoint
    LocalDocker().start(web_spec(command="python manage.py runserver"))
    cmd = fake.api_calls()[0][2]["Cmd"]
    expected = ["python manage.py runserver"] if launcher else ["/bin/sh", "-c", "python manage.py runserver"]
    assert cmd == expected


def test_an_invalid_memory_limit_creates_nothing(fake):
    with pytest.raises(ValueError, match="invalid memory limit"):
        LocalDocker().start(web_spec(memory="lots"))
    assert fake.calls == []


def test_a_failed_create_starts_nothing(fake):
    fake.failing.add("/containers/create$")
    with pytest.raises(DockerError):
        LocalDocker().start(web_spec())
    assert [c[1] for c in fake.api_calls()] == ["/containers/create"]


# --- reading containers ------------------------------------------------------------------------------------


def test_instance_is_read_from_inspect_data():
    data = inspect_data("shop.web.2.v7-abc123", "web", 2, 7, "running", 41234)
    assert LocalDocker()._instance(data) == Instance(
        name="shop.web.2.v7-abc123",
        app="shop",
        process="web",
        index=2,
        version=7,
        state="running",
        host_port=41234,
        started="2024-05-01T10:00:00Z",
    )


def test_instance_of_sparse_inspect_data():
    assert LocalDocker()._instance({}) == Instance("", "", "", 0, 0, "unknown", None, "")
    data = {
        "Name": "/x",
        "Config": {"Labels": None},
        "State": None,
        "HostConfig": {"PortBindings": {"5000/tcp": None, "6000/tcp": [{"HostIp": "127.0.0.1"}]}},
    }
    assert LocalDocker()._instance(data) == Instance("x", "", "", 0, 0, "unknown", None, "")


def test_instances_are_sorted_by_version_process_and_index(fake):
    for data in (
        inspect_data("shop.worker.1.v3-aaaaaa", "worker", 1, 3),
        inspect_data("shop.web.2.v3-bbbbbb", "web", 2, 3, host_port=40002),
        inspect_data("shop.web.10.v2-cccccc", "web", 10, 2, host_port=40010),
        inspect_data("shop.web.1.v3-dddddd", "web", 1, 3, host_port=40001),
    ):
        fake.containers_by_id[data["Id"]] = data
    found = LocalDocker().instances("shop")
    assert [(i.version, i.process, i.index) for i in found] == [
        (2, "web", 10),
        (3, "web", 1),
        (3, "web", 2),
        (3, "worker", 1),
    ]
    assert [i.host_port for i in found] == [40010, 40001, 40002, None]
    assert fake.calls[0] == ("containers", {LABEL: "shop"})


def test_instances_of_an_app_without_containers(fake):
    assert LocalDocker().instances("shop") == []


@pytest.mark.parametrize(
    ("state", "alive"),
    [
        ({"Running": True, "Restarting": False}, True),
        ({"Running": True, "Restarting": True}, False),  # crash-looping under the restart policy
        ({"Running": False, "Restarting": False, "ExitCode": 1}, False),
        ({}, False),
    ],
)
def test_alive_needs_a_running_container_that_is_not_restarting(fake, state, alive):
    fake.containers_by_id["shop.web.1.v1-abc123"] = {"State": state}
    assert LocalDocker().alive(Instance("shop.web.1.v1-abc123", "shop", "web", 1, 1, "", None)) is alive


def test_a_container_that_is_gone_is_not_alive(fake):
    assert LocalDocker().alive(Instance("shop.web.1.v1-gone00", "shop", "web", 1, 1, "", None)) is False


# --- stop and run_once -------------------------------------------------------------------------------------

INSTANCE = Instance("shop.web.1.v1-abc123", "shop", "web", 1, 1, "running", 41234)


def test_stop_stops_with_a_grace_period_then_removes(fake):
    LocalDocker().stop(INSTANCE, grace=2.5)
    assert fake.api_calls() == [
        ("POST", "/containers/shop.web.1.v1-abc123/stop", None, {"t": 2}, 62.5),
        ("DELETE", "/containers/shop.web.1.v1-abc123", None, {"force": 1}, 120),
    ]


def test_stop_removes_even_when_stopping_fails_and_swallows_docker_errors(fake):
    fake.failing.update({"/stop$", "^DELETE "})
    LocalDocker().stop(INSTANCE)
    assert [(c[0], c[1]) for c in fake.api_calls()] == [
        ("POST", "/containers/shop.web.1.v1-abc123/stop"),
        ("DELETE", "/containers/shop.web.1.v1-abc123"),
    ]


def test_run_once_runs_a_one_off_container_and_removes_it(fake):
    spec = web_spec(process="release", index=0, port=None, command="./migrate", env={"A": "1"})
    assert LocalDocker().run_once(spec, timeout=30) == (0, "migrated 3 tables")
    create, start, wait, delete = fake.api_calls()
    name = create[3]["name"]
    assert re.fullmatch(r"shop\.release\.v7-[0-9a-f]{6}", name)
    assert create[2]["HostConfig"]["RestartPolicy"] == {"Name": "no"}
    assert create[2]["Cmd"] == ["/bin/sh", "-c", "./migrate"] and create[2]["Env"] == ["A=1"]
    assert start[:2] == ("POST", f"/containers/id-{name}/start")
    assert wait[:2] == ("POST", f"/containers/id-{name}/wait") and wait[4] == 30
    assert ("logs_tail", f"id-{name}", 200) in fake.calls
    assert delete[:4] == ("DELETE", f"/containers/id-{name}", None, {"force": 1})


@pytest.mark.parametrize(("result", "code"), [({"StatusCode": 3}, 3), ({}, 1)])
def test_run_once_returns_the_exit_code(fake, result, code):
    fake.wait_result = result
    assert LocalDocker().run_once(web_spec(port=None))[0] == code


@pytest.mark.parametrize("failing", ["/start$", "/wait$"])
def test_run_once_removes_its_container_when_start_or_wait_fails(fake, failing):
    fake.failing.add(failing)
    with pytest.raises(DockerError):
        LocalDocker().run_once(web_spec(port=None))
    name = fake.api_calls()[0][3]["name"]
    assert fake.api_calls()[-1][:4] == ("DELETE", f"/containers/id-{name}", None, {"force": 1})
    assert not any(c[0] == "logs_tail" for c in fake.calls)


def test_run_once_keeps_the_first_error_when_the_removal_fails_too(fake):
    fake.failing.update({"/wait$", "^DELETE "})
    with pytest.raises(DockerError, match="/wait failed"):
        LocalDocker().run_once(web_spec(port=None))
    assert fake.api_calls()[-1][0] == "DELETE"


def test_log_tail_and_logs_go_to_the_container(fake, monkeypatch):
    followed = []
    monkeypatch.setattr(
        scheduler.docker, "follow_logs", lambda name, lines, follow: followed.append((name, lines, follow))
    )
    assert LocalDocker().log_tail(INSTANCE, 50) == "migrated 3 tables"
    assert fake.calls == [("logs_tail", "shop.web.1.v1-abc123", 50)]
    LocalDocker().logs(INSTANCE, 100, True)
    assert followed == [("shop.web.1.v1-abc123", 100, True)]


# --- helpers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1G", 1024**3),
        ("512mb", 512 * 1024**2),
        ("512MB", 512 * 1024**2),
        (" 64k ", 64 * 1024),
        ("2gb", 2 * 1024**3),
        ("1048576", 1024**2),
        ("100b", 100),
        ("0", 0),  # the engine reads 0 as "no limit"
    ],
)
def test_memory_bytes(text, expected):
    assert memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "m", "1.5g", "-1m", "1t", "1 g", "1gib", "one gig", "0x10"])
def test_memory_bytes_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match=re.escape(f"invalid memory limit {text!r}")):
        memory_bytes(text)


def test_free_port_is_a_port_nothing_listens_on():
    port = scheduler.free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
