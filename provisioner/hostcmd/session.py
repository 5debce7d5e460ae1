"""The SSH session of a push: whether its client is still there, and stopping the push when it is not.

A push runs as the forced command (which holds the app's lock), git-receive-pack under it, and the
pre-receive hook under that, which builds and waits for health checks. When the client disconnects, sshd
closes the forced command's stdout and stderr; nothing else notices until it writes. So the forced command
watches them: once the client is gone it sends SIGTERM to the push's process group, where the hook stops at
its next wait (health checks) and the docker CLI stops a running build (it passes the signal on). The lock is
released only when every process of the push has ended, so the next push never overlaps the clean-up.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

STOP = threading.Event()  # set in the hook when the push's client is gone
GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL


def client_gone(fds: Sequence[int] = (1, 2)) -> bool:
    """True when the reading end of any of these (sshd's end of our stdout/stderr) has been closed."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLOUT)
    return any(events & GONE for _fd, events in poller.poll(0))


def supervise(
    proc: subprocess.Popen[bytes], poll: float = 0.5, drain: float = 600, fds: Sequence[int] = (1, 2)
) -> int:
    """Wait for `proc` (started with start_new_session=True); if the client goes away meanwhile, SIGTERM its
    process group and wait (at most `drain` seconds, then SIGKILL) until no process of it is left."""
    while True:
        try:
            return proc.wait(timeout=poll)
        except subprocess.TimeoutExpired:
            if client_gone(fds):
                break
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + drain
    while _group_alive(proc.pid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        if time.monotonic() > deadline:
            _signal_group(proc.pid, signal.SIGKILL)
            deadline = float("inf")
    return proc.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_on_sigterm() -> None:
    """In the hook: SIGTERM (the client is gone) makes the deploy stop at its next wait, not mid-switch."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: STOP.set())


def stopped() -> bool:
    return STOP.is_set()
