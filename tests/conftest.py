"""Shared fixtures: the real CLI as a subprocess, sandbox hosts, testinfra connections.

End-to-end tests boot real sandbox servers (systemd containers) on the local Docker engine, provision
them over real SSH and check them with testinfra. One base image per machine (cached), one set of
provisioned hosts per test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
E2E_PREFIX = "e2e-"


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(*args: str, env: dict | None = None, timeout: float = 900) -> CliResult:
    """Run the real `provisioner` command line, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session", autouse=True)
def provisioner_home(tmp_path_factory):
    """Keys and run artifacts of the test session live apart from the user's own."""
    if os.environ.get("PROVISIONER_REUSE_SANDBOXES"):
        home = Path("/var/tmp/provisioner-e2e-home")  # stable: reused sandboxes keep working keys
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = tmp_path_factory.mktemp("provisioner-home")
    os.environ["PROVISIONER_HOME"] = str(home)
    return home


# Figures the issues ask for (speed, counts), printed at the end of the run: `record_figure(name, text)`.
FIGURES: dict[str, str] = {}


# With pytest-xdist (scripts/test.sh runs the suite on two workers) the figures of every worker go to one
# file the controller names, and prints.
FIGURES_FILE = "PROVISIONER_TEST_FIGURES"


def record_figure(name: str, text: str) -> None:
    FIGURES[name] = text
    shared = os.environ.get(FIGURES_FILE)
    if shared:
        with open(shared, "a") as fh:
            fh.write(json.dumps([name, text]) + "\n")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or a run without workers)
        fd, path = tempfile.mkstemp(prefix="provisioner-figures-", suffix=".jsonl")
        os.close(fd)
        os.environ[FIGURES_FILE] = path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker (they have a terminal summary too): the controller prints
    shared = os.environ.get(FIGURES_FILE)
    if shared and os.path.exists(shared):
        with open(shared) as fh:
            for line in fh:
                name, text = json.loads(line)
                FIGURES[name] = text
        os.unlink(shared)
    if FIGURES:
        terminalreporter.section("figures")
        for name, text in FIGURES.items():
            terminalreporter.write_line(f"{name}: {text}")


# With pytest-xdist (scripts/test.sh: -n 2), four chunks of work, each run in order on one worker: the
# end-to-end modules that share the session's provisioned hosts; those with hosts of their own or none
# provisioned (a cluster, interrupted provisioning, Vagrant, refusals of bad input, the sandbox command);
# the cloud VMs of every distribution; and the unit tests and linters. xdist hands them out biggest (most
# tests) first, the next to the first worker free: the shared hosts' chunk takes one worker for the whole
# run, the others follow one another on the other. Their sandboxes have distinct names (raw_box's carries
# the worker's id).
OWN_HOSTS = (
    "test_swarm.py",
    "test_interrupt.py",
    "test_vagrant.py",
    "test_bad_input.py",
    "test_sandbox.py",
)


def work_chunk(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    module = path.rsplit("/", 1)[-1]
    if not path.startswith("tests/e2e/"):
        return "unit-and-lint"
    if module == "test_distros.py":
        return "distros"
    return "own-hosts" if module in OWN_HOSTS else "shared-hosts"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByChunk(LoadScopeScheduling):
        """LoadScopeScheduling with our chunks as its scopes (the biggest is handed out first)."""

        def _split_scope(self, nodeid: str) -> str:
            return work_chunk(nodeid)

    return ByChunk(config, log)
