"""`provisioner demo`: the first-run workflow as one library call.

A sandbox server (reused, started or created), provisioned with `up`, the sample app pushed to it with git,
and the time until the app first answered. The CLI only parses the options and renders the result; this
module decides every step, and tells the caller about failures with exception classes, never with text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import api, deploy, hostvars, paths, runner, sandbox
from .errors import ProvisionerError, UsageError
from .hostcmd import names

SAMPLE = deploy.SAMPLES / "hello"


@dataclass(frozen=True)
class DemoResult:
    """Where the sample app answers, and how long it took from the start of the demo."""

    sandbox: str
    app: str
    domain: str  # the sandbox's apps domain: the app is APP.DOMAIN
    http: str  # the sandbox's port 80 as published on this machine
    ssh_port: int
    seconds: float  # from the start of the demo to the app's first successful answer
    up: api.UpResult

    @property
    def app_host(self) -> str:
        return f"{self.app}.{self.domain}"

    @property
    def url(self) -> str:
        return f"http://{self.app_host}"

    @property
    def curl(self) -> str:
        """The request that reaches the app from this machine, whatever the name resolves to."""
        return f"curl -H 'Host: {self.app_host}' {self.http}/"

    @property
    def push_url(self) -> str:
        """Where `git push` deploys another app (APP stands for its name)."""
        return f"ssh://deploy@127.0.0.1:{self.ssh_port}/APP"

    @property
    def shell(self) -> str:
        return f"provisioner sandbox ssh {self.sandbox}"


class DemoError(ProvisionerError):
    """A step of the demo failed."""


class ProvisionFailed(DemoError):
    """`up` of the sandbox did not succeed; the UpResult says which host and task, and where the log is."""

    def __init__(self, sandbox_name: str, result: api.UpResult) -> None:
        self.result = result
        super().__init__(
            f"provisioning sandbox {sandbox_name} failed", fix=f"the Ansible output is in {result.artifacts}"
        )


def _quiet(_message: str) -> None:
    pass


def _ignore(_result: api.UpResult) -> None:
    pass


def validate(name: str, app: str) -> None:
    """Both names are checked before anything starts: a bad app name would only fail at the push."""
    sandbox.validate_name(name)
    try:
        names.app(app)
    except names.NameError_ as exc:
        raise UsageError(str(exc)) from None


def find_sandbox(name: str) -> sandbox.Sandbox | None:
    """The sandbox NAME, or None when there is none (a check: no error's text decides to create one)."""
    return next((box for box in sandbox.list_sandboxes() if box.name == name), None)


def ready_sandbox(name: str, *, fresh: bool = False, say: Callable[[str], None] = _quiet) -> sandbox.Sandbox:
    """The sandbox NAME, running: reused, started, or created (always created when fresh)."""
    if fresh:
        sandbox.destroy(name)
    box = find_sandbox(name)
    if box is None:
        box = sandbox.create(name, say=say)
        say(f"sandbox {name} is up ({box.ssh})")
        return box
    if box.status != "running":
        say(f"starting sandbox {name} (it was {box.status})")
        box = sandbox.start(name)
    say(f"using sandbox {name} ({box.ssh})")
    return box


def run(
    name: str = "demo",
    app: str = "hello",
    *,
    fresh: bool = False,
    progress: runner.Progress | None = None,
    say: Callable[[str], None] = _quiet,
    on_up: Callable[[api.UpResult], None] = _ignore,
) -> DemoResult:
    """Sandbox, `up`, push the sample app, wait for its first answer.

    say gets one line per step (and the build log); on_up gets the result of `up` as soon as it is known,
    so the caller can report it before the push starts. Raises ProvisionFailed when `up` did not succeed,
    deploy.DeployError when the push or the app failed.
    """
    started = time.monotonic()
    validate(name, app)
    box = ready_sandbox(name, fresh=fresh, say=say)
    # A sandbox runs on this machine, so it trusts the extra CAs this machine trusts (proxies).
    local_cas = [str(p) for p in sorted(paths.local_ca_certificates())]
    result = api.up([name], api.UpOptions(ca_certs=local_cas), progress=progress)
    on_up(result)
    if not result.ok:
        raise ProvisionFailed(name, result)
    host = api.resolve_hosts([name])[0]
    domain = str(hostvars.host_vars([host])[host.name]["provisioner_domain"])
    say(f"deploying the sample app {app!r} with git push")
    deploy.push_directory(host, app, SAMPLE, say)
    answered = deploy.wait_for_app(box.http, f"{app}.{domain}")
    return DemoResult(
        sandbox=name,
        app=app,
        domain=domain,
        http=box.http,
        ssh_port=box.ssh_port,
        seconds=answered - started,
        up=result,
    )
