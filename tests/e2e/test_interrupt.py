"""Fresh hosts provisioned the hard way: `up` killed at random moments, with another deploy user.

Three trials run side by side (one fresh sandbox each), each killed at a random moment of its own window
(early: packages; middle: Docker, nginx; late: the stack images), the whole process tree at once, as a
crashed controller or a closed laptop would. Then one `up` of the three must converge, and verify pass.
PROVISIONER_INTERRUPT_SEED=N replays the moments of an earlier run.

Every run here says `-e receiver_user=git`: the hosts that come out of it are also the fresh hosts on which
a deploy user other than `deploy` must work end to end (git push, help, verify), at no extra provisioning.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, CliResult, record_figure, run_cli
from tests.e2e.conftest import Deployer, app_host, get, pushed_ok, root_exec

WINDOWS = [(15.0, 40.0), (45.0, 80.0), (80.0, 120.0)]
USER = ["-e", "receiver_user=git"]


def descendants(pid: int) -> list[int]:
    """Every process below pid (ansible-playbook runs in a session of its own, on a pty)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def last_task(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ": " in ln]
    return lines[-1].split(": ", 1)[1] if lines else "before the first task"


@dataclass
class Interrupted:
    trials: list  # the sandboxes
    seed: int
    killed_at: list[str]
    rerun: CliResult


@pytest.fixture(scope="module")
def interrupted(boxes, tmp_path_factory) -> Interrupted:
    """Three fresh sandboxes, each `up` killed at its random moment, then one rerun of all three."""
    seed = int(os.environ.get("PROVISIONER_INTERRUPT_SEED") or time.time())
    rng = random.Random(seed)
    moments = [round(rng.uniform(lo, hi), 1) for lo, hi in WINDOWS]
    trials = [boxes.create(f"kill{i}") for i in range(1, len(WINDOWS) + 1)]
    logs = tmp_path_factory.mktemp("interrupted")
    env = {**os.environ, "COLUMNS": "200"}
    procs = []
    started = time.monotonic()
    for box in trials:
        log = logs / f"{box.name}.log"
        with open(log, "w") as fh:
            cmd = [sys.executable, "-m", "provisioner", "up", box.name, *USER, "--no-verify"]
            procs.append((box, log, subprocess.Popen(cmd, stdout=fh, stderr=fh, cwd=ROOT, env=env)))
    killed_at: list[str] = []
    for (box, log, proc), moment in sorted(zip(procs, moments, strict=True), key=lambda p: p[1]):
        time.sleep(max(0.0, started + moment - time.monotonic()))
        if proc.poll() is not None:
            killed_at.append(f"{box.name}: finished (rc {proc.returncode}) before {moment} s")
            continue
        where = last_task(log)
        kill_tree(proc)
        killed_at.append(f"{box.name}: killed at {moment} s (last progress line: {where})")
    print(f"seed {seed}: " + "; ".join(killed_at))
    rerun = run_cli("up", *[b.name for b in trials], *USER, "--forks", "3", "--json", timeout=1800)
    return Interrupted(trials, seed, killed_at, rerun)


def test_killed_up_converges_on_rerun_and_verify_passes(interrupted):
    trials, rerun = interrupted.trials, interrupted.rerun
    converged = 0
    try:
        data = rerun.json()
        hosts = data.get("hosts", {})
        checks = data.get("verify", {}).get("hosts", {}) if isinstance(data.get("verify"), dict) else {}
        for box in trials:
            h = hosts.get(box.name, {})
            if not h.get("failed") and not h.get("unreachable") and box.name in checks:
                converged += int(not checks[box.name].get("failed", 1))
    except ValueError:
        pass
    record_figure(
        "interrupted up",
        f"{len(trials)} trials (seed {interrupted.seed}): "
        + "; ".join(interrupted.killed_at)
        + f"; {converged} of {len(trials)} converged on one rerun with verify passing",
    )
    assert rerun.rc == 0, f"rerun failed:\n{rerun.stdout[-3000:]}\n{rerun.stderr[-3000:]}"
    assert converged == len(trials), rerun.stdout[-3000:]
    second = run_cli("up", *[b.name for b in trials], *USER, "--forks", "3", "--no-verify", "--json")
    assert second.rc == 0 and all(h["changed"] == 0 for h in second.json()["hosts"].values()), second.stdout


def test_another_deploy_user_deploys_answers_help_and_verifies(interrupted, tmp_path):
    """`up HOST -e receiver_user=git`: `git push git@HOST:app main` deploys, `ssh git@HOST help` answers,
    and `provisioner verify HOST` judges the host by its own user."""
    assert interrupted.rerun.rc == 0, "the hosts did not converge (see the test above)"
    box = interrupted.trials[0]
    dev = Deployer(box, tmp_path, user="git")
    helped = dev.ssh("help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: ssh git@HOST"), helped.stderr
    assert "git push git@HOST:APP main" in helped.stdout
    repo = dev.repo("site", "static")
    # The form of the issue and the README, `git push git@HOST:APP main` (the sandbox's port goes to ssh).
    dev.env["GIT_SSH_COMMAND"] += f" -p {box.ssh_port}"
    result = dev.git(repo, "push", "git@127.0.0.1:site", "main", check=False)
    pushed_ok(result, "site")
    assert get(box, app_host("site"))[0] == 200
    assert root_exec(box, "getent passwd deploy || true").strip() == "", "the default user was created too"
    owner = root_exec(
        box, "stat -c %U /var/lib/provisioner/apps /var/lib/provisioner/apps/site/releases.json"
    )
    assert owner.split() == ["git", "git"]
    out = tmp_path / "verify.json"
    verified = run_cli("verify", box.name, "--json", str(out))
    data = json.loads(out.read_text())
    checks = {c["check"]: c["outcome"] for c in data["hosts"][box.name]["checks"]}
    assert verified.rc == 0 and data["failed"] == 0, verified.stdout
    assert checks["deploy_user"] == checks["deploy_keys_restricted"] == checks["apps_serving"] == "passed"
