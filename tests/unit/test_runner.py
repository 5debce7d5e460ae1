from provisioner.runner import Progress, ProgressEvent, TaskTime, render_diff


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


PLAY = "Provision the host"


def recorded(kind, host, task, role=None, uuid=None, **data):
    """An ansible-runner event as the awx_display callback records it (the fields Progress reads)."""
    event_data = {"playbook": "site.yml", "play": PLAY, "task": task, **data}
    if host:
        event_data["host"] = host
    if role:
        event_data["role"] = role
    if uuid:
        event_data["task_uuid"] = uuid
    return {"event": kind, "uuid": f"{kind}-{host}-{task}", "event_data": event_data}


def subscribed(clock=None):
    progress = Progress(clock=clock or Clock())
    seen: list[ProgressEvent] = []
    progress.subscribe(seen.append)
    return progress, seen


def test_raw_events_become_typed_progress_events():
    p, seen = subscribed()
    p.handle({"event": "playbook_on_start", "event_data": {"playbook": "site.yml"}})
    p.handle(recorded("playbook_on_task_start", None, "Install Docker", "docker", "u1"))
    p.handle(recorded("runner_on_start", "web1", "Install Docker", "docker", "u1"))
    p.handle(recorded("runner_on_ok", "web1", "Install Docker", "docker", "u1", res={"changed": True}))
    p.handle(recorded("runner_on_start", "web1", "Start Docker", "docker", "u2"))
    p.handle(recorded("runner_on_ok", "web1", "Start Docker", "docker", "u2", res={"changed": False}))
    p.handle(recorded("runner_on_start", "web1", "Optional", "docker", "u3"))
    p.handle(recorded("runner_on_skipped", "web1", "Optional", "docker", "u3"))
    p.handle(recorded("runner_on_start", "web1", "Probe", "docker", "u4"))
    p.handle(recorded("runner_on_failed", "web1", "Probe", "docker", "u4", ignore_errors=True, res={}))
    p.handle(recorded("runner_on_start", "web2", "Gathering Facts", uuid="u0"))
    p.handle(recorded("runner_on_unreachable", "web2", "Gathering Facts", uuid="u0", res={"msg": "refused"}))
    assert [(e.kind, e.host, e.label) for e in seen] == [
        ("task_started", "web1", "docker: Install Docker"),
        ("task_changed", "web1", "docker: Install Docker"),
        ("task_started", "web1", "docker: Start Docker"),
        ("task_ok", "web1", "docker: Start Docker"),
        ("task_started", "web1", "docker: Optional"),
        ("task_skipped", "web1", "docker: Optional"),
        ("task_started", "web1", "docker: Probe"),
        ("task_ignored", "web1", "docker: Probe"),
        ("task_started", "web2", f"{PLAY}: Gathering Facts"),
        ("unreachable", "web2", f"{PLAY}: Gathering Facts"),
    ]
    assert seen[-1].message == "refused" and seen[-1].role == PLAY
    assert all(isinstance(e, ProgressEvent) for e in seen)


def test_failed_task_event_carries_the_reason():
    p, seen = subscribed()
    p.handle(recorded("runner_on_start", "web1", "Install nginx", "nginx", "u1"))
    p.handle(recorded("runner_on_failed", "web1", "Install nginx", "nginx", "u1", res={"msg": "no\nspace"}))
    failed = seen[-1]
    assert (failed.kind, failed.role, failed.task, failed.message) == (
        "task_failed",
        "nginx",
        "Install nginx",
        "no space",
    )
    assert p.hosts["web1"].error == "failed at 'nginx: Install nginx': no space"


def test_current_task_follows_every_task_of_every_host():
    p, _ = subscribed()
    p.handle(recorded("runner_on_start", "web1", "Install Docker", "docker", "u1"))
    p.handle(recorded("runner_on_start", "web2", "Install Docker", "docker", "u1"))
    assert p.hosts["web1"].task == p.hosts["web2"].task == "docker: Install Docker"
    p.handle(recorded("runner_on_ok", "web1", "Install Docker", "docker", "u1", res={}))
    p.handle(recorded("runner_on_start", "web1", "Write daemon.json", "docker", "u2"))
    p.handle(recorded("runner_on_start", "web1", "Write daemon.json", "docker", "u2"))
    assert p.hosts["web1"].task == "docker: Write daemon.json"
    assert p.hosts["web2"].task == "docker: Install Docker"


def test_role_argument_checks_are_counted_but_never_the_current_task():
    p, seen = subscribed()
    check = "Validating arguments against arg spec 'main' - the docker engine"
    p.handle(recorded("runner_on_start", "web1", "Install Docker", "docker", "u1"))
    p.handle(recorded("runner_on_ok", "web1", "Install Docker", "docker", "u1", res={}))
    p.handle(recorded("runner_on_start", "web1", check, "nginx", "u2"))
    p.handle(recorded("runner_on_ok", "web1", check, "nginx", "u2", res={}))
    hp = p.hosts["web1"]
    assert hp.task == "docker: Install Docker" and hp.done == 2
    assert [t.task for t in hp.times] == ["docker: Install Docker"]
    assert "task_started" not in [e.kind for e in seen[2:]]


