"""Persistent storage: what is refused, what the commands store and publish, the root helper's file work,
and the bind mounts every process gets."""

import os
import stat

import pytest

from provisioner.hostcmd import names, release, storage
from provisioner.hostcmd.commands import apps as apps_cmd
from provisioner.hostcmd.commands import config as config_cmd
from provisioner.hostcmd.commands import storage as storage_cmd
from provisioner.hostcmd.commands.base import UserError
from provisioner.hostcmd.scheduler import LocalDocker, Mount
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App, Release
from tests.unit.hostcmd import test_scheduler
from tests.unit.hostcmd.test_release import FakeScheduler
from tests.unit.hostcmd.test_scheduler import web_spec

HOSTILE_SPECS = [
    "..:/x",
    "../x:/x",
    "/:/x",
    "/etc:/x",
    "/var/run/docker.sock",
    "/var/run/docker.sock:/var/run/docker.sock",
    "data:/var/run/../../etc",
    "a;rm -rf /:/x",
    "$(reboot):/x",
    "`id`:/x",
    "Data:/x",
    "1data:/x",
    "d" * 31 + ":/x",
    ":/x",
    "",
    "data",
    "data:",
    "data:/",
    "data:x",
    "data:relative/path",
    "data:/proc",
    "data:/proc/x",
    "data:/sys",
    "data:/dev/shm",
    "data:/dev",
    "data:/app/../etc",
    "data:/app/./x",
    "data:/app//x",
    "data:/app/",
    "data:/app/x;rm -rf /",
    "data:/app/$(id)",
    "data:/app/da ta",
    "data:/app/\0x",
    "data:/app/\u00e9",
    "data:/" + "a" * 250,
    "data:/app:/x",
    "data:/app,readonly",
]


@pytest.mark.parametrize("spec", HOSTILE_SPECS)
def test_hostile_specs_are_refused_with_one_line(spec):
    with pytest.raises(names.NameError_) as caught:
        storage.parse(spec)
    message = str(caught.value)
    assert "\n" not in message and "\0" not in message and len(message) < 300


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("data:/app/data", ("data", "/app/data")),
        ("uploads-2:/srv/uploads", ("uploads-2", "/srv/uploads")),
        ("d" * 30 + ":/var/lib/x.y_z@1+2", ("d" * 30, "/var/lib/x.y_z@1+2")),
        ("db:/devices", ("db", "/devices")),  # only /dev itself and under it are refused
    ],
)
def test_good_specs(spec, parsed):
    assert storage.parse(spec) == parsed


def test_host_paths_are_named_as_such():
    with pytest.raises(names.NameError_, match="host paths are not mounted"):
        storage.parse("/var/run/docker.sock:/var/run/docker.sock")


# --- the commands ------------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path, monkeypatch):
    settings = Settings(
        apps_dir=str(tmp_path / "apps"), storage_dir=str(tmp_path / "storage"), domain="example.test"
    )
    a = App(settings, "shop")
    a.create(lambda repo: repo.mkdir(parents=True))
    a.helper_calls = []
    a.redeploys = []
    monkeypatch.setattr(storage, "run_helper", lambda s, *args: a.helper_calls.append(args) or "present")
    monkeypatch.setattr(config_cmd, "redeploy", lambda app, say, what: a.redeploys.append(what))
    return a


@pytest.mark.parametrize("spec", HOSTILE_SPECS)
def test_a_hostile_mount_changes_nothing(app, spec, tmp_path):
    with pytest.raises(UserError):
        storage_cmd.storage_mount(app.settings, ["shop", spec])
    assert not (app.dir / "storage.json").exists()
    assert not (tmp_path / "storage").exists() and app.helper_calls == [] and app.redeploys == []


def test_mount_stores_and_redeploys_unmount_keeps_the_files(app, capsys):
    storage_cmd.storage_mount(app.settings, ["shop", "data:/app/data"])
    assert app.mounts() == {"data": "/app/data"} and len(app.redeploys) == 1
    storage_cmd.storage_mount(app.settings, ["shop", "uploads:/srv/up", "--no-restart"])
    assert app.mounts() == {"data": "/app/data", "uploads": "/srv/up"} and len(app.redeploys) == 1
    assert "next release" in capsys.readouterr().err
    storage_cmd.storage_list(app.settings, ["shop"])
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("data:/app/data") and listed[0].endswith(
        f"{app.settings.storage_dir}/shop/data)"
    )
    storage_cmd.storage_unmount(app.settings, ["shop", "data"])
    assert app.mounts() == {"uploads": "/srv/up"} and len(app.redeploys) == 2
    storage_cmd.storage_unmount(app.settings, ["shop", "uploads:/srv/up", "--no-restart"])
    assert app.mounts() == {} and app.helper_calls == []  # never removes a directory


