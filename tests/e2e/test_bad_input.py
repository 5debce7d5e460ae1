"""Bad input: one clear line on stderr, a non-zero exit, no traceback, the host untouched."""

from __future__ import annotations

import shlex
import socket

import pytest

from provisioner import sandbox
from tests.e2e.conftest import root_exec


def assert_one_clear_line(result, *words):
    assert result.rc != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.error_lines
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return


def assert_untouched(box):
    assert root_exec(box, "test -e /etc/provisioner && echo touched || echo clean").strip() == "clean"


def test_unknown_host_name(cli):
    assert_one_clear_line(
        cli("up", "no-such-host.invalid"), "cannot resolve host name", "no-such-host.invalid"
    )


def test_closed_port(cli, raw_box):
    port = closed_port()
    assert_one_clear_line(
        cli("up", f"root@127.0.0.1:{port}", "-i", raw_box.identity), "connection refused", str(port)
    )


def test_wrong_key(cli, raw_box, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    wrong = tmp_path / "wrong_ed25519"
    wrong.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    wrong.chmod(0o600)
    result = cli("up", f"root@127.0.0.1:{raw_box.ssh_port}", "-i", str(wrong))
    assert_one_clear_line(result, "rejected", "-i/--identity")
    assert_untouched(raw_box)


def test_missing_key_file(cli, raw_box):
    assert_one_clear_line(cli("up", raw_box.name, "-i", "/nonexistent/key"), "does not exist")


UNSUPPORTED = {
    # os-release as written -> what the refusal must name
    "other-distribution": (
        'ID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n',
        ["unsupported OS", "Alpine Linux v3.20"],
    ),
    "other-version": (
        'ID=ubuntu\nVERSION_ID="20.04"\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
        ["unsupported OS version", "Ubuntu 20.04.6 LTS", "VERSION_ID=20.04"],
    ),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_an_unsupported_system_is_refused_by_name(cli, raw_box, case):
    release, named = UNSUPPORTED[case]
    root_exec(
        raw_box,
        f"cp /etc/os-release /root/os-release.orig && printf '%s' {shlex.quote(release)} > /etc/os-release",
    )
    try:
        result = cli("up", raw_box.name)
    finally:
        root_exec(raw_box, "cp /root/os-release.orig /etc/os-release")
    assert_one_clear_line(result, raw_box.name, *named, "Debian 12, Debian 13, Ubuntu 24.04")
    assert_untouched(raw_box)


def test_user_without_sudo(cli, raw_box):
    result = cli("up", f"nosudo@{raw_box.name}")
    assert_one_clear_line(result, "'nosudo' is not root and has no passwordless sudo", "sudoers")
    assert_untouched(raw_box)


def test_malformed_inventory(cli, tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts: [unclosed\n    web1: {ansible_host: 10.0.0.1\n")
    assert_one_clear_line(cli("up", "--inventory", str(bad)), "could not be parsed")


def test_missing_inventory(cli, tmp_path):
    assert_one_clear_line(cli("up", "--inventory", str(tmp_path / "nope.ini")), "does not exist")


@pytest.mark.parametrize("target", ["foo@@bar", "host:99999", "::1", "bad_host!name", "-rf"])
def test_malformed_target(cli, target):
    args = ["up", "--", target] if target.startswith("-") else ["up", target]
    assert_one_clear_line(cli(*args), "malformed target")


def test_unknown_sandbox_for_ssh(cli):
    assert_one_clear_line(cli("sandbox", "ssh", "e2e-never-created"), "no sandbox named")


def test_bad_sandbox_name(cli):
    assert_one_clear_line(cli("sandbox", "create", "Bad_Name"), "invalid sandbox name")


def test_sandbox_json_and_list(cli, raw_box):
    listed = cli("sandbox", "list", "--json")
    assert listed.rc == 0
    entry = next(e for e in listed.json() if e["name"] == raw_box.name)
    assert entry == {
        "name": raw_box.name,
        "ssh": f"root@127.0.0.1:{raw_box.ssh_port}",
        "identity": raw_box.identity,
        "http": f"http://127.0.0.1:{raw_box.http_port}",
        "https": f"https://127.0.0.1:{raw_box.https_port}",
        "os": "debian-12",
        "status": "running",
    }
    assert sandbox.get(raw_box.name).status == "running"