def test_stats_end_every_host_with_host_done():
    clock = Clock()
    p, seen = subscribed(clock)
    p.handle(recorded("runner_on_start", "web1", "Install Docker", "docker", "u1"))
    clock.now = 130.0
    p.handle(recorded("runner_on_ok", "web1", "Install Docker", "docker", "u1", res={}))
    stats = {"ok": {"web1": 1}, "changed": {}, "failures": {}, "dark": {"web2": 1}, "processed": {"web1": 1}}
    p.handle({"event": "playbook_on_stats", "event_data": stats})
    done = [e for e in seen if e.kind == "host_done"]
    assert [(e.host, e.seconds) for e in done] == [("web1", 30.0), ("web2", 0.0)]
    assert p.hosts["web1"].state == "done" and p.hosts["web2"].state == "unreachable"


def test_task_times_run_from_start_to_the_hosts_result():
    clock = Clock()
    p, seen = subscribed(clock)
    p.handle(recorded("runner_on_start", "web1", "Pull image", "buildpacks", "u1"))
    clock.now = 101.0
    p.handle(recorded("runner_on_start", "web2", "Pull image", "buildpacks", "u1"))
    clock.now = 112.5
    p.handle(recorded("runner_on_ok", "web1", "Pull image", "buildpacks", "u1", res={}))
    clock.now = 204.0
    p.handle(recorded("runner_on_ok", "web2", "Pull image", "buildpacks", "u1", res={}))
    assert [(e.host, e.seconds) for e in seen if e.kind == "task_ok"] == [("web1", 12.5), ("web2", 103.0)]
    assert p.hosts["web1"].times == [TaskTime("buildpacks: Pull image", 12.5, "buildpacks")]


def test_ansibles_own_duration_wins_over_the_arrival_of_events():
    clock = Clock()
    p, seen = subscribed(clock)
    p.handle(recorded("runner_on_start", "web1", "Build stack", "buildpacks", "u1"))
    clock.now = 190.0  # events reached the controller late
    p.handle(recorded("runner_on_ok", "web1", "Build stack", "buildpacks", "u1", duration=61.25, res={}))
    assert seen[-1].seconds == 61.25 and p.hosts["web1"].times[0].seconds == 61.25


def test_slowest_three_tasks_per_host():
    clock = Clock()
    p = Progress(clock=clock)
    durations = {"a": 3.0, "b": 40.0, "c": 0.5, "d": 12.0, "e": 40.0, "f": 7.0}
    for index, (task, seconds) in enumerate(durations.items()):
        p.handle(recorded("runner_on_start", "web1", task, "base", f"u{index}"))
        clock.now += seconds
        p.handle(recorded("runner_on_ok", "web1", task, "base", f"u{index}", res={}))
    assert p.hosts["web1"].slowest() == [
        TaskTime("base: b", 40.0, "base"),
        TaskTime("base: e", 40.0, "base"),
        TaskTime("base: d", 12.0, "base"),
    ]
    assert Progress().host("idle").slowest() == []


def test_seconds_per_role_in_the_order_the_roles_ran_add_up_to_the_hosts_time():
    clock = Clock()
    p = Progress(clock=clock)
    steps = [("Gathering Facts", "", 1.0), ("a", "base", 3.0), ("b", "docker", 20.0), ("c", "base", 2.0)]
    for index, (task, role, seconds) in enumerate(steps):
        p.handle(recorded("runner_on_start", "web1", task, role, f"u{index}"))
        clock.now += seconds
        p.handle(recorded("runner_on_ok", "web1", task, role, f"u{index}", res={}))
    roles = p.hosts["web1"].roles()
    assert list(roles) == [PLAY, "base", "docker"] and roles["base"] == 5.0 and roles["docker"] == 20.0
    assert sum(roles.values()) == p.hosts["web1"].seconds() == 26.0
    assert Progress().host("idle").roles() == {}


def test_events_that_are_no_step_of_a_host_emit_nothing():
    p, seen = subscribed()
    p.handle({"event": "verbose", "stdout": "PLAY [all]"})
    p.handle(recorded("runner_item_on_ok", "web1", "Install packages", "base", "u1", res={}))
    p.handle(recorded("playbook_on_task_start", None, "x"))
    assert seen == []


def test_a_host_that_waits_for_a_slower_one_says_so_and_the_parts_still_add_up():
    """Linear strategy: task 2 starts on both hosts once the slow one has finished task 1."""
    clock = Clock()
    p = Progress(clock=clock)
    for host in ("fast", "slow"):
        p.handle(recorded("runner_on_start", host, "one", "base", "u1"))
    clock.now += 1.0
    p.handle(recorded("runner_on_ok", "fast", "one", "base", "u1", res={}))
    clock.now += 4.0
    p.handle(recorded("runner_on_ok", "slow", "one", "base", "u1", res={}))
    for host in ("fast", "slow"):
        p.handle(recorded("runner_on_start", host, "two", "docker", "u2"))
    clock.now += 2.0
    for host in ("fast", "slow"):
        p.handle(recorded("runner_on_ok", host, "two", "docker", "u2", res={}))
    fast, slow = p.hosts["fast"], p.hosts["slow"]
    assert fast.roles() == {"base": 1.0, "docker": 2.0} and fast.waiting == 4.0
    assert slow.roles() == {"base": 5.0, "docker": 2.0} and slow.waiting == 0.0
    for hp in (fast, slow):
        assert sum(hp.roles().values()) + hp.waiting == hp.seconds() == 7.0


def test_runs_use_mitogen_s_strategy_unless_turned_off(monkeypatch):
    from pathlib import Path

    from provisioner import runner

    env = runner.ansible_env()
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()
    monkeypatch.setenv("PROVISIONER_MITOGEN", "0")
    assert "ANSIBLE_STRATEGY" not in runner.ansible_env()
