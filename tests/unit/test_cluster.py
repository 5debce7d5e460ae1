"""`provisioner cluster status`: Docker's node list and task list, read into nodes (no hosts)."""

import json

import pytest

from provisioner import cluster
from provisioner.cluster import parse_nodes
from provisioner.errors import ProvisionerError
from provisioner.targets import Host


def line(**fields):
    return json.dumps(
        {
            "ID": "x",
            "Hostname": "h",
            "Status": "Ready",
            "Availability": "Active",
            "ManagerStatus": "",
            "EngineVersion": "20.10.24",
            **fields,
        }
    )


def test_nodes_with_roles_states_and_task_counts_managers_first():
    nodes = "\n".join(
        [
            line(ID="w1", Hostname="w1"),
            line(ID="m2", Hostname="m2", ManagerStatus="Reachable"),
            line(ID="m1", Hostname="m1", ManagerStatus="Leader"),
            line(ID="w2", Hostname="w2", Status="Down", Availability="Drain"),
            "",
        ]
    )
    tasks = "w1\nw1\nm1\n\n"
    found = parse_nodes(nodes, tasks)
    assert [(n.hostname, n.role, n.state, n.availability, n.tasks) for n in found] == [
        ("m1", "leader", "ready", "active", 1),
        ("m2", "manager", "ready", "active", 0),
        ("w1", "worker", "ready", "active", 2),
        ("w2", "worker", "down", "drain", 0),
    ]
    assert found[0].as_dict()["manager_status"] == "leader"


def test_an_empty_swarm_listing():
    assert parse_nodes("", "") == []


def test_converged_means_every_service_runs_its_replicas():
    assert cluster.converged("3/3\n1/1\n0/0\n")
    assert cluster.converged("")
    assert not cluster.converged("3/3\n2/3\n")
    assert not cluster.converged("1/2 (max 1 per node)")


def test_a_hostile_node_name_is_refused_before_any_connection():
    host = Host(name="m1", address="127.0.0.1")
    for bad in ("", "-rf", "a b", "x;reboot", "$(id)", "a" * 300):
        with pytest.raises(ProvisionerError, match="invalid node name"):
            cluster.remove(host, bad)
