import pytest

from provisioner.hostcmd import main as host
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App


@pytest.fixture
def settings(tmp_path, monkeypatch):
    s = Settings(apps_dir=str(tmp_path / "apps"), domain="example.test")
    monkeypatch.setattr(host.Settings, "load", classmethod(lambda cls, directory=None: s))
    return s


@pytest.fixture
def execs(monkeypatch):
    calls = []

    class Done:
        returncode = 0

    def fake_popen(argv, **kwargs):
        calls.append(argv)
        calls.append(kwargs.get("env", {}).get(host.LOCKED_ENV))
        assert kwargs.get("start_new_session")  # its own process group, stopped if the client goes
        return Done()

    monkeypatch.setattr(host.os, "execvp", lambda prog, argv: calls.append(argv))
    monkeypatch.setattr(host.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(host.session, "supervise", lambda proc: proc.returncode)
    return calls


def run(monkeypatch, original):
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", original)
    return host.main(None)


@pytest.mark.parametrize("command", ["", "help", "--help"])
def test_help(monkeypatch, settings, capsys, command):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, command) == 0
    assert "apps:list" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command", ["bash", "sh -c id", "rm -rf /", "hook pre-receive x", "hook pre-receive", "/bin/sh"]
)
def test_never_a_shell(monkeypatch, settings, capsys, execs, command):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, command) == 1
    captured = capsys.readouterr()
    assert "unknown command" in captured.err and "apps:list" in captured.err
    assert execs == []


@pytest.mark.parametrize(
    "command",
    [
        "scp -t /tmp",
        "scp -f /etc/passwd",
        "internal-sftp",
        "/usr/lib/openssh/sftp-server",
        "rsync --server .",
    ],
)
def test_no_file_transfer(monkeypatch, settings, capsys, execs, command):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, command) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing an scp/sftp client could take for its protocol
    assert "no file transfer" in captured.err
    assert execs == []


def test_push_runs_receive_pack_under_the_app_lock(monkeypatch, settings, execs, tmp_path):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    monkeypatch.setattr(host.repo, "initializer", lambda s: lambda repo: repo.mkdir(parents=True))
    assert run(monkeypatch, "git-receive-pack '/shop.git'") == 0
    assert execs == [["git-receive-pack", str(tmp_path / "apps" / "shop" / "repo.git")], "shop"]


def test_a_second_push_waits_for_the_first(monkeypatch, settings, tmp_path, capsys):
    """While one push holds the app's lock, another one waits (and says so) instead of interleaving."""
    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    with pytest.raises(host.LockTimeout), app.lock(), app.lock(timeout=0.6, say=lambda m: print(m)):
        pass
    assert "waiting for another deploy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "path", ["'../etc'", "'/etc/passwd'", "'Shop'", "'a/b'", "'-rf'", "'shop' 'other'", "'sh\nop'", "'$(id)'"]
)
def test_push_refuses_bad_names_before_touching_disk(monkeypatch, settings, execs, capsys, path, tmp_path):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, f"git-receive-pack {path}") == 1
    assert execs == []
    assert not (tmp_path / "apps").exists()
    assert capsys.readouterr().err.startswith("error: ")


def test_upload_pack_of_unknown_app_is_refused(monkeypatch, settings, execs, capsys):
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, "git-upload-pack 'nope'") == 1 and execs == []


def test_pre_receive_refuses_other_branches(monkeypatch, settings, capsys, tmp_path):
    repo = tmp_path / "apps" / "shop" / "repo.git"
    repo.mkdir(parents=True)
    monkeypatch.setenv("GIT_DIR", str(repo))
    rc = host.pre_receive(settings, [f"{'0' * 40} {'a' * 40} refs/heads/feature\n"])
    assert rc == 1 and "only the 'main' branch deploys" in capsys.readouterr().err


def test_config_commands_validate_and_store(monkeypatch, settings, capsys):
    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    assert host.dispatch(["config:set", "shop", "A=1", "B=x=y", "--no-restart"], settings) == 0
    assert app.config() == {"A": "1", "B": "x=y"}
    with pytest.raises(host.UserError, match="invalid config key"):
        host.dispatch(["config:set", "shop", "1A=2"], settings)
    with pytest.raises(host.UserError, match="KEY=VALUE"):
        host.dispatch(["config:set", "shop", "novalue"], settings)
    assert host.dispatch(["config:unset", "shop", "A", "--no-restart"], settings) == 0
    host.dispatch(["config", "shop"], settings)
    assert capsys.readouterr().out.strip() == "B=x=y"


