"""Builds: source export from git, buildpack URLs, the docker command lines, and the build orchestration
against a fake docker module (no engine)."""

import dataclasses
import itertools
import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest

from provisioner.hostcmd import build
from provisioner.hostcmd.docker import DockerError
from provisioner.hostcmd.settings import Settings


@pytest.mark.parametrize(
    ("rc", "tail", "expected"),
    [
        (1, ["cp: error writing '/app/x': No space left on device"], "ran out of disk space"),
        (137, ["Collecting flask"], "the build was killed (exit code 137"),
        (2, ["SyntaxError"], "compile (exit code 2)"),
    ],
)
def test_build_failures_say_why(rc, tail, expected):
    exc = build.failure("compile", rc, tail)
    assert expected in str(exc)
    assert exc.tail == "\n".join(tail)


def test_a_build_is_refused_when_the_disk_is_nearly_full(monkeypatch):
    monkeypatch.setattr(build, "docker_root", lambda: "/")
    with pytest.raises(build.BuildError, match="a build needs at least"):
        build.check_disk(Settings(build_min_free_mb=10**9))
    build.check_disk(Settings(build_min_free_mb=0))


# --- failure() and the disk check --------------------------------------------------------------------------


@pytest.mark.parametrize("rc", [137, 143, -9, -15])
def test_a_killed_build_says_so(rc):
    exc = build.failure("buildpack python failed to compile the app", rc, ["Collecting numpy"])
    assert str(exc) == (
        f"buildpack python failed to compile the app: "
        f"the build was killed (exit code {rc}: stopped or out of memory)"
    )


@pytest.mark.parametrize("rc", [1, 2, 127, 139, -11])
def test_other_failures_give_the_exit_code(rc):
    exc = build.failure("docker build failed", rc, ["step 3/7 failed"])
    assert str(exc) == f"docker build failed (exit code {rc})" and exc.tail == "step 3/7 failed"


@pytest.mark.parametrize("rc", [1, 137])
def test_a_full_disk_is_named_whatever_the_exit_code(rc):
    tail = ["Step 4/5", "ERROR: failed to copy: write /var/lib/docker/x: NO SPACE LEFT ON DEVICE"]
    exc = build.failure("docker build failed", rc, tail)
    assert str(exc) == (
        "docker build failed: the host ran out of disk space; run 'ssh deploy@HOST cleanup' "
        "or free disk space"
    )
    assert exc.tail == "\n".join(tail)


def test_a_failure_without_output_has_an_empty_tail():
    assert build.failure("x", 1, []).tail == ""


def test_check_disk_measures_the_docker_root(monkeypatch):
    measured = []
    monkeypatch.setattr(build, "docker_root", lambda: "/srv/docker")
    monkeypatch.setattr(build, "free_mb", lambda path: measured.append(path) or 1000)
    with pytest.raises(build.BuildError) as info:
        build.check_disk(Settings(build_min_free_mb=1001))
    assert str(info.value) == (
        "only 1000 MB free in /srv/docker, a build needs at least 1001 MB: "
        "run 'ssh deploy@HOST cleanup' or free disk space"
    )
    build.check_disk(Settings(build_min_free_mb=1000))  # exactly enough
    assert measured == ["/srv/docker", "/srv/docker"]


@pytest.mark.parametrize(
    ("answer", "root"),
    [
        ({"DockerRootDir": "/srv/docker"}, "/srv/docker"),
        ({"DockerRootDir": ""}, "/var/lib/docker"),
        ({}, "/var/lib/docker"),
        (DockerError("the Docker engine does not answer"), "/var/lib/docker"),
    ],
)
def test_docker_root(monkeypatch, answer, root):
    def api(method, path, *args, **kwargs):
        assert (method, path) == ("GET", "/info")
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(build.docker, "api", api)
    assert build.docker_root() == root


def test_free_mb_of_a_missing_path_measures_the_root_filesystem(tmp_path):
    st = os.statvfs("/")
    root_free = st.f_bavail * st.f_frsize // (1024 * 1024)
    assert abs(build.free_mb(str(tmp_path / "missing")) - root_free) < 64  # others write meanwhile


# --- export_source -----------------------------------------------------------------------------------------


