"""git push deploys on a provisioned sandbox: real git over SSH, real builds, fetched through real nginx."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from tests.e2e.conftest import APPS, Load, app_host, get, pushed_ok, root_exec


def test_push_python_app(deploy_box, dev):
    repo = dev.repo("py", "python")
    result = dev.push(repo, "py")
    pushed_ok(result, "py")
    assert "Python" in result.stderr and "gunicorn" in result.stderr  # the build log reached the pusher
    # the runtime, where the request came from, and the stack
    assert "Python 3.11.2 (stack bookworm): .python-version asks for 3.11" in result.stderr
    status, body = get(deploy_box, app_host("py"))
    assert status == 200 and body.startswith("python v1 greeting= "), (status, body, result.stderr)


def test_a_push_says_where_its_time_went_and_releases_json_keeps_it(deploy_box, dev):
    """A push's last line: its seconds to live and per phase, adding up; `releases APP --json` the same."""
    repo = dev.workdir / "py"
    (repo / "NOTES.txt").write_text("a second push of the same code\n")
    dev.commit(repo, "notes")
    result = dev.push(repo, "py")
    pushed_ok(result, "py")
    line = re.search(r"Released v(\d+) in ([\d.]+) s \((build [^)]*)\)", result.stderr)
    assert line, result.stderr[-800:]
    shown = {name: float(sec) for name, sec in re.findall(r"(\w+) ([\d.]+) s", line.group(3))}
    # v1 was serving: its process is retired after the switch
    assert list(shown) == ["build", "start", "health", "switch", "retire"], line.group(0)
    listed = dev.ssh("releases", "py", "--json")
    assert listed.returncode == 0, listed.stderr
    newest = json.loads(listed.stdout)[0]
    assert newest["version"] == int(line.group(1)) and newest["current"] is True
    assert list(newest["phases"]) == list(shown) and "config" not in newest
    assert abs(sum(newest["phases"].values()) - newest["seconds"]) <= 0.1 * newest["seconds"], newest
    assert get(deploy_box, app_host("py"))[1].startswith("python v1 ")


def test_push_node_app(deploy_box, dev):
    pushed_ok(dev.push(dev.repo("nodeapp", "node"), "nodeapp"), "nodeapp")
    assert get(deploy_box, app_host("nodeapp")) == (200, "node says 1m is one minute\n")


def test_node_build_step_uses_dev_dependencies_then_prunes_them(deploy_box, dev):
    """As on Heroku: scripts.build runs with the devDependencies installed; they are gone at run time."""
    result = dev.push(dev.repo("nodebuild", "nodebuild"), "nodebuild")
    pushed_ok(result, "nodebuild")
    assert "Running npm run build" in result.stderr
    status, body = get(deploy_box, app_host("nodebuild"))
    assert (status, body) == (200, "built with is-number: true; devDependencies pruned\n")


def test_django_app_collects_static_files_and_serves_them_hashed(deploy_box, dev):
    """Heroku's conventions a Django app relies on: collectstatic at build time (whitenoise's manifest
    storage), DYNO for ALLOWED_HOSTS, gunicorn bound to [::]:$PORT with $WEB_CONCURRENCY workers."""
    result = dev.push(dev.repo("djangoapp", "django"), "djangoapp")
    pushed_ok(result, "djangoapp")
    assert "Running manage.py collectstatic" in result.stderr
    status, page = get(deploy_box, app_host("djangoapp"))
    assert status == 200 and "django sample on web.1" in page, page
    css = re.search(r'href="(/static/app\.[0-9a-f]{12}\.css)"', page)
    assert css, page  # the manifest's hashed name
    assert get(deploy_box, app_host("djangoapp"), css.group(1)) == (
        200,
        "body { font-family: sans-serif; }\n",
    )


def test_push_static_site(deploy_box, dev):
    pushed_ok(dev.push(dev.repo("site", "static"), "site"), "site")
    status, body = get(deploy_box, app_host("site"))
    assert status == 200 and "static sample site" in body
    assert get(deploy_box, app_host("site"), "/.profile.d/")[0] == 404


def test_a_static_site_with_the_files_apps_carry_deploys_unchanged(deploy_box, dev):
    """Dokku's `.static` marker, a `.env` and a `.profile` at the root, and `bin`, `.heroku` and `app.json`
    as plain files: the platform's own files go elsewhere (`.provisioner/`), so the site builds and serves,
    and its dot-files are not served. (A `Procfile` or `.buildpacks` would change what runs: they have
    their own tests.)"""
    repo = dev.repo("dotsite", "static")
    carried = {".static": "", ".env": "SECRET=kept-out\n", ".profile": "export FROM_PROFILE=1\n"}
    carried |= {"bin": "not a directory\n", ".heroku": "not a directory\n", "app.json": "{}\n"}
    for name, text in carried.items():
        (repo / name).write_text(text)
    dev.commit(repo, "the files a Dokku app carries")
    pushed_ok(dev.push(repo, "dotsite"), "dotsite")
    status, body = get(deploy_box, app_host("dotsite"))
    assert status == 200 and "static sample site" in body
    for name in (n for n in carried if n.startswith(".")):
        assert get(deploy_box, app_host("dotsite"), f"/{name}")[0] == 404, name


