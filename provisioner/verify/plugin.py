"""pytest options of the verify suite (loaded with -p provisioner.verify.plugin)."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("provisioner verify")
    group.addoption("--disk-warn", type=float, default=15.0, help="warn below this % of free disk")
    group.addoption("--disk-min", type=float, default=5.0, help="fail below this % of free disk")
    group.addoption(
        "--firewall-ports",
        default=None,
        help="TCP ports the firewall must accept, comma-separated (plus the ports sshd listens on); "
        "default: the ports the security role was given (/etc/provisioner/security.json)",
    )
    group.addoption("--ca-pem", action="append", default=[], help="a PEM certificate the host must trust")


@pytest.fixture(scope="session")
def options(request: Any) -> Any:
    return request.config.option
