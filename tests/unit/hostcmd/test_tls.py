import json
from datetime import UTC, datetime, timedelta

import pytest

from provisioner.hostcmd import names, tls
from provisioner.hostcmd.settings import Settings
from provisioner.hostcmd.store import App
from tests import certs


def test_a_valid_bundle_parses_with_its_names_and_expiry():
    cert, key = certs.make(["shop.example.com", "www.shop.example.com"], days=30)
    bundle = tls.parse_bundle(cert + key)
    assert bundle.info.names == ("shop.example.com", "www.shop.example.com")
    assert 29 < bundle.info.days_left() < 31
    assert bundle.chain.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in bundle.chain
    assert bundle.key.startswith("-----BEGIN PRIVATE KEY-----")
    assert tls.parse_bundle(key + cert).info == bundle.info  # the key may come first


@pytest.mark.parametrize(
    ("make_text", "message"),
    [
        (lambda: "garbage", "no certificate found"),
        (
            lambda: "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "does not parse",
        ),
        (lambda: certs.make(["a.example.com"])[0], "expected one private key"),
        (lambda: certs.make(["a.example.com"])[0] + certs.other_key(), "does not match"),
        (lambda: "".join(certs.make(["a.example.com"], days=-1, starts=-10)), "expired on"),
        (lambda: "".join(certs.make(["a.example.com"], days=20, starts=2)), "not valid before"),
        (lambda: "".join(certs.make([]))[0:0] + "".join(certs.make([])), "names no DNS name"),
        (
            lambda: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----",
            "encrypted",
        ),
        (lambda: "x" * (tls.MAX_BUNDLE + 1), "larger than"),
    ],
)
def test_a_bad_bundle_is_refused_with_a_clear_reason(make_text, message):
    with pytest.raises(tls.CertError, match=message):
        tls.parse_bundle(make_text())


@pytest.mark.parametrize(
    ("pattern", "domain", "ok"),
    [
        ("shop.example.com", "shop.example.com", True),
        ("SHOP.example.com", "shop.example.com", True),
        ("*.example.com", "shop.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.shop.example.com", False),
        ("*.com", "example.com", False),
        ("shop.example.com", "shop.example.com.evil", False),
    ],
)
def test_certificate_names_cover_domains(pattern, domain, ok):
    assert names.covers(pattern, domain) is ok


def test_covered_keeps_the_domains_order():
    assert tls.covered(["*.example.com"], ["a.example.com", "b.other.com", "c.example.com"]) == [
        "a.example.com",
        "c.example.com",
    ]


@pytest.fixture
def app(tmp_path):
    settings = Settings(domain="example.com", apps_dir=str(tmp_path / "apps"))
    a = App(settings, "shop")
    a.dir.mkdir(parents=True)
    return a


def test_install_records_and_prunes_the_previous_certificate(app):
    applied = []
    first = tls.install(
        app, tls.parse_bundle("".join(certs.make(["shop.example.com"]))), "custom", lambda: applied.append(1)
    )
    assert first.cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    assert tls.installed(app) == first and first.source == "custom" and first.names == ("shop.example.com",)
    second = tls.install(
        app,
        tls.parse_bundle("".join(certs.make(["shop.example.com"]))),
        "letsencrypt",
        lambda: applied.append(2),
    )
    assert tls.installed(app) == second and not first.directory.exists() and applied == [1, 2]


def test_a_refused_install_keeps_the_certificate_that_was_serving(app):
    first = tls.install(
        app, tls.parse_bundle("".join(certs.make(["shop.example.com"]))), "custom", lambda: None
    )

    def refuse():
        raise RuntimeError("nginx refused")

    with pytest.raises(RuntimeError):
        tls.install(app, tls.parse_bundle("".join(certs.make(["shop.example.com"]))), "custom", refuse)
    assert tls.installed(app) == first and first.cert.exists()
    assert [p.name for p in (app.dir / "tls").iterdir()] == [first.directory.name]


def test_a_refused_removal_keeps_the_certificate(app):
    first = tls.install(
        app, tls.parse_bundle("".join(certs.make(["shop.example.com"]))), "custom", lambda: None
    )

    def refuse():
        raise RuntimeError("nginx refused")

    with pytest.raises(RuntimeError):
        tls.remove(app, refuse)
    assert tls.installed(app) == first
    assert tls.remove(app, lambda: None) and tls.installed(app) is None and not first.directory.exists()
    assert not tls.remove(app, lambda: None)


def test_a_tls_record_naming_another_path_is_ignored(app):
    (app.dir / "tls.json").write_text(json.dumps({"dir": "../../etc", "source": "custom"}))
    assert tls.installed(app) is None


def test_days_left_of_an_installed_certificate(app):
    expiry = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cert = tls.Installed(app.dir, "custom", ("a.example.com",), expiry, "")
    assert 9 < cert.days_left() <= 10


@pytest.mark.parametrize(
    ("value", "on"), [("on", True), ("TRUE", True), ("1", True), ("off", False), ("", False)]
)
def test_hsts_config_var(value, on):
    assert tls.hsts({"HSTS": value} if value else {}) is on
