"""Backing services: names, the container each server gets, its URL and commands, as data (no engine)."""

import shlex

import pytest

from provisioner.hostcmd import commands, names, services
from provisioner.hostcmd.commands.base import UserError
from provisioner.hostcmd.main import dispatch
from provisioner.hostcmd.services import POSTGRES, REDIS, Service
from provisioner.hostcmd.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(services_dir=str(tmp_path / "services"), apps_dir=str(tmp_path / "apps"))


@pytest.mark.parametrize(
    "name",
    ["", "..", "../etc", "/etc", "a;id", "$(id)", "A", "x" * 31, "-rf", "a b", "db/..", "é", "1db", "a_b"],
)
def test_hostile_names_are_refused_before_any_path(settings, name, tmp_path):
    with pytest.raises(names.NameError_, match="invalid service name"):
        Service(settings, POSTGRES, name)
    for verb in ("postgres:create", "redis:create", "postgres:info", "postgres:export", "redis:destroy"):
        with pytest.raises(UserError, match="invalid service name"):
            dispatch([verb, name], settings)
    assert not (tmp_path / "services").exists()  # nothing made


def test_a_valid_name_is_its_directory_container_and_network(settings):
    db = Service(settings, POSTGRES, "orders-db")
    assert db.dir == services.Path(settings.services_dir) / "postgres" / "orders-db"
    assert db.container == "provisioner-postgres-orders-db"
    assert db.network == "provisioner-postgres.orders-db"


def test_the_server_container_publishes_nothing_and_drops_privileges(settings):
    body = Service(settings, POSTGRES, "db").body("provisioner/postgres:15-bookworm")
    host = body["HostConfig"]
    assert "PortBindings" not in host and "ExposedPorts" not in body
    assert host["NetworkMode"] == "provisioner-postgres.db"
    assert host["CapDrop"] == ["ALL"] and "SYS_ADMIN" not in host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host["Memory"] == 512 * 1024**2
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert mounts[services.DATA]["Source"].endswith("/postgres/db/data")
    assert mounts[services.PASSWORD]["ReadOnly"] is True
    assert body["StopSignal"] == "SIGINT"  # postgres' fast shutdown
    # The password is read from the mounted file: it is in no argument or variable of the container.
    assert "PASSWORD" not in " ".join(body["Env"])
    assert body["Env"] == ["PG_VERSION=15", "DB_NAME=db"]


def test_redis_gets_its_own_memory_limit_and_append_only_persistence(settings):
    body = Service(settings, REDIS, "cache").body("provisioner/redis:stack-bookworm")
    assert body["HostConfig"]["Memory"] == 256 * 1024**2
    assert "appendonly yes" in body["Entrypoint"][2]
    assert body["Env"] == []


def test_urls_name_the_container_and_hide_the_password_on_request(settings):
    db = Service(settings, POSTGRES, "db")
    assert db.url(password="s3cret") == "postgres://postgres:s3cret@provisioner-postgres-db:5432/db"
    assert Service(settings, REDIS, "c").url(password="p") == "redis://:p@provisioner-redis-c:6379"


def test_a_second_service_of_a_kind_gets_its_own_variable():
    assert services.alias_var(POSTGRES, "orders-db") == "DATABASE_ORDERS_DB_URL"
    assert services.alias_var(REDIS, "jobs") == "REDIS_JOBS_URL"


def test_passwords_never_reach_a_command_line():
    ping = shlex.join(services.ping_argv(REDIS, "provisioner-redis-c", "stack"))
    assert "REDISCLI_AUTH=" in ping and " -a " not in ping
    assert services.ping_argv(POSTGRES, "provisioner-postgres-db", "15")[-4:] == [
        "/usr/lib/postgresql/15/bin/pg_isready",
        "-q",
        "-h",
        "/run/postgresql",
    ]
    assert services.restore_argv(Service(Settings(), POSTGRES, "db"))[-2:] == [
        "--single-transaction",
        "--exit-on-error",
    ]


def test_the_image_recipe_follows_the_version_and_the_stack(settings):
    a = services.dockerfile(POSTGRES, settings)
    b = services.dockerfile(
        POSTGRES, Settings(postgres_version="17", run_image="provisioner/stack-run:trixie")
    )
    assert "postgresql-15" in a and "FROM provisioner/stack-run:bookworm" in a
    assert "postgresql-17" in b and "FROM provisioner/stack-run:trixie" in b
    assert a.rsplit("=", 1)[1] != b.rsplit("=", 1)[1]  # another recipe label: another image
    assert services.image_of(POSTGRES, settings) == "provisioner/postgres:15-bookworm"


def test_unknown_services_and_missing_force_are_clear_refusals(settings):
    with pytest.raises(UserError, match="no postgres service named 'db'"):
        dispatch(["postgres:info", "db"], settings)
    with pytest.raises(UserError, match="usage: postgres:link NAME APP"):
        dispatch(["postgres:link"], settings)
    assert commands.find("redis:export") is None  # Redis has no dump format of its own here


def test_every_service_command_is_for_keys_allowed_every_app():
    for name in ("postgres:create", "postgres:link", "postgres:export", "redis:destroy", "postgres:backup"):
        command = commands.find(name)
        assert command is not None and command.scope == "host", name
