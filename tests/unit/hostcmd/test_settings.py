"""Host settings: the role-written JSON files merged over the defaults, and the proxy environment file."""

import dataclasses
import json

import pytest

from provisioner.hostcmd import settings as settings_module
from provisioner.hostcmd.settings import Settings


def write(directory, name, data):
    (directory / name).write_text(json.dumps(data))


def test_load_without_files_gives_the_defaults(tmp_path):
    assert Settings.load(tmp_path) == Settings()
    assert Settings().user == "deploy" and Settings().domain == ""


def test_load_merges_host_json_then_deploy_json(tmp_path):
    write(tmp_path, "host.json", {"domain": "apps.example.com", "user": "from-host", "keep_releases": 9})
    write(tmp_path, "deploy.json", {"user": "from-deploy", "memory_limit": "1g", "retire_grace": 0.5})
    loaded = Settings.load(tmp_path)
    assert loaded.domain == "apps.example.com"  # only in host.json
    assert loaded.user == "from-deploy"  # deploy.json wins
    assert loaded.keep_releases == 9 and loaded.memory_limit == "1g" and loaded.retire_grace == 0.5
    assert loaded.apps_dir == Settings().apps_dir  # in neither: the default


@pytest.mark.parametrize("name", ["host.json", "deploy.json"])
def test_load_with_only_one_file(tmp_path, name):
    write(tmp_path, name, {"domain": "1.2.3.4.sslip.io"})
    assert Settings.load(tmp_path) == Settings(domain="1.2.3.4.sslip.io")


def test_load_ignores_unknown_keys_and_other_files(tmp_path):
    write(tmp_path, "deploy.json", {"container_port": 8000, "retired_setting": True, "_comment": "x"})
    write(tmp_path, "other.json", {"domain": "not read"})
    assert Settings.load(tmp_path) == Settings(container_port=8000)


def test_load_reports_a_broken_file(tmp_path):
    (tmp_path / "deploy.json").write_text("{not json")
    with pytest.raises(json.JSONDecodeError):
        Settings.load(tmp_path)


def test_from_data_later_sources_win_and_unknown_keys_are_ignored():
    assert Settings.from_data() == Settings()
    first = {"domain": "a.example", "build_min_free_mb": 10, "unknown": 1}
    second = {"domain": "b.example"}
    merged = Settings.from_data(first, second)
    assert merged == Settings(domain="b.example", build_min_free_mb=10)
    assert first == {"domain": "a.example", "build_min_free_mb": 10, "unknown": 1}  # not changed


def test_from_data_knows_every_field():
    values = {f.name: f"value-{f.name}" for f in dataclasses.fields(Settings)}
    assert dataclasses.asdict(Settings.from_data(values)) == values


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().domain = "x"  # type: ignore[misc]


def test_paths(tmp_path):
    files = ("host.json", "deploy.json", "tls.json", "services.json", "swarm.json")
    assert Settings.paths(tmp_path) == [tmp_path / n for n in files]
    assert Settings.paths() == [settings_module.CONFIG_DIR / n for n in files]


def test_load_without_a_directory_reads_the_config_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(settings_module, "CONFIG_DIR", tmp_path)
    write(tmp_path, "host.json", {"domain": "from-config-dir.example"})
    assert Settings.load().domain == "from-config-dir.example"


def test_app_url():
    assert Settings(domain="1.2.3.4.sslip.io").app_url("shop") == "http://shop.1.2.3.4.sslip.io"
    assert Settings().app_url("shop") == "http://shop"


# --- proxy.env ---------------------------------------------------------------------------------------------


def test_proxy_vars_without_the_file(tmp_path):
    assert Settings(proxy_env=str(tmp_path / "proxy.env")).proxy_vars() == {}


def test_proxy_vars_reads_key_value_lines(tmp_path):
    path = tmp_path / "proxy.env"
    path.write_text(
        "# Ansible managed\n"
        "# Proxy settings for services started by provisioner (EnvironmentFile= format).\n"
        "\n"
        "http_proxy=http://proxy.internal:3128\n"
        'HTTP_PROXY="http://proxy.internal:3128"\n'
        "   \n"
        "  https_proxy=http://user:p%40ss@proxy.internal:3128  \n"
        "NO_PROXY=localhost,127.0.0.1,.internal\n"
        "PROXY_QUERY=http://proxy.internal/?a=b=c\n"
        "EMPTY=\n"
        "a line without an equals sign\n"
        "=no key\n"
        "#COMMENTED=out\n"
    )
    assert Settings(proxy_env=str(path)).proxy_vars() == {
        "http_proxy": "http://proxy.internal:3128",
        "HTTP_PROXY": "http://proxy.internal:3128",
        "https_proxy": "http://user:p%40ss@proxy.internal:3128",
        "NO_PROXY": "localhost,127.0.0.1,.internal",
        "PROXY_QUERY": "http://proxy.internal/?a=b=c",
        "EMPTY": "",
    }


def test_proxy_vars_later_lines_win(tmp_path):
    path = tmp_path / "proxy.env"
    path.write_text("HTTP_PROXY=http://old:3128\nHTTP_PROXY=http://new:3128\n")
    assert Settings(proxy_env=str(path)).proxy_vars() == {"HTTP_PROXY": "http://new:3128"}
