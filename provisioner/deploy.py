"""Controller side of a deploy: push a directory with git to a host's deploy user, wait for the app."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import ProvisionerError
from .targets import UNPINNED_SSH_OPTIONS, Host

SAMPLES = Path(__file__).resolve().parent / "samples"


class DeployError(ProvisionerError):
    """A deploy from this machine did not end with a serving app."""


class PushFailed(DeployError):
    """The host refused the push (the build log, already streamed, says why)."""


class AppDidNotAnswer(DeployError):
    """The push went through, but the app never answered through nginx."""


def ssh_command(host: Host) -> str:
    parts = ["ssh", "-o", "BatchMode=yes"]
    if host.identity:
        parts += ["-i", host.identity, "-o", "IdentitiesOnly=yes"]
    if host.sandbox:
        parts += UNPINNED_SSH_OPTIONS
    return shlex.join(parts)


def remote_url(host: Host, app: str, user: str = "deploy") -> str:
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"ssh://{user}@{address}:{host.port}/{app}"


def push_directory(
    host: Host, app: str, source: Path, say: Callable[[str], None], branch: str = "main"
) -> subprocess.CompletedProcess[str]:
    """Commit a copy of `source` in a fresh repository and push it, streaming the build log."""
    env = {"GIT_SSH_COMMAND": ssh_command(host), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    with tempfile.TemporaryDirectory(prefix="provisioner-push-") as tmp:
        repo = Path(tmp) / app
        shutil.copytree(source, repo)
        ident = ["-c", "user.name=provisioner", "-c", "user.email=provisioner@localhost"]
        for args in (["init", "-q", "-b", branch], ["add", "-A"], [*ident, "commit", "-q", "-m", "deploy"]):
            subprocess.run(
                ["git", *args], cwd=repo, env={**env, "HOME": tmp}, check=True, capture_output=True
            )
        proc = subprocess.Popen(
            ["git", "push", "--force", remote_url(host, app), f"HEAD:{branch}"],
            cwd=repo,
            env={**env, "HOME": tmp},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            say(line)
        rc = proc.wait()
    if rc != 0:
        raise PushFailed(f"git push of {app} to {host.name} failed (see the build log above)")
    return subprocess.CompletedProcess([], rc, "\n".join(lines), "")


def wait_for_app(http_base: str, host_header: str, timeout: float = 60) -> float:
    """Poll until the app answers 2xx/3xx through nginx; return when it did (monotonic time)."""
    if not http_base.startswith(("http://", "https://")):
        raise ProvisionerError(f"not an HTTP URL: {http_base!r}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(http_base, headers={"Host": host_header})  # noqa: S310 - checked above
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - the user's own host
                if 200 <= resp.status < 400:
                    return time.monotonic()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise AppDidNotAnswer(f"{host_header} did not answer through nginx within {timeout:.0f} s")
