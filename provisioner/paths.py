"""Where provisioner keeps its files on the controller, and where its Ansible content lives."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "provisioner"


def data_dir() -> Path:
    """The user's data dir (keys, run artifacts, known_hosts); PROVISIONER_HOME overrides it."""
    override = os.environ.get("PROVISIONER_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def keys_dir() -> Path:
    path = data_dir() / "keys"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def known_hosts() -> Path:
    return data_dir() / "known_hosts"


def ansible_dir() -> Path:
    """The directory holding playbooks/ and roles/: the source tree, or the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, here / "_ansible"):
        if (candidate / "playbooks" / "site.yml").is_file() and (candidate / "roles").is_dir():
            return candidate
    raise FileNotFoundError("provisioner's playbooks/ and roles/ are missing from this installation")


def playbook(name: str = "site.yml") -> Path:
    return ansible_dir() / "playbooks" / name


def roles_path() -> Path:
    return ansible_dir() / "roles"


def local_ca_certificates() -> list[Path]:
    """Extra CAs this machine trusts beyond the distro's (Debian/Ubuntu: /usr/local/share/ca-certificates)."""
    root = Path("/usr/local/share/ca-certificates")
    return sorted(root.glob("**/*.crt")) if root.is_dir() else []
