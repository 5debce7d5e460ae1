"""Persistent storage end to end: a real app writes a file into its storage mount, which survives redeploys,
restarts, a rollback and a host restart; hostile mount specs are refused and create nothing; apps:destroy
keeps the storage unless --purge-storage."""

from __future__ import annotations

import re
import shlex
import subprocess
import time

import pytest

from provisioner import sandbox
from tests.e2e.conftest import Deployer, app_host, get, pushed_ok, root_exec

APP = "notes"
STORAGE = "/var/lib/provisioner/storage"
TOOL = "/usr/local/sbin/provisioner-storage"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args[-1]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def body(box: sandbox.Sandbox, seconds: float = 90) -> str:
    """The app's answer once it answers (it may be starting again)."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            status, last = get(box, app_host(APP))
            if status == 200:
                return last
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{APP} did not answer within {seconds:.0f} s; last: {last!r}")


def write(box: sandbox.Sandbox, text: str) -> None:
    status, answer = get(box, app_host(APP), f"/write?text={text}")
    assert status == 200, answer


def on_host(box: sandbox.Sandbox, path: str) -> str:
    """A file or directory listing under the storage directory, as root sees it ('' when missing)."""
    quoted = shlex.quote(path)
    return root_exec(
        box, f"if [ -d {quoted} ]; then ls -A {quoted}; elif [ -e {quoted} ]; then cat {quoted}; fi"
    )


@pytest.fixture(scope="module")
def mounted(deploy_box, dev: Deployer) -> sandbox.Sandbox:
    """The notes app with the storage `data` at /srv/data (mounted before its first push), one note written;
    leftovers of an earlier run go first."""
    dev.ssh("apps:destroy", APP, "--force", "--purge-storage")
    root_exec(deploy_box, f"rm -rf {STORAGE}/{APP}", check=False)
    ok(dev.ssh("apps:create", APP))
    said = ok(dev.ssh("storage:mount", APP, "data:/srv/data"))
    assert "has no release yet" in said, said
    assert ok(dev.ssh("storage", APP)).startswith(f"data:/srv/data  ({STORAGE}/{APP}/data)")
    pushed_ok(dev.push(dev.repo(APP, "notes"), APP), APP)
    write(deploy_box, "first")
    return deploy_box


def test_the_app_writes_as_its_user_into_a_directory_it_owns(mounted):
    # The image's USER is the name `app`: resolved through its /etc/passwd to 1000:1000.
    assert "notes one uid=1000:1000 notes=first" in body(mounted)
    owner = root_exec(mounted, f"stat -c '%u:%g %a' {STORAGE}/{APP}/data {STORAGE}/{APP} {STORAGE}").split()
    assert owner == ["1000:1000", "755", "0:0", "755", "0:0", "700"], owner
    assert on_host(mounted, f"{STORAGE}/{APP}/data/notes.txt") == "first\n"


def test_a_redeploy_restart_and_config_change_keep_it(mounted, dev):
    repo = dev.workdir / APP
    (repo / "server.py").write_text((repo / "server.py").read_text().replace('MARK = "one"', 'MARK = "two"'))
    dev.commit(repo, "two")
    pushed_ok(dev.push(repo, APP), APP)
    assert "notes two uid=1000:1000 notes=first" in body(mounted)
    write(mounted, "second")
    ok(dev.ssh("ps:restart", APP))
    ok(dev.ssh("ps:scale", APP, "web=2"))
    ok(dev.ssh("config:set", APP, "COLOR=blue"))
    for _ in range(4):  # both web processes see the same files
        assert "notes two uid=1000:1000 notes=first,second" in body(mounted)


def test_a_rollback_keeps_it(mounted, dev):
    first = [ln for ln in ok(dev.ssh("releases", APP)).splitlines() if "deploy" in ln][-1].split()[0]
    ok(dev.ssh("rollback", APP, first))
    assert "notes one uid=1000:1000 notes=first,second" in body(mounted)
    write(mounted, "third")
    assert "notes=first,second,third" in body(mounted)


def test_run_a_migration_like_command_with_the_apps_storage_config_and_exit_code(mounted, dev):
    """`run` as a migration would: the current release's image, the app's config (one just stored with
    --no-restart too), its storage; output and exit code reach the SSH client."""
    ok(dev.ssh("config:set", APP, "SCHEMA=0042", "--no-restart"))
    script = (
        'echo "schema $SCHEMA as $(id -u)" > /srv/data/migrated.txt; echo applied; echo careful >&2; exit 3'
    )
    result = dev.ssh("run", APP, "sh", "-c", script)
    assert result.returncode == 3, result
    assert "applied" in result.stdout and "careful" in result.stderr, result
    assert on_host(mounted, f"{STORAGE}/{APP}/data/migrated.txt") == "schema 0042 as 1000\n"
    missing = dev.ssh("run", APP, "no-such-command", "--now")
    assert missing.returncode == 127 and "no-such-command: command not found" in missing.stderr, missing
    logged = root_exec(mounted, f"cat /var/lib/provisioner/apps/{APP}/runs.log")
    assert "no-such-command --now" in logged and "0042" not in logged, logged  # the command, not config
    assert "notes one uid=1000:1000 notes=first,second,third" in body(mounted)  # the app kept serving


def test_apps_rename_moves_everything_and_only_the_new_name_answers(mounted, dev):
    """apps:rename (Dokku's): the repository, config, releases, domains and storage follow the app; it
    answers under the new name only, its old name 404; its releases still roll back; renamed back after."""
    ok(dev.ssh("domains:add", APP, "notes.rename.example"))
    releases = ok(dev.ssh("releases", APP))
    dev.ssh("apps:create", "notes-taken")  # (it may be left from an earlier run)
    refused = dev.ssh("apps:rename", APP, "notes-taken")
    assert refused.returncode == 1 and "exists already" in refused.stderr, refused
    ok(dev.ssh("apps:destroy", "notes-taken", "--force"))
    for hostile in ("../etc", "Journal", "a;id", "x" * 64):
        bad = dev.ssh("apps:rename", APP, hostile)
        assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad
    said = ok(dev.ssh("apps:rename", APP, "journal"))
    assert "renamed notes to journal" in said, said
    assert get(mounted, app_host(APP))[0] == 404
    status, answer = get(mounted, app_host("journal"))
    assert status == 200 and "notes=first,second,third" in answer, answer
    assert "notes=first,second,third" in get(mounted, "notes.rename.example")[1]
    assert ok(dev.ssh("config:get", "journal", "SCHEMA")).strip() == "0042"
    assert ok(dev.ssh("storage", "journal")).startswith(f"data:/srv/data  ({STORAGE}/journal/data)")
    assert on_host(mounted, f"{STORAGE}/journal/data/notes.txt") == "first\nsecond\nthird\n"
    assert not on_host(mounted, f"{STORAGE}/{APP}")
    listed = ok(dev.ssh("apps:list")).split()
    assert "journal" in listed and APP not in listed
    assert len(ok(dev.ssh("releases", "journal")).splitlines()) == len(releases.splitlines())
    second = next(ln for ln in releases.splitlines() if "deploy" in ln).split()[0]  # the latest push
    ok(dev.ssh("rollback", "journal", second))  # an image of before the rename, under the new name
    assert "notes two" in get(mounted, app_host("journal"))[1]
    names = root_exec(mounted, "docker ps --format '{{.Names}}' && docker images --format '{{.Repository}}'")
    assert f"provisioner-app/{APP}\n" not in names + "\n" and not re.search(rf"^{APP}\.", names, re.M), names
    ok(dev.ssh("apps:rename", "journal", APP))
    ok(dev.ssh("domains:remove", APP, "notes.rename.example"))
    assert get(mounted, app_host("journal"))[0] == 404
    assert "notes two uid=1000:1000 notes=first,second,third" in body(mounted)


def test_a_host_restart_keeps_it(mounted, docker_client):
    docker_client.containers.get(sandbox.container_name(mounted.name)).restart(timeout=30)
    assert "notes=first,second,third" in body(mounted, seconds=120)
    sandbox.start(mounted.name, docker_client)  # running already: waits for sshd, for the tests after this


HOSTILE = [
    "/:/x",
    "/etc:/x",
    "/var/run/docker.sock",
    "/var/run/docker.sock:/var/run/docker.sock",
    "..:/x",
    "../../etc:/x",
    "a;rm -rf /:/x",
    "$(touch /tmp/pwned):/x",
    "x" * 31 + ":/x",
    ":/x",
    "evil:/",
    "evil:relative",
    "evil:/proc/x",
    "evil:/sys",
    "evil:/dev/shm",
    "evil:/srv/../etc",
    "evil:/srv/da ta",
]


@pytest.mark.parametrize("spec", HOSTILE)
def test_hostile_mounts_are_refused_and_create_nothing(mounted, dev, spec):
    result = dev.ssh("storage:mount", APP, spec)
    assert result.returncode == 1, result
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert ok(dev.ssh("storage", APP)).splitlines()[0].startswith("data:/srv/data")
    assert not set(on_host(mounted, STORAGE).split()) & {"evil", "etc", "x", "a", "..", "var"}
    assert on_host(mounted, f"{STORAGE}/{APP}").split() == ["data"]
    assert root_exec(mounted, "ls /tmp/pwned 2>/dev/null || true").strip() == ""


def test_the_root_helper_refuses_what_the_host_program_would_never_send(mounted):
    """The deploy user's sudo rule lets it run the helper with any words: the helper checks them itself."""
    hostile = (["create", "../etc", "0", "0", "x"], ["create", APP, "0", "0", "../x"], ["purge", "/"])
    hostile += (["rename", APP, "../etc"], ["rename", "..", "x"], ["rename", APP, "/"])
    for words in hostile:
        command = shlex.join(["sudo", "-n", TOOL, *words])
        result = root_exec(
            mounted, f"su -s /bin/sh deploy -c {shlex.quote(command)}; echo rc=$?", check=False
        )
        assert "rc=1" in result, result
    assert on_host(mounted, f"{STORAGE}/{APP}").split() == ["data"]
    assert root_exec(mounted, "test -d /etc && echo etc-there").strip() == "etc-there"


def test_unmount_hides_it_and_keeps_the_files(mounted, dev):
    said = ok(dev.ssh("storage:unmount", APP, "data"))
    assert "its files are kept" in said
    assert "notes=(none" in body(mounted)
    assert "has no storage mounts" in ok(dev.ssh("storage:list", APP))
    assert on_host(mounted, f"{STORAGE}/{APP}/data/notes.txt") == "first\nsecond\nthird\n"


def test_destroy_keeps_storage_unless_purged(mounted, dev):
    ok(dev.ssh("storage:mount", APP, "data:/srv/data", "--no-restart"))
    said = ok(dev.ssh("apps:destroy", APP, "--force"))
    assert "kept its storage data" in said, said
    assert on_host(mounted, f"{STORAGE}/{APP}/data/notes.txt") == "first\nsecond\nthird\n"
    # A new app of the same name mounts it again; destroyed with --purge-storage, it is gone.
    ok(dev.ssh("apps:create", APP))
    ok(dev.ssh("storage:mount", APP, "data:/srv/data"))
    pushed_ok(dev.push(dev.workdir / APP, APP), APP)
    assert "notes two uid=1000:1000 notes=first,second,third" in body(mounted)
    said = ok(dev.ssh("apps:destroy", APP, "--force", "--purge-storage"))
    assert "removed its storage" in said, said
    assert root_exec(mounted, f"test -e {STORAGE}/{APP} && echo left || echo gone").strip() == "gone"
