"""Certificates from an ACME server (Let's Encrypt by default) through the distribution's certbot.

certbot does the protocol (account, order, HTTP-01 challenge, retries of bad nonces): no ACME is written
here. It runs as the deploy user with its state under the tls role's directory, one certificate lineage per
app (`--cert-name APP`), challenge files in the directory the app vhosts serve on port 80. Only this
module knows certbot's command line (built as a plain list, tested as such) and the shape of its errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .settings import Settings
from .store import flock_wait
from .tls import Bundle, parse_bundle

CERTBOT = "/usr/bin/certbot"
TIMEOUT = 300
ATTEMPTS = 3
# An ACME server may refuse a nonce at any request (RFC 8555 6.5: the client retries). certbot retries most
# requests once, but not every one (Debian's 2.1 gives up on a new account's): the whole run is repeated.
RETRYABLE = ("urn:ietf:params:acme:error:badNonce", "invalid anti-replay nonce")


class AcmeError(RuntimeError):
    """The ACME server or certbot refused; the message is the server's reason, on one line."""


def certbot_argv(settings: Settings, app: str, domains: Sequence[str]) -> list[str]:
    """`certbot certonly` for an app's domains: always a new certificate (we call it only when one is due),
    the same lineage every time, so that adding or removing a domain re-issues it for the new set."""
    state = settings.acme_dir
    argv = [
        CERTBOT,
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--webroot",
        "--webroot-path", str(settings.acme_challenges),
        "--config-dir", str(state),
        "--work-dir", str(state / "work"),
        "--logs-dir", str(state / "logs"),
        "--max-log-backups", "0",
        "--server", settings.acme_server,
        "--cert-name", app,
        "--force-renewal",
    ]  # fmt: skip
    argv += ["--email", settings.acme_email] if settings.acme_email else ["--register-unsafely-without-email"]
    for domain in domains:
        argv += ["-d", domain]
    return argv


def certbot_env(settings: Settings) -> dict[str, str]:
    """The host's CA store (with the CAs given to `up --ca-cert`) and its proxy, if any."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(settings.acme_dir),
        "LANG": "C.UTF-8",
        "REQUESTS_CA_BUNDLE": settings.ca_bundle,
    }
    env.update(settings.proxy_vars())
    return env


def retryable(output: str) -> bool:
    return any(marker in output for marker in RETRYABLE)


def error_of(output: str) -> str:
    """certbot's failure as one line: the CA's reasons per domain, else its last words."""
    problems = []
    domain = kind = ""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("Domain:"):
            domain = text.partition(":")[2].strip()
        elif text.startswith("Type:"):
            kind = text.partition(":")[2].strip()
        elif text.startswith("Detail:"):
            detail = text.partition(":")[2].strip()
            problems.append(f"{domain}: {kind}: {detail}" if domain else detail)
    if problems:
        return "the ACME server refused: " + "; ".join(problems)
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for index, text in enumerate(lines):
        if text.startswith("An unexpected error occurred:") and index + 1 < len(lines):
            return "the ACME server refused: " + lines[index + 1]
    useful = [
        ln
        for ln in lines
        if not ln.startswith(("Saving debug log", "Ask for help", "See the logfile", "Hint:", "- - -"))
    ]
    return "certbot failed: " + (useful[-1] if useful else "no output")


@contextlib.contextmanager
def _lock(settings: Settings, timeout: float = TIMEOUT) -> Iterator[None]:
    """One certbot at a time (it refuses to run beside itself)."""
    settings.acme_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(settings.acme_dir / ".provisioner.lock", "a") as fh:
        if not flock_wait(fh, timeout):
            raise AcmeError("another certificate request is still running; try again later")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def obtain(settings: Settings, app: str, domains: Sequence[str]) -> Bundle:
    """A new certificate for exactly these domains, checked (parses, key matches, covers them all)."""
    if not Path(CERTBOT).exists():
        raise AcmeError(
            f"{CERTBOT} is missing: run `provisioner up` for this host (its tls role installs it)"
        )
    with _lock(settings):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                proc = subprocess.run(
                    certbot_argv(settings, app, domains),
                    capture_output=True,
                    text=True,
                    env=certbot_env(settings),
                    timeout=TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise AcmeError(f"the ACME server did not answer within {TIMEOUT} s") from None
            output = proc.stdout + "\n" + proc.stderr
            if proc.returncode == 0 or not retryable(output) or attempt == ATTEMPTS:
                break
            time.sleep(attempt)
        if proc.returncode != 0:
            raise AcmeError(error_of(output))
        live = settings.acme_dir / "live" / app
        try:
            text = (live / "fullchain.pem").read_text() + (live / "privkey.pem").read_text()
        except OSError as exc:
            raise AcmeError(f"certbot left no certificate in {live}: {exc.strerror}") from None
    bundle = parse_bundle(text)
    missing = [d for d in domains if not bundle.info.covers(d)]
    if missing:
        raise AcmeError(f"the new certificate does not cover {', '.join(missing)}")
    return bundle


def forget(settings: Settings, app: str) -> None:
    """Drop an app's lineage from certbot's state (the app was destroyed or left Let's Encrypt)."""
    state = settings.acme_dir
    if not (state / "renewal" / f"{app}.conf").exists():
        return
    argv = [CERTBOT, "delete", "--non-interactive", "--cert-name", app, "--config-dir", str(state),
            "--work-dir", str(state / "work"), "--logs-dir", str(state / "logs")]  # fmt: skip
    with _lock(settings), contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, capture_output=True, env=certbot_env(settings), timeout=60, check=False)
