"""Pre-flight: one SSH round trip per host (fabric) before Ansible changes anything.

The facts are gathered by a read-only POSIX shell snippet; :func:`evaluate` decides on them and is pure,
so every refusal is unit-tested. Every failure is one line naming the host, the problem and the fix.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HostErrors, ProvisionerError, UsageError
from .targets import Host

MIN_DISK_MB = 2048
MIN_RAM_MB = 512
# The distributions and versions provisioner is proven on (each has an end-to-end test: tests/e2e/
# test_distros.py): os-release's ID and VERSION_ID, and the name a refusal gives.
SUPPORTED = {
    ("debian", "12"): "Debian 12",
    ("debian", "13"): "Debian 13",
    ("ubuntu", "24.04"): "Ubuntu 24.04",
}
SUPPORTED_TEXT = ", ".join(SUPPORTED.values())
CONNECT_TIMEOUT = 10

FACTS_SCRIPT = r"""
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
echo "os_name=${PRETTY_NAME:-unknown}"
echo "python=$(command -v python3 || true)"
echo "uid=$(id -u)"
if [ "$(id -u)" = 0 ]; then echo sudo=root
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then echo sudo=yes
else echo sudo=no; fi
d=/var/lib; [ -d "$d" ] || d=/
echo "disk_kb=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
"""


@dataclass(frozen=True)
class Facts:
    os_id: str
    os_version: str
    os_name: str
    python: str
    uid: int
    sudo: str  # "root", "yes" or "no"
    disk_mb: int
    mem_mb: int


def parse_facts(output: str) -> Facts:
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')

    def number(key: str) -> int:
        try:
            return int(values.get(key, ""))
        except ValueError:
            return -1

    kb_disk, kb_mem = number("disk_kb"), number("mem_kb")
    return Facts(
        os_id=values.get("os_id", "").lower(),
        os_version=values.get("os_version", ""),
        os_name=values.get("os_name", "unknown"),
        python=values.get("python", ""),
        uid=number("uid"),
        sudo=values.get("sudo", "no"),
        disk_mb=kb_disk // 1024 if kb_disk >= 0 else -1,
        mem_mb=kb_mem // 1024 if kb_mem >= 0 else -1,
    )


def evaluate(facts: Facts, user: str) -> list[tuple[str, str]]:
    """The reasons (problem, fix) to refuse this host; empty when it may be provisioned."""
    problems: list[tuple[str, str]] = []
    fix = f"use one of the supported systems: {SUPPORTED_TEXT}"
    if facts.os_id not in {os_id for os_id, _ in SUPPORTED}:
        problems.append((f"unsupported OS {facts.os_name!r} (ID={facts.os_id or 'unknown'})", fix))
    elif (facts.os_id, facts.os_version) not in SUPPORTED:
        version = facts.os_version or "unknown"
        problems.append((f"unsupported OS version {facts.os_name!r} (VERSION_ID={version})", fix))
    if not facts.python:
        problems.append(("python3 is not installed", "install it: apt-get install -y python3"))
    if facts.sudo == "no":
        problems.append(
            (
                f"user {user!r} is not root and has no passwordless sudo",
                f"connect as root, or add '{user} ALL=(ALL) NOPASSWD:ALL' to /etc/sudoers.d/{user}",
            )
        )
    if 0 <= facts.disk_mb < MIN_DISK_MB:
        problems.append(
            (
                f"only {facts.disk_mb} MB free disk under /var/lib, {MIN_DISK_MB} MB needed",
                "free some space or grow the disk",
            )
        )
    if 0 <= facts.mem_mb < MIN_RAM_MB:
        problems.append((f"only {facts.mem_mb} MB RAM, {MIN_RAM_MB} MB needed", "use a larger machine"))
    return problems


def known_hosts_hint() -> str:
    from . import paths

    return str(paths.known_hosts())


def connection_error(host: Host, exc: BaseException) -> ProvisionerError:
    """Map an SSH/socket exception to one line with a fix."""
    import paramiko
    from paramiko.ssh_exception import NoValidConnectionsError

    where = f"{host.address}:{host.port}"
    if isinstance(exc, socket.gaierror):
        return ProvisionerError(
            f"cannot resolve host name {host.address!r}", host=host.name, fix="check the spelling or your DNS"
        )
    if isinstance(exc, ConnectionRefusedError | NoValidConnectionsError):
        return ProvisionerError(
            f"connection refused on {where}", host=host.name, fix="check the port and that sshd is running"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProvisionerError(
            f"no answer from {where} within {CONNECT_TIMEOUT} s",
            host=host.name,
            fix="check the address, the port and any firewall",
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        return ProvisionerError(
            f"the SSH host key of {where} changed",
            host=host.name,
            fix="if the server was reinstalled, remove its old key: "
            f"ssh-keygen -R '[{host.address}]:{host.port}' (and from {known_hosts_hint()})",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        key = f"key {host.identity}" if host.identity else "your SSH keys/agent"
        return ProvisionerError(
            f"SSH login as {host.user!r} was rejected with {key}",
            host=host.name,
            fix="pass the right private key with -i/--identity, or the right user as USER@HOST",
        )
    if isinstance(exc, paramiko.SSHException | EOFError | OSError):
        return ProvisionerError(f"SSH to {where} failed: {exc or type(exc).__name__}", host=host.name)
    return ProvisionerError(f"unexpected error while connecting: {type(exc).__name__}: {exc}", host=host.name)


def connection(host: Host, known_hosts: Path | None = None) -> Any:
    """A fabric Connection (not yet open) with our timeouts, key and known hosts."""
    import paramiko
    from fabric import Config, Connection

    connect_kwargs: dict[str, object] = {
        "banner_timeout": CONNECT_TIMEOUT,
        "auth_timeout": CONNECT_TIMEOUT,
    }
    if host.identity:
        connect_kwargs.update(key_filename=[host.identity], look_for_keys=False, allow_agent=False)
    config = Config(overrides={"load_ssh_configs": False})
    conn = Connection(
        host.address,
        user=host.user,
        port=host.port,
        connect_timeout=CONNECT_TIMEOUT,
        connect_kwargs=connect_kwargs,
        config=config,
    )
    if not host.sandbox:
        for path in (known_hosts, Path("~/.ssh/known_hosts").expanduser()):
            if path and path.exists():
                with contextlib.suppress(OSError, paramiko.SSHException):
                    conn.client.load_host_keys(str(path))
    return conn


def gather(host: Host, known_hosts: Path | None = None) -> Facts:
    """Connect with fabric and read the facts; raises ProvisionerError with one clear line."""
    conn = connection(host, known_hosts)
    try:
        result = conn.run(FACTS_SCRIPT, hide=True, warn=True, in_stream=False)
    except Exception as exc:  # mapped to one clear line, never a traceback
        raise connection_error(host, exc) from exc
    finally:
        conn.close()
    return parse_facts(result.stdout)


def run_command(host: Host, command: str, timeout: float | None = None) -> str:
    """A read-only command's output (as the connecting user); a connection failure is one clear line."""
    conn = connection(host)
    try:
        return str(conn.run(command, hide=True, warn=True, in_stream=False, timeout=timeout).stdout)
    except Exception as exc:  # mapped to one clear line, never a traceback
        raise connection_error(host, exc) from exc
    finally:
        conn.close()


