"""Figures for provisioning a fresh sandbox (not a test): cold create+up, and a no-op second up.

    .venv/bin/python bench/provision.py [--runs 3]

Prints the median of each over the runs. Targets on a 2-core machine: cold <= 120 s, no-op <= 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from provisioner import sandbox


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "provisioner", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"provisioner {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--tags", default="", help="only these roles, e.g. base,docker,nginx,git")
    args = parser.parse_args()
    cold, noop, changed = [], [], []
    # --no-verify: these figures are about provisioning itself (verify is timed by its own tests).
    tags = ["--no-verify", *(["--tags", args.tags] if args.tags else [])]
    print(f"playbook: {'roles ' + args.tags if args.tags else 'all roles'}", flush=True)
    sandbox.ensure_base_image(sandbox.client())  # built once per machine: outside the timing
    for run in range(1, args.runs + 1):
        cli("sandbox", "destroy", args.name, check=False)
        started = time.monotonic()
        cli("sandbox", "create", args.name, "--json")
        cli("up", args.name, "--json", *tags)
        cold.append(time.monotonic() - started)
        started = time.monotonic()
        report = json.loads(cli("up", args.name, "--json", *tags).stdout)
        noop.append(time.monotonic() - started)
        changed.append(report["hosts"][args.name]["changed"])
        print(f"run {run}: cold {cold[-1]:.1f} s, no-op {noop[-1]:.1f} s (changed={changed[-1]})", flush=True)
    cli("sandbox", "destroy", args.name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"cold create+up (median of {args.runs}): {statistics.median(cold):.1f} s   target <= 120 s")
    print(f"no-op up       (median of {args.runs}): {statistics.median(noop):.1f} s   target <= 20 s")
    print(f"no-op changed counts: {changed}")


if __name__ == "__main__":
    main()
