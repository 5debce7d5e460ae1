import socket

import paramiko
import pytest

from provisioner.preflight import Facts, connection_error, evaluate, parse_facts
from provisioner.targets import Host

GOOD = (
    "os_id=debian\nos_version=12\nos_name=Debian GNU/Linux 12 (bookworm)\npython=/usr/bin/python3\n"
    "uid=0\nsudo=root\ndisk_kb=10485760\nmem_kb=2048000\n"
)


def facts(**changes):
    base = parse_facts(GOOD)
    return Facts(**{**base.__dict__, **changes})


def test_parse_facts():
    f = parse_facts(GOOD)
    assert (f.os_id, f.os_version, f.uid, f.sudo, f.disk_mb, f.mem_mb) == (
        "debian",
        "12",
        0,
        "root",
        10240,
        2000,
    )


def test_good_host_passes():
    assert evaluate(parse_facts(GOOD), "root") == []


@pytest.mark.parametrize(
    ("os_id", "version", "ok"),
    [
        ("debian", "12", True),
        ("debian", "13", True),
        ("debian", "11", False),
        ("debian", "", False),
        ("ubuntu", "22.04", False),
        ("debian", "14", False),  # not proven yet: refused by name until it has its test
        ("debian", "12.5", False),
        ("ubuntu", "24.04", True),
        ("ubuntu", "20.04", False),
        ("alpine", "3.19.1", False),
        ("centos", "9", False),
        ("", "", False),
    ],
)
def test_os_support(os_id, version, ok):
    problems = evaluate(facts(os_id=os_id, os_version=version, os_name=f"{os_id} {version}"), "root")
    assert (problems == []) is ok
    if not ok:
        assert "Debian 12, Debian 13, Ubuntu 24.04" in problems[0][1]


def test_refusals_carry_numbers_and_fixes():
    problems = dict(evaluate(facts(disk_mb=1000, mem_mb=256, python="", sudo="no"), "ops"))
    text = " ".join(problems)
    assert "1000 MB free disk" in text and "2048 MB needed" in text
    assert "256 MB RAM" in text and "512 MB needed" in text
    assert "python3 is not installed" in problems
    assert any("no passwordless sudo" in p for p in problems)
    assert any("/etc/sudoers.d/ops" in fix for fix in problems.values())


def test_sudo_yes_is_fine():
    assert evaluate(facts(uid=1000, sudo="yes"), "ops") == []


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve host name"),
        (ConnectionRefusedError(111, "refused"), "connection refused"),
        (TimeoutError(), "no answer"),
        (paramiko.AuthenticationException("no"), "rejected"),
        (paramiko.SSHException("Error reading SSH protocol banner"), "SSH to"),
    ],
)
def test_connection_errors_are_one_line(exc, words):
    err = connection_error(Host("web", "web.example", 2222, identity="/k"), exc)
    line = err.line()
    assert words in line and line.startswith("web: ") and "\n" not in line
