"""Targets: what the user names on the command line, turned into validated Host objects.

A target is ``[user@]host[:port]`` (IPv6 as ``[addr]`` or ``[addr]:port``), a sandbox name, or a host
from an Ansible inventory. Everything here is pure logic except :func:`load_inventory`, which asks
``ansible-inventory`` to parse the user's file exactly as ``ansible-playbook`` will.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
TARGET_RE = re.compile(
    r"""^(?:(?P<user>[^@\s]+)@)?          # user@
        (?:\[(?P<ipv6>[^\]\s]+)\]|(?P<host>[^:@\[\]\s]+))
        (?::(?P<port>[^:\s]*))?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Host:
    """One machine to act on, with everything needed to reach it over SSH."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    identity: str | None = None
    sandbox: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)
    #: True when the host came from the user's inventory (its vars are used unchanged).
    from_inventory: bool = False

    @property
    def become(self) -> bool:
        return self.user != "root"

    @property
    def ssh(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{address}:{self.port}"


def valid_hostname(name: str) -> bool:
    """RFC 1123 host name (labels of letters, digits and inner hyphens) or an IP address."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if len(name) > 253 or not name or name.endswith("."):
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # looks like a broken IPv4 address
    return all(LABEL_RE.fullmatch(label) for label in labels)


def parse_target(text: str, *, default_user: str = "root") -> tuple[str, str, int | None]:
    """Split ``[user@]host[:port]`` into (user, host, port); port is None when not given."""
    if not text or text != text.strip():
        raise UsageError(f"malformed target {text!r}: expected [user@]host[:port]")
    if text.startswith("-"):
        raise UsageError(f"malformed target {text!r}: a target cannot start with '-'")
    match = TARGET_RE.fullmatch(text)
    if not match:
        if text.count(":") > 1 and "[" not in text:
            raise UsageError(
                f"malformed target {text!r}: write IPv6 addresses in brackets, e.g. root@[::1]:22"
            )
        raise UsageError(f"malformed target {text!r}: expected [user@]host[:port]")
    user = match.group("user") or default_user
    if not USER_RE.fullmatch(user):
        raise UsageError(f"malformed target {text!r}: {user!r} is not a valid user name")
    if match.group("ipv6") is not None:
        host = match.group("ipv6")
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise UsageError(
                f"malformed target {text!r}: {host!r} in brackets is not an IPv6 address"
            ) from None
    else:
        host = match.group("host")
        if not valid_hostname(host):
            raise UsageError(f"malformed target {text!r}: {host!r} is not a valid host name or address")
    port_text = match.group("port")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UsageError(f"malformed target {text!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    return user, host, port


def host_from_target(
    text: str,
    *,
    identity: str | None = None,
    sandboxes: Mapping[str, Host] | None = None,
) -> Host:
    """Turn one target string into a Host; a bare name that is a sandbox resolves to that sandbox."""
    user, host, port = parse_target(text)
    explicit_user = "@" in text
    if sandboxes and host in sandboxes and port is None:
        box = sandboxes[host]
        return Host(
            name=box.name,
            address=box.address,
            port=box.port,
            user=user if explicit_user else box.user,
            identity=identity or box.identity,
            sandbox=True,
        )
    port = port or 22
    name = host if port == 22 else f"{host}-{port}"
    return Host(name=name, address=host, port=port, user=user, identity=identity)


def hosts_from_targets(
    targets: Iterable[str],
    *,
    identity: str | None = None,
    sandboxes: Mapping[str, Host] | None = None,
) -> list[Host]:
    hosts: list[Host] = []
    seen: dict[str, str] = {}
    for text in targets:
        host = host_from_target(text, identity=identity, sandboxes=sandboxes)
        key = f"{host.address}:{host.port}"
        if key in seen:
            raise UsageError(f"target {text!r} names the same host as {seen[key]!r}")
        seen[key] = text
        hosts.append(host)
    return hosts


# Sandboxes (and Vagrant machines) get fresh host keys whenever they are recreated: their keys are not pinned.
UNPINNED_SSH_OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
]


def ssh_common_args(host: Host, known_hosts: Path) -> str:
    """OpenSSH options for a host: pinned on first use, except for sandboxes."""
    if host.sandbox:
        return " ".join(UNPINNED_SSH_OPTIONS)
    return f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile='{known_hosts} ~/.ssh/known_hosts'"


def swarm_groups(names: Sequence[str], managers: int) -> dict[str, Any]:
    """`up --swarm`: the inventory groups of a Docker Swarm cluster, the first `managers` targets its
    managers and the others its workers (the swarm role and the play read these groups)."""
    if not 1 <= managers <= len(names):
        raise UsageError(f"--managers {managers}: between 1 and the number of targets ({len(names)})")
    return {
        "swarm_managers": {"hosts": {name: {} for name in names[:managers]}},
        "swarm_workers": {"hosts": {name: {} for name in names[managers:]}},
    }