def git(cwd, *args):
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def tree(root):
    """Every file, directory and symlink under root, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.fixture
def pushed(tmp_path, monkeypatch):
    """A bare repository (like an app's repo.git) with two commits; returns (repo, first sha, second sha)."""
    for key in list(os.environ):
        if key.startswith("GIT_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    (work / "app.py").write_text("print('v1')\n")
    (work / "requirements.txt").write_text("flask\n")
    (work / "static").mkdir()
    (work / "static" / "index.html").write_text("<h1>hi</h1>\n")
    (work / "bin").mkdir()
    (work / "bin" / "run").write_text("#!/bin/sh\nexec python app.py\n")
    (work / "bin" / "run").chmod(0o755)
    (work / "link").symlink_to("app.py")
    (work / ".gitignore").write_text("*.log\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "first")
    first = git(work, "rev-parse", "HEAD")
    (work / "app.py").write_text("print('v2')\n")
    (work / "NEW.md").write_text("new\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "second")
    second = git(work, "rev-parse", "HEAD")
    (work / "debug.log").write_text("ignored\n")
    (work / "untracked.txt").write_text("never committed\n")
    repo = tmp_path / "repo.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(repo))
    return repo, first, second


def test_export_source_writes_exactly_the_committed_tree(pushed, tmp_path):
    repo, _first, second = pushed
    dest = tmp_path / "src"
    build.export_source(repo, second, dest)
    assert tree(dest) == [
        ".gitignore",
        "NEW.md",
        "app.py",
        "bin",
        "bin/run",
        "link",
        "requirements.txt",
        "static",
        "static/index.html",
    ]
    assert (dest / "app.py").read_text() == "print('v2')\n"
    assert os.access(dest / "bin" / "run", os.X_OK)
    assert not os.access(dest / "app.py", os.X_OK)
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "app.py"


def test_export_source_of_an_older_commit(pushed, tmp_path):
    repo, first, _second = pushed
    dest = tmp_path / "a" / "b" / "src"  # made when missing
    build.export_source(repo, first, dest)
    assert "NEW.md" not in tree(dest) and (dest / "app.py").read_text() == "print('v1')\n"


def test_export_source_of_an_unknown_commit_is_a_build_error(pushed, tmp_path):
    repo, _first, _second = pushed
    with pytest.raises(build.BuildError, match=r"^could not export commit 0123456789ab$"):
        build.export_source(repo, "0123456789ab" * 3 + "0123", tmp_path / "src")


# --- buildpack URLs ----------------------------------------------------------------------------------------


def test_buildpack_urls_from_the_buildpacks_file(tmp_path):
    (tmp_path / ".buildpacks").write_text(
        "# first the apt packages\n"
        "https://github.com/heroku/heroku-buildpack-apt.git\n"
        "\n"
        "   \n"
        "  https://github.com/heroku/heroku-buildpack-python.git#v250  \n"
        "#https://github.com/heroku/heroku-buildpack-nodejs.git\n"
        "git@github.com:example/private-buildpack.git\n"
    )
    assert build.buildpack_urls(tmp_path, {}) == [
        "https://github.com/heroku/heroku-buildpack-apt.git",
        "https://github.com/heroku/heroku-buildpack-python.git#v250",
        "git@github.com:example/private-buildpack.git",
    ]


def test_buildpack_url_config_var_wins_over_the_buildpacks_file(tmp_path):
    (tmp_path / ".buildpacks").write_text("https://github.com/heroku/heroku-buildpack-apt.git\n")
    config = {"BUILDPACK_URL": "  https://github.com/heroku/heroku-buildpack-ruby.git\n"}
    assert build.buildpack_urls(tmp_path, config) == ["https://github.com/heroku/heroku-buildpack-ruby.git"]
    # an empty BUILDPACK_URL is no BUILDPACK_URL
    assert build.buildpack_urls(tmp_path, {"BUILDPACK_URL": ""}) == [
        "https://github.com/heroku/heroku-buildpack-apt.git"
    ]


def test_no_buildpack_urls_means_the_builtin_buildpacks(tmp_path):
    assert build.buildpack_urls(tmp_path, {"OTHER": "x"}) == []
    (tmp_path / ".buildpacks").mkdir()  # not a file
    assert build.buildpack_urls(tmp_path, {}) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/heroku/heroku-buildpack-python.git",
        "https://github.com/heroku/heroku-buildpack-python.git#v250",
        "http://git.internal/buildpacks/python",
        "git://git.internal/buildpacks/python.git",
        "ssh://git@git.internal:2222/buildpacks/python.git",
        "git@github.com:example/buildpack.git",
        "file:///srv/buildpacks/python",
        "file:///srv/buildpacks/python.git#v2",
    ],
)
def test_accepted_buildpack_urls(tmp_path, url):
    assert build.buildpack_urls(tmp_path, {"BUILDPACK_URL": url}, "/srv/buildpacks") == [url]


@pytest.mark.parametrize(
    ("url", "file_dir", "reason"),
    [
        ("file:///srv/buildpacks/python", "", "not allowed on this host"),
        (
            "file:///var/lib/provisioner/apps/other/repo.git",
            "/srv/buildpacks",
            "must be under /srv/buildpacks",
        ),
        ("file:///srv/buildpacks/../../var/lib/provisioner/apps/x", "/srv/buildpacks", "must be under"),
        ("file:///srv/buildpacks-evil/x", "/srv/buildpacks", "must be under"),
    ],
)
@pytest.mark.parametrize("where", ["config", "file"])
def test_file_buildpacks_only_under_the_operators_directory(tmp_path, url, file_dir, reason, where):
    config = {"BUILDPACK_URL": url} if where == "config" else {}
    if where == "file":
        (tmp_path / ".buildpacks").write_text(url + "\n")
    with pytest.raises(build.BuildError, match=reason):
        build.buildpack_urls(tmp_path, config, file_dir)


def test_a_file_buildpack_through_a_link_out_of_the_directory_is_refused(tmp_path):
    allowed = tmp_path / "buildpacks"
    allowed.mkdir()
    (allowed / "sneaky").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(build.BuildError, match="must be under"):
        build.buildpack_urls(tmp_path, {"BUILDPACK_URL": f"file://{allowed}/sneaky"}, str(allowed))


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/a/b c",
        "https://github.com/a/b'c",
        'https://github.com/a/b"c',
        "https://github.com/a/b;touch /tmp/x",
        "https://github.com/a/b;id",
        "https://github.com/$(id)",
        "https://github.com/$HOME",
        "https://github.com/`id`",
        "https://github.com/a|b",
        "https://github.com/a&b",
        "https://github.com/a\\b",
        "https://github.com/<b>",
        "ftp://example.com/buildpack",
        "/srv/buildpacks/python",
        "file://relative/path",
        "--upload-pack=touch /tmp/x",
        "-uid",
    ],
)
@pytest.mark.parametrize("where", ["config", "file"])
def test_refused_buildpack_urls(tmp_path, url, where):
    config = {"BUILDPACK_URL": url} if where == "config" else {}
    if where == "file":
        (tmp_path / ".buildpacks").write_text(f"https://github.com/heroku/heroku-buildpack-apt.git\n{url}\n")
    with pytest.raises(build.BuildError, match=r"^invalid buildpack URL .*expected an https://"):
        build.buildpack_urls(tmp_path, config)


