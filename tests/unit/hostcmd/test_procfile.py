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


# --- app.json: health checks, deployment tasks, unsupported keys --------------------------------------------


def checks(*entries):
    return {"healthchecks": {"web": list(entries)}}


def test_health_check_attempts_and_timeouts():
    assert procfile.health_check(checks({"path": "/up", "attempts": 4}), 60).timeout == 20
    assert procfile.health_check(checks({"path": "/up", "attempts": "4"}), 60).timeout == 20
    assert procfile.health_check(checks({"path": "/up", "timeout": "45"}), 60).timeout == 45
    assert procfile.health_check(checks({"path": "/up", "timeout": 300}), 60).timeout == 300
    # a readiness check without a path or port is no check; the next one is used
    assert procfile.health_check(checks({"type": "readiness"}, {"path": "/b"}), 60).path == "/b"
    assert procfile.health_check({"healthchecks": {}}, 45) == procfile.HealthCheck("http", "/", 45)


@pytest.mark.parametrize(
    ("app_json", "message"),
    [
        ({"healthchecks": []}, '"healthchecks" must be an object'),
        ({"healthchecks": None}, '"healthchecks" must be an object'),
        ({"healthchecks": {"web": {"path": "/"}}}, '"healthchecks.web" must be a list of objects'),
        (checks("/health"), r'"healthchecks.web\[0\]" must be an object, got "/health"'),
        (checks({"path": "/"}, 3), r'"healthchecks.web\[1\]" must be an object'),
        (checks({"path": "/", "attempts": "x"}), r'"healthchecks.web\[0\].attempts" must be an integer'),
        (checks({"path": "/", "attempts": True}), r"attempts\" must be an integer, got true"),
        (checks({"path": "/", "timeout": False}), r"timeout\" must be an integer, got false"),
        (checks({"path": "/", "timeout": 2.5}), r"timeout\" must be an integer, got 2.5"),
        (
            checks({"path": "/", "timeout": "\u0663\u0660"}),
            r"timeout\" must be an integer",
        ),  # Arabic-Indic 30
        (checks({"path": "/", "timeout": "\uff13\uff10"}), r"timeout\" must be an integer"),  # fullwidth 30
        (checks({"path": "/", "timeout": "30\n"}), r"timeout\" must be an integer"),
        (checks({"path": "/", "timeout": 301}), r"timeout\" must be between 1 and 300, got 301"),
        (checks({"path": "/", "timeout": 0}), r"timeout\" must be between 1 and 300, got 0"),
        (checks({"path": "/", "timeout": 10**30}), r"timeout\" must be between 1 and 300"),
        (checks({"path": "/", "attempts": 61}), r"attempts\" must be between 1 and 60"),
        (checks({"path": "/", "attempts": -1}), r"attempts\" must be between 1 and 60"),
        (checks({"type": ["startup"]}), r'"healthchecks.web\[0\].type" must be a string'),
        (checks({"path": 5}), r'"healthchecks.web\[0\].path" must be a string'),
        (checks({"path": "health"}), r"must start with '/'"),
        # checks after the one used are checked as well
        (checks({"path": "/"}, {"path": "/", "timeout": "x"}), r'"healthchecks.web\[1\].timeout"'),
    ],
)
def test_bad_health_checks_are_one_clear_line(app_json, message):
    with pytest.raises(procfile.ProcfileError, match=message) as info:
        procfile.health_check(app_json, 60)
    assert str(info.value).startswith("app.json: ") and "\n" not in str(info.value)


def test_deploy_tasks():
    assert procfile.deploy_tasks({}) == {}
    assert procfile.deploy_tasks({"scripts": {"dokku": {}}}) == {}
    scripts = {"scripts": {"dokku": {"predeploy": "./manage.py migrate", "postdeploy": " ./warm "}}}
    assert procfile.deploy_tasks(scripts) == {"predeploy": "./manage.py migrate", "postdeploy": "./warm"}


