import pytest

from provisioner.hostcmd import procfile


def test_parse_procfile():
    text = (
        "# comment\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n\n"
        "worker: python worker.py\nrelease: python migrate.py\n"
    )
    assert procfile.parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python worker.py",
        "release": "python migrate.py",
    }


@pytest.mark.parametrize("text", ["web gunicorn", "../x: y", ": cmd", "web:"])
def test_bad_procfile(text):
    with pytest.raises(procfile.ProcfileError):
        procfile.parse_procfile(text)


def test_release_yaml():
    text = (
        "---\naddons: []\ndefault_process_types:\n  web: npm start\n  worker: 'node w.js'\nconfig_vars: {}\n"
    )
    assert procfile.parse_release_yaml(text) == {"web": "npm start", "worker": "node w.js"}
    assert procfile.parse_release_yaml("---\ndefault_process_types: {}\n") == {}


def test_health_checks():
    assert procfile.health_check({}, 60) == procfile.HealthCheck("http", "/", 60)
    app_json = {"healthchecks": {"web": [{"type": "startup", "path": "/health", "timeout": 20}]}}
    assert procfile.health_check(app_json, 60) == procfile.HealthCheck("http", "/health", 20)
    assert (
        procfile.health_check({"healthchecks": {"web": [{"type": "startup", "listening": True}]}}, 30).kind
        == "tcp"
    )
    with pytest.raises(procfile.ProcfileError):
        procfile.health_check({"healthchecks": {"web": [{"path": "health now"}]}}, 60)


def test_plan_procfile_over_defaults(tmp_path):
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nrelease: ./migrate\n")
    plan = procfile.plan(tmp_path, {"web": "python app.py", "worker": "celery"}, 60)
    assert plan.processes == {"web": "gunicorn app:app", "worker": "celery"}
    assert plan.release_command == "./migrate"
    (tmp_path / "app.json").write_text("[1]")
    with pytest.raises(procfile.ProcfileError):
        procfile.plan(tmp_path, {}, 60)
