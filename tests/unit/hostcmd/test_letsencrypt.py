import pytest

from provisioner.hostcmd import tls
from provisioner.hostcmd.commands import letsencrypt
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App
from tests import certs


@pytest.fixture
def app(tmp_path):
    a = App(Settings(domain="example.com", apps_dir=str(tmp_path)), "shop")
    a.dir.mkdir()
    return a


def install(app, names, days, source="letsencrypt"):
    tls.install(app, tls.parse_bundle("".join(certs.make(names, days=days))), source, lambda: None)


def test_nothing_installed_or_a_custom_certificate_is_due(app):
    assert letsencrypt.due(app, force=False) == "no certificate yet"
    install(app, ["shop.example.com"], 90, source="custom")
    assert letsencrypt.due(app, force=False) == "no certificate yet"


def test_a_fresh_certificate_for_all_domains_is_not_due_unless_forced(app):
    install(app, ["shop.example.com"], 90)
    assert letsencrypt.due(app, force=False) is None
    assert letsencrypt.due(app, force=True) == "forced"


def test_due_within_the_renewal_window(app):
    install(app, ["shop.example.com"], 20)
    assert letsencrypt.due(app, force=False) == "20 days left"


def test_due_when_a_domain_is_not_covered(app):
    install(app, ["shop.example.com"], 90)
    app.set_domains(["www.shop.org"])
    assert letsencrypt.due(app, force=False) == "www.shop.org not covered"


def test_state_changes_merge(app):
    letsencrypt.set_state(app, enabled=True)
    letsencrypt.set_state(app, last_error="boom")
    assert letsencrypt.state(app) == {"enabled": True, "last_error": "boom"}
    assert letsencrypt.enabled(app)
