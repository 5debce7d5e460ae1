"""Deploy figures (not a test): seconds from `git push` to the new release answering, cold and warm,
and failed requests during a redeploy. Uses a provisioned sandbox (created and provisioned if missing).

    .venv/bin/python bench/deploy.py [--sandbox bench-deploy]

Targets on a 2-core machine: warm <= 10 s, 0 failed requests.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from provisioner import api, paths, sandbox
from provisioner.deploy import ssh_command

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "e2e" / "apps" / "python"


def get(port: int, host: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandbox", default="bench-deploy")
    args = parser.parse_args()
    try:
        box = sandbox.get(args.sandbox)
    except Exception:
        print(f"creating and provisioning sandbox {args.sandbox} (once)", flush=True)
        box = sandbox.create(args.sandbox)
    cas = [str(p) for p in paths.local_ca_certificates()]
    result = api.up([args.sandbox], api.UpOptions(ca_certs=cas))
    if not result.ok:
        sys.exit("provisioning failed")
    host = api.resolve_hosts([args.sandbox])[0]
    app = f"bench{int(time.time()) % 100000}"
    domain = f"{app}.127.0.0.1.sslip.io"
    env = {**os.environ, "GIT_SSH_COMMAND": ssh_command(host)}
    url = f"ssh://deploy@127.0.0.1:{box.ssh_port}/{app}"
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / app
        shutil.copytree(SAMPLE, repo)

        def git(*a: str) -> None:
            subprocess.run(
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", *a],
                cwd=repo,
                env=env,
                check=True,
                capture_output=True,
            )

        def deploy(version: str) -> float:
            app_py = repo / "app.py"
            app_py.write_text(
                app_py.read_text()
                .replace('VERSION = "1"', f'VERSION = "{version}"')
                .replace(f'VERSION = "{int(version) - 1}"', f'VERSION = "{version}"')
            )
            git("add", "-A")
            git("commit", "-q", "-m", f"v{version}")
            started = time.monotonic()
            push = subprocess.Popen(
                ["git", "push", "-q", url, "main"],
                cwd=repo,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # The new release answers as soon as nginx switched; the push itself goes on while the old
            # release is retired after its grace period.
            while not get(box.http_port, domain)[1].startswith(f"python v{version} "):
                if push.poll() not in (None, 0):
                    sys.exit(f"push of v{version} failed")
                time.sleep(0.05)
            answered = time.monotonic() - started
            if push.wait() != 0:
                sys.exit(f"push of v{version} failed")
            return answered

        git("init", "-q", "-b", "main")
        cold = deploy("1")
        warm = deploy("2")
        failures: list[str] = []
        count = 0
        stop = threading.Event()

        def client() -> None:
            nonlocal count
            while not stop.is_set():
                try:
                    status, _ = get(box.http_port, domain)
                    if status != 200:
                        failures.append(str(status))
                except OSError as exc:
                    failures.append(str(exc))
                count += 1
                time.sleep(0.05)

        thread = threading.Thread(target=client)
        thread.start()
        redeploy = deploy("3")
        time.sleep(5)
        stop.set()
        thread.join()
        subprocess.run(
            [
                *ssh_command(host).split(),
                "-p",
                str(box.ssh_port),
                "deploy@127.0.0.1",
                "apps:destroy",
                app,
                "--force",
            ],
            capture_output=True,
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"python app, cold push -> answering: {cold:.1f} s")
    print(f"python app, warm push -> answering: {warm:.1f} s   target <= 10 s")
    print(
        f"redeploy under load ({count} requests every 50 ms, {redeploy:.1f} s push): "
        f"{len(failures)} failed   target 0"
    )


if __name__ == "__main__":
    main()
