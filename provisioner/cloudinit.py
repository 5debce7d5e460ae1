"""Cloud-config user-data for cloud VMs (`provisioner cloud-init`), and waiting for cloud-init (`up
--wait-cloud-init`).

Two modes:
- ``prepare``: the admin user with its keys and passwordless sudo, and python3: what `provisioner up`
  needs of a host, and nothing else.
- ``self``: the VM provisions itself at first boot. The playbook, roles and host program do not fit in the
  16 KiB of user-data most clouds accept (they are ~130 KiB compressed), so they travel as a bundle the
  user puts at a URL of their choice; the user-data pins its SHA-256, carries the variables `up` would pass
  (api.ansible_vars, the one definition) and provisioner/firstboot.py, which does the rest on the VM.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.metadata
import io
import json
import re
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import paths, program
from .errors import ProvisionerError, UsageError
from .targets import Host

MODES = ("prepare", "self")
DEFAULT_USER = "admin"
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
RESERVED_USERS = {"root", "deploy", "daemon", "bin", "sys", "nobody", "www-data", "sshd"}
USER_DATA_LIMIT = 16 * 1024  # what most clouds accept (e.g. AWS: 16 KB before base64)
STATE_DIR = "/var/lib/provisioner/cloud-init"
STATUS_FILE = f"{STATE_DIR}/status.json"
FIRSTBOOT_LOG = "/var/log/provisioner-firstboot.log"
FIRSTBOOT = Path(__file__).resolve().parent / "firstboot.py"
EPOCH = 315532800  # 1980-01-01: fixed member times keep the bundle's bytes (and SHA-256) reproducible


def validate_user(name: str) -> str:
    if not USER_RE.fullmatch(name) or name in RESERVED_USERS:
        raise UsageError(
            f"invalid --user {name!r}: use a new login name of lowercase letters, digits, '_' and '-' "
            f"(not {', '.join(sorted(RESERVED_USERS))})"
        )
    return name


def admin_user(name: str, keys: Iterable[str]) -> dict[str, Any]:
    """cloud-init's users entry for the admin: key login only, passwordless sudo."""
    keys = list(keys)
    if not keys:
        raise UsageError("no public key for the admin user: give --key FILE (e.g. ~/.ssh/id_ed25519.pub)")
    return {
        "name": validate_user(name),
        "groups": ["sudo"],
        "shell": "/bin/bash",
        "lock_passwd": True,
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "ssh_authorized_keys": keys,
    }


def render(doc: Mapping[str, Any], comment: str) -> str:
    """``#cloud-config`` and the document as YAML, under the size most clouds accept."""
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no types
        """Multi-line strings (scripts, JSON with a newline) as readable literal blocks."""

    def literal(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value.rstrip("\n") or value.endswith("\n") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, literal)
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.strip().splitlines())
    body = yaml.dump(dict(doc), Dumper=Dumper, sort_keys=False, width=1000)
    text = "#cloud-config\n" + lines + str(body)
    size = len(text.encode())
    if size > USER_DATA_LIMIT:
        raise UsageError(
            f"the user-data is {size} bytes, over the {USER_DATA_LIMIT} most clouds accept",
            fix="pass fewer or smaller --ca-cert and -e values",
        )
    return text


def prepare(user: str, keys: Iterable[str]) -> str:
    doc = {
        # Keep the image's own default user (the provider's console and key injection use it).
        "users": ["default", admin_user(user, keys)],
        "packages": ["python3"],
    }
    comment = f"""
provisioner cloud-init --mode prepare: the admin user {user!r} (these keys, passwordless sudo) and python3,
nothing else. When the VM is up: provisioner up {user}@<its address> --wait-cloud-init
"""
    return render(doc, comment)


def bundle() -> bytes:
    """The playbook, the roles and the host program as one tar.gz, the same bytes for the same sources."""
    root = paths.ansible_dir()
    members: list[tuple[str, bytes, int]] = []
    for path in sorted([root / "playbooks" / "site.yml", *(root / "roles").rglob("*")]):
        if path.is_file() and path.name != "README.md" and "__pycache__" not in path.parts:
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            members.append((path.relative_to(root).as_posix(), path.read_bytes(), mode))
    members.append(("hostcmd.zip", program.pack(), 0o644))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, EPOCH
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def ansible_core_version() -> str:
    return importlib.metadata.version("ansible-core")


