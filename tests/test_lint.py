"""Linters as tests, so the one test command checks style and types too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.lint


def run(*cmd: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


def test_ruff():
    run(str(BIN / "ruff"), "check", "provisioner", "tests", "bench")


def test_ruff_format():
    run(str(BIN / "ruff"), "format", "--check", "provisioner", "tests", "bench")


def test_mypy():
    run(str(BIN / "mypy"))


def test_yamllint():
    run(str(BIN / "yamllint"), "--strict", "playbooks", "roles", ".yamllint", ".ansible-lint")


def test_ansible_lint_production_profile():
    run(str(BIN / "ansible-lint"), "--offline", "--profile", "production", "playbooks", "roles")
