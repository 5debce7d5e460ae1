"""`provisioner cloud-init`: the user-data of both modes, the bundle, waiting for cloud-init; the sandboxes'
distributions. (cloud-init itself validates the output in tests/e2e/test_distros.py.)"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from provisioner import cli, cloudinit, firstboot, preflight, sandbox
from provisioner.errors import HostErrors, UsageError
from provisioner.targets import Host
from tests.unit.test_hostvars import ed25519_line

KEY = ed25519_line("k")
SHA = "0" * 64


def load(text: str) -> dict:
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def self_data(**variables: object) -> dict:
    text = cloudinit.self_provision(
        "ops",
        [KEY],
        {"receiver_authorized_keys": [KEY], **variables},
        bundle_url="https://files.example.com/b.tar.gz",
        bundle_sha256=SHA,
    )
    return load(text)


def test_prepare_makes_the_admin_user_and_installs_python3_only():
    doc = load(cloudinit.prepare("ops", [KEY]))
    assert doc["users"][0] == "default"  # the image's own user (the provider's console) stays
    admin = doc["users"][1]
    assert admin["name"] == "ops" and admin["ssh_authorized_keys"] == [KEY]
    assert admin["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and admin["lock_passwd"] is True
    assert doc["packages"] == ["python3"]
    assert set(doc) == {"users", "packages"}


@pytest.mark.parametrize("name", ["root", "deploy", "Ops", "1ops", "ops;rm", "a b", "", "x" * 33, "ops\n"])
def test_bad_admin_names_are_refused(name):
    with pytest.raises(UsageError, match="invalid --user"):
        cloudinit.prepare(name, [KEY])


def test_no_key_is_refused():
    with pytest.raises(UsageError, match="--key"):
        cloudinit.prepare("ops", [])


def test_self_carries_the_variables_the_bootstrap_and_the_pinned_bundle():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    doc = self_data(
        provisioner_domain="apps.example.com", base_ca_certificates=[{"name": "x", "content": pem}]
    )
    files = {f["path"]: f for f in doc["write_files"]}
    boot = json.loads(files[f"{cloudinit.STATE_DIR}/bootstrap.json"]["content"])
    assert boot["bundle_sha256"] == SHA and boot["bundle_url"] == "https://files.example.com/b.tar.gz"
    assert boot["ansible_core"] == cloudinit.ansible_core_version()
    variables = json.loads(files[f"{cloudinit.STATE_DIR}/vars.json"]["content"])
    assert variables["provisioner_domain"] == "apps.example.com"
    assert variables["receiver_authorized_keys"] == [KEY]
    assert all(files[p]["permissions"] == "0600" for p in files if p.endswith(".json"))
    script = files[f"{cloudinit.STATE_DIR}/firstboot.py"]
    assert script["encoding"] == "gz+b64"
    assert gzip.decompress(base64.b64decode(script["content"])) == Path(firstboot.__file__).read_bytes()
    assert doc["ca_certs"] == {"trusted": [pem.strip()]}  # trusted before the bundle and PyPI are fetched
    assert doc["runcmd"] == [["python3", f"{cloudinit.STATE_DIR}/firstboot.py"]]
    assert "python3-venv" in doc["packages"]


def test_self_user_data_stays_under_the_clouds_limit_or_is_refused():
    assert len(cloudinit.self_provision("ops", [KEY], {}, bundle_url="http://h/b", bundle_sha256=SHA)) < 12000
    with pytest.raises(UsageError, match="over the 16384"):
        self_data(docker_x="y" * 20000)


@pytest.mark.parametrize(
    "url", ["http://:8765/b", "ftp://h/b", "http://h/a b", "file:///b", "h/b", "http://h/'"]
)
def test_bad_bundle_urls_are_refused(url):
    with pytest.raises(UsageError, match="invalid --bundle-url"):
        cloudinit.self_provision("ops", [KEY], {}, bundle_url=url, bundle_sha256=SHA)


def test_the_bundle_is_reproducible_and_holds_the_playbook_roles_and_program():
    data = cloudinit.bundle()
    assert cloudinit.bundle() == data  # the same SHA-256 for the same sources: pinned user-data stays valid
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert "playbooks/site.yml" in names and "hostcmd.zip" in names
    assert "roles/receiver/tasks/main.yml" in names and "roles/base/meta/argument_specs.yml" in names
    assert not [n for n in names if n.endswith("README.md") or "__pycache__" in n]


def test_firstboot_refuses_a_bundle_that_is_not_the_pinned_one(tmp_path):
    source = tmp_path / "b.tar.gz"
    source.write_bytes(b"not the bundle")
    with pytest.raises(RuntimeError, match="not the pinned"):
        firstboot.fetch(source.as_uri(), SHA, tmp_path / "got")
    assert not (tmp_path / "got").exists()


class States:
    """preflight.run_command's answers for `cloud-init status`, in turn per host."""

    def __init__(self, **answers: list[object]) -> None:
        self.answers = answers

    def __call__(self, host: Host, command: str, timeout: float | None = None) -> str:
        answer = (
            self.answers[host.name].pop(0) if len(self.answers[host.name]) > 1 else self.answers[host.name][0]
        )
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


