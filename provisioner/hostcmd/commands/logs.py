"""logs: the app's current processes' output, interleaved, each line prefixed with its process."""

from __future__ import annotations

import threading

from .. import names
from ..scheduler import Instance, for_settings
from ..settings import Settings
from .base import Command, UserError, app_arg, count, out, valid

USAGE = "logs APP [-n N] [-t] [-p TYPE]"


def logs(settings: Settings, args: list[str]) -> None:
    app = app_arg(settings, args, USAGE)
    lines, follow, rest = 100, False, args[1:]
    process: str | None = None
    while rest:
        arg = rest.pop(0)
        if arg == "-t":
            follow = True
        elif arg in ("-p", "--ps") and rest:
            process = valid(names.process, rest.pop(0))
        elif arg == "-n" and rest and rest[0].isascii() and rest[0].isdigit():
            lines = count(rest.pop(0), "-n", 0, 100000)
        else:
            raise UserError(f"unexpected argument {arg!r}; usage: {USAGE}")
    sched = for_settings(settings)
    current = app.current()
    instances = [i for i in sched.instances(app.name) if not current or i.version == current.version]
    instances = [i for i in instances if process is None or i.process == process]
    if not instances:
        raise UserError(f"{app.name} has no running {process + ' ' if process else ''}processes")
    lock = threading.Lock()

    def pump(inst: Instance) -> None:
        for line in sched.logs(inst, lines, follow):
            with lock:
                out(f"{inst.process}.{inst.index}: {line}")

    threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


COMMANDS = [
    Command(
        "logs",
        "APP [-n N] [-t] [-p TYPE]",
        "last N log lines (default 100); -t follows; -p: one process type",
        logs,
    )
]
