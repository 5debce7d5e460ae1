"""The command line: parse arguments, call the library, render with rich. Nothing else lives here."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from . import __version__, api, cloudinit, demo, hostvars, runner, sandbox
from .errors import HostErrors, ProvisionerError, UsageError
from .targets import Host

if TYPE_CHECKING:  # verify.run imports pytest: only when checks run
    from .verify.run import VerifyResult

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: ProvisionerError) -> None:
    lines = exc.lines() if isinstance(exc, HostErrors) else [exc.line()]
    for line in lines:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
    sys.exit(exc.exit_code)


class Group(click.Group):
    """Turns every ProvisionerError into one line and a non-zero exit; never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvisionerError as exc:
            fail(exc)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("PROVISIONER_DEBUG"):
                raise
            err.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} "
                "(set PROVISIONER_DEBUG=1 for details)",
                highlight=False,
            )
            sys.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provisioner")
def main() -> None:
    """Turn fresh Debian/Ubuntu servers into a self-hosted mini-Heroku, and prove the result."""


# --- up -------------------------------------------------------------------------------------------------


def progress_table(progress: runner.Progress) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for col in ("host", "state", "tasks", "elapsed", "current task"):
        table.add_column(col)
    now = time.monotonic()
    for name, hp in sorted(progress.hosts.items()):
        style = {"failed": "red", "unreachable": "red"}.get(hp.state, "")
        elapsed = hp.seconds(None if progress.finished else now)
        table.add_row(
            name,
            f"[{style}]{hp.state}[/]" if style else hp.state,
            str(hp.done),
            f"{elapsed:.0f}s",
            escape(hp.task),
        )
    return table


def slowest_tasks(hp: runner.HostProgress) -> str:
    """A table cell: the host's slowest tasks, one a line, slowest first."""
    return "\n".join(f"{t.seconds:.0f}s {escape(t.task)}" for t in hp.slowest())


def role_times(hp: runner.HostProgress) -> str:
    """A table cell: seconds per role, slowest first (a role under half a second is left out), then the
    time the host waited between its tasks (for slower hosts, and the controller)."""
    spent = sorted(hp.roles().items(), key=lambda item: item[1], reverse=True)
    lines = [f"{seconds:.0f}s {escape(role)}" for role, seconds in spent if seconds >= 0.5]
    if hp.waiting >= 0.5:
        lines.append(f"{hp.waiting:.0f}s waiting for other hosts")
    return "\n".join(lines)


def summary_table(result: api.UpResult) -> Table:
    table = Table(title="provisioner up" + (" --check" if result.check else ""), title_justify="left")
    table.add_column("host")
    for col in ("ok", "changed", "failed", "unreachable", "seconds"):
        table.add_column(col, justify="right")
    table.add_column("seconds per role")
    table.add_column("slowest tasks")
    for name, hp in sorted(result.hosts.items()):
        table.add_row(
            name,
            str(hp.ok),
            str(hp.changed),
            f"[red]{hp.failed}[/]" if hp.failed else "0",
            f"[red]{hp.unreachable}[/]" if hp.unreachable else "0",
            f"{hp.seconds():.0f}",
            role_times(hp),
            slowest_tasks(hp),
        )
    return table


