"""Several hosts, one platform: three fresh sandbox hosts joined into one Docker Swarm by `up --swarm`.

One cluster for the module (its cold `up` is the cost of these tests): the first target is the manager.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from provisioner import sandbox
from tests.conftest import record_figure
from tests.e2e.conftest import CONNECT, container_ip, root_exec

NAMES = ("swarm-m1", "swarm-w1", "swarm-w2")


class Cluster:
    def __init__(self, boxes: list[sandbox.Sandbox], up_args: list[str], first) -> None:
        self.boxes, self.up_args, self.first = boxes, up_args, first

    @property
    def manager(self) -> sandbox.Sandbox:
        return self.boxes[0]


@pytest.fixture(scope="module")
def cluster(boxes, test_ca, cli) -> Cluster:
    made = [boxes.create(name) for name in NAMES]
    up_args = [b.name for b in made] + ["--swarm", "--ca-cert", str(test_ca), "--forks", "3"]
    for local_ca in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt")):
        up_args += ["--ca-cert", str(local_ca)]
    started = time.monotonic()
    first = cli("up", *up_args, "--json")
    record_figure("up --swarm", f"3 fresh hosts in {time.monotonic() - started:.0f} s (with verify)")
    assert first.rc == 0, f"up --swarm failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
    return Cluster(made, up_args, first)


def nodes(cli, cluster: Cluster) -> list[dict]:
    status = cli("cluster", "status", cluster.manager.name, "--json")
    assert status.rc == 0, status.stderr
    return json.loads(status.stdout)


def test_up_swarm_joins_three_fresh_hosts_into_one_cluster(cluster, cli):
    found = nodes(cli, cluster)
    assert len(found) == 3, found
    assert all(n["state"] == "ready" and n["availability"] == "active" for n in found), found
    assert [n["role"] for n in found] == ["leader", "worker", "worker"], found
    assert {n["hostname"] for n in found} == {b.name for b in cluster.boxes}
    table = cli("cluster", "status", cluster.manager.name)
    assert table.rc == 0 and "leader" in table.stdout and table.stdout.count("ready") == 3, table.stdout


def test_a_second_up_changes_nothing(cluster, cli):
    second = cli("up", *cluster.up_args, "--no-verify", "--json")
    assert second.rc == 0, second.stderr
    changed = {name: stats["changed"] for name, stats in json.loads(second.stdout)["hosts"].items()}
    assert changed == {b.name: 0 for b in cluster.boxes}


def test_swarm_nodes_run_without_live_restore(cluster):
    for box in cluster.boxes:
        info = root_exec(box, "docker info --format '{{.LiveRestoreEnabled}} {{.Swarm.LocalNodeState}}'")
        assert info.split() == ["false", "active"], (box.name, info)


def test_the_swarm_ports_are_open_to_members_only(cluster, raw_box, docker_client):
    """From a worker, the manager's swarm port answers; from a fourth host that is not a member, it does
    not (the manager's firewall), while its SSH port does."""
    manager_ip = container_ip(docker_client, cluster.manager)

    def probe(box: sandbox.Sandbox, port: int) -> str:
        return root_exec(box, f"python3 -c {shlex.quote(CONNECT)} {manager_ip} {port}").strip()

    assert probe(cluster.boxes[1], 2377) == "reached"
    assert probe(raw_box, 22) == "reached"  # the outsider reaches the host at all
    assert probe(raw_box, 2377).startswith("unreachable")
    assert probe(raw_box, 7946).startswith("unreachable")


def test_cluster_status_of_a_host_that_is_no_manager_is_one_clear_line(cluster, cli):
    worker = cli("cluster", "status", cluster.boxes[1].name)
    assert worker.rc == 1 and "not a manager" in worker.stderr, worker.stderr
    assert "Traceback" not in worker.stderr
    bad = cli("up", *[b.name for b in cluster.boxes], "--swarm", "--managers", "4", "--no-verify")
    assert bad.rc == 2 and "--managers 4" in bad.stderr, bad.stderr