def test_dokkus_config_commands_and_options_before_the_app(settings, capsys):
    import base64
    import subprocess

    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    hostile = 'line one\nit\'s "quoted" $(touch /tmp/pwned) `id` \\ {{x}}\n'
    encoded = base64.b64encode(hostile.encode()).decode()
    argv = ["config:set", "--encoded", "--no-restart", "shop", f"SECRET={encoded}", "B=Mg=="]
    assert host.dispatch(argv, settings) == 0  # options before the app, as Dokku's docs write them
    assert app.config() == {"SECRET": hostile, "B": "2"}
    capsys.readouterr()
    host.dispatch(["config:get", "shop", "SECRET"], settings)
    assert capsys.readouterr().out == hostile + "\n"
    host.dispatch(["config:keys", "shop"], settings)
    assert capsys.readouterr().out == "B\nSECRET\n"
    host.dispatch(["config:export", "shop"], settings)
    exported = capsys.readouterr().out
    shown = subprocess.run(
        ["sh", "-c", exported + 'printf %s "$SECRET"'], capture_output=True, text=True, check=True
    )
    assert shown.stdout == hostile  # sourced by sh, byte for byte, nothing run
    with pytest.raises(host.UserError, match="has no config var NOPE"):
        host.dispatch(["config:get", "shop", "NOPE"], settings)
    with pytest.raises(host.UserError, match="not base64"):
        host.dispatch(["config:set", "shop", "--encoded", "X=not base64!", "--no-restart"], settings)
    assert "X" not in app.config()
    assert host.dispatch(["config:clear", "--no-restart", "shop"], settings) == 0
    assert app.config() == {}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["config:set"], "usage"),
        (["config:get", "shop"], "usage"),
        (["config:get", "shop", "A", "B"], "usage"),
        (["config:get", "shop", "../x"], "invalid config key"),
        (["config:keys", "shop", "extra"], "unexpected argument"),
        (["config:export", "shop", "--format=json"], "unexpected argument"),
        (["config:clear", "shop", "now"], "unexpected argument"),
        (["config:set", "--encoded", "shop", "K=\u00e9"], "not base64"),
        (["config", "nope"], "no app named"),
        (["apps:destroy", "shop"], "--force"),
        (["rollback", "shop", "latest"], "invalid release"),
        (["ps:scale", "shop", "web=100"], "0 to 20"),
        (["ps:scale", "shop", "../x=1"], "invalid process type"),
        (["config:set", "shop", "MEMORY_LIMIT=lots"], "invalid memory limit"),
        (["domains:add", "shop", "evil.com;"], "invalid domain"),
        (["logs", "shop", "-n", "x"], "unexpected argument"),
        (["apps:list", "extra"], "unexpected argument"),
    ],
)
def test_bad_arguments_are_one_clear_message(settings, argv, words):
    App(settings, "shop").create(lambda repo: repo.mkdir(parents=True))
    with pytest.raises((host.UserError, host.names.NameError_), match=words):
        host.dispatch(argv, settings)


def test_help_and_dispatch_come_from_one_table(settings, capsys):
    """Every command of every topic module is in help once, and dispatch finds it by name and alias."""
    import pkgutil

    from provisioner.hostcmd import commands

    # base: what every module shares; services: the verbs postgres and redis share
    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)} - {"base", "services"}
    assert modules == {t.__name__.rsplit(".", 1)[1] for t in commands.TOPICS}, "a topic module is not listed"
    text = commands.help_text(settings)
    names = [cmd.name for cmd in commands.TABLE]
    assert len(names) == len(set(names))
    for cmd in commands.TABLE:
        assert [ln.split()[0] for ln in text.splitlines()[2:]].count(cmd.name) == 1, cmd.name
        for name in (cmd.name, *cmd.aliases):
            assert commands.find(name) is cmd
    assert "git push deploy@HOST:APP main" in text and "(default 3)" in text


