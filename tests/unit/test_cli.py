"""What `up` shows: progress lines from typed events, the summary table and its JSON."""

import io

from provisioner import api, cli, runner


def feed(progress, host, role, tasks, clock):
    """Run tasks on a host through recorded-shape events; each task takes its given seconds."""
    for index, (task, seconds) in enumerate(tasks):
        data = {
            "host": host,
            "play": "Provision the host",
            "role": role,
            "task": task,
            "task_uuid": f"{role}{index}",
        }
        progress.handle({"event": "runner_on_start", "event_data": data})
        clock.now += seconds
        progress.handle({"event": "runner_on_ok", "event_data": {**data, "res": {"changed": False}}})


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def last_task(text):
    """tests/e2e/test_interrupt.py's reading of a progress log: after the first ': ' of the last such line."""
    lines = [ln for ln in text.splitlines() if ": " in ln]
    return lines[-1].split(": ", 1)[1] if lines else "before the first task"


def test_line_progress_shows_every_task_as_it_starts():
    stream = io.StringIO()
    clock = Clock()
    progress = cli.line_progress(cli.Console(file=stream, width=200))
    progress.clock = clock
    feed(progress, "web1", "docker", [("Install Docker", 1), ("Write daemon.json", 1)], clock)
    assert stream.getvalue().splitlines() == [
        "web1: docker: Install Docker",
        "web1: docker: Write daemon.json",
    ]
    assert last_task(stream.getvalue()) == "docker: Write daemon.json"


def up_result(progress):
    return api.UpResult(
        hosts=progress.hosts, seconds=99.0, ok=True, check=False, changes=[], artifacts="/runs/1"
    )


def test_summary_and_json_show_the_three_slowest_tasks():
    clock = Clock()
    progress = runner.Progress(clock=clock)
    tasks = [
        ("Update apt cache", 4.0),
        ("Install packages", 31.25),
        ("Write host.json", 0.5),
        ("Upgrade", 9.0),
    ]
    feed(progress, "web1", "base", tasks, clock)
    progress.handle({"event": "playbook_on_stats", "event_data": {"ok": {"web1": 4}, "changed": {}}})
    result = up_result(progress)
    host = result.as_dict()["hosts"]["web1"]
    assert host["slowest_tasks"] == [
        {"task": "base: Install packages", "seconds": 31.2},
        {"task": "base: Upgrade", "seconds": 9.0},
        {"task": "base: Update apt cache", "seconds": 4.0},
    ]
    assert {"ok", "changed", "failed", "unreachable", "seconds"} <= set(host)
    assert host["roles"] == {"base": 44.8}
    console = cli.Console(record=True, width=200)
    console.print(cli.summary_table(result))
    text = console.export_text()
    assert "slowest tasks" in text and "31s base: Install packages" in text and "4s base: Update apt" in text
    assert "seconds per role" in text and "45s base" in text
    assert "Write host.json" not in text
