"""Docker Swarm clusters made by `up --swarm`, seen from the controller: `provisioner cluster status` and
`provisioner cluster remove`.

Asks a manager over SSH (as root, or a passwordless-sudo admin user, like `provisioner keys`) with Docker's
own CLI; the parsing is pure and unit-tested.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections import Counter
from collections.abc import Callable
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


NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# One line per service: desired and running replicas ("3/3"), the services of apps only.
CONVERGED = "docker service ls --filter label=io.provisioner.app --format '{{.Replicas}}'"


def converged(replicas_lines: str) -> bool:
    """`docker service ls` Replicas lines: every service runs as many tasks as it wants."""
    for line in replicas_lines.split():
        running, _, wanted = line.partition("/")
        if not wanted or running != wanted.split()[0]:
            return False
    return True


def _root(host: Host, command: str) -> str:
    result = preflight.run_as_root(host, command)
    if result.exited != 0:
        detail = str(result.stderr or result.stdout or "").strip().splitlines()
        raise ProvisionerError(
            f"{detail[-1] if detail else command} (exit code {result.exited})", host=host.name
        )
    return str(result.stdout)


def remove(
    host: Host,
    node: str,
    *,
    leave: Callable[[], bool] | None = None,
    timeout: float = 180,
    say: Callable[[str], None] = lambda line: None,
) -> None:
    """Take NODE out of the swarm TARGET manages, without dropping a request: drain it (Swarm starts its
    tasks on the other nodes), wait until it runs no app task and every app service is back at its
    replicas, then let it leave (leave: run `docker swarm leave` on the node itself, False when it cannot
    be reached) and remove it from the node list. A manager is demoted first; the TARGET itself cannot
    remove itself."""
    if not NODE_RE.fullmatch(node):
        raise ProvisionerError(
            f"invalid node name {node!r}: expected a host name as `cluster status` shows it"
        )
    nodes = {n.hostname: n for n in status(host)}
    if node not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise ProvisionerError(f"no node {node!r} in this swarm (its nodes: {known})", host=host.name)
    target = nodes[node]
    if target.role == "leader" or (
        target.role != "worker" and sum(n.role != "worker" for n in nodes.values()) < 2
    ):
        raise ProvisionerError(f"{node} leads the swarm: ask another manager to remove it", host=host.name)
    me = _root(host, "docker info --format '{{.Swarm.NodeID}}'").strip()
    if target.id == me:
        raise ProvisionerError(
            f"{node} is the manager asked: ask another manager to remove it", host=host.name
        )
    quoted = shlex.quote(target.id)
    if target.role == "manager":
        say(f"demoting {node} (a manager) to a worker")
        _root(host, f"docker node demote {quoted}")
    say(f"draining {node}: Swarm starts its tasks on the other nodes")
    _root(host, f"docker node update --availability drain {quoted}")
    deadline = time.monotonic() + timeout
    while True:
        on_node = _root(
            host, f"docker node ps {quoted} --filter desired-state=running --format '{{{{.ID}}}}'"
        ).split()
        if not on_node and converged(_root(host, CONVERGED)):
            break
        if time.monotonic() > deadline:
            raise ProvisionerError(
                f"{node} still runs {len(on_node)} task(s), or the apps are not back at their replicas, "
                f"after {timeout:.0f} s; it stays drained (cluster status shows it)",
                host=host.name,
            )
        time.sleep(1)
    say(f"{node} runs no app task; every app is at its replicas")
    left = leave() if leave else False
    if not left:
        say(f"{node} could not be reached to leave the swarm itself: removing it from the node list only")
    for _ in range(30):  # a node that left shows as down after a moment; Docker removes only those
        listed = _root(host, f"docker node inspect {quoted} --format '{{{{.Status.State}}}}'").strip()
        if listed == "down" or not left:
            break
        time.sleep(1)
    _root(host, f"docker node rm --force {quoted}")
    say(f"removed {node} from the swarm")


def leave(host: Host) -> bool:
    """`docker swarm leave --force` on the node itself; False when it cannot be reached."""
    try:
        result = preflight.run_as_root(host, "docker swarm leave --force")
    except ProvisionerError:
        return False
    return bool(result.exited == 0 or "not part of a swarm" in str(result.stderr))
