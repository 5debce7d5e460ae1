"""Host settings written by the roles: /etc/provisioner/host.json (base) and deploy.json (receiver)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(os.environ.get("PROVISIONER_HOST_CONFIG_DIR", "/etc/provisioner"))


@dataclass(frozen=True)
class Settings:
    domain: str = ""
    apps_dir: str = "/var/lib/provisioner/apps"
    nginx_apps_dir: str = "/etc/nginx/apps.d"
    buildpacks_dir: str = "/var/lib/provisioner/buildpacks"
    run_image: str = "provisioner/stack-run:bookworm"
    build_image: str = "provisioner/stack-build:bookworm"
    deploy_branch: str = "main"
    memory_limit: str = "512m"
    healthcheck_timeout: int = 60
    retire_grace: float = 3.0
    container_port: int = 5000
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    pip_conf: str = "/etc/pip.conf"
    proxy_env: str = "/etc/provisioner/proxy.env"
    network: str = "provisioner"
    keep_releases: int = 3
    build_min_free_mb: int = 1024

    @classmethod
    def load(cls, directory: Path | None = None) -> Settings:
        directory = directory or CONFIG_DIR
        data: dict[str, Any] = {}
        for name in ("host.json", "deploy.json"):
            path = directory / name
            if path.exists():
                data.update(json.loads(path.read_text()))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def app_url(self, app: str) -> str:
        return f"http://{app}.{self.domain}" if self.domain else f"http://{app}"

    def proxy_vars(self) -> dict[str, str]:
        """HTTP(S)_PROXY etc. from the base role's proxy.env (KEY=VALUE lines)."""
        out: dict[str, str] = {}
        path = Path(self.proxy_env)
        if path.exists():
            for line in path.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and key and not key.startswith("#"):
                    out[key] = value.strip().strip('"')
        return out
