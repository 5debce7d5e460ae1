"""Each swarm node's routing: provisioner-router.service runs this as root on every node of a cluster.

It follows this node's Docker engine (its events, and a full look every few seconds) and writes one nginx
file for the web tasks that run here: an app's domains go to its healthy local tasks first, then to the
other nodes (backup servers); the router port (swarm_router_port, open to cluster members only) serves only
local tasks. A name with no local task falls to nginx's default server, which on a swarm node asks the other
nodes' router ports in turn (the nginx role): so DNS may point at any node, and every node reaches every
app without Swarm's routing mesh (which needs IPVS). nginx retries a failed task on the next one
(`proxy_next_upstream`), and a task leaves the file as soon as it stops being healthy.

Tasks are reached at their address on docker_gwbridge, the bridge Docker gives every task on a swarm
node next to its overlay network: no published port, so nothing of an app is reachable from outside but
through nginx. Nothing here reads what an app pushed: only the labels this program's services carry.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import docker, names, nginx
from .scheduler import LABEL
from .settings import Settings
from .swarm import DOMAINS_LABEL, PORT_LABEL

GWBRIDGE = "docker_gwbridge"
RESYNC_SECONDS = 5.0
HEADER = "# Written by provisioner-router from this node's healthy web tasks: changes are overwritten.\n"


@dataclass(frozen=True)
class Task:
    app: str
    address: str  # on docker_gwbridge
    port: int
    domains: tuple[str, ...]


def _healthy(data: dict[str, Any]) -> bool:
    state = data.get("State") or {}
    if not state.get("Running") or state.get("Restarting"):
        return False
    health = state.get("Health")
    return health is None or health.get("Status") == "healthy"


def gateway_addresses() -> dict[str, str]:
    """Container id -> its address on docker_gwbridge."""
    try:
        network = docker.api("GET", f"/networks/{GWBRIDGE}")
    except docker.DockerError:
        return {}
    found = {}
    for cid, endpoint in (network.get("Containers") or {}).items():
        address = str(endpoint.get("IPv4Address", "")).split("/")[0]
        if address:
            found[cid] = address
    return found


def local_tasks() -> list[Task]:
    """The healthy web tasks of apps on this node."""
    filters = {"label": [LABEL, PORT_LABEL]}
    listed = docker.api("GET", "/containers/json", query={"filters": json.dumps(filters)})
    gateways = gateway_addresses()
    tasks = []
    for item in listed:
        cid = str(item.get("Id", ""))
        try:
            data = docker.inspect(cid)
        except docker.DockerError:
            continue
        if not _healthy(data):
            continue
        labels = (data.get("Config") or {}).get("Labels") or {}
        address = gateways.get(cid)
        if not address:
            continue
        try:
            app = names.app(str(labels.get(LABEL, "")))
            port = int(labels.get(PORT_LABEL, "0"))
            domains = tuple(names.domain(d) for d in str(labels.get(DOMAINS_LABEL, "")).split(",") if d)
        except ValueError:
            continue
        if 0 < port < 65536 and domains:
            tasks.append(Task(app, address, port, domains))
    return tasks


LOCATION = (
    """\
        proxy_pass http://{upstream};
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout http_502 http_503 http_504;
        proxy_next_upstream_tries 4;
{extra}"""
    + nginx.PROXY_HEADERS
)
# On the router port: when none of the node's tasks could be reached (a task stopping as its node drains),
# nginx's own 502/504 becomes a 503, "no task here now", so the asking node tries the next one (both its
# app servers and its default server move on after a 503). An app's own 502 passes through unchanged
# (proxy_intercept_errors is off).
NOT_HERE = """        error_page 502 504 =503 /.provisioner-not-here;
"""
NOT_HERE_LOCATION = """
    location = /.provisioner-not-here {
        internal;
        return 503;
    }"""


SERVER = """\
server {{
    listen {listen};
    server_name {names};
    client_max_body_size 100m;
    location / {{
{location}
    }}{more}
}}
"""


def render(tasks: list[Task], peers: list[str], router_port: int) -> str:
    """The node's nginx file: per app with local tasks, its domains on port 80 (local tasks, then the other
    nodes) and on the router port (local tasks only)."""
    by_app: dict[str, list[Task]] = {}
    for task in tasks:
        by_app.setdefault(task.app, []).append(task)
    text = HEADER
    for app in sorted(by_app):
        group = sorted(by_app[app], key=lambda t: (t.address, t.port))
        domains = " ".join(sorted({d for t in group for d in t.domains}))
        here = [f"    server {t.address}:{t.port} max_fails=1 fail_timeout=3s;" for t in group]
        backups = [f"    server {_host(p)}:{router_port} backup;" for p in peers]
        for name, servers in (
            (f"provisioner-cluster-{app}", here + backups),
            (f"provisioner-here-{app}", here),
        ):
            text += f"\nupstream {name} {{\n" + "\n".join(servers) + "\n    keepalive 16;\n}\n"
        location = LOCATION.format(upstream=f"provisioner-cluster-{app}", extra="")
        text += SERVER.format(listen="80", names=domains, location=location, more="")
        location = LOCATION.format(upstream=f"provisioner-here-{app}", extra=NOT_HERE)
        text += SERVER.format(
            listen=str(router_port), names=domains, location=location, more=NOT_HERE_LOCATION
        )
    return text


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


_PEER = re.compile(r"^[0-9A-Fa-f.:]+$")


def peers_of(settings: Settings) -> list[str]:
    return [p for p in settings.swarm_peers if _PEER.fullmatch(p)]


def apply(path: Path, text: str) -> bool:
    """Write the file and reload nginx when it changed (the old file back if nginx refuses the new)."""
    old = path.read_text() if path.exists() else None
    if old == text:
        return False
    nginx._put(path, text)
    error = nginx.check_config()
    if error:
        nginx._put(path, old)
        print(f"provisioner-router: nginx refused the routes (kept the old ones): {error}", file=sys.stderr)
        return False
    nginx.reload()
    return True


def sync(settings: Settings, path: Path) -> bool:
    text = render(local_tasks(), peers_of(settings), settings.swarm_router_port)
    changed = apply(path, text)
    if changed:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        apps = len(re.findall(r"^upstream provisioner-here-", text, re.M))
        print(f"provisioner-router: routes {digest}: {apps} app(s) with healthy tasks here", flush=True)
    return changed


def _events(wake: threading.Event) -> None:
    """Wake the loop on every event of a container of an app (start, health, stop), for ever."""
    filters = {"type": ["container"], "label": [LABEL]}
    while True:
        conn = docker._UnixConnection(docker.SOCKET, timeout=3600)
        try:
            conn.request("GET", "/events?" + "filters=" + json.dumps(filters).replace(" ", ""))
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    break
                wake.set()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(1)


def _program_stamp() -> float:
    """The host program archive's mtime (0 outside one): `up` installing a new one restarts the router."""
    try:
        return Path(sys.path[0]).stat().st_mtime if sys.path[0].endswith(".zip") else 0.0
    except OSError:
        return 0.0


def watch(settings: Settings, path: Path) -> None:
    wake = threading.Event()
    threading.Thread(target=_events, args=(wake,), daemon=True).start()
    stamp = _program_stamp()
    while _program_stamp() == stamp:  # else return: systemd starts the new program
        try:
            settings = Settings.load()  # `up` may have changed the peers
            sync(settings, path)
        except (docker.DockerError, nginx.NginxError, OSError, ValueError) as exc:
            print(f"provisioner-router: {exc}", file=sys.stderr, flush=True)
        wake.wait(RESYNC_SECONDS)
        if wake.is_set():
            time.sleep(0.1)  # a burst of events (a task's start and its health) is one sync
            wake.clear()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = Settings.load()
    path = Path(settings.swarm_router_file)
    if args == ["sync"]:
        sync(settings, path)
        return 0
    if args in ([], ["watch"]):
        with contextlib.suppress(KeyboardInterrupt):
            watch(settings, path)
        return 0
    print("usage: provisioner-router [watch|sync]", file=sys.stderr)
    return 2
