"""ansible-runner: one run of a playbook for all hosts, events turned into per-host progress.

Each run gets its own private data dir under the user's data dir (kept for debugging: the Ansible output
is in ``artifacts/<id>/stdout``). :class:`Progress` is pure: it folds raw runner events into per-host state
and typed ProgressEvents, so the CLI renders progress without knowing the shapes of ansible-runner events.
"""

from __future__ import annotations

import difflib
import importlib.util
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
from typing import Any, Literal

from . import paths

DONE_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
# Tasks Ansible adds by itself (a role's argument check): counted, but never shown as a host's current task.
INTERNAL_TASK_PREFIXES = ("Validating arguments against arg spec",)
SLOWEST = 3

EventKind = Literal[
    "task_started",
    "task_ok",
    "task_changed",
    "task_skipped",
    "task_ignored",  # failed, but the task has ignore_errors
    "task_failed",
    "unreachable",
    "host_done",  # the play is over for this host (its counts are final)
]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one host, as the CLI needs it: never a raw ansible-runner event."""

    kind: EventKind
    host: str
    role: str = ""  # the task's role, else the play's name
    task: str = ""
    seconds: float = 0.0  # a task's result: how long it ran on this host; host_done: the host's time
    message: str = ""  # task_failed, unreachable: why

    @property
    def label(self) -> str:
        return task_label(self.role, self.task)


def task_label(role: str, task: str) -> str:
    """``role: task``, the one way a task is named in progress lines, tables and JSON."""
    return f"{role}: {task}" if role else task


@dataclass(frozen=True)
class TaskTime:
    task: str  # its label
    seconds: float
    role: str = ""  # its role, else the play's name (fact gathering)


@dataclass
class HostProgress:
    name: str
    task: str = "waiting"  # the label of the task running now (the last one after the host is done)
    done: int = 0
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    started: float | None = None
    last: float | None = None
    error: str = ""
    complete: bool = False
    times: list[TaskTime] = field(default_factory=list)
    # Between its tasks: with Ansible's linear strategy a task starts on every host once all have finished
    # the one before, so a fast host waits for the slowest (and for the controller).
    waiting: float = 0.0
    running: dict[str, float] = field(default_factory=dict, repr=False)  # task key -> when it started
    idle_since: float | None = field(default=None, repr=False)  # its last result, until its next start

    def seconds(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.last if now is None else now
        return max(0.0, (end or self.started) - self.started)

    def roles(self) -> dict[str, float]:
        """Seconds per role, in the order the roles ran: where this host's time went. With `waiting` (between
        its tasks) they add up to nearly all of `seconds()`: a host runs its tasks one after another."""
        spent: dict[str, float] = {}
        for t in self.times:
            spent[t.role] = spent.get(t.role, 0.0) + t.seconds
        return spent

    def slowest(self, count: int = SLOWEST) -> list[TaskTime]:
        """The tasks that took longest here, slowest first (what to look at when a run is slow)."""
        return sorted(self.times, key=lambda t: t.seconds, reverse=True)[:count]

    @property
    def state(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        if self.complete:
            return "done"
        return "running" if self.started is not None else "waiting"


@dataclass
class Change:
    host: str
    task: str
    diff: str


Listener = Callable[[ProgressEvent], None]
STATS = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
STAT_HOSTS = (*STATS, "ignored", "rescued", "processed")  # every stats key whose value maps host -> count


@dataclass
class Progress:
    """Per-host state folded from ansible-runner events; listeners get each step as a ProgressEvent."""

    hosts: dict[str, HostProgress] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    finished: bool = False
    listeners: list[Listener] = field(default_factory=list)

    def host(self, name: str) -> HostProgress:
        if name not in self.hosts:
            self.hosts[name] = HostProgress(name)
        return self.hosts[name]

    def subscribe(self, listener: Listener) -> None:
        """Call listener with every ProgressEvent from now on, in the thread that feeds the events."""
        self.listeners.append(listener)

    def handle(self, event: Mapping[str, Any]) -> None:
        """Fold one raw ansible-runner event into the hosts' state, then tell the listeners what happened."""
        for step in self._fold(event):
            for listener in self.listeners:
                listener(step)

    def _fold(self, event: Mapping[str, Any]) -> list[ProgressEvent]:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            return self._finish(data)
        name = data.get("host")
        if not name:
            return []
        now = self.clock()
        hp = self.host(str(name))
        if hp.started is None:
            hp.started = now
        hp.last = now
        if kind == "runner_on_start":
            if hp.idle_since is not None:
                hp.waiting += max(0.0, now - hp.idle_since)
                hp.idle_since = None
            return self._start(hp, data, now)
        if kind in DONE_EVENTS:
            hp.idle_since = now
            return [self._result(hp, kind, data, now)]
        return []

    def _start(self, hp: HostProgress, data: Mapping[str, Any], now: float) -> list[ProgressEvent]:
        role, task = _role(data), _task(data)
        if _internal(task):
            return []
        hp.task = task_label(role, task)
        hp.running[_task_key(data)] = now
        return [ProgressEvent("task_started", hp.name, role, task)]

    def _result(self, hp: HostProgress, kind: str, data: Mapping[str, Any], now: float) -> ProgressEvent:
        role, task = _role(data), _task(data)
        label = task_label(role, task)
        res = data.get("res") or {}
        hp.done += 1
        seconds = _took(data, hp.running.pop(_task_key(data), None), now)
        if not _internal(task):
            hp.times.append(TaskTime(label, seconds, role))
        outcome: EventKind = "task_ok"
        message = ""
        if kind == "runner_on_ok":
            hp.ok += 1
            if res.get("changed"):
                hp.changed += 1
                outcome = "task_changed"
                self._record_diff(hp.name, task, res)
        elif kind == "runner_on_skipped":
            hp.skipped += 1
            outcome = "task_skipped"
        elif kind == "runner_on_unreachable":
            hp.unreachable += 1
            outcome, message = "unreachable", _message(res)
            hp.error = f"unreachable during '{label}': {message}"
        elif data.get("ignore_errors"):
            outcome = "task_ignored"
        else:
            hp.failed += 1
            outcome, message = "task_failed", _message(res)
            hp.error = f"failed at '{label}': {message}"
        return ProgressEvent(outcome, hp.name, role, task, seconds, message)

    def _record_diff(self, host: str, task: str, res: Mapping[str, Any]) -> None:
        diffs = res.get("diff")
        if not diffs:
            return
        text = render_diff(diffs)
        if text:
            self.changes.append(Change(host, task, text))

    def _finish(self, stats: Mapping[str, Any]) -> list[ProgressEvent]:
        """The play is over: its final counts are authoritative (they include handlers and loops)."""
        self.finished = True
        for stat, attr in STATS.items():
            for name, count in (stats.get(stat) or {}).items():
                setattr(self.host(name), attr, int(count))
        names = sorted({name for key in STAT_HOSTS for name in (stats.get(key) or {})})
        steps = []
        for name in names:
            hp = self.host(name)
            hp.complete = True
            hp.running.clear()
            steps.append(ProgressEvent("host_done", name, seconds=hp.seconds()))
        return steps


