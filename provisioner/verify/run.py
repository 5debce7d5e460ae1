"""Run the verify suite with pytest + testinfra over SSH, and read the JUnit report into results."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..targets import Host
from . import checks

CHECKS_FILE = Path(checks.__file__)
CHECK_IDS = list(checks.TITLES)


@dataclass
class CheckResult:
    check: str
    outcome: str  # passed, failed, skipped
    detail: str = ""

    @property
    def title(self) -> str:
        return checks.TITLES.get(self.check, self.check)


@dataclass
class HostReport:
    name: str
    results: list[CheckResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.count("failed") == 0


@dataclass
class VerifyResult:
    hosts: dict[str, HostReport]
    junit_xml: str

    @property
    def ok(self) -> bool:
        return bool(self.hosts) and all(h.ok for h in self.hosts.values())

    def totals(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for report in self.hosts.values():
            for key in out:
                out[key] += report.count(key)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "hosts": {
                name: {
                    "ok": rep.ok,
                    "passed": rep.count("passed"),
                    "failed": rep.count("failed"),
                    "skipped": rep.count("skipped"),
                    "checks": [
                        {"check": r.check, "outcome": r.outcome, "detail": r.detail} for r in rep.results
                    ],
                }
                for name, rep in sorted(self.hosts.items())
            },
            **self.totals(),
            "ok": self.ok,
        }


def host_spec(host: Host) -> str:
    address = f"[{host.address}]" if ":" in host.address else host.address
    query = []
    if host.become:
        query.append("sudo=true")
    if host.identity:
        query.append(f"ssh_identity_file={host.identity}")
    return f"ssh://{host.user}@{address}:{host.port}" + ("?" + "&".join(query) if query else "")


def select(only: Iterable[str], skip: Iterable[str]) -> str | None:
    only, skip = list(only), list(skip)
    for name in [*only, *skip]:
        if name not in checks.TITLES:
            raise UsageError(f"unknown check {name!r}: choose from {', '.join(CHECK_IDS)}")
    chosen = [c for c in (only or CHECK_IDS) if c not in skip]
    if not chosen:
        raise UsageError("--only/--skip leave no check to run")
    if chosen == CHECK_IDS:
        return None
    return " or ".join(f"test_{c}" for c in chosen)


def ssh_config(hosts: Iterable[Host], directory: Path) -> Path:
    """Sandboxes get new host keys on every create: don't pin them; pin real hosts like `up` does."""
    from .. import paths

    lines = []
    for host in hosts:
        lines += [
            f"Host {host.address}",
            "  BatchMode yes",
            "  ConnectTimeout 15",
            "  ControlMaster auto",
            f"  ControlPath {directory}/cm-%C",
            "  ControlPersist 30",
        ]
        if host.sandbox:
            lines += ["  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR"]
        else:
            lines += [
                "  StrictHostKeyChecking accept-new",
                f"  UserKnownHostsFile {paths.known_hosts()} ~/.ssh/known_hosts",
            ]
    path = directory / "ssh_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_checks(
    hosts: list[Host],
    *,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    disk_min: float = 5.0,
    disk_warn: float = 15.0,
    ca_files: Iterable[str] = (),
    firewall_ports: Iterable[int] | None = None,
    forks: int = 5,
) -> VerifyResult:
    """One pytest run per host (in parallel), combined into one JUnit report with a suite per host."""
    expression = select(only, skip)
    extra = [f"--disk-min={disk_min}", f"--disk-warn={disk_warn}"]
    if firewall_ports is not None:  # else each host's own security settings say
        ports = sorted(set(firewall_ports))
        bad = [p for p in ports if not 0 < p < 65536]
        if bad:
            raise UsageError(f"firewall port {bad[0]} is not a port number (1-65535)")
        extra.append(f"--firewall-ports={','.join(map(str, ports))}")
    extra += [f"--ca-pem={Path(ca).resolve()}" for ca in ca_files]
    if expression:
        extra += ["-k", expression]
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as pool:
        suites = list(pool.map(lambda h: run_host(h, extra), hosts))
    combined = ET.Element("testsuites", name="provisioner verify")
    reports: dict[str, HostReport] = {}
    for host, suite in zip(hosts, suites, strict=True):
        combined.append(suite)
        reports[host.name] = parse_suite(host.name, suite)
    xml = ET.tostring(combined, encoding="unicode", xml_declaration=True)
    return VerifyResult(reports, xml)


def run_host(host: Host, extra: list[str]) -> ET.Element:
    with tempfile.TemporaryDirectory(prefix="provisioner-verify-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(CHECKS_FILE),
            "-p",
            "provisioner.verify.plugin",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "--tb=line",
            f"--rootdir={tmp}",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit1",
            f"--hosts={host_spec(host)}",
            f"--ssh-config={ssh_config([host], Path(tmp))}",
            *extra,
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, check=False)
        if not junit.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"the verify suite did not run: {tail[0]}", host=host.name)
        root = ET.parse(junit).getroot()  # noqa: S314 - the report our own pytest just wrote
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise UsageError("the verify suite wrote no results", host=host.name)
    suite.set("name", host.name)
    for case in suite.iter("testcase"):
        case.set("classname", host.name)
        case.set("name", case.get("name", "").partition("[")[0].removeprefix("test_"))
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)
    return suite


def parse_suite(name: str, suite: ET.Element) -> HostReport:
    report = HostReport(name)
    for case in suite.iter("testcase"):
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                detail = first_line(child.get("message") or child.text or "")
            elif child.tag == "skipped":
                outcome = "skipped"
                detail = first_line(child.get("message") or "").removeprefix("Skipped: ")
            elif child.tag == "properties":
                warning = next((p.get("value", "") for p in child if p.get("name") == "warning"), "")
                if warning and outcome == "passed":
                    detail = f"warning: {warning}"
        report.results.append(CheckResult(case.get("name", ""), outcome, detail))
    return report


def first_line(text: str) -> str:
    text = text.strip()
    if text.startswith(("AssertionError: ", "assert ")):
        text = text.removeprefix("AssertionError: ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("assert "):
            return line.removeprefix("AssertionError: ").removeprefix("E   ")[:200]
    return text.splitlines()[0][:200] if text else ""
