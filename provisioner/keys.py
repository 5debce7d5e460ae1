"""Deploy keys of provisioned hosts, managed from the controller without a full `up`.

Runs the host's root-only `provisioner-keys` (installed by the receiver role) over SSH as the admin user
(root, or a passwordless-sudo user), with the public key on stdin.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from . import preflight
from .errors import ProvisionerError, UsageError
from .hostcmd import keys as host_keys
from .hostvars import public_key
from .targets import Host

TOOL = "/usr/local/sbin/provisioner-keys"


@dataclass(frozen=True)
class DeployKey:
    name: str
    type: str
    fingerprint: str
    apps: list[str] | None = None  # None: every app


def key_name(name: str, *, new: bool) -> str:
    """The host's own rule, checked here first: a bad name never costs a connection."""
    try:
        return host_keys.key_name(name, managed=not new)
    except host_keys.KeyError_ as exc:
        raise UsageError(str(exc)) from None


def _run(host: Host, args: list[str], stdin: str = "") -> str:
    """Run the host's keys tool as root; its `error:` line becomes ours."""
    result = preflight.run_as_root(host, f"{TOOL} {shlex.join(args)}", stdin)
    if result.exited != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        message = detail[-1].removeprefix("error: ") if detail else f"exit code {result.exited}"
        if result.exited == 127 or "No such file" in message or "command not found" in message:
            raise ProvisionerError(
                "this host has no deploy keys tool", host=host.name, fix="run `provisioner up` on it first"
            )
        if "a password is required" in message or "sudo:" in message:
            raise ProvisionerError(
                f"user {host.user!r} is not root and has no passwordless sudo", host=host.name
            )
        raise ProvisionerError(message, host=host.name)
    return str(result.stdout)


def list_keys(host: Host) -> list[DeployKey]:
    data: list[dict[str, Any]] = json.loads(_run(host, ["list", "--json"]) or "[]")
    return [DeployKey(d["name"], d["type"], d["fingerprint"], d.get("apps")) for d in data]


def add_key(host: Host, name: str, key_file: str, apps: str | None = None) -> str:
    """Install a deploy key; apps ("a,b"): it may push and manage only those apps."""
    key = public_key(key_file)  # validated here first: a clear error before any connection
    argv = ["add", key_name(name, new=True)]
    if apps is not None:
        try:
            argv += ["--apps", ",".join(host_keys.app_list(apps.split(",")))]
        except host_keys.KeyError_ as exc:
            raise UsageError(f"--apps: {exc}") from None
    return _run(host, argv, stdin=key + "\n").strip()


def remove_key(host: Host, name: str) -> str:
    return _run(host, ["remove", key_name(name, new=False)]).strip()