def test_wait_follows_each_host_until_cloud_init_is_done(monkeypatch):
    from provisioner.errors import ProvisionerError

    refused = ProvisionerError("SSH login as 'ops' was rejected")
    monkeypatch.setattr(preflight, "run_command", States(a=[refused, "running\n", "done\n"], b=["absent\n"]))
    said: list[str] = []
    cloudinit.wait_for(
        [Host(name="a", address="h1"), Host(name="b", address="h2")], say=said.append, interval=0
    )
    assert said == [
        "a: cloud-init: not reachable yet (SSH login as 'ops' was rejected)",
        "b: cloud-init: absent",
        "a: cloud-init: running",
        "a: cloud-init: done",
    ]


def test_wait_reports_cloud_init_errors_and_timeouts_by_host(monkeypatch):
    monkeypatch.setattr(preflight, "run_command", States(a=["error\n"], b=["running\n"]))
    with pytest.raises(HostErrors) as caught:
        cloudinit.wait_for(
            [Host(name="a", address="h1"), Host(name="b", address="h2")], timeout=0, interval=0
        )
    lines = caught.value.lines()
    assert lines[0].startswith("a: cloud-init finished with errors (see `cloud-init status --long`")
    assert lines[1] == "b: cloud-init had not finished after 0 s (last: running)"


def test_cloud_init_command_errors_are_one_line(tmp_path):
    key = tmp_path / "k.pub"
    key.write_text(KEY + "\n")
    runner = CliRunner()
    prepare = runner.invoke(cli.main, ["cloud-init", "--key", str(key), "--domain", "a.example.com"])
    assert prepare.exit_code == 2 and "--domain: only with --mode self" in prepare.output
    no_url = runner.invoke(cli.main, ["cloud-init", "--mode", "self", "--key", str(key)])
    assert no_url.exit_code == 2 and "--mode self needs --bundle-url" in no_url.output
    missing = runner.invoke(cli.main, ["cloud-init", "--key", str(tmp_path / "none.pub")])
    assert (
        missing.exit_code == 2 and "public key file" in missing.output and "cannot be read" in missing.output
    )
    for result in (prepare, no_url, missing):
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    made = runner.invoke(cli.main, ["cloud-init", "--user", "ops", "--key", str(key)])
    assert made.exit_code == 0 and load(made.output)["users"][1]["ssh_authorized_keys"] == [KEY]


# --- sandbox distributions -----------------------------------------------------------------------------


def test_each_sandbox_os_has_its_sources_and_image():
    assert set(sandbox.OSES) == {"debian-12", "debian-13", "ubuntu-24.04"}
    assert (
        "deb http://deb.debian.org/debian-security trixie-security main"
        in sandbox.distro("debian-13").sources()
    )
    ubuntu = sandbox.distro("ubuntu-24.04")
    assert "noble-security main universe" in ubuntu.sources()  # docker.io is in universe
    keyring = ubuntu.keyring()
    assert keyring is not None and keyring.is_file()  # debootstrap checks Ubuntu's archive with it
    assert sandbox.image_tag("ubuntu-24.04") == "provisioner/sandbox:noble"
    assert sandbox.image_tag("debian-12", cloud_init=True) == "provisioner/sandbox:bookworm-cloud-init"
    with pytest.raises(UsageError, match="unknown --os 'debian-11'"):
        sandbox.distro("debian-11")


def test_a_sandbox_seed_is_checked_and_named(tmp_path):
    good = tmp_path / "u.yml"
    good.write_text("#cloud-config\npackages: [python3]\n")
    assert sandbox.read_user_data(str(good)).startswith(b"#cloud-config")
    bad = tmp_path / "notes.txt"
    bad.write_text("packages: [python3]\n")
    with pytest.raises(UsageError, match="is not user-data"):
        sandbox.read_user_data(str(bad))
    with pytest.raises(UsageError, match="cannot be read"):
        sandbox.read_user_data(str(tmp_path / "missing"))
    seed = sandbox.seed_files("box", b"#cloud-config\n")
    assert set(seed) == {f"{sandbox.SEED_DIR}/user-data", f"{sandbox.SEED_DIR}/meta-data"}
    assert b"local-hostname: box" in seed[f"{sandbox.SEED_DIR}/meta-data"][0]


def test_a_failed_first_boot_says_where_and_why_in_its_status_and_exit_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(firstboot, "HERE", tmp_path)
    monkeypatch.setattr(firstboot, "STATUS", tmp_path / "status.json")
    monkeypatch.setattr(firstboot.time, "sleep", lambda _s: None)
    (tmp_path / "bundle.tar.gz").write_bytes(b"tampered")
    boot = {
        "bundle_url": (tmp_path / "bundle.tar.gz").as_uri(),
        "bundle_sha256": SHA,
        "ansible_core": "2.19.0",
    }
    (tmp_path / "bootstrap.json").write_text(json.dumps(boot))
    assert firstboot.main() == 1  # cloud-init's runcmd fails: `cloud-init status` says error
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == "fetching the bundle"
    assert "not the pinned" in status["error"]
    assert "provisioner first boot: failed: fetching the bundle:" in capsys.readouterr().err
