"""Linters as tests, so the one test command checks style and types too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Python programs the roles install on hosts (no .py suffix: ruff and mypy are told about them by name).
HOST_SCRIPTS = ["roles/buildpacks/files/usr/local/sbin/provisioner-stack"]

pytestmark = pytest.mark.lint


def run(*cmd: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


def test_ruff():
    run(str(BIN / "ruff"), "check", "provisioner", "tests", "bench", *HOST_SCRIPTS)


def test_ruff_format():
    run(str(BIN / "ruff"), "format", "--check", "provisioner", "tests", "bench", *HOST_SCRIPTS)


def test_mypy():
    run(str(BIN / "mypy"))


def test_mypy_host_scripts():
    run(str(BIN / "mypy"), "--strict", "--python-version", "3.11", *HOST_SCRIPTS)


def test_yamllint():
    run(str(BIN / "yamllint"), "--strict", "playbooks", "roles", ".yamllint", ".ansible-lint")


def test_ansible_lint_production_profile():
    run(str(BIN / "ansible-lint"), "--offline", "--profile", "production", "playbooks", "roles")