def test_help_names_the_configured_user_and_branch(tmp_path):
    from provisioner.hostcmd import commands

    text = commands.help_text(Settings(user="git", deploy_branch="prod"))
    assert text.startswith("Usage: ssh git@HOST COMMAND") and "git push git@HOST:APP prod" in text


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["ps:scale", "shop", "web=\u00b2"], "number from 0 to 20"),
        (["cleanup", "--keep", "\u00b2"], "number from 1 to 1000"),
        (["logs", "shop", "-n", "\u0663"], "unexpected argument"),
    ],
)
def test_unicode_digits_are_refused_clearly(settings, argv, words):
    App(settings, "shop").create(lambda repo: repo.mkdir(parents=True))
    with pytest.raises(host.UserError, match=words):
        host.dispatch(argv, settings)


def test_releases_json_lists_each_pushs_figures_in_phase_order_and_never_the_config(
    monkeypatch, settings, capsys
):
    import json

    from provisioner.hostcmd.store import Release

    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    phases = {"build": 4.1, "start": 0.4, "health": 0.9, "switch": 0.3, "retire": 3.0}
    app.record_release(
        Release(1, "img:1", {"web": "x"}, 5000, config={"SECRET": "s3"}, seconds=8.8, phases=phases)
    )
    app.record_release(Release(2, "img:1", {"web": "x"}, 5000, config={"SECRET": "s3"}, description="config"))
    app.set_current(app.release(2))
    monkeypatch.setattr(host.sys, "argv", ["provisioner-host"])
    assert run(monkeypatch, "releases shop --json") == 0
    out = capsys.readouterr().out
    newest, first = json.loads(out)
    assert (newest["version"], newest["current"], newest["phases"]) == (2, True, {})
    assert (
        list(first["phases"]) == ["build", "start", "health", "switch", "retire"] and first["seconds"] == 8.8
    )
    assert "s3" not in out and "SECRET" not in out
    assert run(monkeypatch, "releases shop --yaml") == 1
    assert "usage: releases APP [--json]" in capsys.readouterr().err


def test_a_swarm_worker_sends_pushes_and_app_commands_to_a_manager(tmp_path, capsys):
    worker = Settings(apps_dir=str(tmp_path / "apps"), domain="example.test", swarm_role="worker")
    for argv in (["git-receive-pack", "'shop'"], ["ps", "shop"], ["apps:list"]):
        assert host.dispatch(argv, worker) == 1
        assert "worker of a swarm: push to a manager" in capsys.readouterr().err
    assert not (tmp_path / "apps").exists()


def test_run_passes_the_words_exactly_and_its_exit_code_back_and_logs_who_ran_what(settings, monkeypatch):
    import json

    from provisioner.hostcmd.commands import run as run_cmd
    from provisioner.hostcmd.store import Release

    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    with pytest.raises(host.UserError, match="no release yet"):
        host.dispatch(["run", "shop", "true"], settings)
    release = Release(
        3, "provisioner-app/shop:v3", {"web": "gunicorn app:app"}, 5000, config={"SECRET": "s3"}
    )
    app.record_release(release)
    app.set_current(release)
    app.set_config({"SECRET": "s3", "LATER": "set with --no-restart"})
    ran = []

    class Sched:
        def run_attached(self, spec, timeout):
            ran.append((spec, timeout))
            return 3

    monkeypatch.setattr(run_cmd, "for_settings", lambda s: Sched())
    argv = ["run", "shop", "python", "-c", "print('a; b') # $(x)"]
    assert host.dispatch(argv, settings) == 3
    spec, timeout = ran[0]
    assert spec.command == "python -c 'print('\"'\"'a; b'\"'\"') # $(x)'"  # one word each, nothing expanded
    assert spec.process == "run" and spec.env["SECRET"] == "s3" and spec.version == 3
    assert spec.env["LATER"] == "set with --no-restart"  # the config as stored, as Dokku's run sees it
    assert timeout == settings.run_timeout
    logged = [json.loads(line) for line in (app.dir / "runs.log").read_text().splitlines()]
    assert logged[0]["command"] == spec.command and "s3" not in (app.dir / "runs.log").read_text()
    assert (app.dir / "runs.log").stat().st_mode & 0o777 == 0o600
    with pytest.raises(host.UserError, match="usage: run APP CMD"):
        host.dispatch(["run", "shop"], settings)