class LineReporter:
    """Progress for logs and pipes: a line `HOST: role: task` whenever a host starts a task."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: runner.ProgressEvent) -> None:
        if event.kind == "task_started":
            self.console.print(f"{event.host}: {event.label}", highlight=False, markup=False)


def line_progress(console: Console) -> runner.Progress:
    progress = runner.Progress()
    progress.subscribe(LineReporter(console))
    return progress


def with_up_options(func: F) -> F:
    options = [
        click.option(
            "-i", "--identity", type=click.Path(dir_okay=False), help="SSH private key to connect with."
        ),
        click.option("--inventory", type=click.Path(), help="An Ansible inventory (used unchanged)."),
        click.option("--limit", help="Only hosts matching this Ansible pattern."),
        click.option(
            "--forks", type=click.IntRange(1, 100), default=5, show_default=True, help="Hosts in parallel."
        ),
        click.option(
            "--vagrant",
            is_flag=False,
            flag_value="*",
            default=None,
            metavar="[MACHINE]",
            help="The machines of the Vagrantfile here (vagrant ssh-config), or one MACHINE.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def with_provisioning_options(func: F) -> F:
    """What a host is provisioned with: `up`, `vars` and `cloud-init --mode self` take the same options."""
    options = [
        click.option("--domain", help="Apps live at APP.DOMAIN (default: <host-ip>.sslip.io)."),
        click.option(
            "--ca-cert", "ca_certs", multiple=True, type=click.Path(dir_okay=False), help="Extra CA to trust."
        ),
        click.option("--apt-proxy", help="HTTP proxy URL for apt on the hosts."),
        click.option("--pip-index-url", help="Python package index for builds on the hosts."),
        click.option("--acme-email", help="Contact address for Let's Encrypt (expiry notices); optional."),
        click.option(
            "--acme-server",
            help="ACME directory URL for letsencrypt:enable (default: Let's Encrypt's production one).",
        ),
        click.option(
            "--acme-staging", is_flag=True, help="Use Let's Encrypt's staging ACME server (for trials)."
        ),
        click.option(
            "--deploy-key",
            "deploy_keys",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="Public key allowed to git push and run app commands (default: the connecting key's .pub).",
        ),
        click.option(
            "-e", "--extra-var", "extra_vars", multiple=True, help="Role variable NAME=VALUE; repeatable."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def provisioning_options(kwargs: dict[str, Any]) -> api.UpOptions:
    """UpOptions from the options of with_provisioning_options (the others keep their defaults)."""
    names = ("domain", "ca_certs", "apt_proxy", "pip_index_url", "acme_email", "acme_server", "acme_staging")
    given = {name: kwargs[name] for name in names}
    given.update(ca_certs=list(kwargs["ca_certs"]), deploy_keys=list(kwargs["deploy_keys"]))
    return api.UpOptions(**given, extra_vars=list(kwargs["extra_vars"]))


@main.command()
@click.argument("targets", nargs=-1)
@with_up_options
@click.option("--check", is_flag=True, help="Show what would change (check mode + diff); change nothing.")
@click.option(
    "--tags",
    multiple=True,
    help=(
        "Only these roles (base, security, docker, swarm, nginx, git, buildpacks, receiver, services, tls); "
        "repeatable."
    ),
)
@with_provisioning_options
@click.option("--verify/--no-verify", default=True, help="Run `provisioner verify` on the hosts afterwards.")
@click.option(
    "--wait-cloud-init",
    is_flag=True,
    help="First wait (with progress) until cloud-init has finished on each just-booted host.",
)
@click.option(
    "--swarm",
    is_flag=True,
    help="Join the targets into one Docker Swarm cluster (`provisioner cluster`); again with more adds them.",
)
@click.option(
    "--managers",
    type=int,
    default=1,
    show_default=True,
    help="With --swarm: the first N targets are managers (3 or 5 for quorum).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def up(targets: tuple[str, ...], as_json: bool, **kwargs: Any) -> None:
    """Provision TARGETS ([user@]host[:port] or sandbox names) with Docker, nginx and git.

    Runs pre-flight checks over SSH, then playbooks/site.yml through ansible-runner, and ends with a
    summary per host. Exits 0 only if every host succeeded.
    """
    kwargs["tags"] = [t for group in kwargs["tags"] for t in group.split(",") if t]
    options = api.UpOptions(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()})  # type: ignore[arg-type]
    live_ok = err.is_terminal and not as_json
    progress = runner.Progress() if live_ok else line_progress(err)

    def say(msg: str) -> None:
        err.print(msg, highlight=False, markup=False)

    if live_ok:
        with Live(get_renderable=lambda: progress_table(progress), console=err, refresh_per_second=4):
            result = api.up(targets, options, progress=progress, say=say)
    else:
        result = api.up(targets, options, progress=progress, say=say)
    report_up(result, as_json)
    if not result.ok:
        sys.exit(1)


def report_up(result: api.UpResult, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        out.print(summary_table(result))
        if result.check:
            for change in result.changes:
                out.print(f"[bold]{escape(change.host)}: {escape(change.task)}[/]")
                out.print(change.diff, markup=False, highlight=False)
            out.print(f"check mode: {len(result.changes)} change(s) would be made; nothing was changed")
    if result.verify is not None and not as_json:
        render_verify(result.verify)
    for name, hp in sorted(result.hosts.items()):
        if hp.error:
            err.print(f"[bold red]error:[/] {escape(name)}: {escape(hp.error)}", highlight=False)
    if result.verify is not None:
        for line in verify_failures(result.verify):
            err.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
    if not result.ok and not any(hp.error for hp in result.hosts.values()) and result.verify is None:
        err.print(
            f"[bold red]error:[/] the Ansible run failed; its output is in {result.artifacts}",
            highlight=False,
        )
    elif not as_json:
        err.print(f"artifacts: {result.artifacts}", highlight=False)


# --- verify -----------------------------------------------------------------------------------------


def render_verify(result: VerifyResult) -> None:
    for name, report in sorted(result.hosts.items()):
        table = Table(title=f"verify {name}", title_justify="left")
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail")
        for r in report.results:
            style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}[r.outcome]
            table.add_row(r.title, f"[{style}]{r.outcome}[/]", escape(r.detail))
        out.print(table)
    totals = result.totals()
    out.print(
        f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped", highlight=False
    )


def parse_firewall_ports(value: str | None) -> list[int] | None:
    if value is None:
        return None  # each host's own security settings say
    from .verify import checks

    try:
        return checks.parse_ports(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def verify_failures(result: VerifyResult) -> list[str]:
    return [
        f"{name}: check '{r.check}' failed: {r.detail}"
        for name, report in sorted(result.hosts.items())
        for r in report.results
        if r.outcome == "failed"
    ]


@main.command()
@click.argument("targets", nargs=-1)
@with_up_options
@click.option("--only", multiple=True, help="Run only this check (repeatable); names: see --list.")
@click.option("--skip", multiple=True, help="Skip this check (repeatable).")
@click.option(
    "--disk-min", type=float, default=5.0, show_default=True, help="Fail below this % of free disk."
)
@click.option(
    "--disk-warn", type=float, default=15.0, show_default=True, help="Warn below this % of free disk."
)
@click.option(
    "--ca-cert", "ca_certs", multiple=True, type=click.Path(dir_okay=False), help="A CA the hosts must trust."
)
@click.option(
    "--firewall-ports",
    default=None,
    callback=lambda _ctx, _param, value: parse_firewall_ports(value),
    help="TCP ports the firewall must open, comma-separated (the ports sshd listens on are added); "
    "default: the ports the host's security role was given.",
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), help="Write the results as JSON to FILE."
)
@click.option(
    "--junit", "junit_file", type=click.Path(dir_okay=False), help="Write a JUnit XML report to FILE."
)
@click.option("--list", "list_checks", is_flag=True, help="List the checks and exit.")
def verify(
    targets: tuple[str, ...],
    identity: str | None,
    inventory: str | None,
    limit: str | None,
    forks: int,
    vagrant: str | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    disk_min: float,
    disk_warn: float,
    ca_certs: tuple[str, ...],
    firewall_ports: list[int] | None,
    json_file: str | None,
    junit_file: str | None,
    list_checks: bool,
) -> None:
    """Prove TARGETS are what `up` makes: run the shipped testinfra checks over SSH.

    Exits 0 only if every check passed on every host.
    """
    from .verify import checks

    if list_checks:
        for check, title in checks.TITLES.items():
            out.print(f"{check:24} {title}", highlight=False)
        return
    options = api.VerifyOptions(list(only), list(skip), disk_min, disk_warn, list(ca_certs), firewall_ports)
    result = api.verify_targets(
        targets, options, identity=identity, inventory=inventory, limit=limit, forks=forks, vagrant=vagrant
    )
    render_verify(result)
    if json_file:
        Path(json_file).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    if junit_file:
        Path(junit_file).write_text(result.junit_xml)
    for line in verify_failures(result):
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
    if not result.ok:
        sys.exit(1)


# --- sandbox ----------------------------------------------------------------------------------------


@main.group(name="sandbox", cls=Group)
def sandbox_group() -> None:
    """Local fresh Debian servers (systemd containers) to try provisioner on."""


os_option = click.option(
    "--os",
    "os_name",
    type=click.Choice(list(sandbox.OSES)),
    default=sandbox.DEFAULT_OS,
    show_default=True,
    help="The distribution and version the sandbox runs.",
)


@sandbox_group.command("create")
@click.argument("name")
@os_option
@click.option(
    "--cloud-init",
    "cloud_init",
    type=click.Path(dir_okay=False),
    help="User-data (e.g. from `provisioner cloud-init`): boot with cloud-init seeded with it (NoCloud).",
)
@click.option("--json", "as_json", is_flag=True, help="Print name, ssh, identity, http, https, os as JSON.")
def sandbox_create(name: str, os_name: str, cloud_init: str | None, as_json: bool) -> None:
    """Boot a fresh sandbox server NAME reachable over SSH on 127.0.0.1."""
    user_data = sandbox.read_user_data(cloud_init) if cloud_init else None
    say = lambda msg: err.print(msg, highlight=False)  # noqa: E731
    box = sandbox.create(name, os_name=os_name, cloud_init=user_data, say=say)
    if as_json:
        out.print_json(json.dumps(box.as_dict()))
    else:
        out.print(f"sandbox {box.name} is up: ssh {box.ssh} (key {box.identity}), http {box.http}")
        out.print(f"next: provisioner up {box.name}")


@sandbox_group.command("image")
@os_option
@click.option("--cloud-init", "cloud_init", is_flag=True, help="The variant with cloud-init.")
def sandbox_image(os_name: str, cloud_init: bool) -> None:
    """Build (once) or reuse a sandbox base image, and print its name (the Vagrantfile uses it)."""
    tag = sandbox.ensure_base_image(
        sandbox.client(), os_name, say=lambda msg: err.print(msg, highlight=False), cloud_init=cloud_init
    )
    out.print(tag, highlight=False)


@sandbox_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def sandbox_list(as_json: bool) -> None:
    """List sandboxes and how to reach them."""
    boxes = sandbox.list_sandboxes()
    if as_json:
        out.print_json(json.dumps([{**b.as_dict(), "status": b.status} for b in boxes]))
        return
    table = Table("name", "status", "ssh", "http", "https")
    for b in boxes:
        table.add_row(b.name, b.status, b.ssh, b.http, b.https)
    out.print(table)


@sandbox_group.command("start")
@click.argument("names", nargs=-1, required=True)
def sandbox_start(names: tuple[str, ...]) -> None:
    """Start stopped sandboxes (after a reboot or a restart of the Docker engine)."""
    for name in names:
        box = sandbox.start(name)
        out.print(f"sandbox {box.name} is up: ssh {box.ssh}, http {box.http}", highlight=False)


@sandbox_group.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-u", "--user", default="root", show_default=True)
def sandbox_ssh(name: str, command: tuple[str, ...], user: str) -> None:
    """Open a shell on sandbox NAME (or run COMMAND there)."""
    box = sandbox.get(name)
    argv = sandbox.ssh_argv(box, list(command), user=user)
    os.execvp(argv[0], argv)  # noqa: S606 - replaces this process with the user's ssh session


@sandbox_group.command("destroy")
@click.argument("names", nargs=-1, required=True)
def sandbox_destroy(names: tuple[str, ...]) -> None:
    """Remove sandboxes (container and volumes)."""
    for name in names:
        removed = sandbox.destroy(name)
        out.print(f"sandbox {name} {'destroyed' if removed else 'did not exist'}")


@main.command(name="vars")
@click.option("--host-ip", required=True, help="The address apps of the host answer at.")
@with_provisioning_options
@click.option(
    "--ansible-env",
    is_flag=True,
    help="Print instead the environment ansible-playbook runs with under `up` (Mitogen's strategy).",
)
def vars_command(host_ip: str, ansible_env: bool, **kwargs: Any) -> None:
    """Print, as JSON, the Ansible variables `up` would give such a host (used by the Vagrantfile)."""
    if ansible_env:
        from . import runner

        out.print_json(json.dumps(runner.mitogen_env()))
        return
    data = api.ansible_vars(host_ip, provisioning_options(kwargs))
    out.print_json(json.dumps(data))


@main.command(name="cloud-init")
@click.option(
    "--mode",
    type=click.Choice(cloudinit.MODES),
    default="prepare",
    show_default=True,
    help="prepare: the admin user and python3, for `up`; self: the VM provisions itself at first boot.",
)
@click.option("--user", default=cloudinit.DEFAULT_USER, show_default=True, help="The admin user to create.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="The admin's public key file; repeatable (default: ~/.ssh's). With --mode self, also deploy keys.",
)
@with_provisioning_options
@click.option("--bundle-url", help="--mode self: where the VM fetches the bundle (playbook, roles, program).")
@click.option(
    "--bundle",
    "bundle_file",
    type=click.Path(dir_okay=False),
    help="--mode self: write the bundle to this file, to upload to --bundle-url.",
)
def cloud_init_command(
    mode: str,
    user: str,
    keys: tuple[str, ...],
    bundle_url: str | None,
    bundle_file: str | None,
    **kwargs: Any,
) -> None:
    """Print cloud-config user-data for a cloud VM's "user data" field.

    \b
    --mode prepare: `provisioner up USER@IP --wait-cloud-init` works from the first boot.
    --mode self:    the VM provisions itself with the playbook and variables `up` would use.
    """
    admin_keys = hostvars.deploy_keys(list(keys), [])
    if mode == "prepare":
        given = {"bundle_url": bundle_url, "bundle": bundle_file, **kwargs}
        flags = ["--" + name.replace("_", "-") for name, value in given.items() if value]
        if flags:
            raise UsageError(
                f"{', '.join(flags)}: only with --mode self (prepare installs nothing but python3)"
            )
        sys.stdout.write(cloudinit.prepare(user, admin_keys))
        return
    if not bundle_url:
        raise UsageError(
            "--mode self needs --bundle-url URL: where the VM fetches the playbook bundle",
            fix="write it with --bundle FILE and put FILE at that URL",
        )
    options = provisioning_options(kwargs)
    options.deploy_keys = options.deploy_keys or list(keys)
    variables = api.ansible_vars(None, options)
    if not options.deploy_keys:
        variables["receiver_authorized_keys"] = admin_keys
    variables.pop("receiver_program_archive", None)  # the VM's own copy, from the bundle
    data = cloudinit.bundle()
    digest = cloudinit.sha256(data)
    text = cloudinit.self_provision(user, admin_keys, variables, bundle_url=bundle_url, bundle_sha256=digest)
    if bundle_file:
        Path(bundle_file).write_bytes(data)
        err.print(f"wrote the bundle to {bundle_file}: put it at {bundle_url}", highlight=False, markup=False)
    else:
        err.print(
            f"the VM fetches the bundle (SHA-256 {digest}) from {bundle_url}: write it with --bundle FILE",
            highlight=False,
            markup=False,
        )
    sys.stdout.write(text)


# --- keys -------------------------------------------------------------------------------------------


def one_host(target: str, identity: str | None) -> Host:
    hosts = api.resolve_hosts([target], identity=identity)
    if len(hosts) != 1:
        raise UsageError(f"{target!r} names {len(hosts)} hosts; name one host")
    return hosts[0]


@main.group()
def keys() -> None:
    """The deploy user's SSH keys on a provisioned host (who may git push and run app commands)."""


