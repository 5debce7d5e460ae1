import pytest

from provisioner.hostcmd import acme
from provisioner.hostcmd.settings import Settings

# What Debian's certbot 2.1 printed when the ACME server could not reach one of the names.
REFUSED = "\n".join(
    [
        "Saving debug log to /var/lib/provisioner/tls/acme/logs/letsencrypt.log",
        "Renewing an existing certificate for a.example.com and bad.example.com",
        "",
        "Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority "
        "reported these problems:",
        "  Domain: bad.example.com",
        "  Type:   connection",
        '  Detail: Get "http://bad.example.com:80/.well-known/acme-challenge/6ar5": dial tcp 127.0.0.9:80: '
        "connect: connection refused",
        "",
        "Hint: The Certificate Authority failed to download the temporary challenge files.",
        "",
        "Some challenges have failed.",
        "Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile x.log",
    ]
)


def test_certbot_command_line():
    settings = Settings(tls_dir="/var/lib/provisioner/tls", acme_server="https://acme.test/dir")
    argv = acme.certbot_argv(settings, "shop", ["shop.example.com", "www.example.com"])
    assert " ".join(argv) == (
        "/usr/bin/certbot certonly --non-interactive --agree-tos --webroot "
        "--webroot-path /var/lib/provisioner/tls/challenges "
        "--config-dir /var/lib/provisioner/tls/acme --work-dir /var/lib/provisioner/tls/acme/work "
        "--logs-dir /var/lib/provisioner/tls/acme/logs --max-log-backups 0 --server https://acme.test/dir "
        "--cert-name shop --force-renewal --register-unsafely-without-email "
        "-d shop.example.com -d www.example.com"
    )
    with_email = acme.certbot_argv(Settings(acme_email="ops@example.com"), "shop", ["shop.example.com"])
    assert "--email ops@example.com" in " ".join(with_email) and "--register-unsafely" not in " ".join(
        with_email
    )


def test_certbot_trusts_the_hosts_ca_store():
    env = acme.certbot_env(Settings())
    assert env["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"


def test_the_acme_servers_reason_is_one_line():
    message = acme.error_of(REFUSED)
    assert "\n" not in message
    assert message.startswith("the ACME server refused: bad.example.com: connection: Get ")
    assert message.endswith("connect: connection refused")


def test_an_unexpected_error_names_the_servers_words():
    output = "Saving debug log to x\nAn unexpected error occurred:\n"
    output += "Error creating new order :: too many certificates\nAsk for help or search"
    assert (
        acme.error_of(output) == "the ACME server refused: Error creating new order :: too many certificates"
    )


def test_any_other_failure_gives_certbots_last_words():
    assert acme.error_of("Saving debug log to x\nConnection refused to acme.test\n") == (
        "certbot failed: Connection refused to acme.test"
    )
    assert acme.error_of("") == "certbot failed: no output"


def test_a_refused_nonce_is_retried_and_other_refusals_are_not(monkeypatch, tmp_path):
    import subprocess

    settings = Settings(tls_dir=str(tmp_path))
    monkeypatch.setattr(acme, "CERTBOT", "/bin/true")
    monkeypatch.setattr(acme.time, "sleep", lambda s: None)
    answers = []

    def run(argv, **kwargs):
        answers.append(argv)
        bad = "Error returned by the ACME server: JWS has an invalid anti-replay nonce: x"
        return subprocess.CompletedProcess(argv, 1, "", bad if len(answers) < 3 else "Connection refused\n")

    monkeypatch.setattr(acme.subprocess, "run", run)
    with pytest.raises(acme.AcmeError, match="Connection refused"):
        acme.obtain(settings, "shop", ["shop.example.com"])
    assert len(answers) == 3  # two refused nonces, then a refusal that is final
    answers.clear()
    monkeypatch.setattr(
        acme.subprocess,
        "run",
        lambda argv, **kw: answers.append(1) or subprocess.CompletedProcess(argv, 1, "", "no"),
    )
    with pytest.raises(acme.AcmeError):
        acme.obtain(settings, "shop", ["shop.example.com"])
    assert len(answers) == 1
