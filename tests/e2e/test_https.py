"""HTTPS end to end: certificates from a real ACME server (Pebble, validating HTTP-01 against the sandbox's
nginx on port 80), custom certificates, renewal under load, and what `verify` says about them."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from provisioner import sandbox
from tests import certs
from tests.conftest import run_cli
from tests.e2e.conftest import app_host, container_ip, pushed_ok, root_exec

APPS_DIR = "/var/lib/provisioner/apps"


@pytest.fixture(scope="module")
def acme(pebble, deploy_box, docker_client, tmp_path_factory):
    """Pebble resolves every name to the deploy box; `root` is the file curl --cacert takes."""
    pebble.point_all_at(container_ip(docker_client, deploy_box))
    root = tmp_path_factory.mktemp("acme") / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    return root


def deploy(dev, app: str) -> None:
    """A new app (one of an earlier run of these tests goes first, certificate and all)."""
    dev.ssh("apps:destroy", app, "--force")
    repo = dev.repo(app, "static")
    pushed_ok(dev.push(repo, app), app)


def https(box, host: str, cadata: str, path: str = "/") -> tuple[int, str, dict]:
    """GET https://host/path through the box's published 443, with SNI host, verified against cadata."""
    context = ssl.create_default_context(cadata=cadata)
    with (
        socket.create_connection(("127.0.0.1", box.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls_sock,
    ):
        conn = http.client.HTTPConnection(host)
        conn.sock = tls_sock
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), tls_sock.getpeercert() or {}


def plain(box, host: str, path: str = "/") -> http.client.HTTPResponse:
    """GET http://host/path without following redirects."""
    conn = http.client.HTTPConnection("127.0.0.1", box.http_port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    resp = conn.getresponse()
    resp.read()
    return resp


def sans(peer: dict) -> list[str]:
    return sorted(value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS")


def serial(dev, app: str) -> str:
    shown = dev.ssh("certs", app)
    assert shown.returncode == 0, shown.stderr
    return next(line.split()[1] for line in shown.stdout.splitlines() if line.startswith("serial:"))


def curl(box, host: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["curl", "-sS", "--cacert", str(root), "--resolve", f"{host}:{box.https_port}:127.0.0.1"]
    return subprocess.run(
        [*argv, *args, f"https://{host}:{box.https_port}/"], capture_output=True, text=True, timeout=30
    )


def test_letsencrypt_enable_serves_https_and_redirects_http(deploy_box, dev, acme):
    deploy(dev, "sec1")
    host = app_host("sec1")
    enabled = dev.ssh("letsencrypt:enable", "sec1")
    assert enabled.returncode == 0, enabled.stderr
    assert f"sec1: HTTPS for {host}" in enabled.stdout
    # curl, trusting only Pebble's root: the app's page over HTTP/2, from a certificate for its domains
    got = curl(deploy_box, host, acme, "-w", "\n%{http_code} %{http_version}")
    assert got.returncode == 0, got.stderr
    assert "static sample site" in got.stdout and got.stdout.rstrip().endswith("200 2"), got.stdout
    status, _, peer = https(deploy_box, host, acme.read_text())
    assert status == 200 and sans(peer) == [host]
    # HTTP redirects with 308, path and query kept...
    resp = plain(deploy_box, host, "/page?x=1")
    assert resp.status == 308 and resp.getheader("Location") == f"https://{host}/page?x=1"
    # ...except the ACME challenge path, which answers over HTTP
    root_exec(
        deploy_box,
        "install -d -o deploy -m 755 /var/lib/provisioner/tls/challenges/.well-known/acme-challenge && "
        "echo token-e2e > /var/lib/provisioner/tls/challenges/.well-known/acme-challenge/e2e-probe",
    )
    resp = plain(deploy_box, host, "/.well-known/acme-challenge/e2e-probe")
    assert resp.status == 200
    listed = dev.ssh("letsencrypt:list")
    assert listed.returncode == 0 and "sec1" in listed.stdout and host in listed.stdout
    assert " ok" in next(line for line in listed.stdout.splitlines() if line.startswith("sec1 "))


def test_a_second_app_gets_its_own_certificate_and_unknown_names_none(deploy_box, dev, acme):
    deploy(dev, "sec2")
    enabled = dev.ssh("letsencrypt:enable", "sec2")
    assert enabled.returncode == 0, enabled.stderr
    root = acme.read_text()
    assert sans(https(deploy_box, app_host("sec2"), root)[2]) == [app_host("sec2")]
    assert sans(https(deploy_box, app_host("sec1"), root)[2]) == [app_host("sec1")]
    assert serial(dev, "sec1") != serial(dev, "sec2")
    # A name no app has a certificate for: the handshake fails, no certificate is shown at all.
    for unknown in ("unknown.example.com", app_host("nocert")):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", deploy_box.https_port), timeout=10) as raw,
            pytest.raises(ssl.SSLError, match=r"UNRECOGNIZED_NAME|unrecognized name"),
        ):
            context.wrap_socket(raw, server_hostname=unknown)


def test_forced_renewal_installs_a_new_certificate_without_a_failed_request(deploy_box, dev, acme):
    before = serial(dev, "sec1")
    root = acme.read_text()
    results: list[str] = []
    stop = threading.Event()

    def load() -> None:  # 20 requests a second, each a new TLS connection
        while not stop.is_set():
            started = time.monotonic()
            try:
                status, _, _ = https(deploy_box, app_host("sec1"), root)
                results.append(str(status))
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                results.append(f"{type(exc).__name__}: {exc}")
            time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1)
        renewed = dev.ssh("letsencrypt:renew", "sec1", "--force")
        time.sleep(1)
    finally:
        stop.set()
        thread.join()
    assert renewed.returncode == 0, renewed.stderr
    assert "sec1: renewed (forced)" in renewed.stdout
    failed = [r for r in results if r != "200"]
    assert len(results) >= 40 and not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
    after = serial(dev, "sec1")
    assert after != before
    assert https(deploy_box, app_host("sec1"), root)[2]["serialNumber"].lower().lstrip("0") == after.lstrip(
        "0"
    )
    # nothing was due for the other app
    assert "sec2: not due" in dev.ssh("letsencrypt:renew").stdout


def test_domains_add_expands_the_certificate_and_remove_shrinks_it(deploy_box, dev, acme):
    added = dev.ssh("domains:add", "sec2", "www.sec2.example.org")
    assert added.returncode == 0, added.stderr
    root = acme.read_text()
    assert sans(https(deploy_box, "www.sec2.example.org", root)[2]) == sorted(
        [app_host("sec2"), "www.sec2.example.org"]
    )
    removed = dev.ssh("domains:remove", "sec2", "www.sec2.example.org")
    assert removed.returncode == 0, removed.stderr
    assert sans(https(deploy_box, app_host("sec2"), root)[2]) == [app_host("sec2")]


def test_a_refused_certificate_request_changes_nothing(deploy_box, dev, acme, pebble):
    deploy(dev, "sec3")
    host = app_host("sec3")
    pebble.point(host, "127.0.0.9")  # the ACME server looks for the app at a wrong address
    try:
        refused = dev.ssh("letsencrypt:enable", "sec3")
    finally:
        pebble.unpoint(host)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "the ACME server refused" in errors[0] and "connection refused" in errors[0], errors[0]
    # HTTP keeps serving the app (no redirect), there is no certificate, nothing is enabled
    assert plain(deploy_box, host).status == 200
    assert "has no certificate" in dev.ssh("certs", "sec3").stdout
    assert "sec3" not in dev.ssh("letsencrypt:list").stdout
    leftovers = root_exec(deploy_box, f"ls -A {APPS_DIR}/sec3/tls {APPS_DIR}/sec3/tls.json 2>/dev/null; true")
    assert not leftovers.strip(), leftovers


def test_certs_add_checks_the_bundle_before_anything_changes(deploy_box, dev, acme, tmp_path):
    host = app_host("sec3")

    def add(bundle: str) -> subprocess.CompletedProcess[str]:
        argv = [*dev.env["GIT_SSH_COMMAND"].split(), "-p", str(deploy_box.ssh_port), "deploy@127.0.0.1"]
        return subprocess.run(
            [*argv, shlex.join(["certs:add", "sec3"])],
            input=bundle,
            capture_output=True,
            text=True,
            timeout=60,
        )

    cert, key = certs.make([host], days=60)
    added = add(cert + key)
    assert added.returncode == 0, added.stderr
    assert f"sec3: HTTPS for {host}" in added.stdout
    status, body, peer = https(deploy_box, host, cert)  # trusted as its own CA: this exact certificate
    assert status == 200 and "static sample site" in body and sans(peer) == [host]
    good = serial(dev, "sec3")
    other_cert, other_key = certs.make(["other.example.com"])
    refusals = {
        "garbage": ("not a certificate\n", "no certificate found"),
        "key of another certificate": (cert + certs.other_key(), "does not match"),
        "expired": ("".join(certs.make([host], days=-1, starts=-30)), "expired on"),
        "for another domain": (other_cert + other_key, "none of sec3's domains"),
    }
    for case, (bundle, reason) in refusals.items():
        refused = add(bundle)
        assert refused.returncode == 1, case
        assert refused.stderr.startswith("error: certificate refused:") and reason in refused.stderr, (
            case,
            refused.stderr,
        )
        assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, case
        assert serial(dev, "sec3") == good, case
    assert https(deploy_box, host, cert)[0] == 200


def test_verify_checks_certificates(deploy_box, dev, acme, provisioned, tmp_path):
    report = tmp_path / "verify.json"
    ok = run_cli("verify", deploy_box.name, "--only", "certificates", "--only", "ports_listening")
    assert ok.rc == 0, ok.stdout + ok.stderr
    # one that expires soon is a warning; an expired one (installed by hand, as root) fails the check
    host = app_host("sec3")
    cert, key = certs.make([host], days=10)
    argv = [*dev.env["GIT_SSH_COMMAND"].split(), "-p", str(deploy_box.ssh_port), "deploy@127.0.0.1"]
    subprocess.run([*argv, "certs:add sec3"], input=cert + key, text=True, check=True, capture_output=True)
    soon = run_cli("verify", deploy_box.name, "--only", "certificates", "--json", str(report))
    assert soon.rc == 0, soon.stdout + soon.stderr
    result = json.loads(report.read_text())["hosts"][deploy_box.name]["checks"][0]
    assert result["outcome"] == "passed" and result["detail"].startswith("warning: "), result
    assert re.search(r"sec3: the certificate expires in (9|10) days", result["detail"]), result
    record = json.loads(root_exec(deploy_box, f"cat {APPS_DIR}/sec3/tls.json"))
    pem = f"{APPS_DIR}/sec3/tls/{record['dir']}/fullchain.pem"
    expired = certs.make([host], days=-1, starts=-30)[0]
    root_exec(deploy_box, f"cp {pem} {pem}.keep && printf '%s' {shlex.quote(expired)} > {pem}")
    try:
        failed = run_cli("verify", deploy_box.name, "--only", "certificates")
        assert failed.rc == 1
        assert "check 'certificates' failed: sec3: the certificate expired on" in failed.stderr, failed.stderr
    finally:
        root_exec(deploy_box, f"mv {pem}.keep {pem}")


def test_https_answers_again_after_a_host_restart(deploy_box, dev, acme, pebble, docker_client):
    docker_client.containers.get(sandbox.container_name(deploy_box.name)).restart(timeout=30)
    restarted = time.monotonic()
    root = acme.read_text()
    answer = None
    while time.monotonic() - restarted < 90:
        try:
            answer = https(deploy_box, app_host("sec1"), root)[0]
            if answer == 200:
                break
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            answer = exc
        time.sleep(0.5)
    assert answer == 200, f"no HTTPS answer {time.monotonic() - restarted:.0f} s after the restart: {answer}"
    sandbox.start(deploy_box.name, docker_client)  # running already: waits for sshd, for the tests after this
    pebble.point_all_at(container_ip(docker_client, deploy_box))  # its address may have changed