identity_option = click.option(
    "-i", "--identity", type=click.Path(dir_okay=False), help="SSH private key of the admin login."
)


@keys.command(name="list")
@click.argument("target")
@identity_option
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON on stdout.")
def keys_list(target: str, identity: str | None, as_json: bool) -> None:
    """List the deploy keys of TARGET: name, type, fingerprint, the apps it may use."""
    from . import keys as deploy_keys

    found = deploy_keys.list_keys(one_host(target, identity))
    if as_json:
        out.print_json(json.dumps([k.__dict__ for k in found]))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("name", "type", "fingerprint", "apps"):
        table.add_column(col)
    for key in found:
        scope = "all (as root)" if key.apps is None else ", ".join(key.apps) or "none"
        table.add_row(escape(key.name), key.type, key.fingerprint, escape(scope))
    out.print(table)


@keys.command(name="add")
@click.argument("target")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), help="Public key file.")
@click.option("--name", required=True, help="A name for the key, e.g. alice-laptop.")
@click.option("--apps", help="Only these apps (comma-separated): push and manage them, nothing else.")
@identity_option
def keys_add(target: str, key_file: str, name: str, apps: str | None, identity: str | None) -> None:
    """Allow the public key in FILE to deploy to TARGET, under NAME (every app unless --apps)."""
    from . import keys as deploy_keys

    added = deploy_keys.add_key(one_host(target, identity), name, key_file, apps)
    out.print(escape(added), highlight=False)