def self_provision(
    user: str,
    keys: Iterable[str],
    variables: Mapping[str, Any],
    *,
    bundle_url: str,
    bundle_sha256: str,
) -> str:
    """User-data with which the VM provisions itself at first boot (see the module's docstring)."""
    parsed = urllib.parse.urlsplit(bundle_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or re.search(r"[\s'\"\\]", bundle_url):
        raise UsageError(f"invalid --bundle-url {bundle_url!r}: expected an http:// or https:// URL")
    keys = list(keys)
    certs = [item["content"].strip() for item in variables.get("base_ca_certificates", [])]
    boot = {
        "bundle_url": bundle_url,
        "bundle_sha256": bundle_sha256,
        "ansible_core": ansible_core_version(),
        "pip_index_url": variables.get("base_pip_index_url", ""),
    }
    files = [
        {"path": f"{STATE_DIR}/bootstrap.json", "permissions": "0600", "content": json.dumps(boot) + "\n"},
        {
            "path": f"{STATE_DIR}/vars.json",
            "permissions": "0600",
            "content": json.dumps(dict(variables), sort_keys=True) + "\n",
        },
        {  # compressed: the user-data stays well under the limit, room for the user's CAs
            "path": f"{STATE_DIR}/firstboot.py",
            "permissions": "0700",
            "encoding": "gz+b64",
            "content": base64.b64encode(gzip.compress(FIRSTBOOT.read_bytes(), mtime=0)).decode(),
        },
    ]
    doc: dict[str, Any] = {"users": ["default", admin_user(user, keys)]}
    if certs:  # before anything is fetched over HTTPS (e.g. through a TLS-intercepting proxy)
        doc["ca_certs"] = {"trusted": certs}
    doc["packages"] = ["python3", "python3-venv"]
    doc["write_files"] = files
    doc["runcmd"] = [["python3", f"{STATE_DIR}/firstboot.py"]]
    comment = f"""
provisioner cloud-init --mode self: at first boot this VM provisions itself with provisioner's playbook
(the bundle at {bundle_url}, SHA-256 {bundle_sha256}) and ansible-core {boot["ansible_core"]}.
Progress: {STATUS_FILE}, `cloud-init status --wait`, `provisioner verify`.
"""
    return render(doc, comment)


# --- waiting for cloud-init on a just-booted VM ------------------------------------------------------

# Prints cloud-init's status (done, running, error, ...) or "absent"; never fails.
STATUS_SCRIPT = (
    "if command -v cloud-init >/dev/null 2>&1; then "
    "cloud-init status 2>/dev/null | sed -n 's/^status: *//p' | head -n1; else echo absent; fi"
)
FINISHED = {"done", "disabled", "absent", "error", "degraded done", "degraded"}


def wait_for(
    hosts: Iterable[Host],
    *,
    timeout: float = 900,
    say: Callable[[str], None] = lambda _msg: None,
    interval: float = 3,
) -> None:
    """Wait until cloud-init has finished on every host (SSH may refuse at first: the VM is booting,
    cloud-init creates the admin user). One clear error naming the host when it fails or takes too long."""
    from . import preflight

    pending = {h.name: h for h in hosts}
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    errors: list[ProvisionerError] = []
    while pending:
        for name, host in list(pending.items()):
            try:
                state = preflight.run_command(host, STATUS_SCRIPT, timeout=60).strip() or "unknown"
            except ProvisionerError as exc:
                state = f"not reachable yet ({exc.problem})"
            if state != last.get(name):
                say(f"{name}: cloud-init: {state}")
                last[name] = state
            if state in FINISHED:
                del pending[name]
                if state.startswith("error") or state == "degraded":
                    errors.append(
                        ProvisionerError(
                            "cloud-init finished with errors",
                            host=name,
                            fix="see `cloud-init status --long` and /var/log/cloud-init-output.log there",
                        )
                    )
        if pending and time.monotonic() > deadline:
            for name in pending:
                errors.append(
                    ProvisionerError(
                        f"cloud-init had not finished after {timeout:.0f} s "
                        f"(last: {last.get(name, 'unknown')})",
                        host=name,
                    )
                )
            break
        if pending:
            time.sleep(interval)
    if errors:
        from .errors import HostErrors

        raise HostErrors(errors)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
