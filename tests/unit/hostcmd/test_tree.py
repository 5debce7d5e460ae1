"""The pushed tree is read only as regular files inside it: a symlink to a host file is refused, and its
content never reaches the pusher."""

import pytest

from provisioner.hostcmd import build, procfile, tree

SECRET = "HTTPS_PROXY=http://user:hunter2@proxy.internal:3128\n"


@pytest.fixture
def source(tmp_path):
    secret = tmp_path / "proxy.env"
    secret.write_text(SECRET)
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.html").write_text("<h1>hi</h1>")
    return src, secret


def refused(call) -> str:
    with pytest.raises(tree.TreeError, match="symbolic link") as info:
        call()
    assert "hunter2" not in str(info.value)
    return str(info.value)


def test_a_symlinked_procfile_is_refused(source):
    src, secret = source
    (src / "Procfile").symlink_to(secret)
    assert refused(lambda: procfile.read_procfile(src)).startswith("Procfile is a symbolic link")
    assert refused(lambda: procfile.plan(src, {}, 60)).startswith("Procfile")


def test_a_symlinked_app_json_is_refused(source):
    src, secret = source
    (src / "app.json").symlink_to(secret)
    refused(lambda: procfile.read_app_json(src, 60))


def test_a_symlinked_buildpacks_file_is_refused(source):
    src, secret = source
    (src / ".buildpacks").symlink_to(secret)
    refused(lambda: build.buildpack_urls(src, {}))


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore"])
def test_a_symlinked_dockerfile_is_refused_before_docker_sees_it(source, name, monkeypatch):
    src, secret = source
    (src / name).symlink_to(secret)
    monkeypatch.setattr(build, "check_disk", lambda settings: None)
    monkeypatch.setattr(build.docker, "stream", lambda *a, **k: pytest.fail("docker must not run"))
    refused(lambda: build.build("shop", 1, src, {}, build.Settings(), src, print))


def test_a_file_under_a_symlinked_directory_is_refused(source, tmp_path):
    src, _ = source
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "runtime.txt").write_text("python-3.12\n")
    (src / "conf").symlink_to(elsewhere)
    refused(lambda: tree.read(src, "conf/runtime.txt"))


def test_regular_files_are_read_and_absent_ones_are_none(source):
    src, _ = source
    (src / "Procfile").write_text("web: ./serve\n")
    assert procfile.read_procfile(src) == {"web": "./serve"}
    assert tree.read(src, "app.json") is None
    (src / "app.json").mkdir()  # not a file: as if absent
    assert tree.read(src, "app.json") is None


def test_a_huge_file_is_refused(source):
    src, _ = source
    (src / "Procfile").write_text("web: x\n" * 100_000)
    with pytest.raises(tree.TreeError, match="larger than"):
        procfile.read_procfile(src)