@pytest.mark.parametrize(
    "first, second, reason",
    [
        ("data:/app/data", "data:/app/data", "already"),
        ("data:/app/data", "data:/srv/other", "unmount it first"),
        ("data:/app/data", "other:/app/data", "taken"),
    ],
)
def test_conflicting_mounts_are_refused(app, first, second, reason):
    storage_cmd.storage_mount(app.settings, ["shop", first, "--no-restart"])
    with pytest.raises(UserError, match=reason):
        storage_cmd.storage_mount(app.settings, ["shop", second])
    assert len(app.mounts()) == 1


@pytest.mark.parametrize(
    "args", [["shop"], ["shop", "a:/a", "b:/b"], ["shop", "nothere"], ["shop", "data:/elsewhere"]]
)
def test_bad_unmounts_are_refused(app, args):
    storage_cmd.storage_mount(app.settings, ["shop", "data:/app/data", "--no-restart"])
    with pytest.raises(UserError):
        storage_cmd.storage_unmount(app.settings, args)
    assert app.mounts() == {"data": "/app/data"}


def test_list_alias_is_dokkus_name():
    from provisioner.hostcmd import commands

    assert commands.find("storage:list") is commands.find("storage")


@pytest.fixture
def destroyed(app, monkeypatch):
    monkeypatch.setattr(
        apps_cmd,
        "for_settings",
        lambda settings: type("S", (), {"instances": lambda s, a: [], "forget": lambda s, a: None})(),
    )
    monkeypatch.setattr(apps_cmd.nginx, "apply", lambda *a: None)
    monkeypatch.setattr(apps_cmd.docker, "app_images", lambda: {})
    monkeypatch.setattr(apps_cmd.acme, "forget", lambda *a: None)
    monkeypatch.setattr(storage, "run_helper", lambda s, *args: app.helper_calls.append(args) or "removed")
    app.set_mounts({"data": "/app/data"})
    return app


def test_destroy_keeps_storage_and_says_so(destroyed, capsys):
    apps_cmd.apps_destroy(destroyed.settings, ["shop", "--force"])
    assert destroyed.helper_calls == [] and not destroyed.exists()
    assert "kept its storage data" in capsys.readouterr().out


def test_destroy_purges_storage_when_asked(destroyed, capsys):
    apps_cmd.apps_destroy(destroyed.settings, ["shop", "--force", "--purge-storage"])
    assert destroyed.helper_calls == [("purge", "shop")] and not destroyed.exists()
    assert "removed its storage" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["shop"], ["shop", "--purge-storage"], ["shop", "--force", "--purge"]])
def test_destroy_needs_force_and_known_flags(destroyed, args):
    with pytest.raises(UserError):
        apps_cmd.apps_destroy(destroyed.settings, args)
    assert destroyed.exists() and destroyed.helper_calls == []


# --- releases: directories first, then every process and one-off with the mounts ---------------------------


def test_every_process_and_one_off_gets_the_mounts_after_the_directories_are_made(app, monkeypatch):
    monkeypatch.setattr(release.nginx, "apply", lambda *a: None)
    monkeypatch.setattr(release, "http_ok", lambda port, path: (True, "HTTP 200"))
    monkeypatch.setattr(release.time, "sleep", lambda s: None)
    app.set_mounts({"data": "/app/data", "cache": "/tmp/c"})
    app.set_scale({"web": 2, "worker": 1})
    rel = Release(1, "img", {"web": "w", "worker": "k"}, 5000, release_command="./m", predeploy="./p")
    sched = FakeScheduler()
    release.activate(app, rel, lambda _m: None, sched, predeploy=True)
    assert app.helper_calls == [("create", "shop", "1000", "1000", "cache", "data")]
    root = app.settings.storage_dir
    want = (Mount(f"{root}/shop/cache", "/tmp/c"), Mount(f"{root}/shop/data", "/app/data"))
    assert [s.process for s in sched.specs] == ["predeploy", "release", "web", "web", "worker"]
    assert all(s.mounts == want for s in sched.specs)


