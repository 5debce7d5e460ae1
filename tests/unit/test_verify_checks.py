"""Pure parsing behind the security checks of `provisioner verify` (sshd -T, nft -j) and what `up` expects."""

from pathlib import Path

import pytest

from provisioner.verify import checks

SSHD_T = """port 22
addressfamily any
listenaddress [::]:22
listenaddress 0.0.0.0:2222
permitrootlogin without-password
passwordauthentication no
kbdinteractiveauthentication no
subsystem sftp /usr/lib/openssh/sftp-server
"""


def rule(*exprs, chain="input"):
    return {"rule": {"family": "inet", "table": "provisioner_firewall", "chain": chain, "expr": list(exprs)}}


def match(protocol, field, right, op="=="):
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


ACCEPT = {"accept": None}


def table(*rules, policy="drop"):
    chain = {"family": "inet", "table": "provisioner_firewall", "name": "input", "hook": "input"}
    if policy:
        chain["policy"] = policy
    return {"nftables": [{"metainfo": {"version": "1.0.6"}}, {"chain": chain}, *rules]}


def test_parse_ports():
    assert checks.parse_ports("443, 22,80,22") == [22, 80, 443]
    assert checks.parse_ports("") == []
    for bad in ("22,x", "0", "65536", "-1", "22.5"):
        with pytest.raises(ValueError, match="not a port number"):
            checks.parse_ports(bad)


def test_sshd_settings_and_ports():
    conf = checks.sshd_settings(SSHD_T)
    assert conf["passwordauthentication"] == ["no"]
    assert conf["listenaddress"] == ["[::]:22", "0.0.0.0:2222"]
    assert conf["subsystem"] == ["sftp /usr/lib/openssh/sftp-server"]
    assert checks.sshd_ports(SSHD_T) == {22, 2222}
    assert checks.sshd_ports("port 2200\nlistenaddress 10.0.0.1:2200 rdomain vrf1\n") == {2200}
    assert checks.sshd_ports("") == set()


def test_firewall_rules_of_the_role_table():
    data = table(
        rule({"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, ACCEPT),
        rule({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": None}),
        rule(match("udp", "sport", 67), match("udp", "dport", 68), ACCEPT),
        rule(match("tcp", "dport", {"set": [22, 80, 443]}), ACCEPT),
    )
    assert checks.firewall_rules(data) == ("drop", {22, 80, 443}, [])


def test_ports_open_to_a_swarm_s_peers_only_are_not_open_to_the_world():
    peers = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"set": ["172.17.0.3", "172.17.0.4"]}}}  # fmt: skip
    data = table(
        rule(match("tcp", "dport", {"set": [22, 80, 443]}), ACCEPT),
        rule(peers, match("tcp", "dport", {"set": [2377, 7946]}), ACCEPT),
    )
    assert checks.firewall_rules(data) == ("drop", {22, 80, 443}, [])
    everyone = {
        "match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.1"}
    }
    data = table(rule(everyone, match("tcp", "dport", 2377), ACCEPT))
    assert checks.firewall_rules(data)[1] == {2377}  # all but one address: open


def test_firewall_rules_single_ports_ranges_and_other_chains():
    data = table(
        rule(match("tcp", "dport", 8080), ACCEPT),
        rule(match("tcp", "dport", {"set": [5, {"range": [7, 9]}]}), ACCEPT),
        rule(match("tcp", "dport", 3306), {"drop": None}),  # not accepted
        rule(match("tcp", "dport", 25), ACCEPT, chain="other"),  # not the input chain
        policy="accept",
    )
    assert checks.firewall_rules(data) == ("accept", {5, 7, 8, 9, 8080}, [])


def test_firewall_rules_that_accept_too_much_are_named():
    data = table(rule(ACCEPT), rule(match("tcp", "dport", 22, op="!="), ACCEPT), policy="")
    policy, ports, broad = checks.firewall_rules(data)
    assert policy is None and ports == set()
    assert broad == ["a rule accepts everything", "a rule accepts tcp dport != 22"]


def test_port_list_is_short():
    assert checks.port_list({443, 22}) == "22, 443"
    assert checks.port_list(set(range(1, 30)), limit=3) == "1, 2, 3 and 26 more"


CASES = [
    ({}, {"firewall": True, "firewall_tcp_ports": [22, 80, 443], "ssh_password_login": False}),
    ({"security_firewall_allowed_tcp_ports": "443,22,8080"}, {"firewall_tcp_ports": [22, 443, 8080]}),
    ({"security_firewall_allowed_tcp_ports": "[]"}, {"firewall_tcp_ports": []}),
    ({"security_firewall": "false"}, {"firewall": False}),
    ({"security_firewall": "yes"}, {"firewall": True}),
    ({"security_ssh_hardening": "no"}, {"ssh_password_login": True}),
    ({"security_ssh_password_authentication": "true"}, {"ssh_password_login": True}),
    ({"security_ssh_kbd_interactive_authentication": "1"}, {"ssh_password_login": True}),
    ({"security_ssh_permit_root_login": "yes"}, {"ssh_password_login": True}),
    ({"security_ssh_permit_root_login": "no"}, {"ssh_password_login": False}),
]


def test_security_settings_say_what_the_variables_asked_for(tmp_path):
    """The security role's security.json (what verify expects), rendered by Ansible itself from -e strings."""
    import json
    import subprocess
    import sys

    import yaml

    role = Path(__file__).resolve().parents[2] / "roles" / "security"
    tasks = [
        {
            "ansible.builtin.template": {
                "src": str(role / "templates/etc/provisioner/security.json.j2"),
                "dest": str(tmp_path / f"{i}.json"),
            },
            "vars": given,
        }
        for i, (given, _) in enumerate(CASES)
    ]
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(role / "defaults/main.yml"), str(role / "vars/main.yml")],
            "tasks": tasks,
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [
            str(bindir / "ansible-playbook"),
            *("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}"),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    for i, (given, wanted) in enumerate(CASES):
        data = json.loads((tmp_path / f"{i}.json").read_text())
        assert {k: data[k] for k in wanted} == wanted, given


def test_every_check_has_a_title():
    names = [n.removeprefix("test_") for n in dir(checks) if n.startswith("test_")]
    assert sorted(names) == sorted(checks.TITLES)