def check_host(host: Host, known_hosts: Path | None = None) -> Facts:
    if host.identity and not os.path.isfile(host.identity):
        raise UsageError(f"identity file {host.identity!r} does not exist", host=host.name)
    facts = gather(host, known_hosts)
    problems = evaluate(facts, host.user)
    if problems:
        raise HostErrors([ProvisionerError(p, host=host.name, fix=f) for p, f in problems])
    return facts


def check_all(
    hosts: Iterable[Host], *, forks: int = 5, known_hosts: Path | None = None
) -> Mapping[str, Facts]:
    """Check every host in parallel; raise one HostErrors listing every refused host."""
    hosts = list(hosts)
    results: dict[str, Facts] = {}
    errors: list[ProvisionerError] = []
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts) or 1))) as pool:
        futures = {host.name: pool.submit(check_host, host, known_hosts) for host in hosts}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except HostErrors as exc:
                errors.extend(exc.errors)
            except ProvisionerError as exc:
                errors.append(exc)
    if errors:
        raise HostErrors(errors)
    return results


def check_reachable(hosts: Iterable[Host], *, forks: int = 5, known_hosts: Path | None = None) -> None:
    """Only the connection part of pre-flight (for verify: any OS may be reported on)."""
    hosts = list(hosts)
    errors: list[ProvisionerError] = []

    def one(host: Host) -> None:
        if host.identity and not os.path.isfile(host.identity):
            raise UsageError(f"identity file {host.identity!r} does not exist", host=host.name)
        gather(host, known_hosts)

    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts) or 1))) as pool:
        futures = [(h, pool.submit(one, h)) for h in hosts]
        for _host, future in futures:
            try:
                future.result()
            except ProvisionerError as exc:
                errors.append(exc)
    if errors:
        raise HostErrors(errors)


def run_as_root(host: Host, command: str, stdin: str = "") -> Any:
    """A shell command on the host as root (through `sudo -n` for an admin user); the fabric result
    (exited, stdout, stderr). A connection failure or a user without passwordless sudo is one clear line."""
    sudo = "" if host.user == "root" else "sudo -n "
    conn = connection(host)
    try:
        result = conn.run(f"{sudo}{command}", hide=True, warn=True, in_stream=io.StringIO(stdin))
    except Exception as exc:  # mapped to one clear line, never a traceback
        raise connection_error(host, exc) from exc
    finally:
        conn.close()
    if result.exited != 0 and "a password is required" in (result.stderr or ""):
        raise ProvisionerError(f"user {host.user!r} is not root and has no passwordless sudo", host=host.name)
    return result