def test_an_app_without_mounts_never_calls_the_helper(app, monkeypatch):
    monkeypatch.setattr(release.nginx, "apply", lambda *a: None)
    monkeypatch.setattr(release, "http_ok", lambda port, path: (True, "HTTP 200"))
    sched = FakeScheduler()
    release.activate(app, Release(1, "img", {"web": "w"}, 5000), lambda _m: None, sched)
    assert app.helper_calls == [] and sched.specs[0].mounts == ()


def test_a_helper_failure_fails_the_release_before_any_process(app, monkeypatch):
    def fail(settings, *args):
        raise storage.StorageError("the storage helper failed: nope")

    monkeypatch.setattr(storage, "run_helper", fail)
    monkeypatch.setattr(release, "http_ok", lambda port, path: (True, "HTTP 200"))
    monkeypatch.setattr(release.nginx, "apply", lambda *a: None)
    app.set_mounts({"data": "/app/data"})
    sched = FakeScheduler()
    with pytest.raises(release.ReleaseError, match="storage: the storage helper failed"):
        release.activate(app, Release(1, "img", {"web": "w"}, 5000), lambda _m: None, sched)
    assert sched.specs == []


PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:\n"


@pytest.mark.parametrize(
    "user, owner",
    [
        ("", (0, 0)),
        ("app", (1000, 1000)),
        ("1000", (1000, 1000)),
        ("www", (33, 34)),
        ("4242", (4242, 0)),  # no entry: gid 0, as Docker runs it
        ("4242:4243", (4242, 4243)),
        ("app:staff", (1000, 50)),
        ("www:0", (33, 0)),
    ],
)
def test_dockerfile_users_resolve_as_docker_does(user, owner):
    files = {"/etc/passwd": PASSWD, "/etc/group": GROUP}
    assert storage.resolve_user(user, files.get) == owner


@pytest.mark.parametrize("user", ["nobody-here", "app:nogroup", "99999999999", "-1"])
def test_unknown_users_are_refused(user):
    files = {"/etc/passwd": PASSWD, "/etc/group": GROUP}
    with pytest.raises(storage.StorageError):
        storage.resolve_user(user, files.get)


def test_buildpack_apps_own_their_storage_as_the_stacks_app_user(monkeypatch):
    monkeypatch.setattr(storage.docker, "image_config", lambda ref: pytest.fail("no image lookup"))
    assert storage.owner(Release(1, "img", {}, 5000, kind="buildpacks")) == (1000, 1000)


def test_dockerfile_apps_own_their_storage_as_the_images_user(monkeypatch):
    monkeypatch.setattr(storage.docker, "image_config", lambda ref: {"User": "www"})
    monkeypatch.setattr(storage.docker, "image_file", lambda ref, path: PASSWD)
    assert storage.owner(Release(1, "img", {}, 5000, kind="dockerfile")) == (33, 34)


# --- the docker body ---------------------------------------------------------------------------------------


fake = test_scheduler.fake  # the same fake engine


def created_bodies(fake):
    return [c[2] for c in fake.calls if c[0] == "POST" and c[1] == "/containers/create"]


def test_processes_and_one_offs_get_bind_mounts(fake):
    mounts = (Mount("/var/lib/provisioner/storage/shop/data", "/app/data"),)
    sched = LocalDocker()
    sched.start(web_spec(mounts=mounts))
    sched.run_once(web_spec(process="release", port=None, mounts=mounts))
    for body in created_bodies(fake):
        assert body["HostConfig"]["Mounts"] == [
            {"Type": "bind", "Source": "/var/lib/provisioner/storage/shop/data", "Target": "/app/data"}
        ]
        assert "Binds" not in body["HostConfig"] and "Volumes" not in body


def test_no_mounts_no_mounts_key(fake):
    LocalDocker().start(web_spec())
    assert "Mounts" not in created_bodies(fake)[0]["HostConfig"]


# --- the root helper ---------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A storage directory under tmp (world-writable /tmp is above it: the test trusts only its own
    directories' ownership checks, recorded)."""
    checked = []
    real = storage._trusted

    def trusted(fd, what):
        checked.append(what)
        if what.startswith(str(tmp_path)):
            real(fd, what)

    monkeypatch.setattr(storage, "_trusted", trusted)
    path = tmp_path / "storage"
    path.mkdir(mode=0o700)
    return path


