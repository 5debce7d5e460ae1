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
        return self.release_rc, "migrating\nboom" if self.release_rc else "migrated"

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
