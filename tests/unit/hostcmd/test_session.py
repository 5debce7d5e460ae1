"""The push's watch on its SSH client, with real pipes and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from provisioner.hostcmd import session


def test_a_pipe_whose_reader_closed_is_a_gone_client() -> None:
    read, write = os.pipe()
    try:
        assert not session.client_gone([write])
        os.close(read)
        assert session.client_gone([write])
    finally:
        os.close(write)


# A push's process group: a parent (git-receive-pack) and a child (the hook) that needs a moment to clean up
# after SIGTERM, and writes when it is done.
HOOK = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "parent":
    child = subprocess.Popen([sys.executable, __file__, "child", sys.argv[2]])
    time.sleep(60)
else:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.05)
    time.sleep(1)
    open(sys.argv[2], "w").write("cleaned up")
"""


def test_a_gone_client_stops_the_push_and_waits_for_its_clean_up(tmp_path: Path) -> None:
    script = tmp_path / "push.py"
    script.write_text(HOOK)
    marker = tmp_path / "done"
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, str(script), "parent", str(marker)], start_new_session=True)
    try:
        time.sleep(0.5)
        os.close(read)  # the client disconnects
        started = time.monotonic()
        session.supervise(proc, poll=0.1, fds=[write])
        assert marker.read_text() == "cleaned up"  # the lock is released only after the clean-up
        assert time.monotonic() - started < 10
    finally:
        os.close(write)
        if proc.poll() is None:
            proc.kill()


def test_a_push_whose_client_stays_ends_with_its_exit_code(tmp_path: Path) -> None:
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
        assert session.supervise(proc, poll=0.1, fds=[write]) == 3
    finally:
        os.close(read)
        os.close(write)