def test_an_indented_comment_in_the_buildpacks_file_is_a_comment(tmp_path):
    (tmp_path / ".buildpacks").write_text(
        "https://github.com/heroku/heroku-buildpack-apt.git\n  # python next\n"
    )
    assert build.buildpack_urls(tmp_path, {}) == ["https://github.com/heroku/heroku-buildpack-apt.git"]


# --- the environment and the docker command lines ----------------------------------------------------------


@pytest.fixture
def host_files(tmp_path):
    """A proxy.env, pip.conf and CA bundle as the base role writes them; Settings naming them."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "proxy.env").write_text(
        "# Ansible managed\nhttp_proxy=http://proxy.internal:3128\nNO_PROXY=localhost,.internal\n"
    )
    (etc / "pip.conf").write_text("[global]\nindex-url = https://pypi.internal/simple\n")
    (etc / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return Settings(
        proxy_env=str(etc / "proxy.env"),
        pip_conf=str(etc / "pip.conf"),
        ca_bundle=str(etc / "ca.crt"),
        build_image="provisioner/stack-build:test",
    )


@pytest.fixture
def bare_settings(tmp_path):
    """Settings whose proxy.env, pip.conf and CA bundle do not exist."""
    missing = tmp_path / "missing"
    return Settings(
        proxy_env=str(missing / "proxy.env"),
        pip_conf=str(missing / "pip.conf"),
        ca_bundle=str(missing / "ca.crt"),
        build_image="provisioner/stack-build:test",
    )


CA = "/etc/ssl/certs/ca-certificates.crt"
BASE_ENV = [
    "-e",
    f"SSL_CERT_FILE={CA}",
    "-e",
    f"PIP_CERT={CA}",
    "-e",
    f"REQUESTS_CA_BUNDLE={CA}",
    "-e",
    f"NODE_EXTRA_CA_CERTS={CA}",
    "-e",
    f"npm_config_cafile={CA}",
    "-e",
    "HOME=/tmp",
    "-e",
    "STACK=provisioner-bookworm",
]


def test_build_args_pass_the_proxy_settings_by_name_only(host_files, bare_settings):
    """The values reach docker through its environment: never on a command line (ps shows those)."""
    assert build.build_args(host_files) == ["--build-arg", "http_proxy", "--build-arg", "NO_PROXY"]
    assert build.build_args(bare_settings) == []


def test_container_env_with_proxy_and_pip_conf(host_files):
    assert build.container_env(host_files) == [
        *BASE_ENV,
        "-e",
        "PIP_CONFIG_FILE=/etc/pip.conf",
        "-e",
        "http_proxy",
        "-e",
        "NO_PROXY",
    ]


def test_container_env_without_host_files(bare_settings):
    assert build.container_env(bare_settings) == BASE_ENV


LIMITS = [
    "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "--pids-limit", "2048",
    "--memory", "2g", "--cpus", f"{min(2, os.cpu_count() or 1):g}",
]  # fmt: skip


def test_run_buildpacks_command_line(host_files, tmp_path, monkeypatch):
    streamed = []
    envs = []

    def stream(args, say, env=None):
        streamed.append(args)
        envs.append(env)
        return 0, ["ok"]

    monkeypatch.setattr(build.docker, "stream", stream)
    src, cache, env, out = (tmp_path / n for n in ("src", "cache", "env", "out"))
    packs = [tmp_path / "python", tmp_path / "nodejs"]
    result = build.run_buildpacks(packs, True, src, cache, env, out, host_files, "shop.build.v3", print)
    assert result == (0, ["ok"])
    (argv,) = streamed
    assert all(type(arg) is str for arg in argv)
    assert argv == [
        "run",
        "--rm",
        "--name",
        "shop.build.v3",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--label",
        "io.provisioner.build=1",
        "--workdir",
        "/app",
        *LIMITS,
        "-v",
        f"{src}:/app",
        "-v",
        f"{cache}:/cache",
        "-v",
        f"{env}:/env:ro",
        "-v",
        f"{out}:/out",
        "-v",
        f"{tmp_path / 'driver'}:/provisioner-build:ro",
        "-v",
        f"{packs[0]}:/buildpacks/python:ro",
        "-v",
        f"{packs[1]}:/buildpacks/nodejs:ro",
        "-v",
        f"{host_files.ca_bundle}:{CA}:ro",
        "-v",
        f"{host_files.pip_conf}:/etc/pip.conf:ro",
        *BASE_ENV,
        "-e",
        "PIP_CONFIG_FILE=/etc/pip.conf",
        "-e",
        "http_proxy",
        "-e",
        "NO_PROXY",
        "--entrypoint",
        "/provisioner-build",
        "provisioner/stack-build:test",
        "--detect",
        "/buildpacks/python",
        "/buildpacks/nodejs",
    ]
    assert envs == [{"http_proxy": "http://proxy.internal:3128", "NO_PROXY": "localhost,.internal"}]
    assert (tmp_path / "driver").read_text() == build.DRIVER


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
def test_a_build_may_read_a_pip_conf_of_the_secrets_group(host_files, monkeypatch, tmp_path):
    """pip.conf is root:provisioner 0640 on a host: the build container gets that group, no other."""
    os.chown(host_files.pip_conf, 0, 4242)
    streamed = []
    monkeypatch.setattr(build.docker, "stream", lambda argv, say, env=None: streamed.append(argv) or (0, []))
    build.run_buildpacks(
        [Path("/bp")], False, Path("/s"), Path("/c"), Path("/e"), tmp_path / "out", host_files, "n", print
    )
    argv = streamed[0]
    user = argv.index("--user")
    assert argv[user + 2 : user + 4] == ["--group-add", "4242"] and argv.count("--group-add") == 1


def test_run_buildpacks_command_line_without_host_files(bare_settings, monkeypatch, tmp_path):
    streamed = []
    monkeypatch.setattr(build.docker, "stream", lambda argv, say, env=None: streamed.append(argv) or (1, []))
    out = tmp_path / "out"
    build.run_buildpacks(
        [Path("/bp/nodejs")],
        False,
        Path("/s"),
        Path("/c"),
        Path("/e"),
        out,
        bare_settings,
        "shop.build.v1",
        print,
    )
    assert " ".join(streamed[0]) == (
        f"run --rm --name shop.build.v1 --user {os.getuid()}:{os.getgid()} "
        "--label io.provisioner.build=1 --workdir /app "
        f"{' '.join(LIMITS)} "
        f"-v /s:/app -v /c:/cache -v /e:/env:ro -v {out}:/out -v {tmp_path}/driver:/provisioner-build:ro "
        "-v /bp/nodejs:/buildpacks/nodejs:ro "
        f"-e SSL_CERT_FILE={CA} -e PIP_CERT={CA} -e REQUESTS_CA_BUNDLE={CA} -e NODE_EXTRA_CA_CERTS={CA} "
        f"-e npm_config_cafile={CA} -e HOME=/tmp -e STACK=provisioner-bookworm "
        "--entrypoint /provisioner-build provisioner/stack-build:test /buildpacks/nodejs"
    )


def test_the_driver_runs_the_build_steps_as_buildpacks_expect(tmp_path):
    """The DRIVER script itself, run by sh with its paths moved under tmp_path: detection order, the
    detected label, compile arguments, release output kept only when release succeeds, exit codes."""
    root = tmp_path / "root"
    for name, detect, release in (("python", 1, 0), ("nodejs", 0, 1), ("static", 0, 0)):
        bin_dir = root / "buildpacks" / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "detect").write_text(f"#!/bin/sh\necho '  {name.title()}  '\nexit {detect}\n")
        (bin_dir / "compile").write_text(f'#!/bin/sh\necho compiling {name} "$@"\n')
        (bin_dir / "release").write_text(f"#!/bin/sh\necho 'web: {name}'\nexit {release}\n")
        for script in bin_dir.iterdir():
            script.chmod(0o755)
    for directory in ("app", "out", "cache", "env"):
        (root / directory).mkdir()
    driver = DRIVER_UNDER(root)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", driver, "driver", *args], capture_output=True, text=True, check=False
        )

    packs = [f"{root}/buildpacks/{n}" for n in ("python", "nodejs", "static")]
    first = run("--detect", *packs)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "-----> Nodejs app detected",
        f"compiling nodejs {root}/app {root}/cache {root}/env",
    ]
    assert (root / "out" / "detected").read_text().strip() == packs[1]
    assert not (root / "out" / "release.nodejs").exists()  # its release failed: no defaults
    for path in (root / "out").iterdir():
        path.unlink()
    every = run(packs[0], packs[2])  # custom buildpacks: no detection, each compiled and released
    assert every.returncode == 0 and "compiling python" in every.stdout and "compiling static" in every.stdout
    assert (root / "out" / "release.static").read_text() == "web: static\n"
    assert (root / "out" / "compiling").read_text().strip() == packs[2]
    for path in (root / "out").iterdir():
        path.unlink()
    assert run("--detect", packs[0]).returncode == build.NO_BUILDPACK


def DRIVER_UNDER(root: Path) -> str:
    """build.DRIVER with its container paths (/app, /out, /cache, /env) under root."""
    text = build.DRIVER
    for name in ("app", "out", "cache", "env"):
        text = re.sub(rf"(?<![\w/]){'/' + name}\b", f"{root}/{name}", text)
    return text


# --- build_dockerfile --------------------------------------------------------------------------------------


@pytest.fixture
def dockerfile_build(monkeypatch):
    """Fakes docker.stream and docker.image_config; returns a record of the calls and canned answers."""
    calls = {"streamed": [], "configs": [], "rc": 0, "lines": ["Step 1/2 : FROM python", "done"], "cfg": {}}

    def stream(args, say, env=None, timeout=None):
        calls["streamed"].append(args)
        for line in calls["lines"]:
            say(line)
        return calls["rc"], calls["lines"][-20:]

    def image_config(ref):
        calls["configs"].append(ref)
        return calls["cfg"]

    monkeypatch.setattr(build.docker, "stream", stream)
    monkeypatch.setattr(build.docker, "image_config", image_config)
    return calls


@pytest.mark.parametrize(
    ("exposed", "port"),
    [
        ({"8080/tcp": {}}, 8080),
        ({"8080/tcp": {}, "53/udp": {}}, 8080),
        ({"8080/tcp": {}, "9090/tcp": {}}, None),
        ({"53/udp": {}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_build_dockerfile_uses_a_single_exposed_tcp_port(
    dockerfile_build, host_files, tmp_path, exposed, port
):
    dockerfile_build["cfg"] = {"ExposedPorts": exposed}
    said = []
    result = build.build_dockerfile("shop", 4, tmp_path, host_files, said.append)
    assert result == build.BuildResult("provisioner-app/shop:v4", "dockerfile", {"web": ""}, port)
    assert dockerfile_build["streamed"] == [
        [
            "build",
            "--pull=false",
            "-t",
            "provisioner-app/shop:v4",
            "--memory",
            "2g",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            str(int(min(2, os.cpu_count() or 1) * 100000)),
            "--build-arg",
            "http_proxy",
            "--build-arg",
            "NO_PROXY",
            str(tmp_path),
        ]
    ]
    assert dockerfile_build["configs"] == ["provisioner-app/shop:v4"]
    assert said == ["-----> Dockerfile app detected", "Step 1/2 : FROM python", "done"]


def test_a_failed_docker_build_is_a_build_error_with_its_tail(dockerfile_build, bare_settings, tmp_path):
    dockerfile_build["rc"] = 1
    dockerfile_build["lines"] = [f"line {i}" for i in range(30)] + ["ERROR: pip install failed"]
    with pytest.raises(build.BuildError) as info:
        build.build_dockerfile("shop", 4, tmp_path, bare_settings, lambda _l: None)
    assert str(info.value) == "docker build failed (exit code 1)"
    assert info.value.tail.splitlines()[-1] == "ERROR: pip install failed"
    assert len(info.value.tail.splitlines()) == 20
    assert dockerfile_build["configs"] == []


def test_a_dockerfile_build_over_its_time_is_stopped_with_the_reason(bare_settings, tmp_path, monkeypatch):
    """A real process in place of the docker CLI: it outlives the build timeout and is stopped."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text("#!/bin/sh\necho Step 1/9 : RUN sleep 60\nexec sleep 60\n")
    (fake_bin / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    settings = dataclasses.replace(bare_settings, build_timeout=1)
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(build.BuildError, match="the build was killed"):
        build.build_dockerfile("shop", 4, tmp_path, settings, said.append)
    assert time.monotonic() - started < 10
    assert any("ran longer than 1 s (receiver_build_timeout)" in line for line in said), said


def test_build_picks_dockerfile_or_buildpacks_after_the_disk_check(monkeypatch, tmp_path):
    order = []
    monkeypatch.setattr(build, "check_disk", lambda settings: order.append("disk"))
    monkeypatch.setattr(build, "build_dockerfile", lambda *a: order.append("dockerfile"))
    monkeypatch.setattr(build, "build_buildpacks", lambda *a: order.append("buildpacks"))
    args = ({}, Settings(), tmp_path / "cache", print)
    build.build("shop", 1, tmp_path, *args)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    build.build("shop", 2, tmp_path, *args)
    assert order == ["disk", "buildpacks", "disk", "dockerfile"]


# --- build_buildpacks --------------------------------------------------------------------------------------


def mounts(argv):
    """{container path: host path} of a `docker run` argv's -v options."""
    found = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-v":
            host, _, target = value.removesuffix(":ro").partition(":")
            found[target] = Path(host)
    return found


@dataclass
class FakeBuildDocker:
    """docker.stream and docker.image_exists for a buildpack build; records what the build container saw."""

    answers: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)
    image_present: bool = True
    build_rc: int = 0
    runs: list[tuple[str, str]] = field(default_factory=list)  # (script, buildpack name)
    argvs: list[list[str]] = field(default_factory=list)
    env_files: dict[str, bytes] = field(default_factory=dict)
    env_mode: int = 0
    dockerfile: str = ""
    context: Path | None = None
    context_files: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # of the build image: the stack's versions
    deps_present: bool = False  # an image of the app's dependencies exists already
    builds: list[tuple[str, list[str]]] = field(default_factory=list)  # (Dockerfile, context files)

    def image_exists(self, ref):
        return self.deps_present if ":deps-" in ref else self.image_present

    def image_config(self, ref):
        return {"Labels": self.labels}

    def stream(self, argv, say, env=None):
        self.argvs.append(list(argv))
        if argv[0] == "build":
            self.context = Path(argv[-1])
            self.dockerfile = (self.context / "Dockerfile").read_text()
            self.context_files = tree(self.context)
            self.builds.append((self.dockerfile, self.context_files))
            output = ["Successfully built"] if self.build_rc == 0 else ["no space left on device"]
            return self.build_rc, output
        # The build container: what build.DRIVER does, with the answers given for each step.
        assert argv[argv.index("--entrypoint") + 1] == "/provisioner-build"
        mounted = mounts(argv)
        out = mounted["/out"]
        args = argv[argv.index("--entrypoint") + 3 :]
        detect = args[:1] == ["--detect"]
        packs = [mounted[a] for a in (args[1:] if detect else args)]

        def step(script: str, pack: Path) -> tuple[int, list[str]]:
            self.runs.append((script, pack.name))
            default = self.answers.get((script, "*"), (1 if script == "detect" else 0, []))
            return self.answers.get((script, pack.name), default)

        if detect:
            for pack in packs:
                rc, lines = step("detect", pack)
                if rc == 0:
                    (out / "detected").write_text(f"/buildpacks/{pack.name}\n")
                    say(f"-----> {(lines[-1].strip() if lines else '') or pack.name} app detected")
                    packs = [pack]
                    break
            else:
                return build.NO_BUILDPACK, []
        tail: list[str] = []
        for pack in packs:
            (out / "compiling").write_text(f"/buildpacks/{pack.name}\n")
            envdir = mounted["/env"]
            self.env_mode = stat.S_IMODE(envdir.stat().st_mode)
            self.env_files = {p.name: p.read_bytes() for p in envdir.iterdir()}
            rc, lines = step("compile", pack)
            for line in lines:
                say(line)
            tail = [*tail, *lines][-20:]
            if rc != 0:
                return rc, tail
            if (pack / "bin" / "release").is_file():
                rc, lines = step("release", pack)
                if rc == 0:
                    (out / f"release.{pack.name}").write_text("\n".join(lines))
        return 0, tail