def build_inventory(
    hosts: Iterable[Host],
    host_vars: Mapping[str, Mapping[str, Any]],
    known_hosts: Path,
    groups: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The YAML/JSON inventory for targets given on the command line (groups: swarm_groups)."""
    entries: dict[str, Any] = {}
    for host in hosts:
        entry: dict[str, Any] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": host.user,
            "ansible_become": host.become,
            "ansible_ssh_common_args": ssh_common_args(host, known_hosts),
            "ansible_python_interpreter": "auto_silent",
        }
        if host.identity:
            entry["ansible_ssh_private_key_file"] = host.identity
        entry.update(host_vars.get(host.name, {}))
        entries[host.name] = entry
    inventory: dict[str, Any] = {"all": {"hosts": entries}}
    if groups:
        inventory["all"]["children"] = dict(groups)
    return inventory


def extra_inventory(hosts: Iterable[Host], host_vars: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A second inventory source that only adds our defaults to hosts of the user's inventory.

    Variables the user's inventory already sets are left out, so the user's values win.
    """
    entries: dict[str, Any] = {}
    for host in hosts:
        added = {k: v for k, v in host_vars.get(host.name, {}).items() if k not in host.vars}
        if added:
            entries[host.name] = added
    return {"all": {"hosts": entries}}


def hosts_from_inventory_data(data: Mapping[str, Any], *, identity: str | None = None) -> list[Host]:
    """Hosts out of ``ansible-inventory --list`` output (``_meta.hostvars``)."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    names: list[str] = []
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, Mapping):
            continue
        for name in body.get("hosts", []):
            if name not in names:
                names.append(name)
    hosts = []
    for name in names:
        hv = hostvars.get(name, {})
        port = hv.get("ansible_port", hv.get("ansible_ssh_port", 22))
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise UsageError(f"inventory host {name!r}: ansible_port {port!r} is not a number") from None
        key = hv.get("ansible_ssh_private_key_file", identity)
        hosts.append(
            Host(
                name=name,
                address=str(hv.get("ansible_host", hv.get("ansible_ssh_host", name))),
                port=port,
                user=str(hv.get("ansible_user", hv.get("ansible_ssh_user", "root"))),
                identity=os.path.expanduser(str(key)) if key else None,
                vars=dict(hv),
                from_inventory=True,
            )
        )
    return hosts


def load_inventory(path: str, *, identity: str | None = None, limit: str | None = None) -> list[Host]:
    """Parse an Ansible inventory exactly as ansible-playbook will; a broken file is one clear error."""
    if not Path(path).exists():
        raise UsageError(f"inventory {path!r} does not exist")
    env = dict(
        os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1"
    )
    cmd = [_ansible_tool("ansible-inventory"), "-i", path, "--list"]
    if limit:
        cmd += ["--limit", limit]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise UsageError(f"inventory {path!r} could not be parsed: {_first_error(proc.stderr)}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"inventory {path!r} could not be parsed") from None
    hosts = hosts_from_inventory_data(data, identity=identity)
    if not hosts:
        raise UsageError(
            f"inventory {path!r} has no hosts" + (f" matching --limit {limit!r}" if limit else "")
        )
    return hosts


def _ansible_tool(name: str) -> str:
    """The ansible-* entry point installed beside this Python (in the venv), else from PATH."""
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("[ERROR]", "ERROR!")):
            return line.removeprefix("[ERROR]:").removeprefix("ERROR!").strip()
    for line in lines:
        if "WARNING" not in line and not line.startswith("^"):
            return line
    return lines[0] if lines else "unknown error"


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """`vagrant ssh-config` output -> {Host: {option: value}} (option names lower-cased)."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip().strip('"')
        if key.lower() == "host":
            current = hosts.setdefault(value, {})
        elif current is not None:
            current[key.lower()] = value
    return hosts


def hosts_from_vagrant(machine: str | None, cwd: str | None = None) -> list[Host]:
    """Hosts of a Vagrant environment, from `vagrant ssh-config [MACHINE]`."""
    cmd = ["vagrant", "ssh-config", *([machine] if machine else [])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False, timeout=300)
    except FileNotFoundError:
        raise UsageError("--vagrant needs the vagrant command, which is not installed") from None
    if proc.returncode != 0:
        first = " ".join(proc.stderr.strip().split("\n\n")[0].split())  # vagrant wraps its first paragraph
        raise UsageError(f"vagrant ssh-config failed: {first or 'is the machine running?'}", fix="vagrant up")
    hosts = []
    for name, opts in parse_ssh_config(proc.stdout).items():
        hosts.append(
            Host(
                name=name,
                address=opts.get("hostname", "127.0.0.1"),
                port=int(opts.get("port", "22")),
                user=opts.get("user", "vagrant"),
                identity=opts.get("identityfile"),
                sandbox=True,  # Vagrant machines get new host keys when recreated
            )
        )
    if not hosts:
        raise UsageError("vagrant ssh-config listed no machine")
    return hosts
