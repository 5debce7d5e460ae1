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

TASKS_MARK = "--- tasks ---"
# One round trip: the nodes (JSON lines), then the running tasks of every node, one node name per line.
STATUS = (
    "docker node ls --format '{{json .}}' && echo '" + TASKS_MARK + "' && "
    "{ docker node ps $(docker node ls -q) --filter desired-state=running --format '{{.Node}}' 2>/dev/null"
    " || true; }"
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


def status(host: Host) -> list[Node]:
    """The nodes of the swarm TARGET manages (TARGET must be a manager)."""
    result = preflight.run_as_root(host, f"sh -c {shlex.quote(STATUS)}")
    if result.exited != 0:
        detail = str(result.stderr or result.stdout or "").strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.exited}"
        if "not a swarm manager" in reason or "This node is not" in reason:
            raise ProvisionerError(
                "this host is not a manager of a swarm", host=host.name, fix="name a manager (`up --swarm`)"
            )
        raise ProvisionerError(f"docker node ls failed: {reason}", host=host.name)
    nodes, _, tasks = str(result.stdout).partition(TASKS_MARK)
    return parse_nodes(nodes, tasks)
