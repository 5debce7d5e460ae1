from pathlib import Path

import pytest

from provisioner.errors import UsageError
from provisioner.targets import (
    Host,
    build_inventory,
    extra_inventory,
    host_from_target,
    hosts_from_inventory_data,
    hosts_from_targets,
    parse_target,
    ssh_common_args,
    swarm_groups,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", ("root", "example.com", None)),
        ("web-1", ("root", "web-1", None)),
        ("admin@example.com", ("admin", "example.com", None)),
        ("admin@10.0.0.5:2222", ("admin", "10.0.0.5", 2222)),
        ("127.0.0.1:22", ("root", "127.0.0.1", 22)),
        ("[::1]", ("root", "::1", None)),
        ("ops@[2001:db8::1]:2200", ("ops", "2001:db8::1", 2200)),
    ],
)
def test_parse_target_valid(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " host",
        "foo@@bar",
        "host:",
        "host:0",
        "host:65536",
        "host:ssh",
        "::1",
        "[example.com]",
        "-rf",
        "--help",
        "Root User@host",
        "host_name.example.com",
        "a..b",
        "-host.example.com",
        "300.1.1",
        "x" * 64 + ".com",
        "user@ho st",
        "host;rm -rf /",
        "$(id)@host",
        "host\n",
        "root\n@host",
    ],
)
def test_parse_target_rejects(text):
    with pytest.raises(UsageError) as info:
        parse_target(text)
    assert "\n" not in str(info.value)
    assert "target" in str(info.value)


def test_sandbox_name_resolves_to_its_published_port():
    boxes = {"demo": Host(name="demo", address="127.0.0.1", port=40022, identity="/k", sandbox=True)}
    host = host_from_target("demo", sandboxes=boxes)
    assert (host.name, host.address, host.port, host.user, host.identity, host.sandbox) == (
        "demo",
        "127.0.0.1",
        40022,
        "root",
        "/k",
        True,
    )
    ops = host_from_target("ops@demo", sandboxes=boxes)
    assert ops.user == "ops" and ops.become and ops.port == 40022
    # with an explicit port the name is an ordinary host
    assert not host_from_target("demo:22", sandboxes=boxes).sandbox


def test_host_names_are_unique_and_duplicates_refused():
    hosts = hosts_from_targets(["127.0.0.1:2201", "127.0.0.1:2202", "example.com"])
    assert [h.name for h in hosts] == ["127.0.0.1-2201", "127.0.0.1-2202", "example.com"]
    with pytest.raises(UsageError, match="same host"):
        hosts_from_targets(["example.com", "root@example.com:22"])


def test_build_inventory_sets_connection_and_become():
    hosts = [Host("a", "10.0.0.1"), Host("b", "10.0.0.2", 2222, "ops", identity="/id", sandbox=True)]
    inv = build_inventory(hosts, {"a": {"provisioner_domain": "x.sslip.io"}}, Path("/kh"))
    a, b = inv["all"]["hosts"]["a"], inv["all"]["hosts"]["b"]
    assert a["ansible_become"] is False and a["provisioner_domain"] == "x.sslip.io"
    assert "ansible_ssh_private_key_file" not in a
    assert "accept-new" in a["ansible_ssh_common_args"] and "/kh" in a["ansible_ssh_common_args"]
    assert b["ansible_become"] is True and b["ansible_port"] == 2222 and b["ansible_user"] == "ops"
    assert b["ansible_ssh_private_key_file"] == "/id"
    assert "UserKnownHostsFile=/dev/null" in b["ansible_ssh_common_args"]


def test_swarm_groups_make_the_first_targets_managers():
    groups = swarm_groups(["m1", "w1", "w2"], 1)
    assert groups == {
        "swarm_managers": {"hosts": {"m1": {}}},
        "swarm_workers": {"hosts": {"w1": {}, "w2": {}}},
    }
    assert list(swarm_groups(["a", "b", "c"], 3)["swarm_managers"]["hosts"]) == ["a", "b", "c"]
    for bad in (0, 4, -1):
        with pytest.raises(UsageError, match="--managers"):
            swarm_groups(["a", "b", "c"], bad)
    inv = build_inventory(
        [Host("m1", "10.0.0.1"), Host("w1", "10.0.0.2")], {}, Path("/kh"), swarm_groups(["m1", "w1"], 1)
    )
    assert inv["all"]["children"]["swarm_managers"]["hosts"] == {"m1": {}}
    assert "children" not in build_inventory([Host("a", "a")], {}, Path("/kh"))["all"]


def test_extra_inventory_never_overrides_user_values():
    hosts = [Host("a", "a", vars={"provisioner_domain": "mine.example"}), Host("b", "b")]
    per_host = {"a": {"provisioner_domain": "auto"}, "b": {"provisioner_domain": "auto-b"}}
    assert extra_inventory(hosts, per_host) == {"all": {"hosts": {"b": {"provisioner_domain": "auto-b"}}}}


def test_hosts_from_inventory_list_output():
    data = {
        "_meta": {
            "hostvars": {
                "web1": {"ansible_host": "10.0.0.1", "ansible_user": "ops", "ansible_port": "2222"},
                "web2": {},
            }
        },
        "all": {"children": ["ungrouped", "web"]},
        "web": {"hosts": ["web1", "web2"]},
    }
    hosts = hosts_from_inventory_data(data, identity="/id")
    assert [(h.name, h.address, h.port, h.user, h.identity) for h in hosts] == [
        ("web1", "10.0.0.1", 2222, "ops", "/id"),
        ("web2", "web2", 22, "root", "/id"),
    ]
    assert all(h.from_inventory for h in hosts)


def test_ssh_args_pin_real_hosts_only():
    assert "accept-new" in ssh_common_args(Host("a", "a"), Path("/k"))
    assert "StrictHostKeyChecking=no" in ssh_common_args(Host("s", "127.0.0.1", sandbox=True), Path("/k"))


def test_parse_vagrant_ssh_config():
    from provisioner.targets import parse_ssh_config

    text = """Host mini
  HostName 172.17.0.5
  User vagrant
  Port 22
  IdentityFile "/home/me/.vagrant/machines/mini/docker/private_key"
  StrictHostKeyChecking no

Host other
  HostName 127.0.0.1
  Port 2200
"""
    config = parse_ssh_config(text)
    assert config["mini"]["hostname"] == "172.17.0.5" and config["mini"]["user"] == "vagrant"
    assert config["mini"]["identityfile"] == "/home/me/.vagrant/machines/mini/docker/private_key"
    assert config["other"] == {"hostname": "127.0.0.1", "port": "2200"}