def test_an_apps_profile_runs_before_each_of_its_processes(deploy_box, dev):
    """Heroku's rule: /app/.profile is sourced (after the buildpacks' .profile.d scripts) before the
    process starts, with the process's environment (PORT) already set; its variables reach the app."""
    repo = dev.repo("profiled", "python")
    (repo / ".profile").write_text('export GREETING="from .profile, PORT=$PORT"\n')
    dev.commit(repo, "a .profile")
    pushed_ok(dev.push(repo, "profiled"), "profiled")
    body = get(deploy_box, app_host("profiled"))[1]
    assert re.search(r"greeting=from \.profile, PORT=\d+ ", body), body


def test_git_sync_deploys_a_commit_of_a_repository_as_if_pushed(deploy_box, dev, tmp_path):
    """Dokku's git:sync: the host fetches a repository (served here by `git daemon` on the host itself,
    over git://) and deploys its commit; a hostile URL or ref is refused with one line."""
    source = dev.repo("synced-src", "static")
    (source / "index.html").write_text("<html><body>synced by git:sync</body></html>\n")
    dev.commit(source, "synced")
    bare = tmp_path / "site.git"
    dev.git(source, "clone", "-q", "--bare", str(source), str(bare))
    tar = subprocess.run(
        ["tar", "-C", str(tmp_path), "-cf", "-", "site.git"], check=True, capture_output=True
    )
    root_exec(deploy_box, "rm -rf /srv/gitsrv && mkdir -p /srv/gitsrv")
    ssh = [*dev.env["GIT_SSH_COMMAND"].split(), "-p", str(deploy_box.ssh_port), "root@127.0.0.1"]
    subprocess.run(
        [*ssh, "tar -C /srv/gitsrv -xf - && chown -R nobody: /srv/gitsrv"], input=tar.stdout, check=True
    )
    root_exec(
        deploy_box,
        "git daemon --detach --reuseaddr --listen=127.0.0.1 --port=9418 --base-path=/srv/gitsrv --export-all "
        "--user=nobody --group=nogroup --pid-file=/run/e2e-git-daemon.pid /srv/gitsrv",
    )
    try:
        result = dev.ssh("git:sync", "synced", "git://127.0.0.1:9418/site.git", "main")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Fetching main of git://127.0.0.1:9418/site.git" in result.stderr
        assert get(deploy_box, app_host("synced")) == (200, "<html><body>synced by git:sync</body></html>\n")
        for bad in (["--upload-pack=touch /tmp/pwned"], ["git://127.0.0.1:9418/site.git", "--upload-pack=x"]):
            refused = dev.ssh("git:sync", "synced", *bad)
            assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused
        assert root_exec(deploy_box, "test -e /tmp/pwned && echo yes || echo no").strip() == "no"
    finally:
        root_exec(deploy_box, "kill $(cat /run/e2e-git-daemon.pid) 2>/dev/null || true", check=False)


def test_push_dockerfile_app(deploy_box, dev):
    result = dev.push(dev.repo("dock", "dockerfile"), "dock")
    pushed_ok(result, "dock")
    assert "Dockerfile" in result.stderr
    assert get(deploy_box, app_host("dock")) == (200, "dockerfile app on 8080\n")


def test_push_with_custom_buildpack_from_git_url(deploy_box, dev, tmp_path):
    # A buildpack repository served from the host itself.
    bp = tmp_path / "bp"
    shutil.copytree(APPS / "buildpack", bp)
    dev.git(bp, "init", "-q", "-b", "main")
    dev.commit(bp, "buildpack")
    tar = subprocess.run(["tar", "-C", str(bp), "-cf", "-", "."], check=True, capture_output=True).stdout
    root_exec(deploy_box, "rm -rf /srv/buildpacks && mkdir -p /srv/buildpacks/hello.src")
    ssh = [*dev.env["GIT_SSH_COMMAND"].split(), "-p", str(deploy_box.ssh_port), "root@127.0.0.1"]
    subprocess.run([*ssh, "tar -C /srv/buildpacks/hello.src -xf -"], input=tar, check=True)
    root_exec(
        deploy_box,
        "git clone -q --bare /srv/buildpacks/hello.src /srv/buildpacks/hello.git && "
        "chown -R deploy: /srv/buildpacks/hello.git",
    )
    if "custom" not in dev.ssh("apps:list").stdout.split():
        assert dev.ssh("apps:create", "custom").returncode == 0
    set_url = dev.ssh(
        "config:set", "custom", "BUILDPACK_URL=file:///srv/buildpacks/hello.git", "--no-restart"
    )
    assert set_url.returncode == 0, set_url.stderr
    result = dev.push(dev.repo("custom", "custom"), "custom")
    pushed_ok(result, "custom")
    assert "Hello buildpack" in result.stderr
    assert get(deploy_box, app_host("custom")) == (
        200,
        "custom buildpack says: hello from a buildpack fetched by git URL\n",
    )


