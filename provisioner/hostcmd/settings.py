"""Host settings written by the roles, read by the host program and by `provisioner verify` alike.

/etc/provisioner/host.json (base role: the apps domain), deploy.json (receiver role), tls.json (tls role:
certificates and the ACME server), services.json (services role: the backing services' versions and
limits) and, on swarm nodes, swarm.json (swarm role: the node's role, the cluster registry, its peers).
Each field's default here is the role default of the variable that sets it (the role templates name the
variable of each key); tests/unit/test_settings_agree.py fails when the two disagree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(os.environ.get("PROVISIONER_HOST_CONFIG_DIR", "/etc/provisioner"))
FILES = ("host.json", "deploy.json", "tls.json", "services.json", "swarm.json")  # later files win
PROGRAM = "/usr/local/bin/provisioner-host"  # the deploy user's forced command (receiver_program)


@dataclass(frozen=True)
class Settings:
    domain: str = ""  # base_domain
    user: str = "deploy"  # receiver_user
    apps_dir: str = "/var/lib/provisioner/apps"  # receiver_apps_dir
    vhosts_dir: str = "/var/lib/provisioner/nginx"  # receiver_vhosts_dir
    buildpacks_dir: str = "/var/lib/provisioner/buildpacks"  # buildpacks_dir
    run_image: str = "provisioner/stack-run:bookworm"  # buildpacks_run_image
    build_image: str = "provisioner/stack-build:bookworm"  # buildpacks_build_image
    stack_builder: str = "/usr/local/sbin/provisioner-stack"  # buildpacks_builder
    stacks_file: str = "/etc/provisioner/stacks.json"  # buildpacks_catalog
    deploy_branch: str = "main"  # receiver_deploy_branch
    memory_limit: str = "512m"  # receiver_memory_limit
    memory_max: str = "2g"  # receiver_memory_max
    cpus_max: float = 0.0  # receiver_cpus_max
    pids_limit: int = 512  # receiver_pids_limit
    pids_max: int = 4096  # receiver_pids_max
    build_memory: str = "2g"  # receiver_build_memory
    build_cpus: float = 2.0  # receiver_build_cpus
    build_timeout: int = 1800  # receiver_build_timeout
    run_timeout: int = 3600  # receiver_run_timeout
    healthcheck_timeout: int = 60  # receiver_healthcheck_timeout
    retire_grace: float = 3.0  # receiver_retire_grace
    container_port: int = 5000  # receiver_container_port
    keep_releases: int = 3  # receiver_keep_releases
    build_min_free_mb: int = 1024  # receiver_build_min_free_mb
    buildpack_file_dir: str = ""  # receiver_buildpack_file_dir
    git_sync_file_dir: str = ""  # receiver_git_sync_file_dir
    keys_dir: str = "/etc/provisioner/deploy-keys"  # receiver_keys_dir
    storage_dir: str = "/var/lib/provisioner/storage"  # receiver_storage_dir
    storage_tool: str = "/usr/local/sbin/provisioner-storage"  # receiver_storage_tool
    tls_dir: str = "/var/lib/provisioner/tls"  # tls_dir
    acme_server: str = "https://acme-v02.api.letsencrypt.org/directory"  # tls_acme_server
    acme_email: str = ""  # tls_acme_email
    acme_renew_days: int = 30  # tls_acme_renew_days
    backup_keep: int = 7  # receiver_backup_keep
    services_dir: str = "/var/lib/provisioner/services"  # services_dir
    postgres_version: str = "15"  # services_postgres_version
    postgres_memory: str = "512m"  # services_postgres_memory
    redis_memory: str = "256m"  # services_redis_memory
    # Swarm nodes only (swarm role); computed from the inventory's swarm groups, so empty by default.
    swarm_role: str = ""  # swarm_node_role: manager or worker
    swarm_registry: str = ""  # swarm_registry: the cluster registry, host:port
    swarm_peers: tuple[str, ...] = ()  # swarm_peers: the other nodes' addresses
    swarm_router_port: int = 8480  # swarm_router_port
    swarm_router_file: str = "/etc/nginx/provisioner-cluster/routes.conf"  # swarm_router_file
    # Written by the base role at fixed paths (not settings of their own).
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    pip_conf: str = "/etc/pip.conf"
    proxy_env: str = "/etc/provisioner/proxy.env"

    @classmethod
    def load(cls, directory: Path | None = None) -> Settings:
        return cls.from_data(*(json.loads(p.read_text()) for p in cls.paths(directory) if p.exists()))

    @classmethod
    def from_data(cls, *sources: Mapping[str, Any]) -> Settings:
        """Settings from the parsed files (later ones win); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        merged: dict[str, Any] = {}
        for data in sources:
            merged.update({k: v for k, v in data.items() if k in known})
        if isinstance(merged.get("swarm_peers"), list):
            merged["swarm_peers"] = tuple(str(p) for p in merged["swarm_peers"])
        return cls(**merged)

    @staticmethod
    def paths(directory: Path | None = None) -> list[Path]:
        return [(directory or CONFIG_DIR) / name for name in FILES]

    @property
    def acme_dir(self) -> Path:
        """certbot's own state (account, certificates as it obtained them), the deploy user's only."""
        return Path(self.tls_dir) / "acme"

    @property
    def acme_challenges(self) -> Path:
        """Where certbot puts HTTP-01 challenge files and nginx serves them from (app vhosts, port 80)."""
        return Path(self.tls_dir) / "challenges"

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
