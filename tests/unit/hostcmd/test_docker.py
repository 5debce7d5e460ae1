"""docker.py against a small fake Docker engine on a unix socket, and a fake `docker` CLI on PATH."""

import http.server
import json
import os
import socketserver
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import pytest

from provisioner.hostcmd import docker


@dataclass
class Request:
    method: str
    path: str  # with its query string
    body: object  # the parsed JSON body, None without one
    content_type: str | None

    @property
    def route(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)


@dataclass
class Engine:
    """Canned answers by (method, path without query): (status, JSON value or raw bytes)."""

    answers: dict[tuple[str, str], tuple[int, object]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def answer(self, method: str, path: str, status: int = 200, body: object = b"") -> None:
        self.answers[(method, path)] = (status, body)


class _Handler(http.server.BaseHTTPRequestHandler):
    engine: Engine

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = Request(
            self.command, self.path, json.loads(raw) if raw else None, self.headers.get("Content-Type")
        )
        self.engine.requests.append(request)
        status, body = self.engine.answers.get(
            (self.command, request.route), (404, {"message": f"page not found: {request.route}"})
        )
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if data and not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, format, *args):  # unix sockets have no client address to log
        pass


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "docker.sock"
    assert len(str(path)) < 100, "unix socket paths are limited to ~108 bytes"
    fake = Engine()
    handler = type("Handler", (_Handler,), {"engine": fake})
    server = socketserver.ThreadingUnixStreamServer(str(path), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setattr(docker, "SOCKET", str(path))
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- api() -------------------------------------------------------------------------------------------------


def test_api_sends_a_json_body_and_encodes_the_query(engine):
    engine.answer("POST", "/containers/create", 201, {"Id": "c0ffee", "Warnings": []})
    body = {"Image": "provisioner-app/shop:v1", "Env": ["A=x y'\"$(id)", "PORT=5000"]}
    filters = json.dumps({"label": ["io.provisioner.app=shop"]})
    result = docker.api("POST", "/containers/create", body, query={"name": "shop.web.1", "f": filters})
    assert result == {"Id": "c0ffee", "Warnings": []}
    (request,) = engine.requests
    assert request.method == "POST" and request.route == "/containers/create"
    assert request.body == body and request.content_type == "application/json"
    assert request.query == {"name": ["shop.web.1"], "f": [filters]}
    # the query string is encoded: no raw spaces, quotes or braces reach the engine
    assert not any(c in request.path for c in ' "{}')


def test_api_without_a_body_sends_none_and_no_content_type(engine):
    engine.answer("GET", "/info", 200, {"DockerRootDir": "/var/lib/docker"})
    assert docker.api("GET", "/info") == {"DockerRootDir": "/var/lib/docker"}
    (request,) = engine.requests
    assert request.path == "/info" and request.body is None and request.content_type is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"message": "No such image: nope:latest\n"}, "docker: No such image: nope:latest"),
        (409, {"message": "conflict: unable to remove repository reference"}, "docker: conflict: unable"),
        (500, b"  engine exploded\n", "docker: engine exploded"),
        (400, {"error": "no message key"}, 'docker: {"error": "no message key"}'),
    ],
)
def test_an_error_answer_becomes_a_docker_error_with_the_engines_message(engine, status, body, expected):
    engine.answer("POST", "/images/create", status, body)
    with pytest.raises(docker.DockerError) as info:
        docker.api("POST", "/images/create")
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize("body", [b"null", b'"bad gateway"', b"[]"])
def test_an_error_answer_with_a_json_body_that_is_not_an_object_is_a_docker_error(engine, body):
    engine.answer("GET", "/info", 502, body)
    with pytest.raises(docker.DockerError, match=r"^docker: "):
        docker.api("GET", "/info")


def test_an_engine_that_does_not_answer_is_a_docker_error(tmp_path, monkeypatch):
    monkeypatch.setattr(docker, "SOCKET", str(tmp_path / "missing.sock"))
    with pytest.raises(docker.DockerError, match=r"^the Docker engine does not answer: "):
        docker.api("GET", "/info")


def test_an_empty_answer_is_none_and_a_non_json_one_is_text(engine):
    engine.answer("POST", "/containers/c0ffee/start", 204, b"")
    engine.answer("GET", "/_ping", 200, b"OK")
    assert docker.api("POST", "/containers/c0ffee/start") is None
    assert docker.api("GET", "/_ping") == "OK"


