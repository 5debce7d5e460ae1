"""Docker Swarm clusters made by `up --swarm`, seen from the controller: `provisioner cluster status`.

Asks a manager over SSH (as root, or a passwordless-sudo admin user, like `provisioner keys`) with Docker's
own CLI; the parsing is pure and unit-tested.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from . import preflight
from .errors import ProvisionerError
from .targets import Host

NODES = ["docker", "node", "ls", "--format", "{{json .}}"]
# The running tasks of every node, one node name per line (empty when the swarm runs none).
TASKS = (
    "docker node ps $(docker node ls -q) --filter desired-state=running --format '{{.Node}}' 2>/dev/null"
    " || true"
)


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    role: str  # leader, manager or worker
    availability: str  # active, pause, drain
    state: str  # ready, down, unknown, disconnected
    manager_status: str  # reachable, unreachable, leader, "" (workers)
    tasks: int
    engine: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_nodes(nodes_json_lines: str, task_lines: str) -> list[Node]:
    """`docker node ls --format '{{json .}}'` and one node name per running task -> the nodes, managers
    first."""
    tasks = Counter(line.strip() for line in task_lines.splitlines() if line.strip())
    found = []
    for line in nodes_json_lines.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        manager = str(data.get("ManagerStatus") or "").lower()
        role = "leader" if manager == "leader" else "manager" if manager else "worker"
        hostname = str(data.get("Hostname", ""))
        found.append(
            Node(
                id=str(data.get("ID", "")),
                hostname=hostname,
                role=role,
                availability=str(data.get("Availability", "")).lower(),
                state=str(data.get("Status", "")).lower(),
                manager_status=manager,
                tasks=tasks.get(hostname, 0),
                engine=str(data.get("EngineVersion", "")),
            )
        )
    order = {"leader": 0, "manager": 1, "worker": 2}
    return sorted(found, key=lambda n: (order[n.role], n.hostname))


def root_run(host: Host, command: str) -> tuple[int, str, str]:
    """A shell command on the host as root (sudo -n for an admin user): exit code, stdout, stderr."""
    sudo = "" if host.user == "root" else "sudo -n "
    conn = preflight.connection(host)
    try:
        result = conn.run(f"{sudo}sh -c {shlex.quote(command)}", hide=True, warn=True)
    except Exception as exc:  # mapped to one clear line, never a traceback
        raise preflight.connection_error(host, exc) from exc
    finally:
        conn.close()
    if "a password is required" in (result.stderr or ""):
        raise ProvisionerError(f"user {host.user!r} is not root and has no passwordless sudo", host=host.name)
    return int(result.exited), str(result.stdout), str(result.stderr)


def status(host: Host) -> list[Node]:
    """The nodes of the swarm TARGET manages (TARGET must be a manager)."""
    code, nodes, errors = root_run(host, shlex.join(NODES))
    if code != 0:
        detail = (errors or nodes).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {code}"
        if "not a swarm manager" in reason or "This node is not" in reason:
            raise ProvisionerError(
                "this host is not a manager of a swarm", host=host.name, fix="name a manager (`up --swarm`)"
            )
        raise ProvisionerError(f"docker node ls failed: {reason}", host=host.name)
    _code, tasks, _errors = root_run(host, TASKS)
    return parse_nodes(nodes, tasks)
