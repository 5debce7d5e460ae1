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
