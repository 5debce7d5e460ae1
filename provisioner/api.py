"""The library API behind the CLI: resolve targets, pre-flight, run the playbook, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import cloudinit, hostvars, paths, preflight, runner, sandbox
from .errors import UsageError
from .targets import (
    Host,
    build_inventory,
    extra_inventory,
    hosts_from_targets,
    hosts_from_vagrant,
    load_inventory,
    swarm_groups,
)

if TYPE_CHECKING:  # verify.run imports pytest: only when checks run
    from .verify.run import VerifyResult


def sandbox_hosts() -> dict[str, Host]:
    """Sandboxes as Host objects, so a bare sandbox name works as a target."""
    try:
        boxes = sandbox.list_sandboxes()
    except Exception:  # no engine: then no name can be a sandbox
        return {}
    return {
        b.name: Host(name=b.name, address="127.0.0.1", port=b.ssh_port, identity=b.identity, sandbox=True)
        for b in boxes
        if b.ssh_port
    }


def resolve_hosts(
    targets: Iterable[str],
    *,
    identity: str | None = None,
    inventory: str | None = None,
    limit: str | None = None,
    vagrant: str | None = None,
) -> list[Host]:
    targets = list(targets)
    if vagrant is not None:
        if targets or inventory:
            raise UsageError("give either targets, --inventory or --vagrant")
        return hosts_from_vagrant(None if vagrant in ("", "*") else vagrant)
    if inventory and targets:
        raise UsageError("give either targets or --inventory, not both")
    if inventory:
        return load_inventory(inventory, identity=identity, limit=limit)
    if not targets:
        raise UsageError("no target given: name a host ([user@]host[:port]), a sandbox, or --inventory FILE")
    needs_lookup = any("@" not in t and ":" not in t for t in targets) or any("@" in t for t in targets)
    boxes = sandbox_hosts() if needs_lookup else {}
    hosts = hosts_from_targets(targets, identity=identity, sandboxes=boxes)
    if limit:
        import fnmatch

        patterns = [p for p in limit.replace(",", ":").split(":") if p]
        hosts = [h for h in hosts if any(fnmatch.fnmatch(h.name, p) for p in patterns)]
        if not hosts:
            raise UsageError(f"--limit {limit!r} matches none of the targets")
    return hosts


@dataclass
class UpOptions:
    identity: str | None = None
    inventory: str | None = None
    domain: str | None = None
    check: bool = False
    tags: list[str] = field(default_factory=list)
    limit: str | None = None
    forks: int = 5
    ca_certs: list[str] = field(default_factory=list)
    apt_proxy: str | None = None
    pip_index_url: str | None = None
    acme_email: str | None = None
    acme_server: str | None = None
    acme_staging: bool = False
    extra_vars: list[str] = field(default_factory=list)
    deploy_keys: list[str] = field(default_factory=list)
    verify: bool = True
    vagrant: str | None = None
    swarm: bool = False  # join the targets into one Docker Swarm cluster
    managers: int = 1  # with swarm: the first N targets are managers
    wait_cloud_init: bool = False  # wait until cloud-init has finished on each host, then pre-flight


@dataclass
class UpResult:
    hosts: dict[str, runner.HostProgress]
    seconds: float
    ok: bool
    check: bool
    changes: list[runner.Change]
    artifacts: str
    verify: VerifyResult | None = None  # when checks ran after provisioning

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "hosts": {
                name: {
                    "ok": hp.ok,
                    "changed": hp.changed,
                    "failed": hp.failed,
                    "unreachable": hp.unreachable,
                    "seconds": round(hp.seconds(), 1),
                    "roles": {role: round(seconds, 1) for role, seconds in hp.roles().items()},
                    "waiting": round(hp.waiting, 1),
                    "slowest_tasks": [{"task": t.task, "seconds": round(t.seconds, 1)} for t in hp.slowest()],
                    **({"error": hp.error} if hp.error else {}),
                }
                for name, hp in sorted(self.hosts.items())
            },
            "seconds": round(self.seconds, 1),
        }
        if self.verify is not None:
            data["verify"] = self.verify.as_dict()
        if self.check:
            data["check"] = True
            data["changes"] = [{"host": c.host, "task": c.task, "diff": c.diff} for c in self.changes]
        return data


def up(
    targets: Iterable[str],
    options: UpOptions,
    *,
    progress: runner.Progress | None = None,
    on_preflight: Callable[[list[Host]], None] | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> UpResult:
    """Provision hosts: validate everything, pre-flight every host, then one ansible-runner run."""
    started = time.monotonic()
    domain = hostvars.validate_domain(options.domain) if options.domain else None
    extra = command_line_vars(options)
    if options.swarm and (options.inventory or options.vagrant):
        raise UsageError(
            "--swarm makes the cluster from targets; in an inventory, put the hosts in the groups "
            "swarm_managers and swarm_workers instead"
        )
    hosts = resolve_hosts(
        targets,
        identity=options.identity,
        inventory=options.inventory,
        limit=options.limit,
        vagrant=options.vagrant,
    )
    if options.swarm:
        swarm_groups([h.name for h in hosts], options.managers)  # a bad --managers fails before any work
    if on_preflight:
        on_preflight(hosts)
    if options.wait_cloud_init:
        cloudinit.wait_for(hosts, say=say)
    extra["receiver_authorized_keys"] = hostvars.deploy_keys(options.deploy_keys, [h.identity for h in hosts])
    preflight.check_all(hosts, forks=options.forks, known_hosts=paths.known_hosts())
    per_host = hostvars.host_vars(hosts, domain)
    if options.inventory:
        inventory = [extra_inventory(hosts, per_host)]
        files = [options.inventory]
    else:
        groups = swarm_groups([h.name for h in hosts], options.managers) if options.swarm else None
        inventory = [build_inventory(hosts, per_host, paths.known_hosts(), groups)]
        files = []
    result = runner.run_playbook(
        inventory=inventory,
        inventory_files=files,
        extravars=extra,
        check=options.check,
        tags=options.tags,
        limit=options.limit if options.inventory else None,
        forks=options.forks,
        progress=progress,
        host_names=[h.name for h in hosts],
    )
    checked = None
    if options.verify and not options.check and result.ok:
        checked = verify(hosts, VerifyOptions(ca_certs=options.ca_certs), options.forks)
    return UpResult(
        hosts=result.progress.hosts,
        seconds=time.monotonic() - started,
        ok=result.ok and (checked is None or checked.ok),
        verify=checked,
        check=options.check,
        changes=result.progress.changes,
        artifacts=str(result.private_data_dir),
    )


@dataclass
class VerifyOptions:
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    disk_min: float = 5.0
    disk_warn: float = 15.0
    ca_certs: list[str] = field(default_factory=list)
    firewall_ports: list[int] | None = None  # None: each host's own security settings say


def verify(hosts: list[Host], options: VerifyOptions, forks: int = 5) -> VerifyResult:
    """Run the shipped testinfra suite against hosts."""
    from .verify import run

    return run.run_checks(
        hosts,
        only=options.only,
        skip=options.skip,
        disk_min=options.disk_min,
        disk_warn=options.disk_warn,
        ca_files=options.ca_certs,
        firewall_ports=options.firewall_ports,
        forks=forks,
    )


def verify_targets(
    targets: Iterable[str],
    options: VerifyOptions,
    *,
    identity: str | None = None,
    inventory: str | None = None,
    limit: str | None = None,
    forks: int = 5,
    vagrant: str | None = None,
) -> VerifyResult:
    hosts = resolve_hosts(targets, identity=identity, inventory=inventory, limit=limit, vagrant=vagrant)
    from .verify import run

    run.select(options.only, options.skip)  # bad names fail before any connection
    preflight.check_reachable(hosts, forks=forks, known_hosts=paths.known_hosts())
    return verify(hosts, options, forks)


def command_line_vars(options: UpOptions) -> dict[str, Any]:
    """The variables `up`'s provisioning options give every host (all but the deploy keys and domain)."""
    return hostvars.extra_vars(
        ca_files=options.ca_certs,
        apt_proxy=options.apt_proxy,
        pip_index_url=options.pip_index_url,
        acme=hostvars.acme_vars(options.acme_email, options.acme_server, options.acme_staging),
        extra=hostvars.parse_extra_vars(options.extra_vars),
    )


def ansible_vars(
    host_ip: str | None, options: UpOptions, identities: Iterable[str | None] = ()
) -> dict[str, Any]:
    """Every variable `up` gives a host whose apps answer at host_ip, with these options (the one definition:
    `provisioner vars`, the Vagrantfile and `provisioner cloud-init --mode self` use it). Without host_ip
    and --domain, no provisioner_domain: the host works out its own (cloud-init's first boot does)."""
    data = command_line_vars(options)
    data["receiver_authorized_keys"] = hostvars.deploy_keys(options.deploy_keys, identities)
    domain = hostvars.validate_domain(options.domain) if options.domain else None
    if domain or host_ip:
        host = Host(name="host", address=host_ip or "127.0.0.1")
        data.update(hostvars.host_vars([host], domain)["host"])
    return data
