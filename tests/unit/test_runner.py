from provisioner.runner import Progress, render_diff


def ev(kind, host=None, task="t", **data):
    event_data = {"task": task, **data}
    if host:
        event_data["host"] = host
    return {"event": kind, "event_data": event_data}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_events_become_per_host_progress():
    clock = Clock()
    p = Progress(clock=clock)
    p.handle(ev("playbook_on_task_start", task="Gathering Facts"))
    p.handle(ev("runner_on_start", "a", "Gathering Facts"))
    p.handle(ev("runner_on_start", "b", "Gathering Facts"))
    assert p.hosts["a"].task == "Gathering Facts" and p.hosts["a"].state == "running"
    clock.now = 103.0
    p.handle(ev("runner_on_ok", "a", "Gathering Facts", res={"changed": False}))
    p.handle(ev("runner_on_start", "a", "Install docker"))
    clock.now = 110.0
    p.handle(ev("runner_on_ok", "a", "Install docker", res={"changed": True}))
    p.handle(ev("runner_on_failed", "b", "Gathering Facts", res={"msg": "boom\nbang"}))
    a, b = p.hosts["a"], p.hosts["b"]
    assert (a.done, a.ok, a.changed, a.task) == (2, 2, 1, "Install docker")
    assert a.seconds() == 10.0
    assert b.failed == 1 and b.state == "failed" and b.error == "failed at 'Gathering Facts': boom bang"


def test_ignored_failures_and_skips_do_not_fail():
    p = Progress()
    p.handle(ev("runner_on_failed", "a", ignore_errors=True, res={"msg": "x"}))
    p.handle(ev("runner_on_skipped", "a"))
    assert p.hosts["a"].failed == 0 and p.hosts["a"].skipped == 1 and p.hosts["a"].done == 2


def test_unreachable():
    p = Progress()
    p.handle(ev("runner_on_unreachable", "a", "Gathering Facts", res={"msg": "ssh: connect refused"}))
    assert p.hosts["a"].state == "unreachable" and "connect refused" in p.hosts["a"].error


def test_stats_are_authoritative():
    p = Progress()
    p.handle(ev("runner_on_ok", "a", res={"changed": True}))
    p.handle(
        {
            "event": "playbook_on_stats",
            "event_data": {
                "ok": {"a": 20},
                "changed": {"a": 3},
                "failures": {},
                "dark": {},
                "skipped": {"a": 4},
            },
        }
    )
    a = p.hosts["a"]
    assert (a.ok, a.changed, a.failed, a.unreachable, a.skipped) == (20, 3, 0, 0, 4) and p.finished


def test_diff_of_changed_task_is_recorded():
    p = Progress()
    diff = {"before": "a\nb\n", "after": "a\nc\n", "before_header": "/etc/x", "after_header": "/etc/x"}
    p.handle(ev("runner_on_ok", "h", "Write x", res={"changed": True, "diff": diff}))
    assert len(p.changes) == 1
    assert "-b" in p.changes[0].diff and "+c" in p.changes[0].diff and p.changes[0].host == "h"


def test_render_diff_variants():
    assert render_diff({"prepared": "+pkg"}) == "+pkg"
    assert render_diff([{"before": "same", "after": "same"}]) == ""
    assert '"state": "started"' in render_diff(
        {"before": {"state": "stopped"}, "after": {"state": "started"}}
    )


def test_censored_message_is_kept_secret():
    p = Progress()
    p.handle(ev("runner_on_failed", "a", res={"censored": "the output has been hidden", "msg": "secret"}))
    assert "secret" not in p.hosts["a"].error