def _role(data: Mapping[str, Any]) -> str:
    """The task's role; tasks outside roles (fact gathering) are named after the play, as Ansible does."""
    return str(data.get("role") or data.get("play") or "")


def _task(data: Mapping[str, Any]) -> str:
    return str(data.get("task") or "")


def _task_key(data: Mapping[str, Any]) -> str:
    """Which start a result closes: the task's uuid (names repeat across roles), else its name."""
    return str(data.get("task_uuid") or data.get("task") or "")


def _internal(task: str) -> bool:
    return task.startswith(INTERNAL_TASK_PREFIXES)


def _took(data: Mapping[str, Any], began: float | None, now: float) -> float:
    """A task's time on a host: Ansible's own measure when the event has it, else since its start event."""
    duration = data.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return max(0.0, float(duration))
    return max(0.0, now - began) if began is not None else 0.0


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


def mitogen_env() -> dict[str, str]:
    """Mitogen for Ansible (PyPI `mitogen`): one Python interpreter per host for the whole run instead of
    a module upload and a new interpreter per task; a run with nothing to change takes a third of the time.
    PROVISIONER_MITOGEN=0 runs Ansible's own linear strategy instead."""
    if os.environ.get("PROVISIONER_MITOGEN", "1") == "0":
        return {}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return {}
    strategies = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(strategies), "ANSIBLE_STRATEGY": "mitogen_linear"}


def ansible_env() -> dict[str, str]:
    """Settings for every run (one place, so up, verify and the Vagrantfile see the same)."""
    return {
        **mitogen_env(),
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