# --- images and containers ---------------------------------------------------------------------------------


def test_image_exists_asks_for_the_quoted_reference(engine):
    engine.answer("GET", "/images/provisioner-app%2Fshop%3Av1/json", 200, {"Id": "sha256:1"})
    assert docker.image_exists("provisioner-app/shop:v1") is True
    assert docker.image_exists("provisioner-app/shop:v2") is False
    assert [r.path for r in engine.requests] == [
        "/images/provisioner-app%2Fshop%3Av1/json",
        "/images/provisioner-app%2Fshop%3Av2/json",
    ]


def test_image_config(engine):
    config = {"Entrypoint": ["/usr/local/bin/provisioner-launch"], "ExposedPorts": {"5000/tcp": {}}}
    engine.answer("GET", "/images/with-config/json", 200, {"Id": "sha256:1", "Config": config})
    engine.answer("GET", "/images/no-config/json", 200, {"Id": "sha256:2", "Config": None})
    assert docker.image_config("with-config") == config
    assert docker.image_config("no-config") == {}
    with pytest.raises(docker.DockerError, match="page not found"):
        docker.image_config("missing")


def test_containers_filters_by_labels(engine):
    engine.answer("GET", "/containers/json", 200, [{"Id": "a"}, {"Id": "b"}])
    labels = {"io.provisioner.app": "shop", "io.provisioner.process": "web"}
    assert docker.containers(labels) == [{"Id": "a"}, {"Id": "b"}]
    docker.containers({"io.provisioner.app": "shop"}, all_=False)
    first, second = engine.requests
    assert first.query["all"] == ["1"]
    assert json.loads(first.query["filters"][0]) == {
        "label": ["io.provisioner.app=shop", "io.provisioner.process=web"]
    }
    assert second.query["all"] == ["0"]
    assert json.loads(second.query["filters"][0]) == {"label": ["io.provisioner.app=shop"]}


def test_inspect_quotes_the_container_name(engine):
    engine.answer("GET", "/containers/shop.web.1.v2-abc123/json", 200, {"Id": "c0ffee", "Name": "/x"})
    assert docker.inspect("shop.web.1.v2-abc123") == {"Id": "c0ffee", "Name": "/x"}
    with pytest.raises(docker.DockerError):
        docker.inspect("a/../../images")
    assert engine.requests[-1].path == "/containers/a%2F..%2F..%2Fimages/json"


def test_app_image_names():
    assert docker.app_image("shop", 3) == "provisioner-app/shop:v3"


def test_app_images_groups_provisioner_app_tags_by_app(engine):
    engine.answer(
        "GET",
        "/images/json",
        200,
        [
            {"Id": "1", "RepoTags": ["provisioner-app/shop:v1", "provisioner-app/blog:v1"]},
            {"Id": "2", "RepoTags": ["provisioner-app/shop:v2"]},
            {"Id": "3", "RepoTags": ["provisioner/stack-run:bookworm", "python:3.12-slim"]},
            {"Id": "4", "RepoTags": ["registry.local:5000/provisioner-app/shop:v9"]},
            {"Id": "5", "RepoTags": None},  # dangling
            {"Id": "6"},
        ],
    )
    assert docker.app_images() == {
        "shop": ["provisioner-app/shop:v1", "provisioner-app/shop:v2"],
        "blog": ["provisioner-app/blog:v1"],
    }


def test_app_images_of_an_empty_engine(engine):
    engine.answer("GET", "/images/json", 200, [])
    assert docker.app_images() == {}


def test_remove_image(engine):
    engine.answer("DELETE", "/images/provisioner-app%2Fshop%3Av1", 200, [{"Untagged": "x"}])
    assert docker.remove_image("provisioner-app/shop:v1") is True
    assert docker.remove_image("provisioner-app/shop:v1", force=True) is True
    engine.answer("DELETE", "/images/provisioner-app%2Fshop%3Av1", 409, {"message": "image is in use"})
    assert docker.remove_image("provisioner-app/shop:v1") is False
    assert docker.remove_image("provisioner-app/gone:v1") is False  # 404
    assert [(r.method, r.path) for r in engine.requests] == [
        ("DELETE", "/images/provisioner-app%2Fshop%3Av1"),
        ("DELETE", "/images/provisioner-app%2Fshop%3Av1?force=1"),
        ("DELETE", "/images/provisioner-app%2Fshop%3Av1"),
        ("DELETE", "/images/provisioner-app%2Fgone%3Av1"),
    ]