@keys.command(name="remove")
@click.argument("target")
@click.argument("name")
@identity_option
def keys_remove(target: str, name: str, identity: str | None) -> None:
    """Stop the key NAME from deploying to TARGET."""
    from . import keys as deploy_keys

    out.print(escape(deploy_keys.remove_key(one_host(target, identity), name)), highlight=False)


# --- cluster ----------------------------------------------------------------------------------------


@main.group()
def cluster() -> None:
    """Docker Swarm clusters made by `up --swarm`: their nodes, seen from a manager."""


@cluster.command(name="status")
@click.argument("target")
@identity_option
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON on stdout.")
def cluster_status(target: str, identity: str | None, as_json: bool) -> None:
    """The nodes of the swarm TARGET (a manager) belongs to: role, availability, state, running tasks."""
    from . import cluster as swarm

    nodes = swarm.status(one_host(target, identity))
    if as_json:
        out.print_json(json.dumps([n.as_dict() for n in nodes]))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("node", "role", "availability", "state", "tasks", "engine"):
        table.add_column(col)
    for node in nodes:
        state = node.state if node.state == "ready" else f"[red]{node.state}[/]"
        table.add_row(
            escape(node.hostname), node.role, node.availability, state, str(node.tasks), node.engine
        )
    out.print(table)


