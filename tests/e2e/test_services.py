"""Backing services end to end: Postgres and Redis made on a provisioned sandbox, linked to a real app that
writes and reads through them, their data through redeploys and restarts, export and import, refusals,
and who can reach them."""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest

from provisioner import sandbox
from tests.conftest import record_figure
from tests.e2e.conftest import CONNECT, Deployer, app_host, container_ip, get, pushed_ok, root_exec

DB, CACHE, APP = "notes-db", "counter", "datastore"
COPY_DB, COPY_APP = "notes-copy", "datacopy"
SERVICES_DIR = "/var/lib/provisioner/services"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args[-1]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_for_body(box: sandbox.Sandbox, app: str, want: str, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    body = ""
    while time.monotonic() < deadline:
        try:
            status, body = get(box, app_host(app))
            if status == 200 and want in body:
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{app} did not answer with {want!r} within {seconds:.0f} s; last: {body!r}")


def write(box: sandbox.Sandbox, app: str, text: str) -> str:
    status, body = get(box, app_host(app), f"/write?text={text}")
    assert status == 200, body
    return body


def clean_slate(dev: Deployer) -> None:
    """Leftovers of an earlier run on a reused host: its apps and services go first."""
    for app in (APP, COPY_APP):
        dev.ssh("apps:destroy", app, "--force")
    for kind, name in (("postgres", DB), ("redis", CACHE), ("postgres", COPY_DB)):
        for linked in (APP, COPY_APP):
            dev.ssh(f"{kind}:unlink", name, linked, "--no-restart")
        dev.ssh(f"{kind}:destroy", name, "--force")


@pytest.fixture(scope="module")
def linked(deploy_box, dev) -> sandbox.Sandbox:
    """The datastore app, pushed with a Postgres and a Redis service linked, and one row written."""
    clean_slate(dev)
    started = time.monotonic()
    created = ok(dev.ssh("postgres:create", DB))
    assert f"created postgres {DB}" in created
    record_figure("postgres:create", f"{time.monotonic() - started:.1f} s (the image built on first use)")
    ok(dev.ssh("redis:create", CACHE))
    ok(dev.ssh("apps:create", APP))
    linked = dev.ssh("postgres:link", DB, APP)
    ok(linked)
    assert "DATABASE_URL" in linked.stderr and "has no release yet" in linked.stderr
    ok(dev.ssh("redis:link", CACHE, APP))
    pushed_ok(dev.push(dev.repo(APP, "datastore"), APP), APP)
    assert write(deploy_box, APP, "first").startswith("wrote id=1 count=1"), "the first row and count"
    return deploy_box


def test_an_app_writes_and_reads_through_its_services(linked):
    assert "notes=first count=1" in wait_for_body(linked, APP, "datastore v1")
    assert write(linked, APP, "second").startswith("wrote id=2 count=2")
    assert "notes=first,second count=2" in get(linked, app_host(APP))[1]


def test_info_list_and_the_password_kept_out_of_output(linked, dev):
    info = ok(dev.ssh("postgres:info", DB))
    assert "Status:       running" in info and "Version:      15" in info, info
    assert f"Linked apps:  {APP} (DATABASE_URL)" in info, info
    assert f"postgres://postgres:********@provisioner-postgres-{DB}:5432/{DB}" in info, info
    password = root_exec(linked, f"cat {SERVICES_DIR}/postgres/{DB}/password").strip()
    assert len(password) >= 32 and password not in info
    assert password in ok(dev.ssh("postgres:info", DB, "--show-url"))
    mode = root_exec(linked, f"stat -c '%a %U' {SERVICES_DIR}/postgres/{DB}/password").strip()
    assert mode == "600 deploy", mode
    # Not on any command line on the host, nor in the server's logs.
    assert password not in root_exec(linked, "ps -eo args")
    assert password not in root_exec(linked, f"docker logs provisioner-postgres-{DB} 2>&1")
    listing = ok(dev.ssh("redis:list"))
    assert CACHE in listing and "running" in listing and APP in listing, listing
    assert "Status:       running" in ok(dev.ssh("redis:info", CACHE))


def test_data_survives_redeploy_restart_and_server_restart(linked, dev):
    repo = dev.workdir / APP
    app_py = repo / "app.py"
    app_py.write_text(app_py.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    dev.commit(repo, "v2")
    pushed_ok(dev.push(repo, APP), APP)
    assert "notes=first,second count=2" in wait_for_body(linked, APP, "datastore v2")
    ok(dev.ssh("ps:restart", APP))
    assert "notes=first,second count=2" in wait_for_body(linked, APP, "datastore v2")
    root_exec(linked, f"docker restart provisioner-postgres-{DB} provisioner-redis-{CACHE} >/dev/null")
    assert "notes=first,second count=2" in wait_for_body(linked, APP, "notes=first,second")


def test_data_survives_a_host_restart(linked, dev, docker_client):
    # (Postgres logs sequences 32 ahead: after the server's restart, ids jump; the rows are what counts.)
    assert write(linked, APP, "third").endswith(" count=3\n")
    docker_client.containers.get(sandbox.container_name(linked.name)).restart(timeout=30)
    body = wait_for_body(linked, APP, "notes=first,second,third", seconds=120)
    assert "count=3" in body, body
    sandbox.start(linked.name, docker_client)  # running already: waits for sshd, for the tests after this one


def test_export_then_import_into_a_second_database(linked, dev, tmp_path):
    dump = tmp_path / "notes.dump"
    argv = [*dev.env["GIT_SSH_COMMAND"].split(), "-p", str(linked.ssh_port), "deploy@127.0.0.1"]
    with dump.open("wb") as fh:
        exported = subprocess.run(
            [*argv, f"postgres:export {DB}"], stdout=fh, stderr=subprocess.PIPE, timeout=300
        )
    assert exported.returncode == 0, exported.stderr
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    ok(dev.ssh("postgres:create", COPY_DB))
    with dump.open("rb") as fh:
        imported = subprocess.run(
            [*argv, f"postgres:import {COPY_DB}"], stdin=fh, capture_output=True, text=True, timeout=300
        )
    assert imported.returncode == 0, imported.stderr
    ok(dev.ssh("apps:create", COPY_APP))
    ok(dev.ssh("postgres:link", COPY_DB, COPY_APP))
    pushed_ok(dev.push(dev.repo(COPY_APP, "datastore"), COPY_APP), COPY_APP)
    body = wait_for_body(linked, COPY_APP, "datastore v1")
    assert "notes=first,second,third" in body, body
    # A bad dump imports nothing and says so.
    bad = subprocess.run(
        [*argv, f"postgres:import {COPY_DB}"], input=b"not a dump", capture_output=True, timeout=120
    )
    assert bad.returncode != 0 and b"nothing was imported" in bad.stderr, bad.stderr
    assert "notes=first,second,third" in get(linked, app_host(COPY_APP))[1]


def test_backups_are_made_listed_and_timed(linked, dev):
    made = ok(dev.ssh("postgres:backup", DB))
    assert f"backed up {DB}" in made
    listed = ok(dev.ssh("postgres:backups", DB))
    assert f"{DB}-" in listed and ".dump" in listed, listed
    assert root_exec(linked, "systemctl is-enabled provisioner-backup.timer").strip() == "enabled"
    root_exec(linked, "systemctl start provisioner-backup.service")  # what the timer runs, as the deploy user
    assert len(ok(dev.ssh("postgres:backups", DB)).splitlines()) >= 2


def test_verify_checks_that_each_server_answers(linked, cli, tmp_path):
    out = tmp_path / "verify.json"
    args = ("verify", linked.name, "--only", "backing_services", "--json", str(out))
    assert cli(*args).rc == 0
    root_exec(linked, f"docker stop provisioner-postgres-{DB} >/dev/null")
    try:
        failed = cli(*args)
        assert failed.rc == 1, failed.stdout
        checks = json.loads(out.read_text())["hosts"][linked.name]["checks"]
        details = [c["detail"] for c in checks if c["outcome"] == "failed"]
        assert len(details) == 1 and f"postgres {DB} is exited" in details[0], details
    finally:
        root_exec(linked, f"docker start provisioner-postgres-{DB} >/dev/null")
    wait_for_body(linked, APP, "notes=first")


HOSTILE = ["..", "../etc", "/etc", "a;id", "$(id)", "A", "x" * 31, "", "-rf", "a b", "db/..", "é"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_service_names_are_refused(linked, dev, name):
    before = root_exec(linked, f"find {SERVICES_DIR} -maxdepth 2 | sort; docker ps -aq | sort")
    for kind in ("postgres", "redis"):
        result = dev.ssh(f"{kind}:create", name)
        assert result.returncode != 0, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "invalid service name" in result.stderr or "usage" in result.stderr, result.stderr
    assert root_exec(linked, f"find {SERVICES_DIR} -maxdepth 2 | sort; docker ps -aq | sort") == before


def test_a_linked_service_is_not_destroyed(linked, dev):
    refused = dev.ssh("postgres:destroy", DB, "--force")
    assert refused.returncode != 0 and f"linked to {APP}" in refused.stderr, refused.stderr
    assert "Status:       running" in ok(dev.ssh("postgres:info", DB))
    assert dev.ssh("postgres:destroy", DB).returncode != 0  # without --force


def test_services_are_reachable_only_from_linked_apps(linked, dev, docker_client):
    """No port on the host; from outside the host nothing answers; an app not linked (the copy app is
    linked to the copy database only) cannot connect to the first database, a linked one can."""
    listening = root_exec(linked, "ss -Hltn")
    assert ":5432 " not in listening and ":6379 " not in listening, listening
    address = root_exec(
        linked,
        "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "
        f"provisioner-postgres-{DB}",
    ).split()[0]

    def probe(app: str, host: str, port: int) -> str:
        name = root_exec(
            linked,
            f"docker ps -q --filter label=io.provisioner.app={app} --filter label=io.provisioner.process=web",
        ).split()[0]
        return root_exec(
            linked, f"docker exec {name} python3 -c {shlex.quote(CONNECT)} {host} {port}"
        ).strip()

    assert probe(APP, f"provisioner-postgres-{DB}", 5432) == "reached"  # the probe works
    assert probe(COPY_APP, address, 5432).startswith("unreachable")
    assert probe(COPY_APP, f"provisioner-redis-{CACHE}", 6379).startswith("unreachable")
    # From this machine (outside the host) to the host's address. (Not to the server's own address: it
    # is private to the host, and this machine would route it elsewhere.)
    for port in ("5432", "6379"):
        from_outside = subprocess.run(
            ["python3", "-c", CONNECT, container_ip(docker_client, linked), port],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert from_outside.stdout.startswith("unreachable"), (port, from_outside.stdout)


def test_unlink_removes_the_variable_and_the_route(linked, dev):
    ok(dev.ssh("redis:unlink", CACHE, APP))
    assert "REDIS_URL" not in ok(dev.ssh("config", APP))
    body = wait_for_body(linked, APP, "datastore v2")
    assert "count=" not in body, body  # the app no longer has REDIS_URL
    ok(dev.ssh("redis:destroy", CACHE, "--force"))
    assert CACHE not in ok(dev.ssh("redis:list"))
    assert (
        root_exec(linked, f"test -e {SERVICES_DIR}/redis/{CACHE} && echo kept || echo gone").strip() == "gone"
    )


def test_destroying_a_linked_app_unlinks_and_keeps_the_service(linked, dev):
    destroyed = ok(dev.ssh("apps:destroy", COPY_APP, "--force"))
    assert f"unlinked postgres {COPY_DB} from {COPY_APP}" in destroyed, destroyed
    assert "Linked apps:  -" in ok(dev.ssh("postgres:info", COPY_DB))
    networks = root_exec(linked, "docker network ls --format '{{.Name}}'").split()
    assert f"provisioner-app.{COPY_APP}" not in networks, networks
    ok(dev.ssh("postgres:destroy", COPY_DB, "--force"))
    assert COPY_DB not in ok(dev.ssh("postgres:list"))
