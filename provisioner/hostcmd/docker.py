"""The local Docker engine: its HTTP API over the unix socket (no shell, config values never on a command
line), and the docker CLI for streaming work (build, logs)."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SOCKET = os.environ.get("PROVISIONER_DOCKER_SOCKET", "/var/run/docker.sock")
APP_REPO = "provisioner-app/"  # app images are provisioner-app/APP:vN


class DockerError(RuntimeError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def api(
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, Any] | None = None,
    timeout: float = 120,
    raw: bool = False,
) -> Any:
    """The engine's answer, parsed from JSON (raw: its bytes as they are, e.g. a tar archive)."""
    if query:
        path = f"{path}?{urllib.parse.urlencode(query)}"
    conn = _UnixConnection(SOCKET, timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    except OSError as exc:
        raise DockerError(f"the Docker engine does not answer: {exc}") from None
    finally:
        conn.close()
    if resp.status >= 400:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        text = data.decode(errors="replace")
        message = str(parsed.get("message", text)) if isinstance(parsed, dict) else text
        raise DockerError(f"docker: {message.strip()}")
    if raw:
        return data
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def cli(
    *args: str, check: bool = True, capture: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()
        raise DockerError(f"docker {args[0]} failed: {detail[-1] if detail else proc.returncode}")
    return proc


def image_exists(ref: str) -> bool:
    try:
        api("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
        return True
    except DockerError:
        return False


def image_config(ref: str) -> dict[str, Any]:
    return dict(api("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json").get("Config") or {})


def image_file(ref: str, path: str, limit: int = 1024 * 1024) -> bytes | None:
    """A regular file of an image (e.g. /etc/passwd), read through a container that is created, never
    started, and removed; None when the image has no such regular file (or it is larger than limit)."""
    created = api("POST", "/containers/create", {"Image": ref, "Entrypoint": ["/nonexistent"], "Cmd": []})
    try:
        try:
            data = api("GET", f"/containers/{created['Id']}/archive", query={"path": path}, raw=True)
        except DockerError:
            return None
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                if member is None or not member.isreg() or member.size > limit:
                    return None
                fh = tar.extractfile(member)
                return fh.read() if fh else None
        except tarfile.TarError:
            return None
    finally:
        api("DELETE", f"/containers/{created['Id']}", query={"force": 1})


def containers(labels: dict[str, str], all_: bool = True) -> list[dict[str, Any]]:
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    return list(api("GET", "/containers/json", query={"all": int(all_), "filters": json.dumps(filters)}))


def inspect(name: str) -> dict[str, Any]:
    return dict(api("GET", f"/containers/{urllib.parse.quote(name, safe='')}/json"))


def logs_tail(name: str, lines: int = 20) -> str:
    proc = cli("logs", "--tail", str(lines), name, check=False)
    return ((proc.stdout or "") + (proc.stderr or "")).strip()


TIMED_OUT = -1000  # stream's exit code for a command stopped by its timeout


def stream(
    args: list[str],
    say: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[int, list[str]]:
    """Run a docker command, passing each output line to say; returns its exit code and last 20 lines.
    env: variables for the docker CLI itself, e.g. values that `-e NAME` and `--build-arg NAME` take from
    it, so that they never appear on a command line. timeout: seconds, then the CLI gets SIGTERM (a build
    is cancelled) and the exit code is TIMED_OUT."""
    tail: list[str] = []
    proc = subprocess.Popen(
        ["docker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env={**os.environ, **env} if env else None,
    )
    assert proc.stdout is not None
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        proc.terminate()

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            say(line)
            tail = [*tail[-19:], line]
        rc = proc.wait()
    finally:
        if timer:
            timer.cancel()
    return (TIMED_OUT if fired.is_set() else rc), tail


def follow_logs(name: str, lines: int, follow: bool, task: bool = False) -> Iterator[str]:
    """A container's (task: a Swarm task's) last log lines (stdout and stderr), then new ones while
    follow."""
    verb = ["service", "logs", "--raw"] if task else ["logs"]
    cmd = ["docker", *verb, "--tail", str(lines), *(["-f"] if follow else []), name]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            yield line.rstrip("\n")
    finally:
        proc.kill()
        proc.wait()


# --- app images --------------------------------------------------------------------------------------------


def app_image(app: str, version: int) -> str:
    return f"{APP_REPO}{app}:v{version}"


def deps_image(app: str, signature: str) -> str:
    """The image of an app's dependencies that its app images are built on (build.dependency_image)."""
    return f"{APP_REPO}{app}:deps-{signature}"


def image_id(ref: str) -> str:
    return str(api("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json").get("Id", ""))


def app_images() -> dict[str, list[str]]:
    """provisioner-app/APP:TAG images by app name."""
    found: dict[str, list[str]] = {}
    for image in api("GET", "/images/json") or []:
        for tag in image.get("RepoTags") or []:
            repo, _, _version = tag.rpartition(":")
            if repo.startswith(APP_REPO):
                found.setdefault(repo.removeprefix(APP_REPO), []).append(tag)
    return found


def remove_image(ref: str, force: bool = False) -> bool:
    """False when it is in use by a container, or gone already."""
    try:
        api("DELETE", f"/images/{urllib.parse.quote(ref, safe='')}", query={"force": 1} if force else None)
        return True
    except DockerError:
        return False
