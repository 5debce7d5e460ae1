"""`provisioner up` killed at random moments on fresh sandboxes: a rerun converges and verify passes.

Three trials run side by side (one fresh sandbox each), each killed at a random moment of its own window
(early: packages; middle: Docker, nginx; late: the stack images), the whole process tree at once, as a
crashed controller or a closed laptop would. Then one `up` of the three must converge, and verify pass.
PROVISIONER_INTERRUPT_SEED=N replays the moments of an earlier run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, record_figure, run_cli

WINDOWS = [(15.0, 45.0), (50.0, 110.0), (110.0, 200.0)]


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


def test_killed_up_converges_on_rerun_and_verify_passes(boxes, tmp_path):
    seed = int(os.environ.get("PROVISIONER_INTERRUPT_SEED") or time.time())
    rng = random.Random(seed)
    moments = [round(rng.uniform(lo, hi), 1) for lo, hi in WINDOWS]
    trials = [boxes.create(f"kill{i}") for i in range(1, len(WINDOWS) + 1)]
    env = {**os.environ, "COLUMNS": "200"}
    procs = []
    started = time.monotonic()
    for box in trials:
        log = tmp_path / f"{box.name}.log"
        with open(log, "w") as fh:
            cmd = [sys.executable, "-m", "provisioner", "up", box.name, "--no-verify"]
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
    rerun = run_cli("up", *[b.name for b in trials], "--forks", "3", "--json", timeout=1800)
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
        f"{len(trials)} trials (seed {seed}): " + "; ".join(killed_at) + f"; {converged} of {len(trials)} "
        "converged on one rerun with verify passing",
    )
    assert rerun.rc == 0, f"rerun failed:\n{rerun.stdout[-3000:]}\n{rerun.stderr[-3000:]}"
    assert converged == len(trials), rerun.stdout[-3000:]
    second = run_cli("up", *[b.name for b in trials], "--forks", "3", "--no-verify", "--json")
    assert second.rc == 0 and all(h["changed"] == 0 for h in second.json()["hosts"].values()), second.stdout
