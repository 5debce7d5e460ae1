"""The performance figures of issue 14, measured as a user would (not a test): fresh sandboxes, the CLI,
real git pushes and HTTP requests from outside.

    .venv/bin/python bench/run.py [--runs 3] [--only cold_up,redeploy,...]

Each figure is the median of --runs runs. Prints a table and writes bench/results/latest.json,
bench/results/latest.md and bench/results/latest.svg (each figure against its target). Figures:

    cold_up       `provisioner up` on a fresh sandbox (base image cached), seconds
    noop_up       a second `up`, nothing to change, seconds
    first_push    the first `git push` of the Python sample app until it answers, seconds
    redeploy      a code-only push until the new version answers, seconds, with a client at 20 req/s:
    redeploy_failed, redeploy_slowest   its failed requests and its slowest request (seconds)
    host_restart  `docker restart` of the host until the app answers again, seconds
    multi_host    4 fresh hosts in one `up`, as a multiple of cold_up
    fresh_demo    `git clone` of this repository + the README's first command until the app answers, seconds
    postgres_first   the first `postgres:create` on a fresh host (its image is built) until a query answers
    postgres_create  a second `postgres:create` until a query answers, seconds
    swarm_up      `up --swarm` of 3 fresh sandboxes, seconds
    swarm_replicas   the Python sample pushed to the manager and scaled to 3 until all three answer
    swarm_node_loss  a worker killed (`docker kill`) until its replica runs on another node, seconds, with a
    swarm_loss_failed   client at 20 req/s to the other nodes: its failed requests after the first 5 s

The sandboxes are named bench-*; leftovers of an earlier run are replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from provisioner import paths, sandbox

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "e2e" / "apps" / "python"
RESULTS = ROOT / "bench" / "results"
DOMAIN = "127.0.0.1.sslip.io"

# name: (what, unit, target); lower is better for each
FIGURES: dict[str, tuple[str, str, float]] = {
    "cold_up": ("`up` on a fresh host (cold)", "s", 90.0),
    "noop_up": ("second `up`, nothing to change", "s", 15.0),
    "first_push": ("first `git push` of a Python app -> served", "s", 8.0),
    "redeploy": ("code-only redeploy -> new version served", "s", 2.0),
    "redeploy_failed": ("failed requests during that redeploy at 20 req/s", "", 0.0),
    "redeploy_slowest": ("slowest request during that redeploy", "s", 0.5),
    "host_restart": ("the app answering after a host restart", "s", 3.0),
    "multi_host": ("4 fresh hosts in one `up` vs 1 host", "x", 2.5),
    "fresh_demo": ("`git clone` + the README's first command -> sample app served", "s", 180.0),
    # Targets of our own (the databases issue names the figure, not a target).
    "postgres_first": ("first `postgres:create` on a host (image built) -> first query", "s", 30.0),
    "postgres_create": ("`postgres:create` -> first query", "s", 5.0),
    # Clusters (three sandboxes, one manager): the issue names the figures; the targets are ours.
    "swarm_up": ("`up --swarm` of 3 fresh hosts", "s", 180.0),
    "swarm_replicas": ("push -> 3 replicas serving, one per node", "s", 30.0),
    "swarm_node_loss": ("a worker killed -> its replica running on another node", "s", 30.0),
    "swarm_loss_failed": ("failed requests during that node loss, after its first 5 s", "", 0.0),
}


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner", *args], capture_output=True, text=True, check=False, cwd=cwd
    )
    if proc.returncode != 0:
        sys.exit(f"provisioner {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def ca_args() -> list[str]:
    """This machine's extra CAs (a TLS-intercepting proxy's): builds on the host need them for PyPI."""
    return [a for ca in paths.local_ca_certificates() for a in ("--ca-cert", str(ca))]


def fresh(name: str) -> sandbox.Sandbox:
    sandbox.destroy(name)
    return sandbox.create(name)


def timed_up(*names: str, options: tuple[str, ...] = ()) -> float:
    started = time.monotonic()
    cli("up", *names, *options, "--no-verify", "--forks", str(max(5, len(names))), *ca_args())
    return time.monotonic() - started


def get(port: int, host: str, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for(check: Callable[[], bool], limit: float = 600) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            sys.exit(f"gave up after {limit:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


class App:
    """The Python sample app in a git repository, pushed to a sandbox."""

    def __init__(self, box: sandbox.Sandbox, name: str, workdir: Path) -> None:
        self.box, self.name, self.repo = box, name, workdir / name
        self.host = f"{name}.{DOMAIN}"
        ssh = (
            f"ssh -i {box.identity} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o BatchMode=yes"
        )
        self.env = {**os.environ, "GIT_SSH_COMMAND": ssh}
        self.url = f"ssh://deploy@127.0.0.1:{box.ssh_port}/{name}"
        shutil.copytree(SAMPLE, self.repo)
        self.git("init", "-q", "-b", "main")
        self.version = 0

    def git(self, *args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
            cwd=self.repo,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def serves(self, version: int) -> bool:
        try:
            return get(self.box.http_port, self.host, timeout=2)[1].startswith(f"python v{version} ")
        except OSError:
            return False

    def push(self) -> float:
        """A new version (a code-only change), pushed: seconds from the push's start to its first answer."""
        self.version += 1
        app_py = self.repo / "app.py"
        app_py.write_text(
            re.sub(r"^VERSION = .*$", f'VERSION = "{self.version}"', app_py.read_text(), flags=re.M)
        )
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"v{self.version}")
        started = time.monotonic()
        push = subprocess.Popen(
            ["git", "push", "-q", "--force", self.url, "main"],
            cwd=self.repo,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        version = self.version
        wait_for(lambda: self.serves(version) or push.poll() not in (None, 0))
        answered = time.monotonic() - started
        if push.wait() != 0:
            sys.exit(f"push of {self.name} v{version} failed")
        return answered


def under_load(app: App, action: Callable[[], float]) -> tuple[float, int, float]:
    """action() while a client sends 20 requests a second: (its result, failed requests, slowest)."""
    failures, slowest = 0, 0.0
    stop = threading.Event()

    def client() -> None:
        nonlocal failures, slowest
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = get(app.box.http_port, app.host)[0] == 200
            except OSError:
                ok = False
            took = time.monotonic() - began
            failures += not ok
            slowest = max(slowest, took)
            time.sleep(max(0.0, 0.05 - took))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        result = action()
        time.sleep(4)  # past the retirement of the old processes
    finally:
        stop.set()
        thread.join()
    return result, failures, slowest


def one_run(only: set[str], workdir: Path) -> dict[str, float]:
    got: dict[str, float] = {}
    need_host = only & {
        "cold_up", "noop_up", "first_push", "redeploy", "host_restart", "multi_host", "postgres_first",
        "postgres_create",
    }  # fmt: skip
    if need_host:
        box = fresh("bench-1")
        got["cold_up"] = timed_up(box.name)
        if "noop_up" in only:
            got["noop_up"] = timed_up(box.name)
        if only & {"first_push", "redeploy", "host_restart"}:
            app = App(box, f"bench{int(time.time()) % 100000}", workdir)
            got["first_push"] = app.push()
            if "redeploy" in only:
                app.push()  # the dependency cache is warm from here on
                got["redeploy"], failed, slowest = under_load(app, app.push)
                got["redeploy_failed"], got["redeploy_slowest"] = failed, slowest
            if "host_restart" in only:
                subprocess.run(["docker", "restart", sandbox.container_name(box.name)], check=True)
                version = app.version
                got["host_restart"] = wait_for(lambda: app.serves(version), limit=300)
        if only & {"postgres_first", "postgres_create"}:
            got["postgres_first"] = postgres_create(box, "benchdb1")
            got["postgres_create"] = postgres_create(box, "benchdb2")
        sandbox.destroy(box.name)
    if "multi_host" in only:
        boxes = [fresh(f"bench-m{i}") for i in range(1, 5)]
        got["multi_host"] = timed_up(*[b.name for b in boxes]) / got["cold_up"]
        for b in boxes:
            sandbox.destroy(b.name)
    if "fresh_demo" in only:
        got["fresh_demo"] = fresh_demo(workdir)
    if only & {"swarm_up", "swarm_replicas", "swarm_node_loss", "swarm_loss_failed"}:
        got.update(swarm_run(workdir))
    return {k: v for k, v in got.items() if k in only}


def swarm_run(workdir: Path) -> dict[str, float]:
    """Three fresh sandboxes in one swarm; the Python sample pushed to the manager and scaled to three
    replicas; then a worker killed while a client sends 20 requests a second to the other two nodes."""
    boxes = [fresh(f"bench-s{i}") for i in range(1, 4)]
    got = {"swarm_up": timed_up(*[b.name for b in boxes], options=("--swarm",))}
    app = App(boxes[0], f"bench{int(time.time()) % 100000}", workdir)
    started = time.monotonic()
    app.push()
    ssh = [*app.env["GIT_SSH_COMMAND"].split(), "-p", str(boxes[0].ssh_port), "deploy@127.0.0.1"]
    subprocess.run([*ssh, f"ps:scale {app.name} web=3"], check=True, capture_output=True)

    def hosts_seen() -> set[str]:
        return {get(b.http_port, app.host)[1].rpartition("host=")[2] for b in boxes for _ in range(2)}

    wait_for(lambda: len(hosts_seen()) == 3, limit=120)
    got["swarm_replicas"] = time.monotonic() - started
    failed_at: list[float] = []
    stop = threading.Event()

    def client() -> None:
        turn = 0
        while not stop.is_set():
            box = boxes[turn % 2]
            turn += 1
            try:
                ok = get(box.http_port, app.host)[0] == 200
            except OSError:
                ok = False
            if not ok:
                failed_at.append(time.monotonic())
            time.sleep(0.05)

    def moved() -> bool:
        listed = subprocess.run(
            [
                "docker",
                "exec",
                sandbox.container_name(boxes[0].name),
                "docker",
                "service",
                "ps",
                f"{app.name}_web",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.CurrentState}}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        running = [line.split()[0] for line in listed if " Running " in f" {line} "]
        return len(running) == 3 and boxes[2].name not in running

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        killed = time.monotonic()
        subprocess.run(
            ["docker", "kill", sandbox.container_name(boxes[2].name)], check=True, capture_output=True
        )
        got["swarm_node_loss"] = wait_for(moved, limit=120)
        time.sleep(3)
    finally:
        stop.set()
        thread.join()
    got["swarm_loss_failed"] = sum(1 for at in failed_at if at - killed > 5)
    print(f"node loss: {len(failed_at)} failed requests in all", flush=True)
    for b in boxes:
        sandbox.destroy(b.name)
    return got


def postgres_create(box: sandbox.Sandbox, name: str) -> float:
    """`ssh deploy@HOST postgres:create NAME` until a query on the new database answers, seconds."""
    query = ["docker", "exec", "-u", "postgres", f"provisioner-postgres-{name}"]
    query += ["psql", "-h", "/run/postgresql", "-d", name, "-tAc", "SELECT 1"]
    started = time.monotonic()
    created = subprocess.run(
        sandbox.ssh_argv(box, [f"postgres:create {name}"], user="deploy"), capture_output=True, text=True
    )
    if created.returncode != 0:
        sys.exit(f"postgres:create {name} failed: {created.stderr[-1000:]}")

    def answers() -> bool:
        proc = subprocess.run(
            sandbox.ssh_argv(box, [shlex.join(query)]), capture_output=True, text=True, check=False
        )
        return proc.stdout.strip() == "1"

    wait_for(answers, limit=120)
    return time.monotonic() - started


def fresh_demo(workdir: Path) -> float:
    """A new clone, the README's first command (bash scripts/demo.sh, on a fresh sandbox bench-demo) until
    its sample app answers (demo.sh returns once it did): the clone's own venv is made from scratch."""
    clone = workdir / "clone"
    started = time.monotonic()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    proc = subprocess.run(
        ["bash", "scripts/demo.sh", "--name", "bench-demo", "--fresh"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - started
    sandbox.destroy("bench-demo")
    if proc.returncode != 0:
        sys.exit(f"scripts/demo.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took


def svg(medians: dict[str, float]) -> str:
    """Each figure as a bar against its target (the target is the full width's half)."""
    rows = [(name, medians[name], FIGURES[name]) for name in FIGURES if name in medians]
    height = 30 * len(rows) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height}" font-size="12">']
    for i, (name, value, (_what, unit, target)) in enumerate(rows):
        y = 10 + 30 * i
        scale = 200 / target if target else 200
        width = min(400.0, value * scale) if target or value else 0.0
        color = "#2a7" if value <= target else "#c33"
        parts += [
            f'<text x="0" y="{y + 14}">{name}</text>',
            f'<rect x="150" y="{y}" width="{width:.1f}" height="18" fill="{color}"/>',
            f'<line x1="350" y1="{y - 2}" x2="350" y2="{y + 20}" stroke="#000"/>',
            f'<text x="560" y="{y + 14}">{value:.2f} {unit} (target {target:g} {unit})</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated figure names (default: all)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(FIGURES)
    if "redeploy" in only:
        only |= {"redeploy_failed", "redeploy_slowest"}
    if unknown := only - set(FIGURES):
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if "multi_host" in only:
        only.add("cold_up")  # its denominator
    sandbox.ensure_base_image(sandbox.client())  # built once per machine: outside the timing
    runs: list[dict[str, float]] = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="provisioner-bench-") as tmp:
            runs.append(one_run(only, Path(tmp)))
        print(f"run {run}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()), flush=True)
    medians = {name: statistics.median(r[name] for r in runs) for name in FIGURES if name in runs[0]}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}; median of {args.runs}.",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
    ]
    for name, value in medians.items():
        what, unit, target = FIGURES[name]
        mark = "" if value <= target else " (over)"
        shown = f"{value:.2f} {unit}" if unit else f"{value:g}"
        lines.append(f"| {what} | {shown}{mark} | <= {target:g}{' ' + unit if unit else ''} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": machine,
        "runs": runs,
        "median": medians,
        "targets": {k: FIGURES[k][2] for k in medians},
    }
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "latest.svg").write_text(svg(medians))
    print("\n".join(lines))
    print(f"written: {RESULTS}/latest.json, latest.md, latest.svg")


if __name__ == "__main__":
    main()