def test_reports_show_the_deployed_release_status_and_processes(settings, monkeypatch, capsys):
    from provisioner.hostcmd.commands import apps as apps_cmd
    from provisioner.hostcmd.commands import ps as ps_cmd
    from provisioner.hostcmd.scheduler import Instance
    from provisioner.hostcmd.store import Release

    app = App(settings, "shop")
    app.create(lambda repo: repo.mkdir(parents=True))
    running = [Instance("shop.web.1", "shop", "web", 1, 4, "running", 40001)]

    class Sched:
        def instances(self, name):
            return running if name == "shop" else []

    for module in (apps_cmd, ps_cmd):
        monkeypatch.setattr(module, "for_settings", lambda s: Sched())
    host.dispatch(["apps:report", "shop"], settings)
    assert "Status:" in capsys.readouterr().out
    release = Release(4, "provisioner-app/shop:v4", {"web": "x"}, 5000, commit="abc1234def", created="T")
    app.record_release(release)
    app.set_current(release)
    host.dispatch(["apps:report", "shop"], settings)
    text = capsys.readouterr().out
    assert text.startswith("=====> shop app information\n")
    assert "Deployed:  v4 (buildpacks, commit abc1234, T)" in text and "Status:    running" in text
    assert "URL:       http://shop.example.test" in text and "Image:     provisioner-app/shop:v4" in text
    app.set_stopped(True)
    host.dispatch(["ps:report", "shop"], settings)
    text = capsys.readouterr().out
    assert "Status:       stopped" in text and "Status web.1: running (v4, shop.web.1)" in text
    app.set_stopped(False)
    assert not app.stopped()


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch /tmp/pwned",
        "-oProxyCommand=x",
        "ext::sh -c touch% /tmp/pwned",
        "ssh://git@example.com/x.git",
        "https://user:secret@example.com/x.git",
        "https://example.com/x.git; touch /tmp/pwned",
        "https://$(touch /tmp/pwned)/x.git",
        "https://example.com/x.git\n--upload-pack=x",
        "file:///etc",
        "file://host/srv/git/x",
        "/srv/git/x",
        "fd::3",
        "",
    ],
)
def test_git_sync_refuses_urls_it_would_not_fetch_plainly(settings, url):
    from provisioner.hostcmd.commands import git

    with pytest.raises(host.UserError):
        git.source_url(settings, url)


def test_git_sync_takes_plain_urls_and_file_urls_inside_its_directory_only(tmp_path):
    from provisioner.hostcmd.commands import git

    allowed = tmp_path / "git"
    (allowed / "site.git").mkdir(parents=True)
    settings = Settings(apps_dir=str(tmp_path / "apps"), git_sync_file_dir=str(allowed))
    assert git.source_url(settings, "https://example.com/a/b.git") == "https://example.com/a/b.git"
    assert git.source_url(settings, "git://127.0.0.1:9418/site.git") == "git://127.0.0.1:9418/site.git"
    assert git.source_url(settings, f"file://{allowed}/site.git") == f"file://{allowed}/site.git"
    with pytest.raises(host.UserError, match="must name a repository under"):
        git.source_url(settings, f"file://{allowed}/../../etc")
    with pytest.raises(host.UserError, match="invalid git ref"):
        App(settings, "shop").create(lambda repo: repo.mkdir(parents=True))
        host.dispatch(["git:sync", "shop", "https://example.com/x.git", "--upload-pack=x"], settings)


def test_https_commands_say_clearly_that_a_cluster_has_none_yet(tmp_path, monkeypatch):
    monkeypatch.setattr(host.swarm, "adopt", lambda app, init, say: False)  # no swarm to ask here
    settings = Settings(apps_dir=str(tmp_path), swarm_role="manager", swarm_registry="10.0.0.1:5000")
    App(settings, "shop").create(lambda repo: repo.mkdir(parents=True))
    for argv in (["letsencrypt:enable", "shop"], ["certs:add", "shop"]):
        with pytest.raises(host.UserError, match="not available on a cluster yet"):
            host.dispatch(argv, settings)
