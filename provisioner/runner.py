"""ansible-runner: one run of a playbook for all hosts, events turned into per-host progress.

Each run gets its own private data dir under the user's data dir (kept for debugging: the Ansible output
is in ``artifacts/<id>/stdout``). :class:`Progress` is pure: it folds runner events into per-host state
that the CLI renders live and the report summarises.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import paths

DONE_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


@dataclass
class HostProgress:
    name: str
    task: str = "waiting"
    done: int = 0
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    started: float | None = None
    last: float | None = None
    error: str = ""

    def seconds(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.last if now is None else now
        return max(0.0, (end or self.started) - self.started)

    @property
    def state(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "running" if self.started is not None else "waiting"


@dataclass
class Change:
    host: str
    task: str
    diff: str


@dataclass
class Progress:
    """Per-host state folded from ansible-runner events."""

    hosts: dict[str, HostProgress] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    finished: bool = False

    def host(self, name: str) -> HostProgress:
        if name not in self.hosts:
            self.hosts[name] = HostProgress(name)
        return self.hosts[name]

    def handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        name = data.get("host")
        if kind == "playbook_on_stats":
            self.finished = True
            self._apply_stats(data)
            return
        if not name:
            return
        now = self.clock()
        hp = self.host(name)
        if hp.started is None:
            hp.started = now
        hp.last = now
        task = str(data.get("task") or "")
        if kind == "runner_on_start":
            hp.task = task
            return
        if kind not in DONE_EVENTS:
            return
        hp.done += 1
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            hp.ok += 1
            if res.get("changed"):
                hp.changed += 1
                self._record_diff(name, task, res)
        elif kind == "runner_on_skipped":
            hp.skipped += 1
        elif kind == "runner_on_unreachable":
            hp.unreachable += 1
            hp.error = f"unreachable during '{task}': {_message(res)}"
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            hp.failed += 1
            hp.error = f"failed at '{task}': {_message(res)}"

    def _record_diff(self, host: str, task: str, res: Mapping[str, Any]) -> None:
        diffs = res.get("diff")
        if not diffs:
            return
        text = render_diff(diffs)
        if text:
            self.changes.append(Change(host, task, text))

    def _apply_stats(self, stats: Mapping[str, Any]) -> None:
        """The play's final counts are authoritative (they include handlers and loops)."""
        keys = {
            "ok": "ok",
            "changed": "changed",
            "failures": "failed",
            "dark": "unreachable",
            "skipped": "skipped",
        }
        for stat, attr in keys.items():
            for name, count in (stats.get(stat) or {}).items():
                setattr(self.host(name), attr, int(count))


def _message(res: Mapping[str, Any]) -> str:
    if res.get("censored"):
        return str(res["censored"])
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or ""
    if not msg and res.get("results"):
        msg = next((r.get("msg", "") for r in res["results"] if r.get("failed")), "")
    text = " ".join(str(msg).split())
    return text[:300] or "no message"


def render_diff(diffs: Any) -> str:
    """Ansible's diff result (a dict or list of dicts with before/after) as a unified diff."""
    if isinstance(diffs, Mapping):
        diffs = [diffs]
    out: list[str] = []
    for diff in diffs:
        if not isinstance(diff, Mapping):
            continue
        if "prepared" in diff:
            out.append(str(diff["prepared"]).rstrip("\n"))
            continue
        before, after = diff.get("before", ""), diff.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str):
            before, after = (
                json.dumps(before, indent=2, sort_keys=True),
                json.dumps(after, indent=2, sort_keys=True),
            )
        if before == after:
            continue
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(diff.get("before_header", "before")),
            tofile=str(diff.get("after_header", "after")),
        )
        out.append("".join(lines).rstrip("\n"))
    return "\n".join(x for x in out if x)


@dataclass
class RunResult:
    rc: int
    status: str
    progress: Progress
    seconds: float
    private_data_dir: Path

    @property
    def ok(self) -> bool:
        hosts = self.progress.hosts.values()
        return (
            self.rc == 0 and self.status == "successful" and not any(h.failed or h.unreachable for h in hosts)
        )


def new_private_data_dir() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = paths.runs_dir() / stamp
    path.mkdir(parents=True, mode=0o700)
    return path


def ansible_bin() -> Path:
    """The directory of the ansible-* programs installed with this Python (a venv need not be active)."""
    return Path(sys.executable).parent


def _path_with(directory: Path) -> str:
    parts = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join([str(directory), *(p for p in parts if p != str(directory))])


def ansible_env() -> dict[str, str]:
    """Settings for every run (one place, so up, verify and the Vagrantfile see the same)."""
    return {
        "PATH": _path_with(ansible_bin()),
        "ANSIBLE_ROLES_PATH": str(paths.roles_path()),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_SSH_RETRIES": "2",
        "ANSIBLE_TIMEOUT": "20",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-local",
    }


def run_playbook(
    *,
    inventory: Sequence[Mapping[str, Any]],
    inventory_files: Iterable[str] = (),
    extravars: Mapping[str, Any],
    playbook: Path | None = None,
    check: bool = False,
    tags: Iterable[str] = (),
    limit: str | None = None,
    forks: int = 5,
    progress: Progress | None = None,
    host_names: Iterable[str] = (),
) -> RunResult:
    import ansible_runner

    progress = progress or Progress()
    for name in host_names:
        progress.host(name)
    pdd = new_private_data_dir()
    sources = [str(Path(f).resolve()) for f in inventory_files]
    (pdd / "inventory").mkdir(mode=0o700)
    for index, data in enumerate(inventory):
        path = pdd / "inventory" / f"{index:02d}-provisioner.json"
        path.write_text(json.dumps(data, indent=2))
        sources.append(str(path))
    cancelled = threading.Event()

    def on_event(event: dict[str, Any]) -> bool:
        progress.handle(event)
        return True  # keep the event (stats are lost otherwise)

    def on_sigint(_signum: int, _frame: Any) -> None:
        cancelled.set()

    cmdline = ["--diff"] if not check else ["--check", "--diff"]
    previous = signal.getsignal(signal.SIGINT)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
    # ansible-runner looks ansible-playbook up on this process's PATH.
    os.environ["PATH"] = ansible_env()["PATH"]
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook=str(playbook or paths.playbook()),
            inventory=sources,
            extravars=dict(extravars),
            envvars=ansible_env(),
            forks=forks,
            limit=limit or None,
            tags=",".join(tags) or None,
            cmdline=" ".join(cmdline),
            quiet=True,
            event_handler=on_event,
            cancel_callback=cancelled.is_set,
        )
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        # ansible-runner keeps the extra vars in env/extravars for the run; they may hold proxy or index
        # credentials, so they do not outlive it (tasks that use them are no_log, so no event holds them).
        (pdd / "env" / "extravars").unlink(missing_ok=True)
    status = "cancelled" if cancelled.is_set() else str(runner.status)
    return RunResult(
        rc=int(runner.rc if runner.rc is not None else 1),
        status=status,
        progress=progress,
        seconds=time.monotonic() - started,
        private_data_dir=pdd,
    )
