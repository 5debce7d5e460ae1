from pathlib import Path

import pytest

from provisioner import hostvars
from provisioner.errors import UsageError
from provisioner.targets import Host

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAAAA==\n-----END CERTIFICATE-----"


def test_wildcard_domain():
    assert hostvars.wildcard_domain("203.0.113.7") == "203.0.113.7.sslip.io"
    assert hostvars.wildcard_domain("2001:db8::1") == "2001-db8--1.sslip.io"


def test_host_vars_default_and_explicit_domain():
    hosts = [Host("sbx", "127.0.0.1", 40022, sandbox=True)]
    assert hostvars.host_vars(hosts) == {"sbx": {"provisioner_domain": "127.0.0.1.sslip.io"}}
    assert hostvars.host_vars(hosts, "apps.example.com")["sbx"]["provisioner_domain"] == "apps.example.com"


@pytest.mark.parametrize("bad", ["", "localhost", "a b.com", "x;y.com", "-a.com", "foo..com"])
def test_bad_domains(bad):
    with pytest.raises(UsageError):
        hostvars.validate_domain(bad)


def test_ca_bundle_is_split_and_deduplicated(tmp_path):
    other = CERT.replace("AAAA", "BBBB")
    bundle = tmp_path / "Corp Bundle.pem"
    bundle.write_text(f"junk\n{CERT}\n{other}\n{CERT}\n")
    items = hostvars.ca_certificates([str(bundle)])
    assert [i["name"] for i in items] == ["corp-bundle-0", "corp-bundle-1"]
    assert items[0]["content"] == CERT + "\n"


def test_ca_file_errors(tmp_path):
    empty = tmp_path / "x.pem"
    empty.write_text("nothing here")
    with pytest.raises(UsageError, match="no PEM certificate"):
        hostvars.ca_certificates([str(empty)])
    with pytest.raises(UsageError, match="cannot be read"):
        hostvars.ca_certificates([str(tmp_path / "missing.pem")])


def test_extra_vars_only_what_was_given():
    assert set(hostvars.extra_vars()) == {"receiver_program_archive"}
    assert hostvars.extra_vars()["receiver_program_archive"].endswith(".zip")
    assert hostvars.extra_vars(apt_proxy="http://proxy:3128")["base_apt_proxy"] == "http://proxy:3128"
    assert hostvars.parse_extra_vars(["docker_log_max_file=5"]) == {"docker_log_max_file": "5"}
    with pytest.raises(UsageError):
        hostvars.parse_extra_vars(["not a var=1"])


def ed25519_line(comment: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{raw} {comment}"


def test_deploy_keys(tmp_path):
    line = ed25519_line("me@laptop")
    pub = tmp_path / "id.pub"
    pub.write_text(line + "\n")
    assert hostvars.deploy_keys([], [str(tmp_path / "id")]) == [line]
    bad = tmp_path / "bad.pub"
    bad.write_text(f'command="sh" {line}\n')
    with pytest.raises(UsageError, match=r"bad\.pub.*not an OpenSSH public key"):
        hostvars.deploy_keys([str(bad)], [])
    damaged = tmp_path / "damaged.pub"  # the host's rule: the base64 must hold a key of the named type
    damaged.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk me\n")
    with pytest.raises(UsageError, match=r"damaged\.pub"):
        hostvars.deploy_keys([str(damaged)], [])


def test_ansible_vars_are_what_up_passes(tmp_path):
    from provisioner import api

    line = ed25519_line("me")
    pub = tmp_path / "k.pub"
    pub.write_text(line + "\n")
    data = api.ansible_vars("192.168.56.10", api.UpOptions(deploy_keys=[str(pub)]))
    assert data["provisioner_domain"] == "192.168.56.10.sslip.io"
    assert data["receiver_authorized_keys"] == [line]
    assert Path(data["receiver_program_archive"]).is_file()
    options = api.UpOptions(domain="apps.example.com", deploy_keys=[str(pub)], extra_vars=["docker_x=1"])
    assert api.ansible_vars("10.0.0.1", options)["provisioner_domain"] == "apps.example.com"
    assert api.ansible_vars("10.0.0.1", options)["docker_x"] == "1"
    # no address and no --domain (a VM configuring itself): the host works its domain out itself
    assert "provisioner_domain" not in api.ansible_vars(None, api.UpOptions(deploy_keys=[str(pub)]))


@pytest.mark.parametrize(
    "url",
    ['http://p:3128";Acquire::x "y', "https://i/simple\n[global]", "ftp://x", "http://a b", "", "http://x'y"],
)
def test_proxy_and_index_urls_are_validated(url):
    with pytest.raises(UsageError):
        hostvars.validate_url("--apt-proxy", url)


def test_credentials_in_urls_are_fine():
    url = "https://user:p%40ss@proxy.example:3128/simple"
    assert hostvars.validate_url("--pip-index-url", url) == url


def test_acme_options_become_tls_role_variables():
    assert hostvars.acme_vars(None, None, False) == {}
    assert hostvars.acme_vars("ops@example.com", "https://acme.test:14000/dir", False) == {
        "tls_acme_email": "ops@example.com",
        "tls_acme_server": "https://acme.test:14000/dir",
    }
    assert hostvars.acme_vars(None, None, True) == {"tls_acme_server": hostvars.LETSENCRYPT_STAGING}


@pytest.mark.parametrize(
    ("email", "server", "staging", "message"),
    [
        ("not-an-email", None, False, "invalid --acme-email"),
        ("a@b.c\nx", None, False, "invalid --acme-email"),
        (None, "http://acme.test/dir", False, "expected an https://"),
        (None, "https://acme.test/dir' x", False, "invalid --acme-server"),
        (None, "https://acme.test/dir", True, "not both"),
    ],
)
def test_bad_acme_options_are_refused(email, server, staging, message):
    with pytest.raises(UsageError, match=message):
        hostvars.acme_vars(email, server, staging)