def test_config_set_and_scale(deploy_box, dev):
    result = dev.ssh("config:set", "py", "GREETING=hello world")
    assert result.returncode == 0, result.stderr
    assert "greeting=hello world " in get(deploy_box, app_host("py"))[1]
    assert dev.ssh("config", "py").stdout.strip() == "GREETING=hello world"
    scaled = dev.ssh("ps:scale", "py", "web=2")
    assert scaled.returncode == 0, scaled.stderr
    ps = dev.ssh("ps", "py").stdout
    assert len([ln for ln in ps.splitlines() if ln.startswith("web.") and "running" in ln]) == 2, ps
    seen = {get(deploy_box, app_host("py"))[1].split("host=")[1].strip() for _ in range(30)}
    assert len(seen) == 2, seen  # nginx balances over both containers
    assert dev.ssh("ps:scale", "py", "web=1").returncode == 0


def test_redeploy_under_load_has_zero_failed_requests(deploy_box, dev):
    repo = dev.workdir / "py"
    app_py = repo / "app.py"
    app_py.write_text(app_py.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    dev.commit(repo, "v2")
    with Load([deploy_box], app_host("py")) as load:
        time.sleep(1)
        result = dev.push(repo, "py")
        time.sleep(4)  # past the retirement of the old release
    failures, bodies, took = load.failures, load.bodies, load.took
    pushed_ok(result, "py")
    assert failures == [], failures[:5]
    assert len(bodies) > 40
    # No request waits on the switch (bench/: 0.5 s; 1 s here, for a noisy machine).
    assert max(took) < 1.0, sorted(took)[-5:]
    assert bodies[0].startswith("python v1") and bodies[-1].startswith("python v2")


@pytest.mark.parametrize(
    ("procfile", "reason"),
    [
        ("web: python3 -c 'import sys; sys.exit(3)'\n", "health check"),
        (
            "web: gunicorn --bind 0.0.0.0:$PORT app:app\nrelease: python3 -c 'raise SystemExit(4)'\n",
            "release command failed",
        ),
    ],
    ids=["crash-on-start", "release-command-fails"],
)
def test_failed_deploy_keeps_previous_release_serving(deploy_box, dev, procfile, reason):
    repo = dev.workdir / "py"
    before = get(deploy_box, app_host("py"))
    assert before[0] == 200
    good = dev.git(repo, "rev-parse", "HEAD").stdout.strip()
    (repo / "Procfile").write_text(procfile)
    dev.commit(repo, "broken")
    result = dev.push(repo, "py")
    dev.git(repo, "reset", "-q", "--hard", good)
    assert result.returncode != 0
    assert reason in result.stderr, result.stderr
    assert "still serving" in result.stderr
    assert get(deploy_box, app_host("py")) == before
    assert "web.1" in dev.ssh("ps", "py").stdout


@pytest.mark.parametrize(
    ("name", "content", "words", "also_offered"),
    [
        (
            ".python-version",
            "3.8\n",
            "Python 3.8 (.python-version) is not offered by this host: it has Python 3.11",
            ["Python 3.12", "(stack noble", "Python 3.13", "(stack trixie", "Python 3.14", "(stack forky"],
        ),
        (
            "package.json",
            '{"engines": {"node": "12.x"}}',
            "Node.js 12.x (package.json engines.node) is not offered by this host: it has Node.js 18",
            ["Node.js 20", "Node.js 24"],
        ),
    ],
    ids=["python-3.8", "node-12"],
)
def test_a_runtime_no_stack_offers_fails_at_once_and_changes_nothing(
    deploy_box, dev, name, content, words, also_offered
):
    """The message lists every stack of the host's catalog, built or still to build; nothing is built."""
    repo = dev.workdir / "py"
    before, releases = get(deploy_box, app_host("py")), dev.ssh("releases", "py").stdout
    good = dev.git(repo, "rev-parse", "HEAD").stdout.strip()
    (repo / name).write_text(content)
    dev.commit(repo, f"ask for {content.strip()}")
    result = dev.push(repo, "py")
    dev.git(repo, "reset", "-q", "--hard", good)
    assert result.returncode != 0 and words in result.stderr, result.stderr
    assert all(offer in result.stderr for offer in also_offered), result.stderr
    assert (
        "Installing" not in result.stderr
        and "Building stack" not in result.stderr
        and "still serving" in result.stderr
    )  # refused before the build
    assert get(deploy_box, app_host("py")) == before and dev.ssh("releases", "py").stdout == releases


def test_rollback_and_default_server(deploy_box, dev):
    releases = dev.ssh("releases", "py").stdout
    assert releases.splitlines()[0].startswith("*"), releases
    first = [ln for ln in releases.splitlines() if "deploy" in ln][-1].split()[
        0
    ]  # the first deploy (v1 code)
    result = dev.ssh("rollback", "py", first)
    assert result.returncode == 0, result.stderr
    assert get(deploy_box, app_host("py"))[1].startswith("python v1")
    assert get(deploy_box, "unknown.example.com")[0] == 404


def test_domains(deploy_box, dev):
    assert dev.ssh("domains:add", "site", "www.site.example").returncode == 0
    assert "static sample site" in get(deploy_box, "www.site.example")[1]
    assert dev.ssh("domains", "site").stdout.split() == [app_host("site"), "www.site.example"]
    taken = dev.ssh("domains:add", "py", "www.site.example")
    assert taken.returncode == 1 and "already routes" in taken.stderr
    assert dev.ssh("domains:remove", "site", "www.site.example").returncode == 0
    assert get(deploy_box, "www.site.example")[0] == 404


def test_logs(dev):
    result = dev.ssh("logs", "nodeapp", "-n", "5")
    assert result.returncode == 0 and "listening on" in result.stdout


def test_invalid_app_name_branch_and_arguments_change_nothing(deploy_box, dev):
    repo = dev.workdir / "site"
    before = root_exec(deploy_box, "ls /var/lib/provisioner/apps")
    bad = dev.push(repo, "Bad_Name")
    assert bad.returncode != 0 and "invalid app name" in bad.stderr
    dev.git(repo, "branch", "-f", "feature")
    branch = dev.push(repo, "site", "feature")
    assert branch.returncode != 0 and "only the 'main' branch deploys" in branch.stderr
    unknown = dev.ssh("ps:scale", "site", "--force")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: ")
    assert dev.ssh("config:set", "site", "$(id)=1").returncode == 1
    assert root_exec(deploy_box, "ls /var/lib/provisioner/apps") == before
    assert dev.ssh("config", "site").stdout == ""


@pytest.mark.parametrize("command", [[], ["bash"], ["sh", "-c", "id"]])
def test_deploy_user_never_gets_a_shell(dev, command):
    result = dev.ssh(*command)
    assert "apps:list" in result.stdout + result.stderr
    assert "uid=" not in result.stdout


def test_app_json_predeploy_postdeploy_and_unsupported_keys(deploy_box, dev):
    """Dokku's deployment tasks: predeploy before the switch (its failure aborts the deploy), postdeploy once
    the release is live (its failure is a warning); keys this host does not use are named, not fatal."""
    repo = dev.workdir / "py"
    good = dev.git(repo, "rev-parse", "HEAD").stdout.strip()
    app_json = json.loads((repo / "app.json").read_text())

    def push_with(scripts):
        (repo / "app.json").write_text(
            json.dumps({**app_json, "formation": {"web": {"quantity": 1}}, **scripts})
        )
        dev.commit(repo, "app.json scripts")
        return dev.push(repo, "py")

    tasks = {"predeploy": "echo predeploy on $DYNO", "postdeploy": "echo postdeploy ran; exit 3"}
    result = push_with({"scripts": {"dokku": tasks}})
    pushed_ok(result, "py")
    log = result.stderr
    assert 'app.json: "formation" is not supported here and is ignored' in log, log
    assert "Running app.json predeploy: echo predeploy on $DYNO" in log and "predeploy on predeploy.1" in log
    assert log.index("predeploy on predeploy.1") < log.index("Starting web.1") < log.index("postdeploy ran")
    assert "app.json postdeploy failed (exit code 3); the release is live" in log, log
    serving = get(deploy_box, app_host("py"))
    assert serving[0] == 200
    releases = dev.ssh("releases", "py").stdout

    failing = push_with({"scripts": {"dokku": {"predeploy": "echo checking; exit 4"}}})
    dev.git(repo, "reset", "-q", "--hard", good)
    assert failing.returncode != 0 and "app.json predeploy failed (exit code 4)" in failing.stderr
    assert "still serving" in failing.stderr
    assert get(deploy_box, app_host("py")) == serving and dev.ssh("releases", "py").stdout == releases