def test_open_root_refuses_a_world_writable_parent(tmp_path):
    (tmp_path / "storage").mkdir()
    with pytest.raises(storage.StorageError, match="writable by others"):
        storage.open_root(str(tmp_path / "storage"))  # /tmp is 1777


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_helper_creates_owned_directories_once_and_keeps_their_files(root, capsys):
    assert storage.helper(["create", "shop", "1000", "1001", "data", "up"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "made data up"
    info = (root / "shop" / "data").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1001, 0o755)
    assert (root / "shop").stat().st_uid == 0
    (root / "shop" / "data" / "kept").write_text("x")
    os.chown(root / "shop" / "data", 1000, 1000)
    assert storage.helper(["create", "shop", "0", "0", "data"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "present"
    assert (root / "shop" / "data").stat().st_gid == 1000 and (root / "shop" / "data" / "kept").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_helper_finishes_a_directory_an_interrupted_run_left(root, capsys):
    (root / "shop").mkdir(mode=0o755)
    (root / "shop" / "data").mkdir(mode=0)
    os.chmod(root / "shop" / "data", 0)
    assert storage.helper(["create", "shop", "1000", "1000", "data"], str(root)) == 0
    assert (root / "shop" / "data").stat().st_uid == 1000


def test_helper_never_follows_a_symlink(root, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "shop").mkdir(mode=0o755)
    (root / "shop" / "data").symlink_to(elsewhere)
    assert storage.helper(["create", "shop", "0", "0", "data"], str(root)) == 1
    assert "not a directory" in capsys.readouterr().err
    (root / "evil").symlink_to(elsewhere)
    assert storage.helper(["create", "evil", "0", "0", "data"], str(root)) == 1
    assert storage.helper(["purge", "evil"], str(root)) == 1
    assert list(elsewhere.iterdir()) == [] and (root / "evil").is_symlink()


def test_helper_refuses_a_symlinked_storage_directory(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert storage.helper(["create", "shop", "0", "0", "data"], str(tmp_path / "link")) == 1
    assert list((tmp_path / "real").iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["create"],
        ["create", "shop", "0", "0"],
        ["create", "../etc", "0", "0", "data"],
        ["create", "shop", "0", "0", "../../etc"],
        ["create", "shop", "0", "0", "/etc"],
        ["create", "shop", "-1", "0", "data"],
        ["create", "shop", "4294967295", "0", "data"],
        ["create", "shop", "1e3", "0", "data"],
        ["create", "shop", "0", "0", "data", "a;b"],
        ["purge"],
        ["purge", "/"],
        ["purge", ".."],
        ["purge", "shop", "extra"],
        ["rm", "shop"],
    ],
)
def test_helper_checks_its_arguments_itself(root, argv, capsys):
    assert storage.helper(argv, str(root)) in (1, 2)
    assert list(root.iterdir()) == []
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_helper_purges_one_apps_storage_only(root, capsys):
    for app in ("shop", "other"):
        (root / app / "data").mkdir(parents=True)
        (root / app / "data" / "f").write_text("x")
    (root / "shop" / "data" / "link").symlink_to(root / "other")
    assert storage.helper(["purge", "shop"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "removed"
    assert not (root / "shop").exists() and (root / "other" / "data" / "f").exists()
    assert storage.helper(["purge", "shop"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "absent"


def test_helper_renames_one_apps_storage_never_over_another(root, capsys):
    for app in ("shop", "taken"):
        (root / app / "data").mkdir(parents=True)
        (root / app / "data" / "f").write_text(app)
    assert storage.helper(["rename", "shop", "taken"], str(root)) == 1
    assert "exists already" in capsys.readouterr().err
    assert storage.helper(["rename", "shop", "store"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "renamed"
    assert (root / "store" / "data" / "f").read_text() == "shop" and not (root / "shop").exists()
    assert storage.helper(["rename", "shop", "again"], str(root)) == 0
    assert capsys.readouterr().out.strip() == "absent"
    for bad in (["rename", "store", "../x"], ["rename", "store"], ["rename", "..", "x"]):
        assert storage.helper(bad, str(root)) in (1, 2)
    assert (root / "store").is_dir()
