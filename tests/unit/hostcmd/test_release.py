"""Release orchestration against a fake scheduler: what starts, what stops, what is kept on failure."""

from dataclasses import dataclass, field

import pytest

from provisioner.hostcmd import release
from provisioner.hostcmd.scheduler import Instance, LocalDocker, ProcessSpec, memory_bytes
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App, Release


@dataclass
class FakeScheduler:
    running: list[Instance] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    crash: set[str] = field(default_factory=set)
    release_rc: int = 0
    one_off_rc: dict[str, int] = field(
        default_factory=dict
    )  # per process ("predeploy", ...), else release_rc
    specs: list[ProcessSpec] = field(default_factory=list)
    counter: int = 0

    def start(self, spec):
        self.counter += 1
        self.specs.append(spec)
        inst = Instance(
            f"{spec.app}.{spec.process}.{spec.index}.v{spec.version}-{self.counter}",
            spec.app,
            spec.process,
            spec.index,
            spec.version,
            "running",
            40000 + self.counter if spec.port else None,
        )
        self.running.append(inst)
        return inst

    def stop(self, inst, grace=10):
        self.stopped.append(inst.name)
        self.running = [i for i in self.running if i.name != inst.name]

    def instances(self, app):
        return [i for i in self.running if i.app == app]

    def alive(self, inst):
        return inst.process not in self.crash

    def run_once(self, spec, timeout=600):
        self.specs.append(spec)
        rc = self.one_off_rc.get(spec.process, self.release_rc)
        return rc, "migrating\nboom" if rc else "migrated"

    def log_tail(self, inst, lines=20):
        return "Traceback: crashed"


@pytest.fixture
def app(tmp_path, monkeypatch):
    settings = Settings(apps_dir=str(tmp_path / "apps"), domain="example.test", retire_grace=0)
    a = App(settings, "shop")
    a.create(lambda repo: repo.mkdir(parents=True))
    a.set_config({"GREETING": "hi\nthere $(x)"})
    applied = []
    monkeypatch.setattr(release.nginx, "apply", lambda d, name, text: applied.append(text))
    monkeypatch.setattr(release, "http_ok", lambda port, path: (True, "HTTP 200"))
    monkeypatch.setattr(release.time, "sleep", lambda s: None)
    a.applied = applied
    return a


def make(app, **changes):
    values = {
        "version": app.next_version(),
        "image": "provisioner-app/shop:v1",
        "processes": {"web": "gunicorn app:app", "worker": "celery"},
        "port": 5000,
        "config": app.config(),
        "commit": "a" * 40,
        "description": "deploy",
        **changes,
    }
    return Release(**values)


def test_activate_starts_scale_switches_and_retires(app):
    sched = FakeScheduler()
    old = sched.start(ProcessSpec("shop", "web", 1, 0, "old", None, port=5000))
    app.set_scale({"web": 2, "worker": 1})
    started = release.activate(app, make(app), lambda _m: None, sched)
    assert sorted((i.process, i.index) for i in started) == [("web", 1), ("web", 2), ("worker", 1)]
    assert sched.stopped == [old.name]
    assert "127.0.0.1:40002" in app.applied[-1] and "127.0.0.1:40003" in app.applied[-1]
    web_spec = next(s for s in sched.specs if s.process == "web" and s.version == 1)
    assert web_spec.env["GREETING"] == "hi\nthere $(x)" and web_spec.port == 5000
    assert next(s for s in sched.specs if s.process == "worker").port is None


def test_crash_on_start_keeps_the_old_release(app):
    sched = FakeScheduler(crash={"web"})
    old = sched.start(ProcessSpec("shop", "web", 1, 0, "old", None, port=5000))
    with pytest.raises(release.ReleaseError, match="exited during its health check") as info:
        release.activate(app, make(app), lambda _m: None, sched)
    assert "Traceback" in info.value.tail
    assert [i.name for i in sched.running] == [old.name] and app.applied == []