@cluster.command(name="remove")
@click.argument("target")
@click.argument("node")
@identity_option
@click.option(
    "--timeout",
    type=click.IntRange(10, 3600),
    default=180,
    show_default=True,
    help="Seconds to wait for the node's tasks to move.",
)
def cluster_remove(target: str, node: str, identity: str | None, timeout: int) -> None:
    """Take NODE out of the swarm TARGET (a manager) belongs to: drain it, wait for its tasks to run on
    the other nodes, let it leave (when NODE is reachable as a target), remove it."""
    from . import cluster as swarm

    manager = one_host(target, identity)
    try:
        member = one_host(node, identity)
    except ProvisionerError:
        member = None
    swarm.remove(
        manager,
        node,
        leave=(lambda: swarm.leave(member)) if member else None,
        timeout=timeout,
        say=lambda line: err.print(escape(line), highlight=False),
    )
    out.print(
        f"{escape(node)} removed. Run `provisioner up` with the remaining targets and --swarm to take it "
        "out of the others' firewall and routing.",
        highlight=False,
    )


# --- demo -------------------------------------------------------------------------------------------


def render_demo(result: demo.DemoResult, console: Console) -> None:
    live = f"[bold green]{escape(result.app)} is live[/]"
    console.print(f"\n{live} {result.seconds:.0f} s after the start of this command.", highlight=False)
    console.print(f"  url:    {result.url}   (on this machine: {result.curl})", highlight=False, markup=False)
    console.print(f"  deploy: git push {result.push_url} main", highlight=False, markup=False)
    console.print(f"  shell:  {result.shell}", highlight=False, markup=False)


@main.command(name="demo")
@click.option("--name", default="demo", show_default=True, help="Sandbox name.")
@click.option("--app", default="hello", show_default=True, help="Name of the sample app to deploy.")
@click.option("--fresh", is_flag=True, help="Destroy and recreate the sandbox first.")
def demo_command(name: str, app: str, fresh: bool) -> None:
    """The main job on the embedded default: a sandbox host, provisioned, with a sample app deployed."""
    try:
        result = demo.run(
            name,
            app,
            fresh=fresh,
            progress=line_progress(err),
            say=lambda line: err.print(line, highlight=False, markup=False),
            on_up=lambda up_result: report_up(up_result, as_json=False),
        )
    except demo.ProvisionFailed:
        sys.exit(1)  # report_up has printed why
    render_demo(result, out)


if __name__ == "__main__":  # pragma: no cover
    main()
