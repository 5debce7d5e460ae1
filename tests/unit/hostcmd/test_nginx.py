import pytest

from provisioner.hostcmd import nginx


def test_render_routes_all_domains_to_all_ports():
    text = nginx.render("shop", ["shop.1.2.3.4.sslip.io", "www.shop.example"], [41002, 41001])
    assert "upstream provisioner-app-shop {" in text
    assert text.index("127.0.0.1:41001") < text.index("127.0.0.1:41002")
    assert "server_name shop.1.2.3.4.sslip.io www.shop.example;" in text
    assert "proxy_pass http://provisioner-app-shop;" in text
    assert "listen 80;" in text and "default_server" not in text


def test_render_without_web_answers_503():
    text = nginx.render("shop", ["shop.example.com"], [])
    assert "return 503" in text and "proxy_pass" not in text


@pytest.mark.parametrize("domain", ["evil.com; }", "a.com\nserver { listen 80", "x"])
def test_render_refuses_injection(domain):
    with pytest.raises(ValueError):
        nginx.render("shop", [domain], [1000])


def test_render_needs_a_domain():
    with pytest.raises(nginx.NginxError):
        nginx.render("shop", [], [1000])


def test_apply_keeps_old_vhost_when_nginx_refuses(tmp_path, monkeypatch):
    (tmp_path / "shop.conf").write_text("old")
    monkeypatch.setattr(nginx, "check_config", lambda: "nginx: [emerg] bad")
    reloaded = []
    monkeypatch.setattr(nginx, "reload", lambda: reloaded.append(1))
    with pytest.raises(nginx.NginxError, match="kept the old one"):
        nginx.apply(tmp_path, "shop", "new")
    assert (tmp_path / "shop.conf").read_text() == "old" and not reloaded


def test_apply_writes_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setattr(nginx, "check_config", lambda: None)
    monkeypatch.setattr(nginx, "wait_live", lambda text, old: True)
    reloaded = []
    monkeypatch.setattr(nginx, "reload", lambda: reloaded.append(1))
    nginx.apply(tmp_path, "shop", "new")
    nginx.apply(tmp_path, "shop", "new")  # unchanged: no reload
    assert (tmp_path / "shop.conf").read_text() == "new" and reloaded == [1]
    nginx.apply(tmp_path, "shop", None)
    assert not (tmp_path / "shop.conf").exists() and reloaded == [1, 1]


def test_each_vhost_carries_a_token_to_see_it_live():
    one = nginx.render("shop", ["shop.example.com"], [41001])
    two = nginx.render("shop", ["shop.example.com"], [41002])
    assert nginx.token_of(one)[0] == "shop.example.com"
    assert nginx.token_of(one)[1] != nginx.token_of(two)[1]
    assert f"location = {nginx.PROBE}" in one


SITE = nginx.Tls("/apps/shop/tls/ab-1/fullchain.pem", "/apps/shop/tls/ab-1/key.pem", ("shop.example.com",))


def test_with_a_certificate_its_names_answer_over_https_and_redirect_from_http():
    text = nginx.render(
        "shop", ["shop.example.com"], [41001], acme_root="/var/lib/provisioner/tls/challenges", tls=SITE
    )
    https = text[text.index("listen 443 ssl;") :]
    http = text[: text.index("listen 443 ssl;")]
    assert "ssl_certificate /apps/shop/tls/ab-1/fullchain.pem;" in https
    assert f"include {nginx.TLS_SNIPPET};" in https and "proxy_pass http://provisioner-app-shop;" in https
    assert "return 308 https://$host$request_uri;" in http and "proxy_pass" not in http
    # the ACME challenge path keeps answering over plain HTTP
    assert "location ^~ /.well-known/acme-challenge/ {" in http
    assert "root /var/lib/provisioner/tls/challenges;" in http
    assert "Strict-Transport-Security" not in text


def test_names_the_certificate_does_not_cover_stay_plain_http():
    text = nginx.render("shop", ["shop.example.com", "shop.other.org"], [41001], tls=SITE)
    plain, redirect, https = text.split("\nserver {")[1:]
    assert "server_name shop.other.org;" in plain and "proxy_pass" in plain
    assert "server_name shop.example.com;" in redirect and "return 308" in redirect
    assert "server_name shop.example.com;" in https and "listen 443 ssl;" in https


def test_hsts_only_on_https():
    site = nginx.Tls(SITE.cert, SITE.key, SITE.names, hsts=True)
    text = nginx.render("shop", ["shop.example.com"], [41001], tls=site)
    assert text.count("Strict-Transport-Security") == 1
    assert text.index("Strict-Transport-Security") > text.index("listen 443 ssl;")


def test_a_new_certificate_changes_the_vhost_token():
    other = nginx.Tls("/apps/shop/tls/cd-2/fullchain.pem", "/apps/shop/tls/cd-2/key.pem", SITE.names)
    one = nginx.render("shop", ["shop.example.com"], [41001], tls=SITE)
    two = nginx.render("shop", ["shop.example.com"], [41001], tls=other)
    assert nginx.token_of(one)[1] != nginx.token_of(two)[1]


@pytest.mark.parametrize("path", ["/x/a b.pem", "/x/a;.pem", "relative.pem", "/x/$host.pem"])
def test_an_unsafe_certificate_path_is_refused(path):
    with pytest.raises(nginx.NginxError, match="unsafe path"):
        nginx.render("shop", ["shop.example.com"], [41001], tls=nginx.Tls(path, SITE.key, SITE.names))


@pytest.mark.parametrize("failure", ["reload", "not live"])
def test_a_failed_switch_puts_the_old_vhost_back_and_reloads_it(tmp_path, monkeypatch, failure):
    (tmp_path / "shop.conf").write_text("old")
    monkeypatch.setattr(nginx, "check_config", lambda: None)
    monkeypatch.setattr(nginx, "accepting_workers", lambda: set())
    reloads = []
    live = []

    def reload():
        reloads.append((tmp_path / "shop.conf").read_text())
        if failure == "reload" and len(reloads) == 1:
            raise nginx.NginxError("nginx reload failed: open() /run/nginx.pid failed")

    def wait_live(text, workers):
        live.append(text)
        return failure != "not live" or text == "old"

    monkeypatch.setattr(nginx, "reload", reload)
    monkeypatch.setattr(nginx, "wait_live", wait_live)
    with pytest.raises(nginx.NginxError, match=r"\(the old one is back\)"):
        nginx.apply(tmp_path, "shop", "new")
    assert (tmp_path / "shop.conf").read_text() == "old"
    assert reloads == ["new", "old"] and live[-1] == "old"


def test_a_failed_first_switch_removes_the_new_vhost(tmp_path, monkeypatch):
    monkeypatch.setattr(nginx, "check_config", lambda: None)
    monkeypatch.setattr(nginx, "accepting_workers", lambda: set())
    monkeypatch.setattr(nginx, "wait_live", lambda text, workers: text is None)
    monkeypatch.setattr(nginx, "reload", lambda: None)
    with pytest.raises(nginx.NginxError, match="did not start serving"):
        nginx.apply(tmp_path, "shop", "new")
    assert not (tmp_path / "shop.conf").exists() and not list(tmp_path.iterdir())