@pytest.mark.parametrize(
    ("app_json", "message"),
    [
        ({"scripts": "./migrate"}, '"scripts" must be an object, got "./migrate"'),
        ({"scripts": None}, '"scripts" must be an object, got null'),
        ({"scripts": {"dokku": ["./migrate"]}}, '"scripts.dokku" must be an object'),
        ({"scripts": {"dokku": {"predeploy": ""}}}, '"scripts.dokku.predeploy" must be a non-empty string'),
        ({"scripts": {"dokku": {"predeploy": "  "}}}, '"scripts.dokku.predeploy" must be a non-empty'),
        ({"scripts": {"dokku": {"predeploy": ["a", "b"]}}}, r'predeploy" must be .*, got \["a", "b"\]'),
        ({"scripts": {"dokku": {"postdeploy": 1}}}, '"scripts.dokku.postdeploy" must be a non-empty string'),
        ({"scripts": {"dokku": {"postdeploy": None}}}, '"scripts.dokku.postdeploy" must be a non-empty'),
    ],
)
def test_bad_deploy_tasks_are_one_clear_line(app_json, message):
    with pytest.raises(procfile.ProcfileError, match=message) as info:
        procfile.deploy_tasks(app_json)
    assert str(info.value).startswith("app.json: ") and "\n" not in str(info.value)


def test_long_values_are_shortened_in_messages():
    with pytest.raises(procfile.ProcfileError) as info:
        procfile.deploy_tasks({"scripts": {"dokku": {"predeploy": ["x" * 500]}}})
    assert len(str(info.value)) < 120 and str(info.value).endswith("...")


def test_unsupported_keys_get_one_warning_each_and_descriptive_ones_none():
    app_json = {
        "name": "shop",
        "description": "a shop",
        "keywords": ["shop"],
        "website": "https://shop.example.com",
        "repository": "https://github.com/x/shop",
        "logo": "https://example.com/logo.png",
        "env": {"SECRET": {"generator": "secret"}},
        "addons": ["heroku-postgresql"],
        "buildpacks": [{"url": "heroku/python"}],
        "formation": {"web": {"quantity": 2}},
        "cron": [{"command": "./x", "schedule": "@daily"}],
        "stack": "heroku-22",
        "environments": {"test": {}},
        "image": "heroku/python",
        "success_url": "/welcome",
        "healthchecks": {"web": [], "worker": []},
        "scripts": {
            "postdeploy": "./seed",
            "dokku": {"predeploy": "./migrate", "postdeploy": "./warm", "prebuild": "./x"},
        },
    }
    warnings = procfile.unsupported(app_json)
    ignored = ["env", "addons", "buildpacks", "formation", "cron", "stack", "environments", "image"]
    ignored += ["success_url", "healthchecks.worker", "scripts.postdeploy", "scripts.dokku.prebuild"]
    assert warnings == [f'app.json: "{key}" is not supported here and is ignored' for key in ignored]
    assert procfile.unsupported({k: app_json[k] for k in procfile.DESCRIPTIVE_KEYS}) == []
    assert procfile.unsupported({"healthchecks": {"web": []}, "scripts": {"dokku": {}}}) == []


def test_an_odd_key_is_quoted_on_one_line():
    assert procfile.unsupported({'we"ird\nkey': 1}) == [
        'app.json: "we\\"ird\\nkey" is not supported here and is ignored'
    ]


def test_plan_takes_deploy_tasks_and_warnings_from_app_json(tmp_path):
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nrelease: ./migrate\n")
    (tmp_path / "app.json").write_text(
        '{"name": "shop", "formation": {},'
        ' "scripts": {"dokku": {"predeploy": "./pre", "postdeploy": "./post"}},'
        ' "healthchecks": {"web": [{"path": "/up", "attempts": 3}]}}'
    )
    plan = procfile.plan(tmp_path, {}, 60)
    assert (plan.predeploy, plan.release_command, plan.postdeploy) == ("./pre", "./migrate", "./post")
    assert plan.health == procfile.HealthCheck("http", "/up", 15)
    assert plan.warnings == ('app.json: "formation" is not supported here and is ignored',)
    # without app.json: nothing to run, nothing to say
    (tmp_path / "app.json").unlink()
    plan = procfile.plan(tmp_path, {}, 60)
    assert (plan.predeploy, plan.postdeploy, plan.warnings) == (None, None, ())


def test_app_json_that_is_not_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "app.json").write_bytes(b'{"name": "\xff\xfe", "scripts": 3}')
    with pytest.raises(procfile.ProcfileError, match='"scripts" must be an object'):
        procfile.read_app_json(tmp_path, 60)
    (tmp_path / "app.json").write_bytes(b"\xff{")
    with pytest.raises(procfile.ProcfileError, match="not valid JSON"):
        procfile.read_app_json(tmp_path, 60)


@pytest.mark.parametrize("text", ['{"a": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000])
def test_app_json_that_json_cannot_hold_is_a_clear_error(tmp_path, text):
    (tmp_path / "app.json").write_text(text)
    with pytest.raises(procfile.ProcfileError, match=r"app\.json is not valid JSON"):
        procfile.read_app_json(tmp_path, 60)