@pytest.fixture
def fake_docker(monkeypatch):
    fake = FakeBuildDocker()
    monkeypatch.setattr(build.docker, "stream", fake.stream)
    monkeypatch.setattr(build.docker, "image_exists", fake.image_exists)
    monkeypatch.setattr(build.docker, "image_config", fake.image_config)
    return fake


def make_buildpack(directory, scripts=("detect", "compile", "release")):
    (directory / "bin").mkdir(parents=True)
    for script in scripts:
        (directory / "bin" / script).write_text("#!/bin/sh\n")
        (directory / "bin" / script).chmod(0o755)
    return directory


@pytest.fixture
def stack(tmp_path):
    """Builtin buildpacks, an app source, a cache dir and Settings for them."""
    root = tmp_path / "buildpacks"
    for name in ("static", "nodejs", "python"):
        make_buildpack(root / name)
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "app.py").write_text("print('hi')\n")
    (source / "pkg" / "__init__.py").write_text("")
    (source / "link").symlink_to("app.py")
    missing = tmp_path / "missing"
    settings = Settings(
        buildpacks_dir=str(root),
        build_image="provisioner/stack-build:test",
        run_image="provisioner/stack-run:test",
        container_port=5000,
        proxy_env=str(missing / "proxy.env"),
        pip_conf=str(missing / "pip.conf"),
        ca_bundle=str(missing / "ca.crt"),
    )
    return settings, source, tmp_path / "cache"


