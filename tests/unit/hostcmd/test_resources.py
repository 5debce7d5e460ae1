import os

import pytest

from provisioner.hostcmd import resources
from provisioner.hostcmd.commands import base, config
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App

SETTINGS = Settings(memory_limit="512m", memory_max="1g", cpus_max=0.0, pids_limit=512, pids_max=1024)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "below the minimum"),
        ("8m", "below the minimum"),
        ("2g", "above this host's maximum of 1g"),
        ("\u0661g", "invalid memory limit"),  # an Arabic-Indic digit
        ("-1", "invalid memory limit"),
        ("unlimited", "invalid memory limit"),
    ],
)
def test_no_memory_limit_can_lift_the_bound(text, message):
    with pytest.raises(resources.ResourceError, match=message):
        resources.check_memory(text, SETTINGS)


def test_limits_within_bounds_are_taken():
    assert resources.check_memory("256M", SETTINGS) == "256m"
    assert resources.check_cpus("0.5", SETTINGS) == 0.5
    assert resources.check_pids("256", SETTINGS) == 256


@pytest.mark.parametrize("text", ["0", "0.001", "abc", "\u00b2", "1e3", str((os.cpu_count() or 1) + 1)])
def test_bad_cpus(text):
    with pytest.raises(resources.ResourceError, match="cpus"):
        resources.check_cpus(text, SETTINGS)


@pytest.mark.parametrize("text", ["0", "8", "1025", "\u00b2", "-5", "many"])
def test_bad_pids(text):
    with pytest.raises(resources.ResourceError, match="pids must be a number from 16 to 1024"):
        resources.check_pids(text, SETTINGS)


@pytest.fixture
def app(tmp_path):
    a = App(Settings(**{**SETTINGS.__dict__, "apps_dir": str(tmp_path)}), "shop")
    a.dir.mkdir()
    return a


def test_the_apps_choice_then_memory_limit_then_the_host_default(app):
    assert resources.limits(app, {}) == resources.Limits("512m", 0.0, 512)
    assert resources.limits(app, {"MEMORY_LIMIT": "768m"}).memory == "768m"
    resources.store(app, {"memory": "256m", "cpus": 0.5, "pids": 128})
    assert resources.limits(app, {"MEMORY_LIMIT": "768m"}) == resources.Limits("256m", 0.5, 128)


def test_values_above_a_lowered_maximum_are_held_to_it(app):
    resources.store(app, {"memory": "4g", "pids": 100000})
    assert resources.limits(app, {}) == resources.Limits("1g", 0.0, 1024)
    resources.store(app, {})
    assert resources.limits(app, {"MEMORY_LIMIT": "0"}).memory == "512m"  # an old 0 never means unlimited


def test_config_set_memory_limit_is_bounded_before_it_is_stored():
    with pytest.raises(base.UserError, match="above this host's maximum"):
        config.check_memory_limit({"MEMORY_LIMIT": "8g"}, SETTINGS)
    with pytest.raises(base.UserError, match="below the minimum"):
        config.check_memory_limit({"MEMORY_LIMIT": "0"}, SETTINGS)
    config.check_memory_limit({"MEMORY_LIMIT": "1g", "OTHER": "x"}, SETTINGS)
