import os
import stat
import threading
import time

import pytest

from provisioner.hostcmd.procfile import HealthCheck
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App, LockTimeout, Release, list_apps


@pytest.fixture
def settings(tmp_path):
    return Settings(apps_dir=str(tmp_path / "apps"), domain="1.2.3.4.sslip.io")


def test_config_is_private_and_round_trips_any_value(settings):
    app = App(settings, "shop")
    value = "line1\nline2 'quoted' \"double\" $(rm -rf /) `id` \\ ; | &"
    app.set_config({"SECRET": value})
    assert App(settings, "shop").config() == {"SECRET": value}
    mode = stat.S_IMODE(os.stat(app.dir / "config.json").st_mode)
    assert mode == 0o600


def test_releases_bookkeeping(settings):
    app = App(settings, "shop")
    assert app.next_version() == 1 and app.current() is None
    app.record_release(Release(version=1, image="i:v1", processes={"web": "w"}, port=5000))
    app.record_release(Release(version=2, image="i:v2", processes={"web": "w"}, port=5000, config={"A": "1"}))
    app.set_current(app.release(2))
    assert app.next_version() == 3
    assert [r.version for r in app.releases()] == [1, 2]
    assert app.current() == app.release(2) and app.current().config == {"A": "1"}
    mode = stat.S_IMODE(os.stat(app.dir / "releases.json").st_mode)
    assert mode == 0o600  # releases hold the config they ran with


def test_release_records_of_older_versions_still_load(settings):
    """current.json as written before Release was a dataclass (and with a key it no longer knows)."""
    app = App(settings, "shop")
    app.dir.mkdir(parents=True)
    (app.dir / "current.json").write_text(
        '{"version": 4, "image": "provisioner-app/shop:v4", "kind": "dockerfile", "commit": "abc",'
        ' "processes": {"web": ""}, "release_command": null, "port": 8080, "config": {},'
        ' "health": {"kind": "tcp", "path": "/", "timeout": 30}, "created": "t", "description": "d",'
        ' "obsolete": 1}'
    )
    current = app.current()
    assert current.version == 4 and current.health == HealthCheck("tcp", "/", 30) and current.port == 8080
    assert current.predeploy is None and current.postdeploy is None  # before app.json deployment tasks


def test_release_records_keep_the_deploy_tasks_of_their_build(settings):
    app = App(settings, "shop")
    rel = Release(
        version=1, image="i:v1", processes={"web": "w"}, port=5000, predeploy="./pre", postdeploy="x"
    )
    app.record_release(rel)
    app.set_current(rel)
    assert app.current() == rel and app.release(1) == rel
    again = rel.again(2, "rollback to v1")
    assert (again.predeploy, again.postdeploy) == ("./pre", "x")


def test_scale_domains_and_listing(settings):
    app = App(settings, "shop")
    assert app.scale() == {"web": 1}
    app.set_scale({"web": 2, "worker": 1})
    app.set_domains(["b.example.com", "a.example.com", "a.example.com"])
    assert app.all_domains() == ["shop.1.2.3.4.sslip.io", "a.example.com", "b.example.com"]
    app.create(lambda repo: repo.mkdir(parents=True))
    os.mkdir(os.path.join(settings.apps_dir, "not_an_app"))
    assert list_apps(settings) == ["shop"]


def test_lock_serializes_and_times_out(settings):
    app = App(settings, "shop")
    app.dir.mkdir(parents=True)
    said = []
    with app.lock(), pytest.raises(LockTimeout), App(settings, "shop").lock(timeout=0.6, say=said.append):
        pass
    assert said and "waiting" in said[0]
    order = []

    def hold():
        with app.lock():
            order.append("first")
            time.sleep(0.5)

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with App(settings, "shop").lock(timeout=5):
        order.append("second")
    thread.join()
    assert order == ["first", "second"]


@pytest.mark.parametrize("content", ["", '{"version": 3,', "\x00\x00"])
def test_a_damaged_state_file_names_itself_and_a_way_out(settings, content):
    from provisioner.hostcmd.store import StoreError

    app = App(settings, "shop")
    app.dir.mkdir(parents=True)
    (app.dir / "current.json").write_text(content)
    with pytest.raises(StoreError) as info:
        app.current()
    message = str(info.value)
    assert str(app.dir / "current.json") in message and "is damaged" in message
    assert "rollback shop vN" in message and "\n" not in message
    assert app.current(tolerant=True) is None
    (app.dir / "config.json").write_text("{")
    with pytest.raises(StoreError, match=r"config\.json is damaged \(not valid JSON\): .*config:set shop"):
        app.config()


def test_state_files_reach_the_disk_before_they_replace_the_old(settings, monkeypatch):
    import provisioner.hostcmd.store as store

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    app = App(settings, "shop")
    app.set_config({"A": "1"})
    assert synced == [False, True]  # the file, then its directory
    assert app.config() == {"A": "1"}


def test_a_command_that_waited_while_the_app_was_destroyed_creates_nothing(settings):
    from provisioner.hostcmd.store import AppGone

    app = App(settings, "shop")
    app.dir.mkdir(parents=True)
    app.set_config({"A": "1"})

    def destroy():
        with app.lock():
            time.sleep(0.6)
            app.destroy()

    thread = threading.Thread(target=destroy)
    thread.start()
    time.sleep(0.1)
    waiter = App(settings, "shop")
    with pytest.raises(AppGone, match="shop was destroyed while this command waited"), waiter.lock():
        waiter.set_config({"B": "2"})  # config:set after the wait: must not run
    thread.join()
    assert not app.dir.exists()
    with pytest.raises(AppGone, match="no app named 'shop'"), waiter.lock():
        pass
    assert not app.dir.exists()


def test_a_renamed_apps_records_name_its_images_under_the_new_name(settings):
    from provisioner.hostcmd.commands import apps

    old = App(settings, "shop")
    v1 = Release(
        version=1, image="provisioner-app/shop:v1", processes={"web": "w"}, port=5000, config={"A": "1"}
    )
    v2 = Release(
        version=2, image="provisioner-app/shop:v2", processes={"web": "w"}, port=5000,
        base_image="provisioner-app/shop:deps-abc",
    )  # fmt: skip
    old.record_release(v1)
    old.record_release(v2)
    old.set_current(v2)
    new = App(settings, "store")
    os.rename(old.dir, new.dir)
    apps.rename_records(new, "shop")
    assert [r.image for r in new.releases()] == ["provisioner-app/store:v1", "provisioner-app/store:v2"]
    assert new.current().image == "provisioner-app/store:v2"
    assert new.current().base_image == "provisioner-app/store:deps-abc"
    assert new.release(1).config == {"A": "1"}  # nothing else changes
    # a name that merely starts like the old one is left alone
    assert (
        apps.renamed_image("provisioner-app/shopfront:v1", "shop", "store") == "provisioner-app/shopfront:v1"
    )