def test_a_gone_client_stops_the_health_check_and_keeps_the_old_release(app, monkeypatch):
    sched = FakeScheduler()
    old = sched.start(ProcessSpec("shop", "web", 1, 0, "old", None, port=5000))
    monkeypatch.setattr(release, "http_ok", lambda port, path: (False, "HTTP 503"))
    monkeypatch.setattr(release.session.STOP, "is_set", lambda: True)  # SIGTERM from the forced command
    with pytest.raises(release.ReleaseError, match="client disconnected"):
        release.activate(app, make(app), lambda _m: None, sched)
    assert [i.name for i in sched.running] == [old.name] and app.applied == []


def test_failing_release_command_aborts_before_starting(app):
    sched = FakeScheduler(release_rc=3)
    with pytest.raises(release.ReleaseError, match="release command failed"):
        release.activate(app, make(app, release_command="./migrate"), lambda _m: None, sched)
    assert sched.running == [] and app.applied == []


def test_no_web_process_is_refused(app):
    with pytest.raises(release.ReleaseError, match="no 'web' process"):
        release.activate(app, make(app, processes={"worker": "x"}), lambda _m: None, FakeScheduler())


def test_container_body_passes_config_without_a_shell(monkeypatch):
    monkeypatch.setattr(LocalDocker, "_launcher", staticmethod(lambda image: True))
    monkeypatch.setattr("provisioner.hostcmd.scheduler.free_port", lambda: 41234)
    spec = ProcessSpec("shop", "web", 1, 3, "img", "gunicorn app:app", {"A": "x\ny'\"$(id)"}, 5000, "256m")
    body = LocalDocker()._body(spec)
    assert body["Env"] == ["A=x\ny'\"$(id)", "PORT=5000"]
    assert body["Cmd"] == ["gunicorn app:app"]
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped"}
    assert body["HostConfig"]["Memory"] == 256 * 1024**2
    assert body["HostConfig"]["PortBindings"] == {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41234"}]}
    assert body["Labels"]["io.provisioner.app"] == "shop"


def test_memory_limits():
    assert memory_bytes("1g") == 1024**3 and memory_bytes("512m") == 512 * 1024**2
    with pytest.raises(ValueError):
        memory_bytes("lots")


def test_publish_records_a_release_only_once_it_is_live(app):
    from provisioner.hostcmd import deploy

    sched = FakeScheduler()
    first = deploy.publish(app, make(app), lambda _m: None, sched=sched)
    assert app.current() == first and [r.version for r in app.releases()] == [1]
    broken = make(app, release_command="./migrate")
    sched.release_rc = 1
    with pytest.raises(release.ReleaseError):
        deploy.publish(app, broken, lambda _m: None, sched=sched)
    assert app.current() == first and [r.version for r in app.releases()] == [1]


def test_publish_without_restart_only_routes_the_running_processes(app):
    from provisioner.hostcmd import deploy

    sched = FakeScheduler()
    live = deploy.publish(app, make(app), lambda _m: None, sched=sched)
    started = len(sched.specs)
    app.set_domains(["shop.example.com"])
    deploy.publish(app, live, lambda _m: None, restart=False, sched=sched)
    assert len(sched.specs) == started and sched.stopped == []
    assert "shop.example.com" in app.applied[-1] and "127.0.0.1:40001" in app.applied[-1]


def test_every_process_gets_heroku_s_dyno_and_web_concurrency(app):
    sched = FakeScheduler()
    app.set_scale({"web": 2, "worker": 1})
    release.activate(app, make(app, release_command="./migrate"), lambda _m: None, sched)
    dynos = sorted(s.env["DYNO"] for s in sched.specs)
    assert dynos == ["release.1", "web.1", "web.2", "worker.1"]
    assert {s.env["WEB_CONCURRENCY"] for s in sched.specs} == {"2"}  # 512m: two workers of 256 MB


def test_web_concurrency_follows_the_memory_limit_unless_the_app_sets_it():
    mb = 1024**2
    assert release.web_concurrency(512 * mb, cpus=4) == 2
    assert release.web_concurrency(128 * mb, cpus=4) == 1
    assert release.web_concurrency(4096 * mb, cpus=2) == 4  # at most two per CPU
    assert release.process_env({"WEB_CONCURRENCY": "9", "DYNO": "x"}, "web", 1, 512 * mb) == {
        "WEB_CONCURRENCY": "9",
        "DYNO": "web.1",
    }


def test_a_bad_memory_limit_is_one_clear_error_before_anything_starts(app):
    sched = FakeScheduler()
    with pytest.raises(release.ReleaseError, match=r"invalid memory limit 'lots'.*MEMORY_LIMIT"):
        release.activate(app, make(app, config={"MEMORY_LIMIT": "lots"}), lambda _m: None, sched)
    assert sched.specs == []


# --- app.json deployment tasks ---------------------------------------------------------------------------


def one_offs(sched):
    return [
        (s.process, s.command) for s in sched.specs if s.process in ("predeploy", "release", "postdeploy")
    ]


def test_predeploy_runs_before_the_release_command_in_the_new_image(app):
    sched = FakeScheduler()
    said = []
    rel = make(app, release_command="./migrate", predeploy="./pre; echo $(x)", postdeploy="./post")
    release.activate(app, rel, said.append, sched, predeploy=True)
    assert one_offs(sched) == [("predeploy", "./pre; echo $(x)"), ("release", "./migrate")]
    pre = sched.specs[0]
    assert pre.image == rel.image and pre.version == rel.version and pre.port is None
    assert pre.env["GREETING"] == "hi\nthere $(x)" and pre.env["DYNO"] == "predeploy.1"
    assert said[:2] == ["-----> Running app.json predeploy: ./pre; echo $(x)", "       migrated"]
    assert said.index("-----> Running release command: ./migrate") < said.index("-----> Starting web.1")
    # without predeploy=True (restart, config change, rollback) it does not run
    sched = FakeScheduler()
    release.activate(app, rel, said.append, sched)
    assert one_offs(sched) == [("release", "./migrate")]


def test_failing_predeploy_aborts_before_the_release_command_and_keeps_the_old_release(app):
    from provisioner.hostcmd import deploy

    sched = FakeScheduler()
    first = deploy.publish(app, make(app), lambda _m: None, sched=sched)
    said = []
    sched.one_off_rc = {"predeploy": 7}
    rel = make(app, release_command="./migrate", predeploy="./pre", postdeploy="./post")
    with pytest.raises(release.ReleaseError) as info:
        deploy.publish(app, rel, said.append, deploy_tasks=True, sched=sched)
    assert str(info.value) == "app.json predeploy failed (exit code 7); the deploy is aborted"
    assert "       boom" in said  # the output's tail, as the release command's
    assert one_offs(sched) == [("predeploy", "./pre")]
    assert app.current() == first and [r.version for r in app.releases()] == [1]
    assert [i.version for i in sched.running] == [1]


def test_postdeploy_runs_once_live_and_recorded_and_its_failure_is_a_warning(app):
    from provisioner.hostcmd import deploy

    sched = FakeScheduler(one_off_rc={"postdeploy": 2})
    said = []
    seen = []
    real = sched.run_once

    def run_once(spec, timeout=600):
        seen.append((spec.process, app.current() and app.current().version, len(app.applied)))
        return real(spec, timeout)

    sched.run_once = run_once
    rel = make(app, predeploy="./pre", postdeploy="./post")
    assert deploy.publish(app, rel, said.append, deploy_tasks=True, sched=sched) == rel
    # postdeploy ran after nginx switched and the release was recorded as current
    assert seen == [("predeploy", None, 0), ("postdeploy", 1, 1)]
    assert app.current() == rel and [i.version for i in sched.running] == [1]
    assert said[-4:] == [
        "-----> Running app.json postdeploy: ./post",
        "       migrating",
        "       boom",
        " !     app.json postdeploy failed (exit code 2); the release is live",
    ]


def test_postdeploy_that_cannot_start_is_a_warning(app):
    from provisioner.hostcmd import deploy
    from provisioner.hostcmd.docker import DockerError

    sched = FakeScheduler()

    def run_once(spec, timeout=600):
        if spec.process == "postdeploy":
            raise DockerError("docker: no such image")
        return 0, ""

    sched.run_once = run_once
    said = []
    rel = deploy.publish(app, make(app, postdeploy="./post"), said.append, deploy_tasks=True, sched=sched)
    assert app.current() == rel
    assert said[-1] == " !     app.json postdeploy could not run (docker: no such image); the release is live"


def test_deploy_tasks_are_kept_on_the_release_but_not_run_again(app, monkeypatch):
    """Config changes, restarts and rollbacks publish a release again: its release command runs, app.json's
    predeploy and postdeploy (of the push's build) do not."""
    from provisioner.hostcmd import deploy

    sched = FakeScheduler()
    monkeypatch.setattr(deploy, "for_settings", lambda settings: sched)
    first = deploy.publish(
        app,
        make(app, release_command="./migrate", predeploy="./pre", postdeploy="./post"),
        lambda _m: None,
        deploy_tasks=True,
    )
    assert [p for p, _ in one_offs(sched)] == ["predeploy", "release", "postdeploy"]
    sched.specs.clear()
    second = deploy.redeploy(app, lambda _m: None, "config:set A")  # also what ps:restart runs
    deploy.publish(app, app.current(), lambda _m: None)
    rollback = deploy.publish(app, first.again(3, "rollback to v1"), lambda _m: None)
    assert [p for p, _ in one_offs(sched)] == ["release", "release", "release"]
    assert (second.predeploy, second.postdeploy) == ("./pre", "./post")
    assert app.release(3) == rollback and rollback.predeploy == "./pre"


def test_deploy_warns_about_unsupported_keys_and_runs_the_tasks_of_its_build(app, monkeypatch):
    from provisioner.hostcmd import build, deploy

    def export(repo, sha, dest):
        dest.mkdir(parents=True)
        (dest / "Procfile").write_text("web: gunicorn app:app\nrelease: ./migrate\n")
        (dest / "app.json").write_text(
            '{"name": "shop", "addons": [], "scripts": {"postdeploy": "./seed",'
            ' "dokku": {"predeploy": "./pre", "postdeploy": "./post"}}}'
        )

    built = []
    sched = FakeScheduler()
    monkeypatch.setattr(build, "export_source", export)
    monkeypatch.setattr(
        build, "build", lambda *a: built.append(a) or build.BuildResult("img:v1", "buildpacks")
    )
    monkeypatch.setattr(deploy, "for_settings", lambda settings: sched)
    said = []
    rel = deploy.deploy(app, "b" * 40, "deploy bbbbbbb", said.append)
    assert said[:3] == [
        ' !     app.json: "addons" is not supported here and is ignored',
        ' !     app.json: "scripts.postdeploy" is not supported here and is ignored',
        "-----> Building shop v1 (bbbbbbb)",
    ]
    assert [p for p, _ in one_offs(sched)] == ["predeploy", "release", "postdeploy"]
    assert (rel.predeploy, rel.release_command, rel.postdeploy) == ("./pre", "./migrate", "./post")
    assert app.current() == rel


def test_a_bad_app_json_fails_the_push_before_the_build(app, monkeypatch):
    from provisioner.hostcmd import build, deploy, procfile

    def export(repo, sha, dest):
        dest.mkdir(parents=True)
        (dest / "app.json").write_text('{"scripts": {"dokku": {"predeploy": 42}}}')

    monkeypatch.setattr(build, "export_source", export)
    monkeypatch.setattr(build, "build", lambda *a: pytest.fail("built"))
    with pytest.raises(
        procfile.ProcfileError, match=r'"scripts\.dokku\.predeploy" must be a non-empty string'
    ):
        deploy.deploy(app, "b" * 40, "deploy", lambda _m: None)
    assert app.current() is None


def test_a_push_says_and_records_its_phases_which_add_up_to_its_time(app, monkeypatch):
    import re
    import time

    from provisioner.hostcmd import build, deploy

    def export(repo, sha, dest):
        dest.mkdir(parents=True)
        (dest / "Procfile").write_text("web: gunicorn app:app\nrelease: ./migrate\n")

    def slow_build(*args):
        until = time.monotonic() + 0.3  # time.sleep is a no-op in these tests
        while time.monotonic() < until:
            pass
        return build.BuildResult("img:v1", "buildpacks")

    sched = FakeScheduler()
    monkeypatch.setattr(build, "export_source", export)
    monkeypatch.setattr(build, "build", slow_build)
    monkeypatch.setattr(deploy, "for_settings", lambda settings: sched)
    said: list[str] = []
    rel = deploy.deploy(app, "c" * 40, "deploy ccccccc", said.append)
    released = [line for line in said if line.startswith("-----> Released v1 in ")]
    assert len(released) == 1 and re.fullmatch(
        r"-----> Released v1 in \d+\.\d s \(build 0\.[3-9] s, release \d+\.\d s, start \d+\.\d s, "
        r"health \d+\.\d s, switch \d+\.\d s\)",
        released[0],
    ), released
    assert list(rel.phases) == ["build", "release", "start", "health", "switch"]
    assert abs(sum(rel.phases.values()) - rel.seconds) <= 0.1 * rel.seconds
    assert app.current() == rel and app.release(1) == rel  # recorded with the figures
    again = deploy.redeploy(app, said.append, "config:set A")  # repeats v1: no figures of a push
    assert again is not None and (again.seconds, again.phases) == (0.0, {})


def test_the_health_check_takes_a_redirect_as_healthy_and_never_follows_it():
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path == "/":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/followed")
            else:
                self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert release.http_ok(server.server_port, "/") == (True, "HTTP 302")
        assert hits == ["/"]
    finally:
        server.shutdown()


@pytest.fixture
def routed_app(app, tmp_path, monkeypatch):
    """The app, with nginx's vhost written to disk (what reconcile reads back)."""
    import dataclasses

    vhosts = tmp_path / "vhosts"
    vhosts.mkdir()
    app.settings = dataclasses.replace(app.settings, vhosts_dir=str(vhosts))
    monkeypatch.setattr(
        release.nginx, "apply", lambda d, name, text: (vhosts / f"{name}.conf").write_text(text)
    )
    return app


def test_a_crash_after_the_switch_is_settled_as_live(routed_app, monkeypatch):
    from provisioner.hostcmd import deploy

    app, sched, said = routed_app, FakeScheduler(), []
    first = deploy.publish(app, make(app), said.append, sched=sched)
    second = make(app)
    real_record = app.record_release
    monkeypatch.setattr(app, "record_release", lambda rel: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # killed between nginx's switch and the record
        deploy.publish(app, second, said.append, sched=sched)
    monkeypatch.setattr(app, "record_release", real_record)
    assert app.current() == first and app.pending() == second
    deploy.reconcile(app, said.append, sched)
    assert app.current() == second and app.pending() is None
    assert {i.version for i in sched.instances(app.name)} == {second.version}
    assert said[-1] == f"-----> v{second.version} of shop went live before an interruption: now recorded"


def test_a_crash_before_the_switch_keeps_the_current_release(routed_app):
    from provisioner.hostcmd import deploy

    app, sched, said = routed_app, FakeScheduler(), []
    first = deploy.publish(app, make(app), said.append, sched=sched)
    second = make(app)
    app.set_pending(second)  # killed after starting the new processes, before the switch
    sched.start(release.process_spec(app, second, "web", 1, "serve"))
    deploy.reconcile(app, said.append, sched)
    assert app.current() == first and app.pending() is None
    assert {i.version for i in sched.instances(app.name)} == {first.version}
    assert release.routed_ports(app) == release.serving_ports(app, first, sched)


def test_a_failed_publish_leaves_no_pending_release(routed_app):
    from provisioner.hostcmd import deploy

    app, sched = routed_app, FakeScheduler(release_rc=1)
    with pytest.raises(release.ReleaseError):
        deploy.publish(app, make(app, release_command="./migrate"), lambda _m: None, sched=sched)
    assert app.pending() is None


def test_heal_starts_web_processes_that_could_not_come_back(routed_app):
    from provisioner.hostcmd import deploy

    app, sched, said = routed_app, FakeScheduler(), []
    live = deploy.publish(app, make(app), said.append, sched=sched)
    assert not deploy.heal(app, said.append, sched, wait=0)  # all running: nothing to do
    sched.running = []  # its container could not start again (its host port was taken)
    assert deploy.heal(app, said.append, sched, wait=0)
    assert release.routed_ports(app) == release.serving_ports(app, live, sched) != []
    assert app.current().version == live.version
