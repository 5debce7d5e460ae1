"""Several hosts, one platform: three fresh sandbox hosts joined into one Docker Swarm by `up --swarm`.

One cluster for the module (its cold `up` is the cost of these tests): three managers (quorum), two
workers joining later. The tests that lose nodes come last: a worker removed, a worker killed, the leader
killed.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import sandbox
from tests.conftest import record_figure
from tests.e2e.conftest import CONNECT, Deployer, Load, app_host, container_ip, get, pushed_ok, root_exec

NAMES = ("swarm-m1", "swarm-m2", "swarm-m3")


class Cluster:
    def __init__(self, boxes: list[sandbox.Sandbox], up_args: list[str], first) -> None:
        self.boxes, self.up_args, self.first = boxes, up_args, first
        self.added: list[sandbox.Sandbox] = []  # nodes the tests added

    @property
    def manager(self) -> sandbox.Sandbox:
        return self.boxes[0]


@pytest.fixture(scope="module")
def cluster(boxes, test_ca, cli) -> Iterator[Cluster]:
    made = [boxes.create(name) for name in NAMES]
    up_args = [b.name for b in made] + [
        "--swarm",
        "--managers",
        "3",
        "--ca-cert",
        str(test_ca),
        "--forks",
        "3",
    ]
    for local_ca in sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt")):
        up_args += ["--ca-cert", str(local_ca)]
    started = time.monotonic()
    first = cli("up", *up_args, "--json")
    record_figure("up --swarm", f"3 fresh hosts in {time.monotonic() - started:.0f} s (with verify)")
    assert first.rc == 0, f"up --swarm failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
    made_cluster = Cluster(made, up_args, first)
    yield made_cluster
    boxes.retire(made + made_cluster.added)


def nodes(cli, cluster: Cluster) -> list[dict]:
    status = cli("cluster", "status", cluster.manager.name, "--json")
    assert status.rc == 0, status.stderr
    return json.loads(status.stdout)


def test_up_swarm_joins_three_fresh_hosts_into_one_cluster(cluster, cli):
    found = nodes(cli, cluster)
    assert len(found) == 3, found
    assert all(n["state"] == "ready" and n["availability"] == "active" for n in found), found
    assert [n["role"] for n in found] == ["leader", "manager", "manager"], found
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
    """From another member, the manager's swarm port answers; from a fourth host that is not a member, it does
    not (the manager's firewall), while its SSH port does."""
    manager_ip = container_ip(docker_client, cluster.manager)

    def probe(box: sandbox.Sandbox, port: int) -> str:
        return root_exec(box, f"python3 -c {shlex.quote(CONNECT)} {manager_ip} {port}").strip()

    assert probe(cluster.boxes[1], 2377) == "reached"
    assert probe(raw_box, 22) == "reached"  # the outsider reaches the host at all
    # Swarm's control plane and gossip, the cluster registry and the router port: members only.
    for port in (2377, 7946, 5000, 8480):
        assert probe(raw_box, port).startswith("unreachable"), port
    assert probe(cluster.boxes[2], 5000) == "reached"
    assert probe(cluster.boxes[2], 8480) == "reached"


def test_more_managers_than_hosts_is_one_clear_line(cluster, cli):
    bad = cli("up", *[b.name for b in cluster.boxes], "--swarm", "--managers", "4", "--no-verify")
    assert bad.rc == 2 and "--managers 4" in bad.stderr, bad.stderr


# --- apps on the cluster ---------------------------------------------------------------------------------


def swarm_tasks(cluster: Cluster, service: str) -> list[dict[str, str]]:
    """The running tasks of a service: node and image, as `docker service ps` on the manager shows them."""
    listed = root_exec(
        cluster.manager,
        f"docker service ps {shlex.quote(service)} --filter desired-state=running "
        "--format '{{.Node}} {{.Image}} {{.CurrentState}}'",
    )
    return [
        dict(zip(("node", "image", "state"), line.split(" ", 2), strict=False))
        for line in listed.splitlines()
    ]


def running_nodes(cluster: Cluster, service: str = "py_web") -> list[str]:
    return sorted(t["node"] for t in swarm_tasks(cluster, service) if t["state"].startswith("Running"))


def answers(cluster: Cluster, app: str, rounds: int = 4) -> list[str]:
    """The bodies of GETs through every node's nginx, `rounds` times each."""
    return [get(box, app_host(app))[1].strip() for _ in range(rounds) for box in cluster.boxes]


@pytest.fixture(scope="module")
def swarm_dev(cluster, tmp_path_factory) -> Deployer:
    """A developer pushing to the cluster's manager."""
    return Deployer(cluster.manager, tmp_path_factory.mktemp("dev-swarm"))


@pytest.fixture(scope="module")
def scaled(cluster, swarm_dev) -> Path:
    """The Python sample pushed to the manager and scaled to three replicas."""
    repo = swarm_dev.repo("py", "python")
    pushed_ok(swarm_dev.push(repo, "py"), "py")
    scale = swarm_dev.ssh("ps:scale", "py", "web=3")
    assert scale.returncode == 0, scale.stderr
    assert "web: 3 of 3 running v1, healthy" in scale.stderr, scale.stderr
    return repo


def test_an_app_runs_as_a_service_with_one_replica_per_node_reached_through_every_node(cluster, scaled):
    tasks = swarm_tasks(cluster, "py_web")
    assert len(tasks) == 3, tasks
    assert sorted(t["node"] for t in tasks) == sorted(b.name for b in cluster.boxes), tasks
    # Every node's nginx answers for the app, and all three replicas answer (each names its container);
    # a node's router picks up its own task within a moment of it turning healthy.
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 3 and time.monotonic() < deadline:
        bodies = answers(cluster, "py")
        assert all(b.startswith("python v1") for b in bodies), bodies
        seen |= {b.rpartition("host=")[2] for b in bodies}
        time.sleep(0.5)
    assert len(seen) == 3, seen
    listed = root_exec(cluster.manager, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    assert "py_web 3/3" in listed, listed


def test_up_again_with_two_more_hosts_adds_them_as_workers_and_scaling_to_five_places_a_replica_on_each(
    cluster, scaled, swarm_dev, boxes, cli
):
    added = [boxes.create(name) for name in ("swarm-w4", "swarm-w5")]
    cluster.added.extend(added)
    options = cluster.up_args[3:]  # after the first three targets; all five hosts at once:
    options = [*options[: options.index("--forks")], *options[options.index("--forks") + 2 :], "--forks", "5"]
    targets = [b.name for b in cluster.boxes + added]
    second = cli("up", *targets, *options, "--no-verify", "--json")
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-3000:]
    # The others learn the new members (their firewall's, nginx's and the router's list of peers) and
    # nothing else changes there.
    changed = {name: stats["changed"] for name, stats in json.loads(second.stdout)["hosts"].items()}
    assert all(changed[b.name] <= 6 for b in cluster.boxes), changed
    assert all(changed[b.name] > 20 for b in added), changed
    cluster.boxes.extend(added)
    assert [n["role"] for n in nodes(cli, cluster)] == ["leader", "manager", "manager", "worker", "worker"]
    result = swarm_dev.ssh("ps:scale", "py", "web=5")
    assert result.returncode == 0, result.stderr
    assert running_nodes(cluster) == sorted(b.name for b in cluster.boxes)
    bodies = [get(box, app_host("py"))[1] for box in added for _ in range(2)]
    assert all(b.startswith("python v1") for b in bodies), bodies
    worker = cli("cluster", "status", added[0].name)  # the cluster is the managers' business
    assert worker.rc == 1 and "not a manager" in worker.stderr, worker.stderr
    assert "Traceback" not in worker.stderr


def test_a_redeploy_under_load_on_every_node_fails_no_request(cluster, scaled, swarm_dev):
    """20 requests a second, round robin over the five nodes, while v2 replaces v1 start-first."""
    app_py = scaled / "app.py"
    app_py.write_text(app_py.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    swarm_dev.commit(scaled, "v2")
    with Load(cluster.boxes, app_host("py")) as load:
        time.sleep(1)
        result = swarm_dev.push(scaled, "py")
        time.sleep(3)
    failures, bodies = load.failures, load.bodies
    pushed_ok(result, "py")
    assert "Updating web to v2 (5 replicas, start-first)" in result.stderr, result.stderr
    record_figure("cluster redeploy", f"{len(bodies)} requests over 5 nodes, {len(failures)} failed")
    assert failures == [], failures[:5]
    assert bodies[0].startswith("python v1") and bodies[-1].startswith("python v2"), (bodies[0], bodies[-1])
    assert {t["image"].rpartition(":")[2] for t in swarm_tasks(cluster, "py_web")} == {"v2"}


def test_a_release_failing_its_health_check_is_rolled_back_and_the_push_says_why(cluster, scaled, swarm_dev):
    app_py = scaled / "app.py"
    broken = app_py.read_text().replace('VERSION = "2"', 'VERSION = "3"')
    broken = broken.replace('body = b"ok"', 'start_response("500 Broken", []); return [b"broken"]')
    app_py.write_text(broken)
    (scaled / "app.json").write_text(
        json.dumps({"healthchecks": {"web": [{"type": "startup", "path": "/health", "timeout": 8}]}})
    )
    swarm_dev.commit(scaled, "v3, unhealthy")
    result = swarm_dev.push(scaled, "py")
    assert result.returncode != 0
    assert "v3 failed its health check (GET /health answering 2xx/3xx) within 8 s" in result.stderr, (
        result.stderr[-2000:]
    )
    assert "v2 is still serving" in result.stderr
    assert "Traceback" not in result.stderr
    # Swarm rolled the service back: the five replicas of v2 serve through every node.
    tasks = swarm_tasks(cluster, "py_web")
    assert len(tasks) == 5 and {t["image"].rpartition(":")[2] for t in tasks} == {"v2"}, tasks
    assert all(b.startswith("python v2") for b in answers(cluster, "py", rounds=2))


def test_config_set_reaches_every_replica_and_never_a_command_line(cluster, scaled, swarm_dev):
    secret = "s3cr3t-{{.Node.Hostname}}-value"  # braces: a Go template to Swarm, a plain value to us
    result = swarm_dev.ssh("config:set", "py", f"GREETING={secret}")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stderr + result.stdout
    bodies = answers(cluster, "py", rounds=2)
    assert all(f"greeting={secret} " in b for b in bodies), bodies[:3]
    for box in cluster.boxes:  # no process on any node carries it in its command line
        assert secret not in root_exec(box, "ps -eo args"), box.name
    logs = swarm_dev.ssh("logs", "py", "-n", "5")
    assert logs.returncode == 0 and "gunicorn" in logs.stdout.lower() + logs.stderr.lower(), logs


def test_a_domain_added_is_routed_by_every_node(cluster, scaled, swarm_dev):
    added = swarm_dev.ssh("domains:add", "py", "www.py.example.test")
    assert added.returncode == 0, added.stderr
    bodies = [get(box, "www.py.example.test")[1] for box in cluster.boxes for _ in range(2)]
    assert all(b.startswith("python v2") for b in bodies), bodies
    assert root_exec(cluster.manager, "nginx -t 2>&1 | grep -c conflicting || true").strip() == "0"


def test_ps_restart_replaces_every_task(cluster, scaled, swarm_dev):
    def running() -> set[str]:
        return set(
            root_exec(cluster.manager, "docker service ps py_web -q --filter desired-state=running").split()
        )

    before = running()
    restart = swarm_dev.ssh("ps:restart", "py")
    assert restart.returncode == 0, restart.stderr
    after = running()
    assert len(after) == 5 and not before & after, (before, after)
    assert all(b.startswith("python v2") for b in answers(cluster, "py", rounds=1))


def test_backing_services_on_the_manager_serve_the_apps_tasks_on_every_node(cluster, swarm_dev):
    """postgres:create and redis:create on the manager, linked to an app with a task on every node: each
    task reaches them over the app's overlay (the cluster's VXLAN between the nodes)."""
    for kind, name in (("postgres", "swarmdb"), ("redis", "swarmcache")):
        created = swarm_dev.ssh(f"{kind}:create", name)
        assert created.returncode == 0, created.stderr[-2000:]
    assert swarm_dev.ssh("apps:create", "store").returncode == 0
    for kind, name in (("postgres", "swarmdb"), ("redis", "swarmcache")):
        linked = swarm_dev.ssh(f"{kind}:link", name, "store")
        assert linked.returncode == 0, linked.stderr[-2000:]
    pushed_ok(swarm_dev.push(swarm_dev.repo("store", "datastore"), "store"), "store")
    scale = swarm_dev.ssh("ps:scale", "store", f"web={len(cluster.boxes)}")
    assert scale.returncode == 0, scale.stderr[-2000:]
    assert running_nodes(cluster, "store_web") == sorted(b.name for b in cluster.boxes)
    for number, box in enumerate(cluster.boxes, 1):  # each node's nginx prefers its own task
        status, body = get(box, app_host("store"), f"/write?text=n{number}")
        assert status == 200 and body.startswith(f"wrote id={number} count={number}"), (box.name, body)
    notes = ",".join(f"n{i}" for i in range(1, len(cluster.boxes) + 1))
    for box in cluster.boxes:
        assert f"notes={notes} count={len(cluster.boxes)}" in get(box, app_host("store"))[1], box.name


# --- nodes joining, leaving and failing, with the app under load ---------------------------------------


def test_cluster_remove_drains_a_node_under_load_without_a_failed_request(cluster, scaled, cli):
    leaving = cluster.boxes[-1]  # a worker: the three managers stay for the leader's loss below
    staying = [b for b in cluster.boxes if b is not leaving]
    with Load(staying, app_host("py")) as load:
        time.sleep(1)
        removed = cli("cluster", "remove", cluster.manager.name, leaving.name)
        time.sleep(2)
    assert removed.rc == 0, removed.stderr
    assert "Traceback" not in removed.stderr
    cluster.boxes.remove(leaving)
    figure = f"{len(load.bodies)} requests during the drain, {len(load.failures)} failed"
    record_figure("cluster remove", figure)
    assert load.failures == [], load.failures[:5]
    assert {n["hostname"] for n in nodes(cli, cluster)} == {b.name for b in staying}
    placed = running_nodes(cluster)
    assert len(placed) == 5 and leaving.name not in placed, placed
    info = root_exec(leaving, "docker info --format '{{.Swarm.LocalNodeState}}'").strip()
    assert info == "inactive", info  # it left the swarm itself
    # A name that is no node, and the manager asked to remove itself: one clear line each.
    unknown = cli("cluster", "remove", cluster.manager.name, "no-such-node")
    assert unknown.rc == 1 and "no node 'no-such-node'" in unknown.stderr, unknown.stderr
    itself = cli("cluster", "remove", cluster.manager.name, cluster.manager.name)
    assert itself.rc == 1 and "ask another manager" in itself.stderr, itself.stderr


def test_a_killed_worker_costs_no_request_after_five_seconds_and_its_replicas_move(
    cluster, scaled, docker_client
):
    victim = cluster.boxes[-1]
    others = [b for b in cluster.boxes if b is not victim]
    with Load(others, app_host("py")) as load:
        time.sleep(1)
        killed_at = time.monotonic()
        docker_client.containers.get(sandbox.container_name(victim.name)).kill()
        restored = None
        while time.monotonic() - killed_at < 60:
            placed = running_nodes(cluster)
            if len(placed) == 5 and victim.name not in placed:
                restored = time.monotonic() - killed_at
                break
            time.sleep(0.5)
        time.sleep(2)
    cluster.boxes.remove(victim)
    late = [f for f, at in zip(load.failures, load.failed_at, strict=True) if at - killed_at > 5]
    record_figure(
        "node loss",
        f"replicas back in {restored if restored is None else round(restored, 1)} s; "
        f"{len(load.failures)} of {len(load.bodies) + len(load.failures)} requests failed "
        f"({len(late)} after the first 5 s)",
    )
    assert restored is not None and restored <= 30, restored
    assert late == [], late[:5]


def test_with_three_managers_a_killed_leader_leaves_deploys_working(
    cluster, scaled, cli, docker_client, tmp_path_factory
):
    """The leader's sandbox is killed; the other two managers elect a new one, and a push to one of them
    (which never saw the app: it takes it over from the swarm, config included) deploys v4."""
    leader = cluster.manager
    found = nodes(cli, cluster)
    assert (found[0]["hostname"], found[0]["role"]) == (leader.name, "leader"), found
    successor, third = cluster.boxes[1:3]  # the other managers (the workers are gone by now)
    assert [n["role"] for n in found if n["state"] == "ready"] == ["leader", "manager", "manager"], found
    survivors = [b for b in cluster.boxes if b is not leader]
    app_py = scaled / "app.py"
    fixed = app_py.read_text().replace('VERSION = "3"', 'VERSION = "4"')
    app_py.write_text(fixed.replace('start_response("500 Broken", []); return [b"broken"]', 'body = b"ok"'))
    dev = Deployer(successor, tmp_path_factory.mktemp("dev-m2"))
    dev.commit(scaled, "v4, healthy again")
    with Load(survivors, app_host("py")) as load:
        time.sleep(1)
        killed_at = time.monotonic()
        docker_client.containers.get(sandbox.container_name(leader.name)).kill()
        cluster.boxes.remove(leader)
        pushed = dev.push(scaled, "py")
        took = time.monotonic() - killed_at
        time.sleep(2)
    late = [f for f, at in zip(load.failures, load.failed_at, strict=True) if at - killed_at > 5]
    failed = f"{len(load.failures)} of {len(load.bodies) + len(load.failures)} requests failed"
    # The push waited for the election when it had to: the cluster took deploys again within 30 s.
    elected = re.search(r"a leader was elected \((\d+) s\)", pushed.stderr)
    waited = f"waited {elected.group(1)} s for the election" if elected else "no wait for the election"
    record_figure(
        "leader loss",
        f"a push to another manager: {waited}, live in {took:.0f} s; {failed} ({len(late)} after 5 s)",
    )
    pushed_ok(pushed, "py")
    assert "taken over from the cluster" in pushed.stderr, pushed.stderr[-3000:]
    assert elected is None or int(elected.group(1)) <= 30, elected
    # Served by every surviving node, with the config another manager set (a value with braces).
    bodies = answers(Cluster(survivors, [], None), "py", rounds=2)
    assert all(
        b.startswith("python v4") and "greeting=s3cr3t-{{.Node.Hostname}}-value " in b for b in bodies
    ), bodies[:3]
    third_nodes = root_exec(third, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'")
    assert f"{leader.name} Down Unreachable" in third_nodes and "Leader" in third_nodes, third_nodes
    assert late == [], late[:5]