# --- the docker CLI ----------------------------------------------------------------------------------------

FAKE_DOCKER = """#!/bin/sh
# A fake docker CLI: records its argv (NUL-separated), prints lines, exits with $FAKE_DOCKER_RC.
printf '%s\\0' "$@" > "$FAKE_DOCKER_ARGV"
i=1
while [ "$i" -le "${FAKE_DOCKER_LINES:-3}" ]; do
    echo "line $i"
    i=$((i + 1))
done
if [ -n "$FAKE_DOCKER_STDERR" ]; then echo "$FAKE_DOCKER_STDERR" >&2; fi
if [ -n "$FAKE_DOCKER_HANG" ]; then exec sleep 30; fi
exit "${FAKE_DOCKER_RC:-0}"
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A `docker` script first on PATH; returns a function reading the argv of its last run."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    argv_file = tmp_path / "argv"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_ARGV", str(argv_file))
    for name in ("FAKE_DOCKER_RC", "FAKE_DOCKER_LINES", "FAKE_DOCKER_STDERR", "FAKE_DOCKER_HANG"):
        monkeypatch.delenv(name, raising=False)

    def argv() -> list[str]:
        return argv_file.read_bytes().decode().split("\0")[:-1]

    return argv


def test_stream_passes_each_line_to_say_and_returns_the_exit_code_and_tail(fake_cli, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_LINES", "25")
    monkeypatch.setenv("FAKE_DOCKER_STDERR", "error: no space left on device")
    monkeypatch.setenv("FAKE_DOCKER_RC", "3")
    said = []
    rc, tail = docker.stream(["build", "-t", "provisioner-app/shop:v1", "/tmp/a dir"], said.append)
    assert fake_cli() == ["build", "-t", "provisioner-app/shop:v1", "/tmp/a dir"]
    lines = [f"line {i}" for i in range(1, 26)] + ["error: no space left on device"]
    assert said == lines  # stderr too, and without newlines
    assert tail == lines[-20:] and len(tail) == 20
    assert rc == 3


def test_stream_of_a_short_successful_command(fake_cli):
    said = []
    assert docker.stream(["version"], said.append) == (0, ["line 1", "line 2", "line 3"])
    assert fake_cli() == ["version"] and said == ["line 1", "line 2", "line 3"]


@pytest.mark.parametrize(
    ("follow", "argv"),
    [
        (False, ["logs", "--tail", "5", "shop.web.1.v2-abc123"]),
        (True, ["logs", "--tail", "5", "-f", "shop.web.1.v2-abc123"]),
    ],
)
def test_follow_logs_yields_the_lines_of_docker_logs(fake_cli, monkeypatch, follow, argv):
    monkeypatch.setenv("FAKE_DOCKER_STDERR", "a line on stderr")
    lines = list(docker.follow_logs("shop.web.1.v2-abc123", 5, follow))
    assert lines == ["line 1", "line 2", "line 3", "a line on stderr"]
    assert fake_cli() == argv


def test_follow_logs_stops_docker_logs_when_the_reader_stops(fake_cli, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_HANG", "1")  # like `docker logs -f`: never ends by itself
    logs = docker.follow_logs("shop.web.1.v2-abc123", 20, True)
    assert next(logs) == "line 1"
    started = time.monotonic()
    logs.close()
    assert time.monotonic() - started < 5


def test_cli_raises_with_the_last_line_of_stderr(fake_cli, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_RC", "1")
    monkeypatch.setenv("FAKE_DOCKER_STDERR", "Error response from daemon: pull access denied")
    with pytest.raises(docker.DockerError, match=r"^docker pull failed: Error response from daemon: pull"):
        docker.cli("pull", "nope")
    assert fake_cli() == ["pull", "nope"]
    assert docker.cli("pull", "nope", check=False).returncode == 1


def test_logs_tail_joins_stdout_and_stderr(fake_cli, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_STDERR", "on stderr")
    assert docker.logs_tail("shop.web.1.v2-abc123") == "line 1\nline 2\nline 3\non stderr"
    assert fake_cli() == ["logs", "--tail", "20", "shop.web.1.v2-abc123"]