def test_builtin_buildpacks_in_order(tmp_path):
    root = tmp_path / "buildpacks"
    for name in ("static", "ruby", "python", "go"):
        make_buildpack(root / name)
    (root / "nodejs").mkdir()  # no bin/compile: not a buildpack
    assert build.builtin_buildpacks(Settings(buildpacks_dir=str(root))) == [
        root / "python",
        root / "static",
        root / "go",
        root / "ruby",
    ]
    assert build.builtin_buildpacks(Settings(buildpacks_dir=str(tmp_path / "none"))) == []


def test_a_missing_build_image_is_a_clear_error(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.image_present = False
    with pytest.raises(build.BuildError) as info:
        build.build_buildpacks("shop", 1, source, {}, settings, cache, print)
    assert str(info.value) == (
        "the build image provisioner/stack-build:test is missing: run 'provisioner up' on this host"
    )
    assert fake_docker.argvs == []


def test_the_first_builtin_buildpack_that_detects_the_app_builds_it(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {
        ("detect", "nodejs"): (0, ["Node.js"]),
        ("detect", "static"): (0, ["Static"]),
        ("compile", "nodejs"): (0, ["-----> Installing node", "       done"]),
        ("release", "nodejs"): (0, ["---", "default_process_types:", "  web: npm start"]),
    }
    said = []
    result = build.build_buildpacks("shop", 2, source, {}, settings, cache, said.append)
    assert result == build.BuildResult("provisioner-app/shop:v2", "buildpacks", {"web": "npm start"}, 5000)
    assert fake_docker.runs == [
        ("detect", "python"),
        ("detect", "nodejs"),
        ("compile", "nodejs"),
        ("release", "nodejs"),
    ]
    # detect and release output is not shown; compile output is
    assert said == [
        "-----> Node.js app detected",
        "-----> Installing node",
        "       done",
        "-----> Building the app image",
    ]
    run = fake_docker.argvs[0]
    assert mounts(run)["/app"] == source and mounts(run)["/cache"] == cache / "layers"
    assert run[run.index("--name") + 1] == "shop.build.v2"
    assert fake_docker.argvs[-1][:5] == ["build", "--pull=false", "-q", "-t", "provisioner-app/shop:v2"]


def test_dependencies_get_an_image_of_their_own_and_the_app_image_only_the_code(
    fake_docker, stack, monkeypatch
):
    settings, source, cache = stack
    monkeypatch.setattr(build.docker, "image_id", lambda ref: "sha256:run")
    (source / ".venv" / "bin").mkdir(parents=True)  # as the python buildpack's compile leaves it
    (source / ".venv" / "bin" / "python").write_text("#!python\n")
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    said: list[str] = []
    result = build.build_buildpacks("shop", 2, source, {}, settings, cache, said.append)
    (deps_file, deps_files), (code_file, code_files) = fake_docker.builds
    assert deps_file.startswith("FROM provisioner/stack-run:test\n")
    assert deps_files == ["Dockerfile", "app", "app/.venv", "app/.venv/bin", "app/.venv/bin/python"]
    assert re.fullmatch(r"provisioner-app/shop:deps-[0-9a-f]{20}", result.base)
    assert code_file.startswith(f"FROM {result.base}\n")
    assert not any(".venv" in f for f in code_files) and "app/app.py" in code_files
    assert (source / ".venv" / "bin" / "python").is_file()  # put back after the build
    # The next build with the same dependencies reuses their image: one build, of the code.
    fake_docker.builds.clear()
    fake_docker.deps_present = True
    again = build.build_buildpacks("shop", 3, source, {}, settings, cache, said.append)
    assert again.base == result.base and len(fake_docker.builds) == 1
    assert any("Dependencies unchanged" in line for line in said)


def test_a_virtualenv_linked_to_the_build_cache_is_layered_from_there(fake_docker, stack, monkeypatch):
    """The python buildpack links a reused virtualenv to /cache/python/venv instead of copying it."""
    settings, source, cache = stack
    monkeypatch.setattr(build.docker, "image_id", lambda ref: "sha256:run")
    venv = cache / "layers" / "python" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!python\n")
    (source / ".venv").symlink_to("/cache/python/venv")
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    result = build.build_buildpacks("shop", 2, source, {}, settings, cache, print)
    (_, deps_files), (code_file, code_files) = fake_docker.builds
    assert "app/.venv/bin/python" in deps_files and code_file.startswith(f"FROM {result.base}\n")
    assert not any(".venv" in f for f in code_files)
    assert (venv / "bin" / "python").is_file() and (source / ".venv").is_symlink()  # the cache stays


@pytest.mark.parametrize("target", ["/etc", "/cache/../../..", "/cache/missing", "relative/venv"])
def test_a_dependency_link_out_of_the_cache_is_not_followed(tmp_path, target):
    source, cache = tmp_path / "src", tmp_path / "cache"
    source.mkdir()
    (cache / "python").mkdir(parents=True)
    (source / ".venv").symlink_to(target)
    assert build.dependency_dirs(source, cache) == []


def test_the_tree_signature_sees_changes_but_not_links_targets_contents(tmp_path):
    root = tmp_path / ".venv"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "a.py").write_text("a = 1\n")
    (root / "python").symlink_to("/usr/bin/python3")
    first = build.tree_signature([(".venv", root)])
    assert build.tree_signature([(".venv", root)]) == first
    os.utime(root / "lib" / "a.py", ns=(1, 1))
    assert build.tree_signature([(".venv", root)]) != first
    touched = build.tree_signature([(".venv", root)])
    (root / "lib" / "b.py").write_text("")
    assert build.tree_signature([(".venv", root)]) != touched


def test_a_silent_detect_names_the_buildpack(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {("detect", "python"): (0, [])}
    said = []
    build.build_buildpacks("shop", 1, source, {}, settings, cache, said.append)
    assert said[0] == "-----> python app detected"


def test_no_detected_buildpack_is_a_clear_error(fake_docker, stack):
    settings, source, cache = stack
    with pytest.raises(build.BuildError, match=r"^no buildpack detected this app: add requirements.txt"):
        build.build_buildpacks("shop", 1, source, {}, settings, cache, print)
    assert fake_docker.runs == [("detect", "python"), ("detect", "nodejs"), ("detect", "static")]


def test_a_compile_failure_names_the_buildpack(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {
        ("detect", "python"): (0, ["Python"]),
        ("compile", "python"): (1, ["-----> Installing requirements", "ERROR: No matching distribution"]),
    }
    with pytest.raises(build.BuildError) as info:
        build.build_buildpacks("shop", 1, source, {}, settings, cache, lambda _l: None)
    assert str(info.value) == "buildpack python failed to compile the app (exit code 1)"
    assert info.value.tail == "-----> Installing requirements\nERROR: No matching distribution"
    assert ("release", "python") not in fake_docker.runs
    assert not any(argv[0] == "build" for argv in fake_docker.argvs)


def test_a_failed_release_script_gives_no_defaults(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {
        ("detect", "python"): (0, ["Python"]),
        ("release", "python"): (1, ["default_process_types:", "  web: gunicorn"]),
    }
    assert build.build_buildpacks("shop", 1, source, {}, settings, cache, print).defaults == {}


def test_a_buildpack_without_a_release_script_gives_no_defaults(fake_docker, stack):
    settings, source, cache = stack
    (Path(settings.buildpacks_dir) / "python" / "bin" / "release").unlink()
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    assert build.build_buildpacks("shop", 1, source, {}, settings, cache, print).defaults == {}
    assert fake_docker.runs == [("detect", "python"), ("compile", "python")]


def test_the_app_image_is_the_compiled_source_on_the_run_image(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    build.build_buildpacks("shop", 1, source, {}, settings, cache, print)
    assert fake_docker.dockerfile == (
        "FROM provisioner/stack-run:test\nCOPY --chown=1000:1000 app/ /app/\nUSER 1000\nWORKDIR /app\n"
    )
    assert fake_docker.context_files == [
        "Dockerfile",
        "app",
        "app/app.py",
        "app/link",
        "app/pkg",
        "app/pkg/__init__.py",
    ]
    assert not fake_docker.context.exists()  # the work directory is removed afterwards


def test_a_failed_app_image_build_is_a_build_error_and_cleans_up(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    fake_docker.build_rc = 1
    with pytest.raises(build.BuildError, match=r"^building the app image failed: the host ran out of disk"):
        build.build_buildpacks("shop", 1, source, {}, settings, cache, print)
    assert not fake_docker.context.parent.exists()


def test_config_vars_reach_the_compile_step_one_file_each_byte_for_byte(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    config = {
        "SECRET_KEY": "s3cr3t 'quoted' \"double\" $(id) `id` \\ ; | &",
        "MULTILINE": "line1\nline2\n",
        "EMPTY": "",
        "UNICODE": "grüße ✓",
    }
    build.build_buildpacks("shop", 1, source, config, settings, cache, print)
    assert fake_docker.env_files == {key: value.encode() for key, value in config.items()}
    assert fake_docker.env_mode == 0o700
    envdir = mounts(fake_docker.argvs[0])["/env"]
    assert not envdir.exists()
    # the values are never on a docker command line
    assert not any(config["SECRET_KEY"] in arg for argv in fake_docker.argvs for arg in argv)


def test_a_buildpack_url_is_cloned_and_compiled_without_detection(fake_docker, stack, tmp_path, monkeypatch):
    settings, source, cache = stack
    for key in list(os.environ):
        if key.startswith("GIT_"):
            monkeypatch.delenv(key)
    repo = tmp_path / "custom-buildpack"
    (repo / "bin").mkdir(parents=True)
    (repo / "bin" / "compile").write_text("#!/bin/sh\necho compiled\n")  # committed without +x
    (repo / "bin" / "release").write_text("#!/bin/sh\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "buildpack")
    git(repo, "branch", "v1")
    url = f"file://{repo}#v1"
    fake_docker.answers = {("release", "*"): (0, ["default_process_types:", "  web: ./serve"])}
    said = []
    settings = dataclasses.replace(settings, buildpack_file_dir=str(tmp_path))
    result = build.build_buildpacks("shop", 1, source, {"BUILDPACK_URL": url}, settings, cache, said.append)
    clone = next(
        path for mount, path in mounts(fake_docker.argvs[0]).items() if mount.startswith("/buildpacks/")
    )
    assert fake_docker.runs == [("compile", clone.name), ("release", clone.name)]
    assert clone.parent == cache / "buildpacks"
    assert (clone / "bin" / "compile").read_text() == "#!/bin/sh\necho compiled\n"
    assert os.access(clone / "bin" / "compile", os.X_OK)
    assert said[0] == f"-----> Fetching buildpack {url}"
    assert result.defaults == {"web": "./serve"}


def test_a_buildpack_url_that_cannot_be_cloned_is_a_build_error(fake_docker, stack, tmp_path):
    settings, source, cache = stack
    url = f"file://{tmp_path}/no-such-repo"
    settings = dataclasses.replace(settings, buildpack_file_dir=str(tmp_path))
    with pytest.raises(build.BuildError, match=f"^could not fetch buildpack {url}: "):
        build.build_buildpacks("shop", 1, source, {"BUILDPACK_URL": url}, settings, cache, print)
    assert fake_docker.runs == []


BOOKWORM = {
    "io.provisioner.stack": "bookworm",
    "io.provisioner.python": "3.11.2",
    "io.provisioner.node": "18.19.0",
}


def test_the_build_log_names_the_runtime_and_why(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.labels = BOOKWORM
    (source / ".python-version").write_text("3.11\n")
    (source / "requirements.txt").write_text("")
    fake_docker.answers = {("detect", "python"): (0, ["Python"])}
    said = []
    build.build_buildpacks("shop", 1, source, {}, settings, cache, said.append)
    assert said[0] == "-----> Python 3.11.2 (stack bookworm): .python-version asks for 3.11"
    assert "STACK=provisioner-test" in fake_docker.argvs[0]


def test_a_version_no_stack_offers_fails_before_anything_runs(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.labels = BOOKWORM
    (source / "package.json").write_text('{"engines": {"node": "12.x"}}')
    with pytest.raises(build.BuildError) as info:
        build.build_buildpacks("shop", 1, source, {}, settings, cache, print)
    assert str(info.value) == (
        "Node.js 12.x (package.json engines.node) is not offered by this host: it has Node.js 18.19.0 "
        "(stack bookworm)"
    )
    assert fake_docker.argvs == []


def test_custom_buildpacks_bring_their_own_runtime(fake_docker, stack):
    settings, source, cache = stack
    fake_docker.labels = BOOKWORM
    (source / ".python-version").write_text("3.8\n")
    pack = make_buildpack(cache.parent / "custom")
    with mock.patch.object(build, "fetch_buildpack", lambda url, cache, say: pack):
        build.build_buildpacks(
            "shop", 1, source, {"BUILDPACK_URL": "https://example.com/bp.git"}, settings, cache, print
        )
    assert ("compile", "custom") in fake_docker.runs


def test_buildpack_scripts_are_made_executable_but_never_through_a_link(tmp_path):
    secret = tmp_path / "other-app-config.json"
    secret.write_text("{}")
    secret.chmod(0o600)
    pack = tmp_path / "pack"
    (pack / "bin").mkdir(parents=True)
    (pack / "lib").mkdir()
    (pack / "lib" / "compile.sh").write_text("#!/bin/sh\n")
    (pack / "bin" / "compile").symlink_to(pack / "lib" / "compile.sh")  # inside the buildpack: followed
    (pack / "bin" / "detect").symlink_to(secret)  # outside: left alone
    (pack / "bin" / "release").write_text("#!/bin/sh\n")
    build.make_executable(pack)
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    assert os.access(pack / "lib" / "compile.sh", os.X_OK) and os.access(pack / "bin" / "release", os.X_OK)


def test_a_build_step_that_runs_too_long_is_killed(bare_settings, monkeypatch, tmp_path):
    import time as time_module

    killed = []
    monkeypatch.setattr(build.subprocess, "run", lambda argv, **kw: killed.append(argv))

    def slow_stream(argv, say, env=None):
        time_module.sleep(0.5)
        return 137, ["Killed"]

    monkeypatch.setattr(build.docker, "stream", slow_stream)
    settings = dataclasses.replace(bare_settings, build_timeout=0.1)
    said = []
    rc, _ = build.run_buildpacks(
        [Path("/bp/x")],
        False,
        Path("/s"),
        Path("/c"),
        Path("/e"),
        tmp_path / "out",
        settings,
        "shop.build.v9",
        said.append,
    )
    assert rc == 137 and killed == [["docker", "kill", "shop.build.v9"]]
    assert said == [" !     the build ran longer than 0.1 s (receiver_build_timeout): stopping it"]
