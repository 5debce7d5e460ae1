#!/usr/bin/python3
"""First-boot self-provisioning of a cloud VM (`provisioner cloud-init --mode self`).

cloud-init writes this file and bootstrap.json next to it, and runs it once (runcmd). Standard library
only: it runs on the VM's own python3, before anything else is installed. It fetches the provisioner bundle
(playbook, roles, host program) and checks its SHA-256 against the one pinned in the user-data, installs
the controller's ansible-core into a virtualenv, and runs the same playbook `provisioner up` runs, with the
same variables, against the VM itself. Progress and the outcome go to status.json (`provisioner verify`
reads it) and to stderr (`cloud-init status --long` and /var/log/cloud-init-output.log show it); the
playbook's output goes to /var/log/provisioner-firstboot.log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

HERE = Path("/var/lib/provisioner/cloud-init")
STATUS = HERE / "status.json"
LOG = Path("/var/log/provisioner-firstboot.log")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
STARTED = int(time.time())


def status(state: str, step: str, error: str = "") -> None:
    data = {"state": state, "step": step, "started": STARTED, "updated": int(time.time())}
    if error:
        data["error"] = error
    tmp = STATUS.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, STATUS)
    print(
        f"provisioner first boot: {state}: {step}{': ' + error if error else ''}", file=sys.stderr, flush=True
    )


def fetch(url: str, sha256: str, dest: Path) -> None:
    """The bundle, retried while the network comes up; refused unless its SHA-256 is the pinned one."""
    last = ""
    for attempt in range(10):
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the user's own URL, pinned
                data = resp.read()
            break
        except OSError as exc:
            last = str(exc)
            time.sleep(min(2 * (attempt + 1), 10))
    else:
        raise RuntimeError(f"cannot fetch the bundle from {url}: {last}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"the bundle at {url} has SHA-256 {digest}, not the pinned {sha256}: not used")
    dest.write_bytes(data)


def extract(archive: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(mode=0o700)
    with tarfile.open(archive) as tar:
        # The member filter where this Python has it (3.11.4+); the archive is pinned by its SHA-256 anyway.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, **safe)  # type: ignore[arg-type]  # noqa: S202


def primary_address() -> str:
    """The address of the interface the default route leaves by (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route; no packet is sent
        return str(sock.getsockname()[0])


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    with LOG.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = LOG.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(argv[0]).name} exited {proc.returncode} ({' | '.join(tail)[-300:]})")


def main() -> int:
    conf = json.loads((HERE / "bootstrap.json").read_text())
    step = "starting"
    try:
        step = "fetching the bundle"
        status("running", step)
        archive = HERE / "bundle.tar.gz"
        fetch(conf["bundle_url"], conf["bundle_sha256"], archive)
        bundle = HERE / "bundle"
        extract(archive, bundle)
        step = f"installing ansible-core {conf['ansible_core']}"
        status("running", step)
        venv = HERE / "venv"
        if not (venv / "bin" / "ansible-playbook").exists():
            run([sys.executable, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
            pip += ["--cert", CA_BUNDLE] + (
                ["--index-url", conf["pip_index_url"]] if conf.get("pip_index_url") else []
            )
            run([*pip, f"ansible-core=={conf['ansible_core']}"])
        step = "running the playbook"
        status("running", step)
        host = {"ansible_python_interpreter": "/usr/bin/python3"}
        host["receiver_program_archive"] = str(bundle / "hostcmd.zip")
        variables = json.loads((HERE / "vars.json").read_text())
        if not variables.get("provisioner_domain"):
            host["provisioner_domain"] = f"{primary_address()}.sslip.io"
        (HERE / "host.json").write_text(json.dumps(host))
        env = {
            **os.environ,
            "ANSIBLE_ROLES_PATH": str(bundle / "roles"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_LOCAL_TEMP": "/root/.ansible/tmp",
            "HOME": "/root",
        }
        playbook = [str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
        playbook += ["-e", f"@{HERE / 'vars.json'}", "-e", f"@{HERE / 'host.json'}"]
        run([*playbook, str(bundle / "playbooks" / "site.yml")], env=env)
        status("done", "provisioned")
        return 0
    except Exception as exc:  # the status file and cloud-init's own status say why, in one line
        status("failed", step, str(exc) or type(exc).__name__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
