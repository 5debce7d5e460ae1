import dataclasses
import os
import time

from provisioner.hostcmd import cleanup
from provisioner.hostcmd.store import Release


def rel(version, image):
    return Release(version=version, image=image, processes={"web": "x"}, port=5000)


def test_keeps_the_last_n_releases_and_the_current_one():
    releases = [rel(v, f"provisioner-app/a:v{v}") for v in range(1, 8)]
    assert cleanup.releases_to_keep(releases, releases[-1], 3) == [5, 6, 7]
    # after a rollback the current release may be old: it stays
    assert cleanup.releases_to_keep(releases, releases[1], 3) == [2, 5, 6, 7]
    assert cleanup.releases_to_keep([], None, 3) == []


def test_images_of_kept_releases_and_running_containers_stay():
    # config:set makes releases that reuse the image of the build before them
    releases = [
        rel(1, "provisioner-app/a:v1"),
        rel(2, "provisioner-app/a:v2"),
        rel(3, "provisioner-app/a:v2"),
        rel(4, "provisioner-app/a:v4"),
        rel(5, "provisioner-app/a:v4"),
    ]
    images = ["provisioner-app/a:v1", "provisioner-app/a:v2", "provisioner-app/a:v4", "provisioner-app/a:v9"]
    kept = cleanup.releases_to_keep(releases, releases[-1], 3)
    assert cleanup.images_to_remove(images, releases, kept, set()) == [
        "provisioner-app/a:v1",
        "provisioner-app/a:v9",
    ]
    assert cleanup.images_to_remove(images, releases, kept, {"provisioner-app/a:v1"}) == [
        "provisioner-app/a:v9"
    ]


def test_the_dependency_image_of_a_kept_release_stays():
    old, new = (
        dataclasses.replace(rel(v, f"provisioner-app/a:v{v}"), base_image=f"provisioner-app/a:deps-{v}")
        for v in (1, 2)
    )
    images = [old.image, old.base_image, new.image, new.base_image]
    assert cleanup.images_to_remove(images, [old, new], [2], set()) == [old.base_image, old.image]


def test_only_old_work_directories_of_this_user_are_stale(tmp_path):
    old = tmp_path / "provisioner-build-a-x"
    new = tmp_path / "provisioner-env-a-y"
    other = tmp_path / "something-else"
    for path in (old, new, other):
        path.mkdir()
    past = time.time() - 2 * cleanup.STALE_TMP_SECONDS
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    assert cleanup.stale_temp_dirs(tmp_path, time.time()) == [old]
